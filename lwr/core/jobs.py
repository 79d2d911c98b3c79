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
import queue
import shutil
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from lwr.config import AppSettings
from lwr.core import job_directory as layout
from lwr.core.end_waiter import EndWaiter
from lwr.core.job_directory import JobDirectory, validate_job_id
from lwr.core.job_script import EnvItem, write_job_script
from lwr.core.states import JobState
from lwr.core.status import SYSTEM_PROPERTIES, status_reply
from lwr.core.store import JobRecord, JobStore
from lwr.errors import BadRequest, Conflict, NotFound
from lwr.managers import manager_class
from lwr.managers.base import LaunchSpec, Manager
from lwr.protocol.version import version_fields

log = logging.getLogger(__name__)

#: Which state may follow which. Final states are never left.
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.SETUP: frozenset({JobState.PREPROCESSING, JobState.QUEUED, JobState.FAILED, JobState.CANCELLED}),
    JobState.PREPROCESSING: frozenset({JobState.QUEUED, JobState.FAILED, JobState.CANCELLED, JobState.LOST}),
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.POSTPROCESSING, JobState.COMPLETE, JobState.FAILED,
                                JobState.CANCELLED, JobState.LOST}),
    JobState.RUNNING: frozenset({JobState.POSTPROCESSING, JobState.COMPLETE, JobState.FAILED, JobState.CANCELLED,
                                 JobState.LOST}),
    JobState.POSTPROCESSING: frozenset({JobState.COMPLETE, JobState.FAILED, JobState.CANCELLED, JobState.LOST}),
}


@dataclass(frozen=True)
class SubmitRequest:
    """A submit, decoded from HTTP query arguments or an MQ setup message."""

    command_line: str
    env: list[EnvItem] = field(default_factory=list)
    submit_params: dict[str, Any] = field(default_factory=dict)
    setup_params: dict[str, Any] = field(default_factory=dict)
    remote_staging: dict[str, Any] = field(default_factory=dict)
    dependencies_description: Any = None
    dynamic_file_sources: Any = None
    submit_user: str | None = None

    def launch_record(self) -> dict[str, Any]:
        return {
            "command_line": self.command_line,
            "env": [item.__dict__ for item in self.env],
            "submit_params": self.submit_params,
            "remote_staging": self.remote_staging,
            "submit_user": self.submit_user,
            "dynamic_file_sources": self.dynamic_file_sources,
        }


class JobObserver(Protocol):
    def job_changed(self, record: JobRecord) -> None:
        """Called after every durable state change, outside the service lock."""


class StagingHooks(Protocol):
    """Server-side staging (MQ mode): fetch inputs before launch, push outputs after the job."""

    def wants(self, record: JobRecord) -> bool: ...

    def before_launch(self, record: JobRecord, directory: JobDirectory) -> None: ...

    def after_finish(self, record: JobRecord, directory: JobDirectory) -> None: ...


@dataclass(frozen=True)
class _Snapshot:
    key: tuple[str, str]
    version: int
    data: dict[str, Any]


class _ManagerEvents:
    """The listener one manager reports to; tags each report with the manager's name."""

    def __init__(self, service: JobService, manager: str) -> None:
        self.service = service
        self.manager = manager

    def job_submitted(self, job_id: str, external_id: str) -> None:
        self.service._on_submitted(self.manager, job_id, external_id)

    def job_running(self, job_id: str) -> None:
        self.service._on_running(self.manager, job_id)

    def job_ended(self, job_id: str, state: JobState, reason: str | None = None) -> None:
        self.service._on_ended(self.manager, job_id, state, reason)


def _set_mode(path: Path, mode: int) -> None:
    """chmod a directory of lwr's; one that is not lwr's is left as it is, with a warning if it is open."""
    info = path.stat()
    if info.st_uid == os.geteuid():
        path.chmod(mode)
    elif info.st_mode & 0o077 & ~mode:
        log.warning("%s is not lwr's and is open to other users (mode %o); lwr would make it %o",
                    path, info.st_mode & 0o777, mode)


