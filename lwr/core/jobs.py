"""The job service: the one place where a job changes state.

Transports (HTTP, MQ) call the public methods; managers report through per-manager
listeners; observers (the MQ status publisher, logs) hear about every change. Each change is
written to the durable store *before* it is acted on or announced, so a restart finds every
accepted job where it was.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Protocol

from lwr.core import job_directory as layout
from lwr.core.atomic import Guard
from lwr.core.end_waiter import EndWaiter
from lwr.core.galaxy_job import PRESERVE_PYTHON, GalaxyJobSetup
from lwr.core.job_directory import JobDirectory, validate_job_id
from lwr.core.job_script import write_job_script
from lwr.core.manager import LaunchSpec, Manager, ManagerListener
from lwr.core.processing import StagingHooks, StagingRunner
from lwr.core.snapshots import Snapshot, SnapshotWriter
from lwr.core.states import JobState
from lwr.core.status import status_reply
from lwr.core.store import JobRecord, JobStore
from lwr.core.trash import TrashBin
from lwr.errors import BadRequest, Conflict, InsufficientStorage, LwrError, NotFound
from lwr.protocol.failure import FailureClass
from lwr.protocol.submit import EnvItem, SubmitRequest
from lwr.protocol.version import version_fields

log = logging.getLogger(__name__)

#: ``JobRecord.extras`` key: the identity of the setup message that started the job's current run.
SETUP_MESSAGE = "setup_message"

#: Which state may follow which. Final states are never left.
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.SETUP: frozenset({JobState.PREPROCESSING, JobState.QUEUED, JobState.FAILED, JobState.CANCELLED}),
    JobState.PREPROCESSING: frozenset({JobState.QUEUED, JobState.FAILED, JobState.CANCELLED, JobState.LOST}),
    JobState.QUEUED: frozenset(
        {
            JobState.RUNNING,
            JobState.POSTPROCESSING,
            JobState.COMPLETE,
            JobState.FAILED,
            JobState.CANCELLED,
            JobState.LOST,
        }
    ),
    JobState.RUNNING: frozenset(
        {JobState.POSTPROCESSING, JobState.COMPLETE, JobState.FAILED, JobState.CANCELLED, JobState.LOST}
    ),
    JobState.POSTPROCESSING: frozenset(
        {JobState.COMPLETE, JobState.FAILED, JobState.CANCELLED, JobState.LOST}
    ),
}


class ServiceSettings(Protocol):
    """What the job service reads of lwr's settings (``lwr.config.AppSettings`` has it)."""

    @property
    def staging_directory(self) -> Path: ...

    @property
    def persistence_directory(self) -> Path: ...

    @property
    def assign_ids(self) -> str: ...

    @property
    def min_free_disk(self) -> tuple[int, float]: ...


#: Builds one manager around the listener it reports to (``app.py`` makes them from config).
ManagerFactory = Callable[[ManagerListener], Manager]


class JobObserver:
    """Hears what the job service does; every hook is a no-op unless overridden.

    The MQ status announcer and the metrics are observers: the core never knows who listens.
    Hooks are called outside the service lock and must not raise (a failure is logged).
    """

    def job_changed(self, record: JobRecord) -> None:
        """After every durable state change; ``record.times`` and ``record.staging`` tell when and how."""

    def job_event(self, record: JobRecord, event: dict[str, Any]) -> None:
        """After a change that added ``event`` to the job's timeline (once per line: count here)."""

    def batch_queried(self, manager: str, seconds: float, failed: bool) -> None:
        """A manager asked its batch system for its jobs' status."""


class LaunchPolicy(Protocol):
    """Who may run what (public-server mode, ``lwr.tools.policy``); each check raises to refuse."""

    def authorize_setup(self, tool_id: str | None, tool_version: str | None) -> None: ...

    def authorize_submit(
        self,
        record: JobRecord,
        directory: JobDirectory,
        command_line: str,
        env: list[EnvItem],
        submit_params: Mapping[str, Any],
    ) -> None: ...

    def authorize_launch(self, record: JobRecord, directory: JobDirectory) -> None:
        """Called once every file of the job arrived, just before it is queued."""


@dataclass(frozen=True)
class StagingTarget:
    """Where a client's upload goes, and the guard its rename into place must happen under."""

    path: Path
    guard: Guard


