"""The shared machinery of batch managers: submit in the background, poll all jobs at once.

A batch system (Slurm, Grid Engine, HTCondor, DRMAA) is asked about every job of a manager in
ONE query per polling interval, never once per job: with hundreds of jobs in flight a per-job
``squeue`` would load the controller more than the jobs do. Subclasses supply three primitives:

* :meth:`PollingManager.submit`: hand one job script to the batch system, return its id;
* :meth:`PollingManager.query`: the states of many ids in one call (ids it no longer knows are
  simply absent from the answer);
* :meth:`PollingManager.cancel`: ask the batch system to stop one job.

The job script keeps its own record of the exit code, so the final word is the script's, not
the batch system's: when ``lwr/exit_code`` appears the job is COMPLETE whatever the batch system
says (or no longer says); a job that ends without that record is FAILED, CANCELLED or LOST with
the batch system's reason ("slurm: OUT_OF_MEMORY").
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from abc import abstractmethod
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar

from lwr.core import job_directory as layout
from lwr.core.states import JobState
from lwr.errors import BadRequest
from lwr.managers import local_process
from lwr.managers.base import LaunchSpec, Manager, ManagerListener, Option
from lwr.protocol.failure import FailureClass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchStatus:
    """What a batch system says about one job: QUEUED, RUNNING or a final state with a reason
    and, for a failure, its class (``None`` lets the manager say ``unknown``)."""

    state: JobState
    reason: str | None = None
    failure_class: FailureClass | None = None
    #: Queued but held by the batch system after it failed to start the job (Slurm's "launch
    #: failed requeued held"): without help it never runs.
    held_after_failed_launch: bool = False
    #: The job's name, where the query tells it. A batch controller restarted without its last
    #: state hands out batch ids again: another name under a job's id means the id now belongs
    #: to someone else's job, and its state says nothing about this one.
    name: str | None = None


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError("expected a positive number of seconds")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("expected a positive integer")
    return value


#: How often a job the batch system forgot before it started is submitted again before it is LOST.
MAX_RESUBMITS = 3

#: Longest native specification accepted from configuration or a client.
MAX_SPECIFICATION_LENGTH = 4096


def checked_specification(value: Any, name: str = "native_specification") -> str:
    """A native specification (batch-system options) from config or a client, validated.

    It is passed on as one argument list (never through a shell), but a newline could still
    smuggle a second directive into a submit description, so control characters are refused.
    """
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string", name=name)
    if len(value) > MAX_SPECIFICATION_LENGTH:
        raise BadRequest(f"{name} is too long", name=name, limit=MAX_SPECIFICATION_LENGTH)
    if re.search(r"[\x00-\x08\x0a-\x1f\x7f]", value):
        raise BadRequest(f"{name} must not contain newlines or control characters", name=name)
    return value.strip()


def specification_option(text: str) -> str:
    """Option converter: a native specification in job_managers.ini."""
    try:
        return checked_specification(text)
    except BadRequest as error:
        raise ValueError(error.message) from None


def submit_param(spec: LaunchSpec, key: str) -> Any:
    """A per-job parameter from the client, named with or without its ``submit_`` prefix."""
    params = spec.submit_params
    return params.get(key, params.get(f"submit_{key}"))


def job_specification(spec: LaunchSpec) -> str:
    """The client's per-job native specification (``submit_native_specification``), validated."""
    return checked_specification(submit_param(spec, "native_specification"), "submit_native_specification")


def batch_job_name(job_id: str, limit: int = 64) -> str:
    """A job name every batch system accepts: starts with a letter, only [A-Za-z0-9_.-], at most ``limit``.

    It tells whether a batch id is still this job's (a restarted controller reuses ids), so two
    ids never share a name: an id that had to be shortened or rewritten ends in a digest of itself.
    """
    name = "lwr_" + re.sub(r"[^A-Za-z0-9_.-]", "_", job_id)
    if len(name) <= limit and name == "lwr_" + job_id:
        return name
    digest = hashlib.sha256(job_id.encode("utf-8")).hexdigest()[:12]
    return f"{name[: limit - 13]}_{digest}"


