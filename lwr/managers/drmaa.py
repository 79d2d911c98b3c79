"""queued_drmaa: jobs submitted through a DRMAA library (Grid Engine's libdrmaa, others).

``drmaa`` is imported only when the manager starts, so importing this module never needs
``DRMAA_LIBRARY_PATH``. Each manager keeps one DRMAA session; submission, termination and the
status round all go through it. Status is asked job by job (``jobStatus``), which DRMAA 1.0
offers no batch form of, but it is an in-process library call made by the one poller thread
each interval, not a command per job.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

from lwr.core import job_directory as layout
from lwr.core.states import JobState
from lwr.errors import ManagerError
from lwr.managers.base import LaunchSpec, ManagerListener, Option, as_bool
from lwr.managers.polling import (
    BatchStatus,
    PollingManager,
    batch_job_name,
    job_specification,
    specification_option,
)
from lwr.protocol.failure import FailureClass

log = logging.getLogger(__name__)

#: DRMAA job states (``drmaa.JobState`` values) that are not final.
ACTIVE_STATES: dict[str, JobState] = {
    "undetermined": JobState.QUEUED,
    "queued_active": JobState.QUEUED,
    "system_on_hold": JobState.QUEUED,
    "user_on_hold": JobState.QUEUED,
    "user_system_on_hold": JobState.QUEUED,
    "running": JobState.RUNNING,
    "system_suspended": JobState.RUNNING,
    "user_suspended": JobState.RUNNING,
    "user_system_suspended": JobState.RUNNING,
}

TLS_HINT = (
    "libdrmaa links libjemalloc, which cannot be loaded late; start lwr with "
    "GLIBC_TUNABLES=glibc.rtld.optional_static_tls=65536 (or LD_PRELOAD=libjemalloc.so.2), "
    "e.g. in local_env.sh"
)


def import_drmaa() -> Any:
    """The ``drmaa`` module, or a :class:`ManagerError` saying what the site must set."""
    try:
        import drmaa
    except ImportError as error:
        raise ManagerError(f"the drmaa Python package is missing (pip install drmaa): {error}") from None
    except RuntimeError as error:
        raise ManagerError(
            f"DRMAA library not found; set DRMAA_LIBRARY_PATH in local_env.sh: {error}"
        ) from None
    except OSError as error:
        hint = f"; {TLS_HINT}" if "static TLS" in str(error) else ""
        raise ManagerError(f"cannot load the DRMAA library: {error}{hint}") from None
    return drmaa


def drmaa_status(state: str, info: Any | None = None) -> BatchStatus:
    """Map a DRMAA state (and, for a finished job, its ``JobInfo``) to a status."""
    if state in ACTIVE_STATES:
        return BatchStatus(ACTIVE_STATES[state])
    if state == "done":
        return BatchStatus(JobState.COMPLETE)
    reason, failure_class = "drmaa: job failed", FailureClass.UNKNOWN
    if info is not None:
        if getattr(info, "wasAborted", False):
            reason, failure_class = (
                "drmaa: job aborted (deleted, or it never ran)",
                FailureClass.CANCELLED_BY_SYSTEM,
            )
        elif getattr(info, "hasSignal", False):
            signal = str(getattr(info, "terminatedSignal", "a signal"))
            reason = f"drmaa: killed by {signal}"
            failure_class = _signal_class(signal)
        elif getattr(info, "hasExited", False):
            reason = f"drmaa: exit status {getattr(info, 'exitStatus', '?')}"
            failure_class = FailureClass.JOB_SCRIPT_FAILED
    return BatchStatus(JobState.FAILED, reason, failure_class)


def _signal_class(signal: str) -> FailureClass:
    """A DRMAA job killed by a signal: Grid Engine sends SIGXCPU at a soft time limit (``s_rt``,
    ``s_cpu``); SIGKILL is a hard limit (time or memory) or a ``qdel``, which DRMAA cannot tell apart."""
    name = signal.upper()
    if "XCPU" in name:
        return FailureClass.WALLTIME_REACHED
    if "KILL" in name:
        return FailureClass.UNKNOWN
    return FailureClass.JOB_SCRIPT_FAILED


class SharedSession:
    """The process's one DRMAA session: DRMAA 1.0 allows a single session per process, so every
    DRMAA manager of an lwr (queued_drmaa and queued_external_drmaa alike) shares it, and the
    last one to shut down closes it."""

    _lock = threading.Lock()
    _session: Any = None
    _holders = 0

    @classmethod
    def acquire(cls) -> Any:
        with cls._lock:
            if cls._session is None:
                drmaa = import_drmaa()
                session = drmaa.Session()
                session.initialize()
                log.info("DRMAA session with %s", session.drmsInfo)
                cls._session = session
            cls._holders += 1
            return cls._session

    @classmethod
    def release(cls) -> None:
        with cls._lock:
            cls._holders -= 1
            if cls._holders > 0 or cls._session is None:
                return
            session, cls._session = cls._session, None
            try:
                session.exit()
            except Exception as error:
                log.warning("closing the DRMAA session: %s", error)


def exported_environment() -> dict[str, str]:
    """lwr's environment for a job; values a DRM cannot carry (multi-line) are left out."""
    return {name: value for name, value in os.environ.items() if "\n" not in value and "=" not in name}


