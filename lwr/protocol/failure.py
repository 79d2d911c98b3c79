"""Why a job failed, as a machine-readable class beside the human ``reason`` (Pulsar issue 492).

Galaxy's resubmission rules (``<resubmit condition="walltime_reached" .../>``) test the job
state's ``runner_state``, whose values are ``galaxy.jobs.runners.util.runner_states``. Pulsar's
wire has no field for it, so a Pulsar job killed for its walltime can never be resubmitted.
lwr puts two keys in every final status reply of a job that did not succeed:

* ``failure_class``: lwr's own, finer class (one of :class:`FailureClass`), for operators and
  for rules that want more than Galaxy distinguishes (``node_failure``, ``disk_full``...);
* ``runner_state``: the Galaxy runner state it maps to, so a Pulsar runner that sets
  ``job_state.runner_state = full_status.get("runner_state")`` makes every existing
  resubmission condition work unchanged.

A manager decides the class where it maps a batch-system state; the core decides it for
staging and launch failures. Classes are stable wire strings: add, never rename.
"""

from __future__ import annotations

import errno
from enum import Enum
from typing import Any


class FailureClass(str, Enum):
    """What kind of failure ended a job; the value is what goes on the wire."""

    #: The batch system's time limit (Slurm TIMEOUT/DEADLINE, a walltime hold or kill).
    WALLTIME_REACHED = "walltime_reached"
    #: The memory limit (Slurm OUT_OF_MEMORY, a memory hold, the OOM killer).
    MEMORY_LIMIT_REACHED = "memory_limit_reached"
    #: The node the job ran on failed or could not boot (Slurm NODE_FAIL/BOOT_FAIL, LSF ZOMBI).
    NODE_FAILURE = "node_failure"
    #: Preempted by a higher-priority job and not requeued.
    PREEMPTED = "preempted"
    #: Server-side staging (inputs fetched or outputs pushed) failed.
    STAGING_FAILED = "staging_failed"
    #: The staging or persistence file system is full.
    DISK_FULL = "disk_full"
    #: Removed by an administrator or a system policy, not by the client's cancel.
    CANCELLED_BY_SYSTEM = "cancelled_by_system"
    #: The batch system (or the OS) refused to start the job script.
    LAUNCH_FAILED = "launch_failed"
    #: The job script was killed or died before recording the tool's exit code.
    JOB_SCRIPT_FAILED = "job_script_failed"
    #: Nobody knows the job any more (the batch system forgot it, its manager is gone).
    JOB_LOST = "job_lost"
    #: The batch system failed the job without saying why.
    UNKNOWN = "unknown"


#: Galaxy's ``runner_states`` values (galaxy/jobs/runners/util/__init__.py), as wire strings.
GALAXY_WALLTIME_REACHED = "walltime_reached"
GALAXY_MEMORY_LIMIT_REACHED = "memory_limit_reached"
GALAXY_UNKNOWN_ERROR = "unknown_error"

_GALAXY_RUNNER_STATES: dict[FailureClass, str] = {
    FailureClass.WALLTIME_REACHED: GALAXY_WALLTIME_REACHED,
    FailureClass.MEMORY_LIMIT_REACHED: GALAXY_MEMORY_LIMIT_REACHED,
}


def runner_state(failure_class: FailureClass) -> str:
    """The Galaxy runner state for a class: its two limit states, else ``unknown_error``."""
    return _GALAXY_RUNNER_STATES.get(failure_class, GALAXY_UNKNOWN_ERROR)


def parse(value: Any) -> FailureClass | None:
    """A class from a stored record (``None`` for none; an unknown string reads as UNKNOWN)."""
    if value is None or isinstance(value, FailureClass):
        return value
    try:
        return FailureClass(value)
    except ValueError:
        return FailureClass.UNKNOWN


def failure_fields(failure_class: FailureClass | None) -> dict[str, str]:
    """The keys a final status reply of an unsuccessful job carries (empty for none)."""
    if failure_class is None:
        return {}
    return {"failure_class": failure_class.value, "runner_state": runner_state(failure_class)}


def is_disk_full(error: BaseException) -> bool:
    """True for an ENOSPC/EDQUOT anywhere in an exception's cause chain."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def staging_failure(error: BaseException) -> FailureClass:
    """The class of a server-side staging error: a full disk, or a failed transfer."""
    return FailureClass.DISK_FULL if is_disk_full(error) else FailureClass.STAGING_FAILED