@dataclass
class _Job:
    """What the manager knows of one job between launch (or reattach) and its end."""

    spec: LaunchSpec
    external_id: str | None = None
    #: True while the submission is queued or in flight; kill then only sets ``cancel_requested``.
    submitting: bool = False
    #: Re-attached after a restart without an external id: only the job script's own records tell.
    orphan: bool = False
    running_reported: bool = False
    cancel_requested: bool = False
    #: When the batch system first stopped knowing the job (or called it finished) without an exit code.
    unresolved_since: float | None = None
    #: Times it was submitted again after the batch system forgot it before it started.
    resubmits: int = 0


class PollingManager(Manager):
    """Base of batch managers: a small submit pool and ONE poller thread for all jobs.

    ``system_name`` prefixes the reasons of final states ("slurm: TIMEOUT").
    """

    system_name = "batch"
    options: ClassVar[dict[str, Option]] = {
        "min_polling_interval": Option(
            positive_float,
            1.0,
            "seconds between status queries (one query for all jobs)",
            "a positive number of seconds",
        ),
        "record_check_interval": Option(
            positive_float,
            0.25,
            "seconds between looks at the jobs' own exit-code records, "
            "which costs no batch-system command (one stat per job)",
            "a positive number of seconds",
        ),
        "exit_code_grace": Option(
            positive_float,
            5.0,
            "seconds to wait for the job's exit code record once the batch "
            "system says the job is over (shared file systems lag)",
            "a positive number of seconds",
        ),
        "submit_threads": Option(
            positive_int,
            4,
            "submissions in flight at once (each waits on sbatch, ssh, sudo)",
            "a positive integer",
        ),
    }

    def __init__(self, name: str, settings: Mapping[str, Any], listener: ManagerListener) -> None:
        super().__init__(name, settings, listener)
        self.polling_interval: float = self.settings["min_polling_interval"]
        self.record_interval: float = min(self.settings["record_check_interval"], self.polling_interval)
        self.exit_code_grace: float = self.settings["exit_code_grace"]
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._submitter = ThreadPoolExecutor(
            max_workers=self.settings["submit_threads"], thread_name_prefix=f"{name}-submit"
        )
        #: Status rounds that asked the batch system, and batch commands run (tests, benchmark).
        self.query_count = 0
        self.commands_run = 0

    # --- what a batch system provides -------------------------------------------------------------
    @abstractmethod
    def submit(self, spec: LaunchSpec) -> str:
        """Submit the job script; return the batch system's id. Raise on refusal."""

    @abstractmethod
    def query(self, external_ids: list[str]) -> dict[str, BatchStatus]:
        """States of many jobs in one batch-system call; unknown ids are left out."""

    @abstractmethod
    def cancel(self, external_id: str) -> None:
        """Ask the batch system to stop a job; a job that already ended is not an error."""

    def before_end(self, spec: LaunchSpec, external_id: str | None) -> None:
        """Called once before a job's final state is reported (e.g. to take its files back)."""

    # --- the manager contract ---------------------------------------------------------------------
    def start(self) -> None:
        if self._poller is None:
            self._poller = threading.Thread(target=self._poll_loop, name=f"{self.name}-poller", daemon=True)
            self._poller.start()

    def launch(self, spec: LaunchSpec) -> None:
        self.validate(spec)
        job = _Job(spec, submitting=True)
        with self._lock:
            self._jobs[spec.job_id] = job
        self._submitter.submit(self._submit, job)

    def validate(self, spec: LaunchSpec) -> None:
        """Refuse bad per-job parameters before anything is queued (raise :class:`BadRequest`)."""
        job_specification(spec)

    def reattach(self, spec: LaunchSpec, external_id: str | None, was_running: bool) -> None:
        if external_id:
            job = _Job(spec, external_id=external_id, running_reported=was_running)
        elif local_process.was_launched(spec.directory):
            # Submitted, and started, but lwr stopped before recording the id: the script tells.
            job = _Job(spec, orphan=True, running_reported=was_running)
        else:
            # Perhaps never submitted, perhaps still queued under an unknown id. Submit again:
            # the job script's launch guard makes sure only one copy runs the command.
            self.launch(spec)
            return
        with self._lock:
            self._jobs[spec.job_id] = job

    def kill(self, job_id: str) -> None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.cancel_requested:
                return
            job.cancel_requested = True
            external_id = None if job.submitting else job.external_id
        if external_id is not None:
            self._cancel_quietly(job_id, external_id)
        # The poller reports CANCELLED once the batch system agrees (or forgets the job).

    def shutdown(self) -> None:
        self._stop.set()
        # Submissions not started are dropped: the core re-launches them after a restart.
        self._submitter.shutdown(wait=True, cancel_futures=True)
        if self._poller is not None:
            self._poller.join(timeout=self.polling_interval + 30)

    def describe(self) -> dict[str, Any]:
        with self._lock:
            count = len(self._jobs)
        return {
            **super().describe(),
            "jobs": count,
            "min_polling_interval": self.polling_interval,
            "status_queries": self.query_count,
            "batch_commands": self.commands_run,
        }

    # --- submission -------------------------------------------------------------------------------
    def _submit(self, job: _Job) -> None:
        job_id = job.spec.job_id
        if self._stop.is_set():
            return
        with self._lock:
            cancelled = job.cancel_requested
        if cancelled:
            self._end(job, JobState.CANCELLED, "cancelled before it was submitted")
            return
        try:
            external_id = self.submit(job.spec)
        except Exception as error:  # the batch system refused; the job cannot run
            log.warning("manager %s: submitting job %s failed: %s", self.name, job_id, error)
            self._end(
                job,
                JobState.FAILED,
                f"{self.system_name}: submission failed: {error}",
                FailureClass.LAUNCH_FAILED,
            )
            return
        with self._lock:
            job.external_id = external_id
            job.submitting = False
            cancelled = job.cancel_requested
        log.info("manager %s: job %s submitted as %s %s", self.name, job_id, self.system_name, external_id)
        self._notify("job_submitted", job_id, external_id)
        if cancelled:
            self._cancel_quietly(job_id, external_id)

    def _cancel_quietly(self, job_id: str, external_id: str) -> None:
        try:
            self.cancel(external_id)
        except Exception as error:
            log.warning(
                "manager %s: cancelling job %s (%s) failed: %s", self.name, job_id, external_id, error
            )

    # --- polling ----------------------------------------------------------------------------------
    def _poll_loop(self) -> None:
        """Ask the batch system every ``min_polling_interval``; between those rounds, look only at
        the jobs' exit-code records, so a finished job is reported within ``record_check_interval``
        at no cost to the batch system."""
        next_query = time.monotonic() + self.polling_interval
        while not self._stop.wait(self.record_interval):
            try:
                if time.monotonic() >= next_query - 0.01:
                    next_query = time.monotonic() + self.polling_interval
                    self.poll_once()
                else:
                    self.check_records()
            except Exception:
                log.exception("manager %s: polling failed", self.name)

    def check_records(self) -> None:
        """Report every job whose script has recorded its exit code, without asking the batch system."""
        with self._lock:
            jobs = [job for job in self._jobs.values() if not job.submitting]
        for job in jobs:
            if job.spec.directory.exit_code() is not None:
                self._report_running(job)
                self._end(job, JobState.COMPLETE, None)

    def poll_once(self) -> None:
        """One round: one batch-system query for all submitted jobs, then each job's own records."""
        with self._lock:
            jobs = [job for job in self._jobs.values() if not job.submitting]
        if not jobs:
            return
        ids = sorted({job.external_id for job in jobs if job.external_id})
        statuses: dict[str, BatchStatus] | None = {}
        if ids:
            self.query_count += 1
            started = time.monotonic()
            try:
                statuses = self.query(ids)
            except Exception as error:
                # Keep following the jobs through their own records; try the batch system next round.
                log.warning("manager %s: status query failed: %s", self.name, error)
                statuses = None
            if hasattr(self.listener, "batch_queried"):  # listeners of older tests lack the hook
                self._notify("batch_queried", time.monotonic() - started, statuses is None)
        now = time.monotonic()
        for job in jobs:
            status = None if statuses is None or job.external_id is None else statuses.get(job.external_id)
            if status is not None and not self._is_ours(job, status):
                status = None  # the id was handed out again: the batch system no longer knows this job
            self._update(job, status, statuses is not None, now)

    def _is_ours(self, job: _Job, status: BatchStatus) -> bool:
        """False when the batch system names another job under this job's batch id."""
        if status.name is None or status.name == batch_job_name(job.spec.job_id):
            return True
        log.warning(
            "manager %s: %s id %s of job %s now names job %r (ids reused after a controller restart)",
            self.name,
            self.system_name,
            job.external_id,
            job.spec.job_id,
            status.name,
        )
        return False

    def _update(self, job: _Job, status: BatchStatus | None, answered: bool, now: float) -> None:
        directory = job.spec.directory
        if directory.exit_code() is not None:
            self._report_running(job)
            self._end(job, JobState.COMPLETE, None)
            return
        if (
            status is not None
            and status.state is JobState.RUNNING
            or directory.internal_file(layout.STARTED_AT).exists()
        ):
            self._report_running(job)
        if job.orphan:
            if local_process.is_running(directory):
                job.unresolved_since = None
            elif self._waited(job, now):
                self._end(
                    job,
                    JobState.LOST,
                    "the job script stopped without recording an exit code "
                    "(its batch id was not recorded before lwr restarted)",
                    FailureClass.JOB_LOST,
                )
            return
        if not answered:
            return
        if status is not None and status.held_after_failed_launch:
            self._unhold(job, status)
            return
        if status is not None and not status.state.is_final:
            job.unresolved_since = None
            return
        # The batch system says it is over, or no longer knows the job, and no exit code is recorded.
        if job.cancel_requested:
            reason = status.reason if status is not None and status.reason else "cancelled on request"
            self._end(job, JobState.CANCELLED, reason)
            return
        if status is not None and status.state is JobState.CANCELLED:
            # Nobody here asked: an administrator or a policy removed it. Galaxy treats a
            # ``cancelled`` job as finished, so this is a failure it can resubmit.
            self._end(
                job,
                JobState.FAILED,
                f"{status.reason or self.system_name + ': cancelled'} (not requested by the client)",
                FailureClass.CANCELLED_BY_SYSTEM,
            )
            return
        if local_process.was_launched(directory) and local_process.is_running(directory):
            # Another copy of the script (submitted before a restart) holds the job: wait for it.
            job.unresolved_since = None
            return
        if not self._waited(job, now):
            return
        if status is None and not local_process.was_launched(directory) and job.resubmits < MAX_RESUBMITS:
            # Forgotten before it ever started (a controller restarted without its state): submit
            # again; the job script's launch guard still lets only one copy run the command.
            self._submit_again(job, "forgot it before it started")
            return
        if status is None:
            self._end(
                job,
                JobState.LOST,
                f"{self.system_name} no longer knows job {job.external_id} "
                "and the job script recorded no exit code",
                FailureClass.JOB_LOST,
            )
        elif status.state is JobState.COMPLETE:
            full = local_process.disk_full(directory)
            self._end(
                job,
                JobState.FAILED,
                f"{self.system_name}: job {job.external_id} finished "
                "but the job script recorded no exit code" + (" (its file system is full)" if full else ""),
                FailureClass.DISK_FULL if full else FailureClass.JOB_SCRIPT_FAILED,
            )
        else:
            failure_class = status.failure_class or FailureClass.UNKNOWN
            if failure_class in (
                FailureClass.JOB_SCRIPT_FAILED,
                FailureClass.UNKNOWN,
            ) and local_process.disk_full(directory):
                failure_class = FailureClass.DISK_FULL  # why the script could not record its exit code
            self._end(
                job, status.state, status.reason or f"{self.system_name}: {status.state.value}", failure_class
            )

    def _unhold(self, job: _Job, status: BatchStatus) -> None:
        """A job the batch system held after failing to launch it (seen when a restarted Slurm
        controller reused a batch id still running on the node) would stay queued for ever:
        cancel it and submit it again, or, once it has started or been tried enough, fail it
        with a class Galaxy's resubmission rules can act on."""
        directory = job.spec.directory
        launched = local_process.was_launched(directory)
        if launched and local_process.is_running(directory):
            job.unresolved_since = None  # another copy of the script holds the job
            return
        assert job.external_id is not None
        if not launched and job.resubmits < MAX_RESUBMITS:
            held = job.external_id
            self._submit_again(job, f"held it after its launch failed ({status.reason})", cancel=held)
            return
        self._cancel_quietly(job.spec.job_id, job.external_id)
        self._end(
            job,
            JobState.FAILED,
            f"{self.system_name}: job {job.external_id} could not be launched and was held "
            f"({status.reason or 'launch failed'}); cancelled",
            FailureClass.LAUNCH_FAILED,
        )

    def _submit_again(self, job: _Job, why: str, cancel: str | None = None) -> None:
        """Submit a job that never started once more, under a new batch id; the job script's
        launch guard still lets only one copy run the command. The old id is forgotten durably
        first, then the copy under it (``cancel``) cancelled: a restart in between submits again
        rather than judging that copy."""
        log.warning(
            "manager %s: %s %s job %s (%s); submitting it again",
            self.name,
            self.system_name,
            why,
            job.spec.job_id,
            job.external_id,
        )
        if hasattr(self.listener, "job_resubmitting"):  # listeners of older tests lack the hook
            self._notify("job_resubmitting", job.spec.job_id)
        if cancel is not None:
            self._cancel_quietly(job.spec.job_id, cancel)
        with self._lock:
            job.resubmits += 1
            job.external_id = None
            job.submitting = True
            job.unresolved_since = None
        self._submitter.submit(self._submit, job)

    def _waited(self, job: _Job, now: float) -> bool:
        """True once the job has been unresolved for ``exit_code_grace`` seconds."""
        if job.unresolved_since is None:
            job.unresolved_since = now
        return now - job.unresolved_since >= self.exit_code_grace

    def _report_running(self, job: _Job) -> None:
        if not job.running_reported:
            job.running_reported = True
            self._notify("job_running", job.spec.job_id)

    def _end(
        self, job: _Job, state: JobState, reason: str | None, failure_class: FailureClass | None = None
    ) -> None:
        with self._lock:
            if self._jobs.get(job.spec.job_id) is not job:
                return
            del self._jobs[job.spec.job_id]
        try:
            self.before_end(job.spec, job.external_id)
        except Exception:
            log.exception("manager %s: cleaning up job %s failed", self.name, job.spec.job_id)
        self._notify("job_ended", job.spec.job_id, state, reason, failure_class)

    def _notify(self, event: str, *args: Any) -> None:
        try:
            getattr(self.listener, event)(*args)
        except Exception:
            log.exception("manager %s: listener %s%r failed", self.name, event, args)

    def tracked_ids(self) -> Iterable[str]:
        with self._lock:
            return list(self._jobs)
