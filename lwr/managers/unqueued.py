"""unqueued: starts every job at once, with no limit. Deprecated; kept for old setups."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import Any

from lwr.managers.base import GALAXY_SLOTS_OPTION, ManagerListener
from lwr.managers.queued_python import QueuedPythonManager

log = logging.getLogger(__name__)

#: Large enough to never hold a job back.
UNLIMITED = 1 << 30


class UnqueuedManager(QueuedPythonManager):
    """A queued_python manager without a limit: every job starts as soon as it is submitted."""

    type_name = "unqueued"
    options = {"galaxy_slots": GALAXY_SLOTS_OPTION}

    def __init__(self, name: str, settings: Mapping[str, Any], listener: ManagerListener) -> None:
        super().__init__(name, {**settings, "max_concurrent_jobs": UNLIMITED}, listener)
        message = (
            f"manager '{name}': type 'unqueued' is deprecated; use 'queued_python' with "
            "max_concurrent_jobs = * instead"
        )
        warnings.warn(message, DeprecationWarning, stacklevel=2)
        log.warning(message)
