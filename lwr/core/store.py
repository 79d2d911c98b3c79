"""The durable job store: one JSON record per job, replaced atomically on every change.

Records live under ``<persistence_directory>/jobs/<manager>/<job_id>.json``. A record is
written (and fsynced) before the change it describes is acted on, so after ``kill -9`` and
a restart every accepted job is found again in the state it had reached.

Beside each record, ``<job_id>.timeline.jsonl`` is the job's history: one JSON line appended
per state change, batch id, staging summary or admin action (not fsynced; it explains, the
record decides). It is what ``GET /jobs/{id}/timeline`` answers.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from lwr.core.atomic import write_bytes_atomically
from lwr.core.states import JobState

log = logging.getLogger(__name__)

TIMELINE_SUFFIX = ".timeline.jsonl"


@dataclass
class JobRecord:
    """What lwr knows about one job, beyond the files in its directory."""

    job_id: str
    manager: str
    state: JobState
    sequence: int
    tool_id: str | None = None
    tool_version: str | None = None
    external_id: str | None = None
    reason: str | None = None
    #: Why a FAILED or LOST job failed, a :class:`lwr.protocol.failure.FailureClass` value.
    failure_class: str | None = None
    #: The tenant that set the job up (lwr.auth); None for jobs from the message queue and older records.
    owner: str | None = None
    #: What submit asked for: command line, env, submit params, remote staging.
    launch: dict[str, Any] = field(default_factory=dict)
    #: Transport-specific extras that must survive a restart (e.g. MQ staging progress).
    extras: dict[str, Any] = field(default_factory=dict)
    #: When (epoch seconds) the job last entered each state it reached, by state value.
    times: dict[str, float] = field(default_factory=dict)
    #: Server-side or client staging summaries, ``"in"``/``"out"``: seconds, bytes, error.
    staging: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: How often an admin retried the job's postprocessing.
    retries: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.value
        return data

    def encode(self) -> bytes:
        """The record as stored (the JSON of :meth:`to_dict`), made in one pass: a copy of the
        record as it is now, without ``asdict``'s deep copy of every nested value."""
        data = {name: getattr(self, name) for name in _FIELD_NAMES}
        data["state"] = self.state.value
        return json.dumps(data, sort_keys=True).encode("utf-8")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobRecord:
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        values["state"] = JobState(values["state"])
        return cls(**values)


_FIELD_NAMES = tuple(f.name for f in fields(JobRecord))


class JobStore:
    """Reads and writes job records; knows nothing of transitions (see ``lwr.core.jobs``)."""

    def __init__(self, persistence_directory: Path, durable: bool = True) -> None:
        self.root = persistence_directory / "jobs"
        self.durable = durable
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, manager: str, job_id: str) -> Path:
        return self.root / manager / f"{job_id}.json"

    def _timeline_path(self, manager: str, job_id: str) -> Path:
        return self.root / manager / f"{job_id}{TIMELINE_SUFFIX}"

    def append_event(self, manager: str, job_id: str, event: dict[str, Any]) -> None:
        """Append one line to the job's timeline (O_APPEND: concurrent lines never interleave)."""
        path = self._timeline_path(manager, job_id)
        if not path.parent.is_dir():
            path.parent.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(event, separators=(",", ":")) + "\n").encode("utf-8")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        try:
            os.write(descriptor, line)
        finally:
            os.close(descriptor)

    def timeline(self, manager: str, job_id: str) -> list[dict[str, Any]]:
        """The job's events in time order; a line cut short by a crash is skipped."""
        try:
            text = self._timeline_path(manager, job_id).read_text()
        except FileNotFoundError:
            return []
        events = []
        for line in text.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                events.append(event)
        events.sort(key=lambda event: float(event.get("at", 0)))
        return events

    def save(self, record: JobRecord) -> None:
        self.save_data(record.manager, record.job_id, record.encode())

    def save_data(self, manager: str, job_id: str, data: bytes, durable: bool = True) -> None:
        """Write a record already encoded (a snapshot taken under the service lock)."""
        path = self._path(manager, job_id)
        if not path.parent.is_dir():
            path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomically(path, data, durable=self.durable and durable)

    def delete(self, manager: str, job_id: str) -> None:
        for path in (self._path(manager, job_id), self._timeline_path(manager, job_id)):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def load_all(self) -> list[JobRecord]:
        """Every record on disk, oldest first; unreadable records are logged and skipped."""
        records = []
        for path in self.root.glob("*/*.json"):
            try:
                records.append(JobRecord.from_dict(json.loads(path.read_text())))
            except (OSError, ValueError, KeyError, TypeError) as error:
                log.error("skipping unreadable job record %s: %s", path, error)
        records.sort(key=lambda record: record.sequence)
        return records
