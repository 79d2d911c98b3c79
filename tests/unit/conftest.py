"""Fixtures of the unit tests."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

from lwr.config import AppSettings, ManagerSettings
from lwr.core.jobs import JobService
from lwr.managers.queued_python import QueuedPythonManager


@pytest.fixture
def service(tmp_path: Path) -> Iterator[JobService]:
    """A started job service with one local manager running one job at a time, in ``tmp_path``
    (staging under ``staging/``, records under ``persisted/``)."""
    settings = AppSettings(
        staging_directory=tmp_path / "staging",
        persistence_directory=tmp_path / "persisted",
        managers=(ManagerSettings("_default_", "queued_python"),),
    )
    manager = functools.partial(QueuedPythonManager, "_default_", {"max_concurrent_jobs": 1})
    started = JobService(settings, {"_default_": manager})
    started.start()
    yield started
    started.shutdown()