class JobService:
    """Owns every job: its record, its directory, its state, its manager."""

    def __init__(self, settings: AppSettings, observers: Iterable[JobObserver] = ()) -> None:
        self.settings = settings
        self.staging = settings.staging_directory
        #: What lwr is about to create on the way to its staging directory (see _prepare_staging).
        created = [path for path in [self.staging, *self.staging.parents] if not path.exists()]
        #: Cleaned job directories are renamed here and deleted by a background thread.
        self.trash = self.staging / ".trash"
        self._trash_bin: queue.Queue[Path] = queue.Queue()
        self.store = JobStore(settings.persistence_directory)
        self.observers: list[JobObserver] = list(observers)
        self.staging_hooks: StagingHooks | None = None
        self._lock = threading.RLock()
        self._records: dict[tuple[str, str], JobRecord] = {}
        self._final_replies: dict[tuple[str, str], dict[str, Any]] = {}
        self._end_waiter = EndWaiter()
        # Record writes happen outside ``_lock``: a version per change, a lock per job for writing.
        self._versions: dict[tuple[str, str], int] = {}
        self._saved: dict[tuple[str, str], int] = {}
        self._save_locks: dict[tuple[str, str], threading.Lock] = {}
        self._sequence = itertools.count(1)
        self.managers: dict[str, Manager] = {}
        for manager_settings in settings.managers:
            cls = manager_class(manager_settings.type)
            events = _ManagerEvents(self, manager_settings.name)
            self.managers[manager_settings.name] = cls(manager_settings.name, manager_settings.options, events)
        self._prepare_staging(created)

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
        if self.trash.is_dir():
            for leftover in self.trash.iterdir():
                self._trash_bin.put(leftover)
        threading.Thread(target=self._empty_trash, name="trash", daemon=True).start()
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

    def _empty_trash(self) -> None:
        while True:
            shutil.rmtree(self._trash_bin.get(), ignore_errors=True)

    def _recover(self, record: JobRecord) -> None:
        if record.state.is_final or record.state is JobState.SETUP:
            return
        manager = self.managers.get(record.manager)
        if manager is None:
            with self._lock:
                snapshot = self._transition(record, JobState.LOST,
                                            reason=f"manager '{record.manager}' is no longer configured")
            self._commit(snapshot, record)
            return
        directory = self.directory(record.manager, record.job_id)
        log.info("recovering job %s (%s) on manager %s", record.job_id, record.state.value, record.manager)
        if record.state is JobState.PREPROCESSING:
            self._start_preprocessing(record, directory)
        elif record.state is JobState.POSTPROCESSING:
            self._start_postprocessing(record, directory)
        else:
            manager.reattach(self._spec(record, directory), record.external_id,
                             was_running=record.state is JobState.RUNNING)

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

    # --- the protocol -----------------------------------------------------------------------------
    def setup(self, manager: str, job_id: str, tool_id: str | None = None,
              tool_version: str | None = None) -> dict[str, Any]:
        """Create the job directory and record; reply with the layout the client rewrites paths with."""
        handed_over = self.manager(manager).hands_directories_to_users
        if self.settings.assign_ids == "uuid":
            job_id = uuid.uuid4().hex
        validate_job_id(job_id)
        directory = self.directory(manager, job_id)
        with self._lock:
            existing = self._records.get((manager, job_id))
            if existing is not None and not existing.state.is_final and existing.state is not JobState.SETUP:
                raise Conflict(f"job '{job_id}' is {existing.state.value}; cancel or clean it before setting it up "
                               "again", job_id=job_id, status=existing.state.wire_name)
            if existing is None or existing.state.is_final:
                if existing is not None:
                    directory.remove()
                    self._final_replies.pop((manager, job_id), None)
                directory.create(handed_over)
                record = JobRecord(job_id=job_id, manager=manager, state=JobState.SETUP,
                                   sequence=next(self._sequence), tool_id=tool_id, tool_version=tool_version)
                self._records[(manager, job_id)] = record
                snapshot: _Snapshot | None = self._snapshot(record)
            else:
                snapshot = None
        if snapshot is not None:
            self._persist(snapshot)
        reply: dict[str, Any] = {
            **directory.setup_description(),
            "job_id": job_id,
            "system_properties": dict(SYSTEM_PROPERTIES),
            "path_separator": "/",
            **version_fields(),
        }
        if tool_id:
            reply["tool_id"] = tool_id
        if tool_version:
            reply["tool_version"] = tool_version
        return reply

    def staging_path(self, manager: str, job_id: str, name: str, file_type: str) -> Path:
        """Where an uploaded file goes; only while the job is still being set up."""
        record = self.find(manager, job_id)
        if record.state not in (JobState.SETUP, JobState.PREPROCESSING):
            raise Conflict(f"job '{job_id}' was already submitted; files can no longer be staged",
                           job_id=job_id, status=record.state.wire_name)
        return self.directory(manager, job_id).path_for(name, file_type)

    def file_path(self, manager: str, job_id: str, name: str, file_type: str) -> Path:
        """The server path of a client-named file (the ``files/path`` route)."""
        self.find(manager, job_id)
        return self.directory(manager, job_id).path_for(name, file_type)

    def open_output(self, manager: str, job_id: str, name: str, file_type: str) -> BinaryIO:
        """An output opened once, safely (the job may still be flipping symlinks in its directory)."""
        self.find(manager, job_id)
        return self.directory(manager, job_id).open_output(name, file_type)

    def submit(self, manager_name: str, job_id: str, request: SubmitRequest) -> None:
        """Record the launch durably, then hand the job to its manager (or to server-side staging)."""
        manager = self.manager(manager_name)
        if not request.command_line.strip():
            raise BadRequest("command_line is empty")
        if self.find_or_none(manager_name, job_id) is None and request.setup_params:
            self.setup(manager_name, job_id, request.setup_params.get("tool_id"),
                       request.setup_params.get("tool_version"))
        record = self.find(manager_name, job_id)
        directory = self.directory(manager_name, job_id)
        with self._lock:
            if record.state is not JobState.SETUP:
                raise Conflict(f"job '{job_id}' was already submitted", job_id=job_id,
                               status=record.state.wire_name)
            command_line = request.command_line.replace("__PULSAR_JOB_DIRECTORY__", str(directory.path))
            write_job_script(directory, command_line, request.env)
            record.launch = request.launch_record()
            preprocess = self.staging_hooks is not None and self.staging_hooks.wants(record)
            next_state = JobState.PREPROCESSING if preprocess else JobState.QUEUED
            snapshot = self._transition(record, next_state)
        self._end_waiter.submitted((manager_name, job_id))
        self._commit(snapshot, record)
        if preprocess:
            self._start_preprocessing(record, directory)
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
                snapshot: _Snapshot | None = self._transition(record, JobState.CANCELLED,
                                                              reason="cancelled before launch")
            else:
                snapshot = None
        if snapshot is None:
            manager.kill(job_id)
        else:
            self._commit(snapshot, record)

    def clean(self, manager: str, job_id: str) -> None:
        """Remove the job's directory and record; a job still active is cancelled first."""
        record = self.find(manager, job_id)
        if not record.state.is_final:
            self.cancel(manager, job_id)
        key = (manager, job_id)
        with self._lock:
            self._records.pop(key, None)
            self._final_replies.pop(key, None)
            version = self._versions.get(key, 0)
        with self._save_lock(key):
            self.store.delete(manager, job_id)
            self._saved[key] = max(self._saved.get(key, 0), version)
        discarded = self.directory(manager, job_id).discard(self.trash)
        if discarded is not None:
            self._trash_bin.put(discarded)

    # --- manager reports --------------------------------------------------------------------------
    def _on_submitted(self, manager: str, job_id: str, external_id: str) -> None:
        with self._lock:
            record = self._records.get((manager, job_id))
            if record is None or record.state.is_final:
                return
            record.external_id = external_id
            snapshot = self._snapshot(record)
        self._persist(snapshot)

    def _on_running(self, manager: str, job_id: str) -> None:
        with self._lock:
            record = self._records.get((manager, job_id))
            if record is None or record.state is not JobState.QUEUED:
                return
            snapshot = self._transition(record, JobState.RUNNING)
        self._commit(snapshot, record, durable=False)

    def _on_ended(self, manager: str, job_id: str, state: JobState, reason: str | None) -> None:
        with self._lock:
            record = self._records.get((manager, job_id))
            if record is None or record.state.is_final:
                return
            postprocess = (state is JobState.COMPLETE and self.staging_hooks is not None
                           and self.staging_hooks.wants(record))
            if postprocess:
                record.extras["manager_outcome"] = {"state": state.value, "reason": reason}
                snapshot = self._transition(record, JobState.POSTPROCESSING)
            else:
                snapshot = self._transition(record, state, reason=reason)
        # The job directory (launch marker, run lock, exit code) or the batch system can tell this
        # end again after a power loss; only a postprocessing outcome exists nowhere else.
        self._commit(snapshot, record, durable=postprocess)
        if postprocess:
            self._start_postprocessing(record, self.directory(manager, job_id))

    # --- server-side staging ----------------------------------------------------------------------
    def _start_preprocessing(self, record: JobRecord, directory: JobDirectory) -> None:
        def run() -> None:
            hooks = self.staging_hooks
            try:
                if hooks is not None:
                    hooks.before_launch(record, directory)
            except Exception as error:  # noqa: BLE001 - any staging failure fails the job, with its reason
                log.exception("staging inputs of job %s failed", record.job_id)
                self._finish(record, JobState.FAILED, f"staging inputs failed: {error}")
                return
            with self._lock:
                if record.state is not JobState.PREPROCESSING:
                    return
                snapshot = self._transition(record, JobState.QUEUED)
            self._commit(snapshot, record)
            self.managers[record.manager].launch(self._spec(record, directory))

        threading.Thread(target=run, name=f"preprocess-{record.job_id}", daemon=True).start()

    def _start_postprocessing(self, record: JobRecord, directory: JobDirectory) -> None:
        def run() -> None:
            hooks = self.staging_hooks
            outcome = record.extras.get("manager_outcome", {"state": JobState.COMPLETE.value, "reason": None})
            try:
                if hooks is not None:
                    hooks.after_finish(record, directory)
            except Exception as error:  # noqa: BLE001
                log.exception("staging outputs of job %s failed", record.job_id)
                self._finish(record, JobState.FAILED, f"staging outputs failed: {error}")
                return
            self._finish(record, JobState(outcome["state"]), outcome.get("reason"))

        threading.Thread(target=run, name=f"postprocess-{record.job_id}", daemon=True).start()

    def _finish(self, record: JobRecord, state: JobState, reason: str | None) -> None:
        with self._lock:
            if record.state.is_final:
                return
            snapshot = self._transition(record, state, reason=reason)
        self._commit(snapshot, record)

    # --- the one place a state changes --------------------------------------------------------------
    def _transition(self, record: JobRecord, state: JobState, reason: str | None = None) -> _Snapshot:
        """Move ``record`` to ``state`` in memory (caller holds the lock); return what to persist.

        The caller then calls :meth:`_commit` outside the lock, which writes the record before
        anyone hears of the change.
        """
        allowed = TRANSITIONS.get(record.state, frozenset())
        if state not in allowed:
            raise Conflict(f"job '{record.job_id}' cannot go from {record.state.value} to {state.value}",
                           job_id=record.job_id, status=record.state.wire_name)
        record.state = state
        if reason is not None:
            record.reason = reason
        log.info("job %s on %s: %s%s", record.job_id, record.manager, state.value, f" ({reason})" if reason else "")
        return self._snapshot(record)

    def _snapshot(self, record: JobRecord) -> _Snapshot:
        """A numbered copy of ``record`` (caller holds the lock); later numbers win on disk."""
        key = (record.manager, record.job_id)
        version = self._versions.get(key, 0) + 1
        self._versions[key] = version
        return _Snapshot(key, version, record.to_dict())

    def _save_lock(self, key: tuple[str, str]) -> threading.Lock:
        with self._lock:
            lock = self._save_locks.get(key)
            if lock is None:
                lock = self._save_locks[key] = threading.Lock()
            return lock

    def _persist(self, snapshot: _Snapshot, durable: bool = True) -> None:
        """Write a snapshot atomically, outside the service lock; an older one never overwrites a newer.

        Every write survives ``kill -9``. ``durable`` (fsync) also makes it survive a power
        loss; it is skipped only for states the job directory or batch system can tell again.
        """
        with self._save_lock(snapshot.key):
            if snapshot.version <= self._saved.get(snapshot.key, 0):
                return
            self.store.save_data(snapshot.key[0], snapshot.key[1], snapshot.data, durable=durable)
            self._saved[snapshot.key] = snapshot.version

    def _commit(self, snapshot: _Snapshot, record: JobRecord, durable: bool = True) -> None:
        self._persist(snapshot, durable)
        if record.state.is_final:
            self._end_waiter.ended(snapshot.key)
        self._notify(record)

    def _notify(self, record: JobRecord) -> None:
        for observer in self.observers:
            try:
                observer.job_changed(record)
            except Exception:  # noqa: BLE001 - an observer must never break the job's life
                log.exception("observer %r failed for job %s", observer, record.job_id)

    def _spec(self, record: JobRecord, directory: JobDirectory) -> LaunchSpec:
        launch = record.launch
        return LaunchSpec(
            job_id=record.job_id,
            directory=directory,
            script=str(directory.internal_file("job.sh")),
            submit_params=launch.get("submit_params") or {},
            submit_user=launch.get("submit_user"),
        )