class QueuedDrmaaManager(PollingManager):
    type_name = "queued_drmaa"
    system_name = "drmaa"
    options = {
        **PollingManager.options,
        "native_specification": Option(
            specification_option,
            "",
            "DRMAA native specification, e.g. -q all.q -l h_vmem=4G (a "
            "client's submit_native_specification replaces it for its job)",
            "options on one line",
        ),
        "export_environment": Option(
            as_bool,
            True,
            "give jobs lwr's environment (PATH, local_env.sh settings), as sbatch "
            "does by default; Grid Engine otherwise starts jobs with a bare one",
            "true or false",
        ),
    }

    def __init__(self, name: str, settings: Mapping[str, Any], listener: ManagerListener) -> None:
        super().__init__(name, settings, listener)
        self.native_specification: str = self.settings["native_specification"]
        self.export_environment: bool = self.settings["export_environment"]
        self._session: Any = None
        self._session_lock = threading.Lock()
        #: Final statuses of jobs already reaped from the session, kept until the job is reported.
        self._reaped: dict[str, BatchStatus] = {}

    # --- the session ------------------------------------------------------------------------------
    def session(self) -> Any:
        """The process's DRMAA session, acquired on first use."""
        with self._session_lock:
            if self._session is None:
                self._session = SharedSession.acquire()
            return self._session

    def start(self) -> None:
        self.session()
        super().start()

    def shutdown(self) -> None:
        super().shutdown()
        with self._session_lock:
            if self._session is not None:
                self._session = None
                SharedSession.release()

    # --- the batch primitives ---------------------------------------------------------------------
    def native_specification_for(self, spec: LaunchSpec) -> str:
        return job_specification(spec) or self.native_specification

    def submit(self, spec: LaunchSpec) -> str:
        session = self.session()
        template = session.createJobTemplate()
        try:
            template.remoteCommand = "/bin/bash"
            template.args = [spec.script]
            template.jobName = batch_job_name(spec.job_id)
            template.workingDirectory = str(spec.directory.path)
            # DRMAA paths are "[host]:path"; an empty host means any execution host.
            template.outputPath = ":" + str(spec.directory.internal_file(layout.JOB_STDOUT))
            template.errorPath = ":" + str(spec.directory.internal_file(layout.JOB_STDERR))
            native = self.native_specification_for(spec)
            if native:
                template.nativeSpecification = native
            if self.export_environment:
                template.jobEnvironment = exported_environment()
            return str(session.runJob(template))
        finally:
            session.deleteJobTemplate(template)

    def query(self, external_ids: list[str]) -> dict[str, BatchStatus]:
        drmaa = import_drmaa()
        session = self.session()
        found: dict[str, BatchStatus] = {}
        self._reaped = {key: value for key, value in self._reaped.items() if key in external_ids}
        for external_id in external_ids:
            if external_id in self._reaped:
                found[external_id] = self._reaped[external_id]
                continue
            try:
                state = str(session.jobStatus(external_id))
            except drmaa.errors.InvalidJobException:
                continue  # the DRM forgot it: the job script's record decides
            if state in ("done", "failed"):
                found[external_id] = self._reaped[external_id] = drmaa_status(
                    state, self._reap(session, external_id)
                )
            else:
                found[external_id] = drmaa_status(state)
        return found

    @staticmethod
    def _reap(session: Any, external_id: str) -> Any:
        """Collect a finished job's record (frees it in the session) for the reason of its end."""
        try:
            return session.wait(external_id, 0)
        except Exception:
            return None

    def cancel(self, external_id: str) -> None:
        drmaa = import_drmaa()
        try:
            self.session().control(external_id, drmaa.JobControlAction.TERMINATE)
        except drmaa.errors.InvalidJobException:
            pass  # already over