@dataclass(frozen=True)
class DiskFloor:
    """``min_free_disk``: refuse new setups when the staging filesystem has less free space."""

    bytes: int = 0
    percent: float = 0.0

    def shortfall(self, path: Path) -> str | None:
        """Why a setup must be refused now, or None when there is room."""
        if not self.bytes and not self.percent:
            return None
        usage = shutil.disk_usage(path)
        floor = max(self.bytes, int(usage.total * self.percent / 100))
        if usage.free >= floor:
            return None
        return (
            f"the staging filesystem ({path}) has {usage.free} bytes free, below min_free_disk "
            f"({floor} bytes); new jobs are refused until space is freed"
        )

    def schedule(self, record: JobRecord, name: str, work: Callable[[], None]) -> None:
        """Run ``work`` (one job's staging step) later, in the hooks' own bounded pool."""


def tree_bytes(path: Path) -> int:
    """Total size of the regular files under ``path`` (what a client staged into a job directory)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


class _ManagerEvents:
    """The listener one manager reports to; tags each report with the manager's name."""

    def __init__(self, service: JobService, manager: str) -> None:
        self.service = service
        self.manager = manager

    def job_submitted(self, job_id: str, external_id: str) -> None:
        self.service._on_submitted(self.manager, job_id, external_id)

    def job_resubmitting(self, job_id: str) -> None:
        self.service._on_resubmitting(self.manager, job_id)

    def job_running(self, job_id: str) -> None:
        self.service._on_running(self.manager, job_id)

    def job_started(self, job_id: str, external_id: str) -> None:
        self.service._on_started(self.manager, job_id, external_id)

    def job_ended(
        self,
        job_id: str,
        state: JobState,
        reason: str | None = None,
        failure_class: FailureClass | None = None,
    ) -> None:
        self.service._on_ended(self.manager, job_id, state, reason, failure_class)

    def batch_queried(self, seconds: float, failed: bool) -> None:
        for observer in self.service.observers:
            try:
                observer.batch_queried(self.manager, seconds, failed)
            except Exception:  # noqa: BLE001 - an observer must never break polling
                log.exception("observer %r failed on a batch query of %s", observer, self.manager)


class _StagingEvents:
    """The listener server-side staging reports to; the service makes every change it asks for."""

    def __init__(self, service: JobService) -> None:
        self.service = service

    def authorize_launch(self, record: JobRecord, directory: JobDirectory) -> None:
        if self.service.launch_policy is not None:
            self.service.launch_policy.authorize_launch(record, directory)

    def staged(
        self, record: JobRecord, direction: str, summary: dict[str, Any], failed: bool = False
    ) -> None:
        self.service._on_staged(record, direction, summary, failed)

    def inputs_staged(self, record: JobRecord, directory: JobDirectory, summary: dict[str, Any]) -> None:
        self.service._on_inputs_staged(record, directory, summary)

    def finish(
        self,
        record: JobRecord,
        state: JobState,
        reason: str | None,
        failure_class: FailureClass | None = None,
    ) -> None:
        self.service._finish(record, state, reason, failure_class)


def _set_mode(path: Path, mode: int) -> None:
    """chmod a directory of lwr's; one that is not lwr's is left as it is, with a warning if it is open."""
    info = path.stat()
    if info.st_uid == os.geteuid():
        path.chmod(mode)
    elif info.st_mode & 0o077 & ~mode:
        log.warning(
            "%s is not lwr's and is open to other users (mode %o); lwr would make it %o",
            path,
            info.st_mode & 0o777,
            mode,
        )


