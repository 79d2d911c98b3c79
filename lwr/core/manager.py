"""The contract between lwr's core and a job manager.

The core owns job state and the job directory; a manager only runs a prepared job script
somewhere (a local process, a batch system, DRMAA) and tells the core what happened through
a :class:`ManagerListener`. The exit code is never the manager's business: the job script
records it beside the job, so it survives the batch system forgetting the job.

A manager type declares the options it accepts in ``options`` (and key prefixes it passes
through, such as ``submit_`` for HTCondor); ``lwr.config`` validates job_managers.ini against
them, so a manager receives typed values and never parses configuration itself.
"""

from __future__ import annotations

import copy
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Protocol

from lwr.core.job_directory import JobDirectory
from lwr.core.states import JobState
from lwr.protocol.failure import FailureClass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Option:
    """One key a manager type accepts in its ``[manager:NAME]`` section.

    ``kind`` is a converter from the ini string (``int``, ``float``, ``str``, :func:`as_bool`, or
    a manager-specific function); it raises ``ValueError`` with what was expected.
    """

    kind: Callable[[str], Any]
    default: Any
    help: str
    expected: str = ""


def as_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "on", "1"):
        return True
    if lowered in ("false", "no", "off", "0"):
        return False
    raise ValueError("expected true or false")


def galaxy_slots(text: str) -> int:
    """``galaxy_slots``: the GALAXY_SLOTS of jobs no batch system sized (a positive integer)."""
    value = int(text)
    if value < 1:
        raise ValueError("expected a positive integer")
    return value


#: The option of the local managers (queued_python, unqueued) sizing their jobs' GALAXY_SLOTS.
GALAXY_SLOTS_OPTION = Option(
    galaxy_slots, None, "GALAXY_SLOTS of every job (unset: the environment's, else 1)", "a positive integer"
)


class ManagerListener(Protocol):
    """What a manager reports to the core; every call is safe from any thread."""

    def job_submitted(self, job_id: str, external_id: str) -> None:
        """The batch system (or OS) accepted the job under ``external_id``; recorded durably."""

    def job_resubmitting(self, job_id: str) -> None:
        """The batch id recorded for the job is no longer its own (the batch system forgot or
        held that copy): forget it durably *before* the manager cancels that copy and submits
        again, so lwr restarted in between submits again instead of judging the dead copy."""

    def job_running(self, job_id: str) -> None:
        """The job script started."""

    def job_started(self, job_id: str, external_id: str) -> None:
        """A local process started the job script as ``external_id`` (its pid): submitted and
        running in one change. The job directory tells both again (pid file, launch marker, run
        lock), so this is not fsynced: after a power loss the job is queued and re-attached."""

    def job_ended(
        self,
        job_id: str,
        state: JobState,
        reason: str | None = None,
        failure_class: FailureClass | None = None,
    ) -> None:
        """The job script is gone; ``state`` is COMPLETE when it ran to its end (whatever its
        exit code), otherwise FAILED, CANCELLED or LOST with a ``reason`` for the status and,
        for FAILED and LOST, a ``failure_class`` (lwr.protocol.failure) for Galaxy's rules."""

    def batch_queried(self, seconds: float, failed: bool) -> None:
        """One status query of the batch system took ``seconds`` (``failed``: it raised)."""


@dataclass(frozen=True)
class LaunchSpec:
    """Everything a manager needs to run one job."""

    job_id: str
    directory: JobDirectory
    script: str
    submit_params: Mapping[str, Any] = field(default_factory=dict)
    submit_user: str | None = None


class Manager(ABC):
    """Runs job scripts and reports their progress; one instance per ``[manager:NAME]``."""

    type_name: ClassVar[str]
    options: ClassVar[dict[str, Option]] = {}
    #: ini keys starting with one of these are accepted as-is (e.g. ``submit_`` for HTCondor).
    option_prefixes: ClassVar[tuple[str, ...]] = ()
    #: True if jobs run as other users who must reach their job directory through lwr's staging
    #: directory (which is then traverse-only, 0711, instead of private, 0700).
    hands_directories_to_users: ClassVar[bool] = False

    def __init__(self, name: str, settings: Mapping[str, Any], listener: ManagerListener) -> None:
        self.name = name
        #: Every option of the table, at its default unless ``settings`` gives it: subclasses
        #: index ``self.settings[key]`` and never repeat a default.
        self.settings: Mapping[str, Any] = self.settings_with_defaults(settings)
        self.listener = listener

    @classmethod
    def settings_with_defaults(cls, settings: Mapping[str, Any]) -> dict[str, Any]:
        """``settings`` plus each option of :attr:`options` it lacks, at the table's default: the
        one place a default is applied (job_managers.ini's parser and the constructor use it)."""
        defaults = {key: copy.copy(option.default) for key, option in cls.options.items()}
        return {**defaults, **settings}

    def start(self) -> None:
        """Start background threads (queue workers, pollers). Called once, after recovery."""

    @abstractmethod
    def launch(self, spec: LaunchSpec) -> None:
        """Queue or submit a job. Must return quickly; report progress through the listener."""

    @abstractmethod
    def reattach(self, spec: LaunchSpec, external_id: str | None, was_running: bool) -> None:
        """Follow a job launched before lwr restarted, to its end."""

    @abstractmethod
    def kill(self, job_id: str) -> None:
        """Stop the job (its whole process group, or the batch job). Idempotent."""

    def shutdown(self) -> None:
        """Stop background threads; running jobs keep running and are re-attached later."""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type_name}