class JobService:
    """Owns every job: its record, its directory, its state, its manager."""

    def __init__(
        self,
        settings: ServiceSettings,
        managers: Mapping[str, ManagerFactory],
        observers: Iterable[JobObserver] = (),
        staging_hooks: StagingHooks | None = None,
        galaxy: GalaxyJobSetup | None = None,
        launch_policy: LaunchPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.launch_policy = launch_policy
        #: Galaxy's job environment (dependencies, metrics, Galaxy's Python); defaults: none resolved, core metrics.
        self.galaxy = galaxy or GalaxyJobSetup()
        self.staging = settings.staging_directory
        #: What lwr is about to create on the way to its staging directory (see _prepare_staging).
        created = [path for path in [self.staging, *self.staging.parents] if not path.exists()]
        self.disk_floor = DiskFloor(*settings.min_free_disk)
        #: Cleaned job directories are renamed here and deleted by a background thread.
        self.trash = TrashBin(self.staging / ".trash")
        self.store = JobStore(settings.persistence_directory)
        self.observers: list[JobObserver] = list(observers)
        self.staging_hooks = staging_hooks
        #: Runs server-side staging off the caller's thread; reports back to make the transitions.
        self._processing = StagingRunner(staging_hooks, _StagingEvents(self))
        self._lock = threading.RLock()
        self._records: dict[tuple[str, str], JobRecord] = {}
        self._final_replies: dict[tuple[str, str], dict[str, Any]] = {}
        self._end_waiter = EndWaiter()
        #: Record writes happen outside ``_lock``, numbered per job so that a later change wins.
        self._snapshots = SnapshotWriter(self.store)
        self._sequence = itertools.count(1)
        self._released = False
        self.managers: dict[str, Manager] = {
            name: build(_ManagerEvents(self, name)) for name, build in managers.items()
        }
        self._prepare_staging(created)

    def add_observer(self, observer: JobObserver) -> None:
        """Hear every state change from now on; attach before :meth:`start` to hear recovery too."""
        self.observers.append(observer)

    # --- lifecycle --------------------------------------------------------------------------------
    def _prepare_staging(self, created: list[Path]) -> None:
        """The staging directory and one directory a manager, lwr's alone (0700): traverse-only (0711)
        where a manager hands job directories to other users, who must pass through to reach theirs."""
        handing = [name for name, manager in self.managers.items() if manager.hands_directories_to_users]
        self.staging.mkdir(mode=layout.PRIVATE_DIRECTORY_MODE, parents=True, exist_ok=True)
        if handing:
            for path in created:  # lwr made them: let the job users through, as far as staging
                _set_mode(path, layout.TRAVERSE_ONLY_MODE)
        _set_mode(self.staging, layout.TRAVERSE_ONLY_MODE if handing else layout.PRIVATE_DIRECTORY_MODE)
        for name in self.managers:
            mode = layout.TRAVERSE_ONLY_MODE if name in handing else layout.PRIVATE_DIRECTORY_MODE
            (self.staging / name).mkdir(mode=mode, exist_ok=True)
            _set_mode(self.staging / name, mode)

    def start(self) -> None:
        """Recover the jobs on disk, then start the managers."""
        self.trash.start()
        records = self.store.load_all()
        if records:
            self._sequence = itertools.count(records[-1].sequence + 1)
        with self._lock:
            for record in records:
                self._records[(record.manager, record.job_id)] = record
        for record in records:
            self._recover(record)
        for manager in self.managers.values():
            manager.start()

    def shutdown(self) -> None:
        for manager in self.managers.values():
            manager.shutdown()

    def release(self) -> None:
        """Give up the jobs to a successor process (a restart): stop the managers, which waits for
        submissions in progress to be recorded, then ignore what they still report (a job ending
        now is seen again by the successor, which re-attaches it from the records on disk)."""
        self.shutdown()
        with self._lock:
            self._released = True

    def _recover(self, record: JobRecord) -> None:
        if record.state.is_final or record.state is JobState.SETUP:
            return
        manager = self.managers.get(record.manager)
        if manager is None:
            with self._lock:
                snapshot = self._transition(
                    record,
                    JobState.LOST,
                    reason=f"manager '{record.manager}' is no longer configured",
                    failure_class=FailureClass.JOB_LOST,
                )
            self._commit(snapshot, record)
            return
        directory = self.directory(record.manager, record.job_id)
        log.info(
            "recovering job %s (%s) on manager %s, batch id %s",
            record.job_id,
            record.state.value,
            record.manager,
            record.external_id or "not recorded",
        )
        if record.state is JobState.PREPROCESSING:
            self._processing.preprocess(record, directory)
        elif record.state is JobState.POSTPROCESSING:
            self._processing.postprocess(record, directory)
        else:
            manager.reattach(
                self._spec(record, directory),
                record.external_id,
                was_running=record.state is JobState.RUNNING,
            )

    # --- lookups ----------------------------------------------------------------------------------
    def manager(self, name: str) -> Manager:
        try:
            return self.managers[name]
        except KeyError:
            raise NotFound(f"no manager named '{name}'", manager=name) from None

    def directory(self, manager: str, job_id: str) -> JobDirectory:
        return JobDirectory(self.staging / manager / validate_job_id(job_id))

    def find(self, manager: str, job_id: str) -> JobRecord:
        self.manager(manager)
        validate_job_id(job_id)
        with self._lock:
            record = self._records.get((manager, job_id))
        if record is None:
            raise NotFound(f"no job '{job_id}' on manager '{manager}'", job_id=job_id, manager=manager)
        return record

    def find_or_none(self, manager: str, job_id: str) -> JobRecord | None:
        with self._lock:
            return self._records.get((manager, job_id))

    def records(self) -> list[JobRecord]:
        """Every job lwr holds, oldest first (the records themselves: read, do not change)."""
        with self._lock:
            records = list(self._records.values())
        records.sort(key=lambda record: record.sequence)
        return records

    def timeline(self, manager: str, job_id: str) -> list[dict[str, Any]]:
        with self._lock:
            if (manager, job_id) not in self._records:
                raise NotFound(f"no job '{job_id}' on manager '{manager}'", job_id=job_id, manager=manager)
        return self.store.timeline(manager, job_id)

    # --- the protocol -----------------------------------------------------------------------------
    def setup(
        self,
        manager: str,
        job_id: str,
        tool_id: str | None = None,
        tool_version: str | None = None,
        owner: str | None = None,
        assign: bool = True,
        preserve_galaxy_python_environment: Any = None,
    ) -> dict[str, Any]:
        """Create the job directory and record; reply with the layout the client rewrites paths with.

        With ``assign_ids = uuid`` a fresh id replaces ``job_id`` unless ``assign`` is false (a
        submit's implicit setup, which must create the very id it was asked to launch).
        """
        handed_over = self.manager(manager).hands_directories_to_users
        if self.launch_policy is not None:
            self.launch_policy.authorize_setup(tool_id, tool_version)
        if self.settings.assign_ids == "uuid" and assign:
            job_id = uuid.uuid4().hex
        validate_job_id(job_id)
        directory = self.directory(manager, job_id)
        with self._lock:
            existing = self._records.get((manager, job_id))
            if existing is not None and not existing.state.is_final and existing.state is not JobState.SETUP:
                raise Conflict(
                    f"job '{job_id}' is {existing.state.value}; cancel or clean it before setting it up "
                    "again",
                    job_id=job_id,
                    status=existing.state.wire_name,
                )
            if existing is None or existing.state.is_final:
                shortfall = self.disk_floor.shortfall(self.staging)
                if shortfall is not None:
                    raise InsufficientStorage(shortfall, job_id=job_id, manager=manager)
                if existing is not None:
                    # One rename under the lock (the bin deletes it later): an ended job of many
                    # files must not stall every other request while it is deleted.
                    self.trash.discard(directory)
                    self._final_replies.pop((manager, job_id), None)
                directory.create(handed_over)
                now = time.time()
                record = JobRecord(
                    job_id=job_id,
                    manager=manager,
                    state=JobState.SETUP,
                    sequence=next(self._sequence),
                    tool_id=tool_id,
                    tool_version=tool_version,
                    times={JobState.SETUP.value: now},
                    owner=owner,
                )
                if preserve_galaxy_python_environment is not None:
                    record.extras[PRESERVE_PYTHON] = preserve_galaxy_python_environment
                self._records[(manager, job_id)] = record
                snapshot: Snapshot | None = self._snapshots.snapshot(
                    record, {"at": now, "state": JobState.SETUP.value}
                )
            else:
                snapshot = None
        if snapshot is not None:
            self._snapshots.persist(snapshot)
        reply: dict[str, Any] = {
            **directory.setup_description(),
            "job_id": job_id,
            "system_properties": self.galaxy.system_properties(),
            "path_separator": "/",
            **version_fields(),
        }
        if tool_id:
            reply["tool_id"] = tool_id
        if tool_version:
            reply["tool_version"] = tool_version
        return reply

    def staging_target(self, manager: str, job_id: str, name: str, file_type: str) -> StagingTarget:
        """Where a client's file goes, and the guard to rename it into place under.

        Only while the job is being set up, when the upload starts *and* when its last byte has
        arrived: submit checks the job's files (public mode) and writes its script under the
        service lock, and the guard holds that lock for the rename, so a file still arriving
        when the job is submitted never lands (409) in what was checked.
        """
        record = self.find(manager, job_id)
        self._refuse_staging_unless_setting_up(record)
        key = (manager, job_id)

        @contextmanager
        def placing() -> Iterator[None]:
            with self._lock:
                if self._records.get(key) is not record:
                    raise Conflict(f"job '{job_id}' was cleaned or set up again meanwhile", job_id=job_id)
                self._refuse_staging_unless_setting_up(record)
                yield

        return StagingTarget(self.directory(manager, job_id).path_for(name, file_type), placing)

    @staticmethod
    def _refuse_staging_unless_setting_up(record: JobRecord) -> None:
        if record.state is not JobState.SETUP:
            raise Conflict(
                f"job '{record.job_id}' was already submitted; files can no longer be staged",
                job_id=record.job_id,
                status=record.state.wire_name,
            )

    def file_path(self, manager: str, job_id: str, name: str, file_type: str) -> Path:
        """The server path of a client-named file (the ``files/path`` route)."""
        self.find(manager, job_id)
        return self.directory(manager, job_id).path_for(name, file_type)

    def open_output(self, manager: str, job_id: str, name: str, file_type: str) -> BinaryIO:
        """An output opened once, safely (the job may still be flipping symlinks in its directory)."""
        self.find(manager, job_id)
        return self.directory(manager, job_id).open_output(name, file_type)

    def submit(
        self, manager_name: str, job_id: str, request: SubmitRequest, owner: str | None = None
    ) -> None:
        """Record the launch durably, then hand the job to its manager (or to server-side staging).

        A submit with ``setup_params`` for an unknown id sets that very id up first (Pulsar's
        one-message jobs); it never assigns another id, which would leave a job nobody can reach.
        """
        manager = self.manager(manager_name)
        if not request.command_line.strip():
            raise BadRequest("command_line is empty")
        existing = self.find_or_none(manager_name, job_id)
        if request.setup_params and (existing is None or existing.state.is_final):
            # A submit carrying its own setup for a job whose run ended is a resubmission (Galaxy's
            # resubmit, an admin's requeue): setup() starts it again on a clean directory. Telling a
            # transport's redelivery from it is the transport's business (lwr.messaging.consumer).
            if existing is not None:
                log.info(
                    "job %s on %s ended (%s); a new setup runs it again",
                    job_id,
                    manager_name,
                    existing.state.value,
                )
            tool_id, tool_version = (
                request.setup_params.get("tool_id"),
                request.setup_params.get("tool_version"),
            )
            self.setup(
                manager_name,
                job_id,
                tool_id if isinstance(tool_id, str) else None,
                tool_version if isinstance(tool_version, str) else None,
                owner=owner,
                assign=False,
                preserve_galaxy_python_environment=request.setup_params.get(PRESERVE_PYTHON),
            )
        record = self.find(manager_name, job_id)
        directory = self.directory(manager_name, job_id)
        if record.state is not JobState.SETUP:
            raise Conflict(
                f"job '{job_id}' was already submitted", job_id=job_id, status=record.state.wire_name
            )
        staged_bytes = tree_bytes(directory.path)
        # Resolving requirements may run the resolvers' commands (module avail): outside the lock.
        preserve = request.setup_params.get(PRESERVE_PYTHON, record.extras.get(PRESERVE_PYTHON))
        environment = self.galaxy.environment(
            directory, request.dependencies_description, preserve, manager.settings
        )
        touched = [directory.path_for(name, "output") for name in request.touch_outputs]
        with self._lock:
            if record.state is not JobState.SETUP:
                raise Conflict(
                    f"job '{job_id}' was already submitted", job_id=job_id, status=record.state.wire_name
                )
            command_line = request.command_line.replace("__PULSAR_JOB_DIRECTORY__", str(directory.path))
            if self.launch_policy is not None:
                self.launch_policy.authorize_submit(
                    record, directory, command_line, request.env, request.submit_params
                )
            previous_launch, record.launch = record.launch, request.launch_record()
            preprocess = self.staging_hooks is not None and self.staging_hooks.wants(record)
            if self.launch_policy is not None and not preprocess:
                try:
                    self.launch_policy.authorize_launch(record, directory)
                except LwrError:
                    record.launch = previous_launch
                    raise
            write_job_script(directory, command_line, request.env, environment)
            for path in touched:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
            if request.message_identity is not None:
                record.extras[SETUP_MESSAGE] = request.message_identity
            if not preprocess and staged_bytes:
                # What the client staged between setup and submit.
                since = record.times.get(JobState.SETUP.value, time.time())
                record.staging["in"] = {
                    "seconds": round(max(0.0, time.time() - since), 3),
                    "bytes": staged_bytes,
                    "by": "client",
                }
            next_state = JobState.PREPROCESSING if preprocess else JobState.QUEUED
            snapshot = self._transition(record, next_state)
        self._end_waiter.submitted((manager_name, job_id))
        self._commit(snapshot, record)
        if preprocess:
            self._processing.preprocess(record, directory)
        else:
            manager.launch(self._spec(record, directory))

    def status(self, manager: str, job_id: str) -> dict[str, Any]:
        record = self.find(manager, job_id)
        key = (manager, job_id)
        with self._lock:
            cached = self._final_replies.get(key)
        if cached is not None:
            return cached
        if not record.state.is_final:
            self._end_waiter.wait(key)
        reply = status_reply(record, self.directory(manager, job_id))
        if record.state.is_final:
            with self._lock:
                self._final_replies[key] = reply
        return reply

    def cancel(self, manager_name: str, job_id: str) -> None:
        manager = self.manager(manager_name)
        record = self.find(manager_name, job_id)
        with self._lock:
            if record.state.is_final:
                return
            if record.state in (JobState.SETUP, JobState.PREPROCESSING):
                snapshot: Snapshot | None = self._transition(
                    record, JobState.CANCELLED, reason="cancelled before launch"
                )
            else:
                snapshot = None
        if snapshot is None:
            manager.kill(job_id)
        else:
            self._commit(snapshot, record)

    def clean(self, manager: str, job_id: str) -> None:
        """Remove the job's directory and record; a job still active is cancelled first."""
        record = self.find(manager, job_id)
        if not record.state.is_final and record.state is not JobState.SETUP:
            # A job only set up was never launched nor announced: removing it is enough (a
            # ``cancelled`` here would be a second final status beside a refused setup's ``failed``).
            self.cancel(manager, job_id)
        self._drop(manager, job_id, record)

    def _drop(self, manager: str, job_id: str, record: JobRecord, only_final: bool = False) -> bool:
        """Remove ``record``, its files and directory in one step under the lock.

        Only the record the caller judged is dropped: a setup of the same id that came in
        between (Galaxy resubmitting the job) made a new job, whose directory and record stay.
        ``only_final``: and only if it is still ended (an admin may have moved it on).
        """
        key = (manager, job_id)
        with self._lock:
            current = self._records.get(key)
            if current is not record:
                if current is not None:
                    log.info(
                        "job %s on %s was set up again before its removal; the new job stays", job_id, manager
                    )
                return False
            if only_final and not record.state.is_final:
                return False
            self._records.pop(key)
            self._final_replies.pop(key, None)
            self._snapshots.delete(key, self._snapshots.detach(key))
            self.trash.discard(self.directory(manager, job_id))
        return True

    # --- admin actions --------------------------------------------------------------------------
    def forget(self, manager: str, job_id: str) -> None:
        """Drop a job entirely, even one whose manager is no longer configured; an active one is cancelled."""
        validate_job_id(job_id)
        record = self.find_or_none(manager, job_id)
        if record is None:
            raise NotFound(f"no job '{job_id}' on manager '{manager}'", job_id=job_id, manager=manager)
        if not record.state.is_final and manager in self.managers:
            self.cancel(manager, job_id)
        log.info("job %s on %s forgotten by an admin (was %s)", job_id, manager, record.state.value)
        self._drop(manager, job_id, record)

    def expire(self, record: JobRecord, why: str) -> bool:
        """Retention: forget an ended job's compacted record (its directory is gone already).

        False when the job is no longer this record (cleaned, or set up again meanwhile).
        """
        log.debug("job %s on %s expiring: %s", record.job_id, record.manager, why)
        return self._drop(record.manager, record.job_id, record, only_final=True)

    def retry_postprocessing(self, manager: str, job_id: str) -> None:
        """Deliver the outputs of a job again whose output delivery failed; the job itself is not rerun."""
        record = self.find(manager, job_id)
        with self._lock:
            if record.state is not JobState.FAILED or not record.extras.get("postprocessing_failed"):
                raise Conflict(
                    f"job '{job_id}' is {record.state.value} and its output delivery did not fail; "
                    "only such a job's postprocessing can be retried",
                    job_id=job_id,
                    status=record.state.wire_name,
                )
            # The one move out of a final state, on an admin's request: back to postprocessing.
            record.extras.pop("postprocessing_failed", None)
            record.retries += 1
            record.state = JobState.POSTPROCESSING
            record.reason = None
            now = time.time()
            record.times[JobState.POSTPROCESSING.value] = now
            self._final_replies.pop((manager, job_id), None)
            snapshot = self._snapshots.snapshot(
                record,
                {
                    "at": now,
                    "state": JobState.POSTPROCESSING.value,
                    "action": "retry-postprocessing",
                    "retry": record.retries,
                },
            )
        log.info(
            "job %s on %s: postprocessing retried by an admin (retry %d)", job_id, manager, record.retries
        )
        self._commit(snapshot, record)
        self._processing.postprocess(record, self.directory(manager, job_id))

    def note(self, manager: str, job_id: str, event: dict[str, Any]) -> None:
        """Add an admin action (e.g. a final status announced again) to the job's timeline."""
        record = self.find_or_none(manager, job_id)
        if record is not None:
            self.store.append_event(manager, job_id, {"at": time.time(), **event})

    def remove_directory(self, manager: str, job_id: str, why: str) -> bool:
        """Retention: delete an ended job's directory, keep a compact record (no launch details)."""
        key = (manager, job_id)
        with self._lock:
            record = self._records.get(key)
            if record is None or not record.state.is_final or record.extras.get("directory_removed"):
                return False
            status = self._final_replies.pop(key, None)
            record.launch = {}
            record.extras = {"directory_removed": time.time()}
            if status is not None and record.reason is None and status.get("returncode") is not None:
                record.extras["returncode"] = status.get("returncode")
            snapshot = self._snapshots.snapshot(
                record, {"at": time.time(), "action": "directory removed", "why": why}
            )
            # Under the lock: a setup of the same id right after must keep its new directory.
            self.trash.discard(self.directory(manager, job_id))
        self._snapshots.persist(snapshot, durable=False)
        return True

    # --- manager reports --------------------------------------------------------------------------
    def _on_submitted(self, manager: str, job_id: str, external_id: str) -> None:
        with self._lock:
            record = self._records.get((manager, job_id))
            if record is None or record.state.is_final:
                return
            record.external_id = external_id
            snapshot = self._snapshots.snapshot(record, {"at": time.time(), "external_id": external_id})
        self._snapshots.persist(snapshot)

    def _on_resubmitting(self, manager: str, job_id: str) -> None:
        with self._lock:
            record = self._records.get((manager, job_id))
            if self._released or record is None or record.state.is_final or record.external_id is None:
                return
            record.external_id = None
            snapshot = self._snapshots.snapshot(record, {"at": time.time(), "external_id": None})
        self._snapshots.persist(snapshot)

    def _on_started(self, manager: str, job_id: str, external_id: str) -> None:
        with self._lock:
            record = self._records.get((manager, job_id))
            snapshot = None
            if record is not None and not self._released and record.state is JobState.QUEUED:
                record.external_id = external_id
                snapshot = self._transition(
                    record, JobState.RUNNING, event_fields={"external_id": external_id}
                )
        if record is None or snapshot is None:  # what a submission then a start would record: the id
            self._on_submitted(manager, job_id, external_id)
            return
        # One write for both, unsynced: the pid file, launch marker and run lock tell them again.
        self._commit(snapshot, record, durable=False)

    def _on_running(self, manager: str, job_id: str) -> None:
        with self._lock:
            record = self._records.get((manager, job_id))
            if self._released or record is None or record.state is not JobState.QUEUED:
                return
            snapshot = self._transition(record, JobState.RUNNING)
        self._commit(snapshot, record, durable=False)

    def _on_ended(
        self,
        manager: str,
        job_id: str,
        state: JobState,
        reason: str | None,
        failure_class: FailureClass | None = None,
    ) -> None:
        with self._lock:
            record = self._records.get((manager, job_id))
            if self._released or record is None or record.state.is_final:
                return
            postprocess = (
                state is JobState.COMPLETE
                and self.staging_hooks is not None
                and self.staging_hooks.wants(record)
            )
            if postprocess:
                record.extras["manager_outcome"] = {"state": state.value, "reason": reason}
                snapshot = self._transition(record, JobState.POSTPROCESSING)
            else:
                snapshot = self._transition(record, state, reason=reason, failure_class=failure_class)
        # The job directory (launch marker, run lock, exit code) or the batch system can tell this
        # end again after a power loss; only a postprocessing outcome exists nowhere else.
        self._commit(snapshot, record, durable=postprocess)
        if postprocess:
            self._processing.postprocess(record, self.directory(manager, job_id))

    # --- server-side staging ---------------------------------------------------------------------
    def _on_staged(self, record: JobRecord, direction: str, summary: dict[str, Any], failed: bool) -> None:
        with self._lock:
            record.staging[direction] = summary
            if failed:
                record.extras["postprocessing_failed"] = True

    def _on_inputs_staged(self, record: JobRecord, directory: JobDirectory, summary: dict[str, Any]) -> None:
        with self._lock:
            if record.state is not JobState.PREPROCESSING:
                return
            record.staging["in"] = summary
            snapshot = self._transition(record, JobState.QUEUED)
        self._commit(snapshot, record)
        self.managers[record.manager].launch(self._spec(record, directory))

    def _finish(
        self,
        record: JobRecord,
        state: JobState,
        reason: str | None,
        failure_class: FailureClass | None = None,
    ) -> None:
        with self._lock:
            if self._released or record.state.is_final:
                return
            snapshot = self._transition(record, state, reason=reason, failure_class=failure_class)
        self._commit(snapshot, record)

    # --- the one place a state changes --------------------------------------------------------------
    def _transition(
        self,
        record: JobRecord,
        state: JobState,
        reason: str | None = None,
        failure_class: FailureClass | None = None,
        event_fields: Mapping[str, Any] | None = None,
    ) -> Snapshot:
        """Move ``record`` to ``state`` in memory (caller holds the lock); return what to persist.

        ``event_fields`` go on the timeline line with the new state (the batch id it started as).

        The caller then calls :meth:`_commit` outside the lock, which writes the record before
        anyone hears of the change.
        """
        allowed = TRANSITIONS.get(record.state, frozenset())
        if state not in allowed:
            raise Conflict(
                f"job '{record.job_id}' cannot go from {record.state.value} to {state.value}",
                job_id=record.job_id,
                status=record.state.wire_name,
            )
        previous = record.state
        record.state = state
        if reason is not None:
            record.reason = reason
        if state in (JobState.FAILED, JobState.LOST):
            # Every failure carries a class; a manager that gave none could not tell why.
            record.failure_class = (
                failure_class or (FailureClass.JOB_LOST if state is JobState.LOST else FailureClass.UNKNOWN)
            ).value
        now = time.time()
        record.times[state.value] = now
        log.info(
            "job %s on %s: %s%s", record.job_id, record.manager, state.value, f" ({reason})" if reason else ""
        )
        event: dict[str, Any] = {"at": now, "state": state.value, **(event_fields or {})}
        if reason is not None:
            event["reason"] = reason
        # Leaving a staging state: the timeline line carries that staging's summary.
        direction = {JobState.SETUP: "in", JobState.PREPROCESSING: "in", JobState.POSTPROCESSING: "out"}.get(
            previous
        )
        if direction is not None and direction in record.staging:
            event[f"staging_{direction}"] = dict(record.staging[direction])
        return self._snapshots.snapshot(record, event)

    def _commit(self, snapshot: Snapshot, record: JobRecord, durable: bool = True) -> None:
        self._snapshots.persist(snapshot, durable)
        if record.state.is_final:
            self._end_waiter.ended(snapshot.key)
        self._notify(record, snapshot.event)

    def _notify(self, record: JobRecord, event: dict[str, Any] | None = None) -> None:
        for observer in self.observers:
            try:
                observer.job_changed(record)
                if event is not None:
                    observer.job_event(record, event)
            except Exception:  # noqa: BLE001 - an observer must never break the job's life
                log.exception(
                    "observer %r failed for job %s",
                    observer,
                    record.job_id,
                    extra={"job_id": record.job_id, "manager": record.manager},
                )

    def _spec(self, record: JobRecord, directory: JobDirectory) -> LaunchSpec:
        launch = record.launch
        return LaunchSpec(
            job_id=record.job_id,
            directory=directory,
            script=str(directory.internal_file("job.sh")),
            submit_params=launch.get("submit_params") or {},
            submit_user=launch.get("submit_user"),
        )
