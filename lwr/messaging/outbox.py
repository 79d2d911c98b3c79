"""The durable outbox of status updates: nothing is lost to a broker outage or a restart.

An update is written (fsynced) to ``pending/`` before anyone is told it exists, published in
the order it was written (so in order per job), and removed only once the broker confirmed
it. With the acknowledgement protocol on, a confirmed update moves to ``awaiting_ack/``
and is republished (same uuid, so the receiver drops duplicates) until the receiver
answers; a newer update of the same job supersedes an older one still waiting.

A job's final status, once confirmed (and acknowledged, if asked), leaves a marker in
``delivered/``: until then the job is *active* for the transport, and a restart publishes
its final status again (:meth:`Outbox.needs_final`).

Entries are written atomically but, by default, not fsynced: they survive a killed lwr (the
page cache outlives the process); after a power loss a pending *final* status is rebuilt
from the job store, which is fsynced before any update is enqueued, so only intermediate
updates (queued, running) could be lost there. That keeps an fsync off every status update.

Layout under ``<persistence_directory>/messaging/``::

    pending/<sequence>.json     awaiting_ack/<uuid>.json     delivered/<manager>/<job_id>
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid as uuidlib
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lwr.core.atomic import write_json_atomically

log = logging.getLogger(__name__)


@dataclass
class Entry:
    """One status update on its way to the broker."""

    sequence: int
    manager: str
    job_id: str
    body: dict[str, Any]
    final: bool
    uuid: str = field(default_factory=lambda: str(uuidlib.uuid4()))
    #: Monotonic time of the last publish (awaiting acknowledgement only; not persisted).
    sent_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("sent_at")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Entry:
        return cls(
            sequence=int(data["sequence"]),
            manager=str(data["manager"]),
            job_id=str(data["job_id"]),
            body=dict(data["body"]),
            final=bool(data["final"]),
            uuid=str(data["uuid"]),
        )


class Outbox:
    """Pending and awaiting-acknowledgement status updates, on disk and in memory."""

    def __init__(self, root: Path, acknowledgements: bool = False, durable: bool = False) -> None:
        self.root = root
        self.acknowledgements = acknowledgements
        self.durable = durable
        self.pending_dir = root / "pending"
        self.awaiting_dir = root / "awaiting_ack"
        self.delivered_dir = root / "delivered"
        for directory in (self.pending_dir, self.awaiting_dir, self.delivered_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Condition()
        self._pending: deque[Entry] = deque()
        self._awaiting: dict[str, Entry] = {}
        #: Answers that arrived before the publisher recorded the update as sent (a race, not an error).
        self._early: set[str] = set()
        self._sequence = 0
        self._load()

    def _load(self) -> None:
        for directory in (self.pending_dir, self.awaiting_dir):
            for leftover in directory.glob(".*.tmp"):  # a write cut short by a killed lwr
                leftover.unlink(missing_ok=True)
        for path in sorted(self.pending_dir.glob("*.json")):
            entry = self._read(path)
            if entry is not None:
                self._pending.append(entry)
                self._sequence = max(self._sequence, entry.sequence)
        for path in self.awaiting_dir.glob("*.json"):
            entry = self._read(path)
            if entry is not None:
                self._awaiting[entry.uuid] = entry
                self._sequence = max(self._sequence, entry.sequence)
        if self._pending or self._awaiting:
            log.info(
                "outbox: %d status updates pending, %d awaiting acknowledgement",
                len(self._pending),
                len(self._awaiting),
            )

    @staticmethod
    def _read(path: Path) -> Entry | None:
        try:
            return Entry.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as error:
            log.error("outbox: dropping unreadable entry %s: %s", path, error)
            path.unlink(missing_ok=True)
            return None

    # --- producing --------------------------------------------------------------------------------
    def enqueue(self, manager: str, job_id: str, body: dict[str, Any], final: bool) -> Entry:
        """Record an update durably, then make it visible to the publisher."""
        with self._lock:
            self._sequence += 1
            entry = Entry(self._sequence, manager, job_id, body, final)
            write_json_atomically(self._pending_path(entry), entry.to_dict(), durable=self.durable)
            self._pending.append(entry)
            if final:
                (self.delivered_dir / manager / job_id).unlink(missing_ok=True)
            self._lock.notify_all()
            return entry

    # --- consuming (the publisher) ----------------------------------------------------------------
    def peek(self, timeout: float) -> Entry | None:
        """The oldest pending update, waiting up to ``timeout`` seconds for one."""
        batch = self.peek_batch(timeout, 1)
        return batch[0] if batch else None

    def peek_batch(self, timeout: float, limit: int) -> list[Entry]:
        """Up to ``limit`` of the oldest pending updates (waiting up to ``timeout`` for one)."""
        with self._lock:
            if not self._pending:
                self._lock.wait(timeout)
            return [self._pending[index] for index in range(min(limit, len(self._pending)))]

    @staticmethod
    def superseded(batch: list[Entry]) -> set[int]:
        """Sequences of non-final updates followed, in ``batch``, by a newer update of the same job:
        publishing only the newest keeps each job's order and spares the receiver stale states."""
        newest: dict[tuple[str, str], int] = {}
        for entry in batch:
            newest[(entry.manager, entry.job_id)] = entry.sequence
        return {
            entry.sequence
            for entry in batch
            if not entry.final and newest[(entry.manager, entry.job_id)] != entry.sequence
        }

    def confirmed(self, entry: Entry, sent: bool = True) -> None:
        """The broker confirmed ``entry`` (or it was superseded, not ``sent``): forget it, or keep it
        until the receiver acknowledges."""
        with self._lock:
            if not sent:
                pass
            elif self.acknowledgements and entry.uuid in self._early:
                self._early.discard(entry.uuid)
                if entry.final:
                    self._mark_delivered(entry)
            elif self.acknowledgements:
                entry.sent_at = time.monotonic()
                for older in [
                    e
                    for e in self._awaiting.values()
                    if (e.manager, e.job_id) == (entry.manager, entry.job_id)
                ]:
                    self._forget_awaiting(older)
                write_json_atomically(self._awaiting_path(entry), entry.to_dict(), durable=self.durable)
                self._awaiting[entry.uuid] = entry
            elif entry.final:
                self._mark_delivered(entry)
            self._pending_path(entry).unlink(missing_ok=True)
            if self._pending and self._pending[0] is entry:
                self._pending.popleft()
            else:
                try:
                    self._pending.remove(entry)
                except ValueError:
                    pass

    def acknowledged(self, uuid: str) -> bool:
        """The receiver answered ``uuid``; False if it was not (or no longer) awaited."""
        with self._lock:
            entry = self._awaiting.get(uuid)
            if entry is None:
                if any(e.uuid == uuid for e in self._pending):
                    self._early.add(uuid)
                    return True
                return False
            if entry.final:
                self._mark_delivered(entry)
            self._forget_awaiting(entry)
            return True

    def due_for_republish(self, after: float) -> list[Entry]:
        """Updates confirmed by the broker but not acknowledged for ``after`` seconds."""
        now = time.monotonic()
        with self._lock:
            return sorted(
                (e for e in self._awaiting.values() if now - e.sent_at >= after), key=lambda e: e.sequence
            )

    def republished(self, entry: Entry) -> None:
        with self._lock:
            entry.sent_at = time.monotonic()

    # --- recovery ---------------------------------------------------------------------------------
    def needs_final(self, manager: str, job_id: str) -> bool:
        """True if the job's final status was never enqueued-and-delivered (a crash came between)."""
        with self._lock:
            if (self.delivered_dir / manager / job_id).exists():
                return False
            queued = list(self._pending) + list(self._awaiting.values())
            return not any(e.final and (e.manager, e.job_id) == (manager, job_id) for e in queued)

    def is_delivered(self, manager: str, job_id: str) -> bool:
        return (self.delivered_dir / manager / job_id).exists()

    def pending_count(self) -> int:
        with self._lock:
            return len(self._pending)

    def awaiting_count(self) -> int:
        with self._lock:
            return len(self._awaiting)

    def oldest_age(self) -> float:
        """Seconds since the oldest update not yet delivered (pending or awaiting an answer) was
        written; 0 when there is none."""
        with self._lock:
            paths = [self._pending_path(self._pending[0])] if self._pending else []
            paths += [self._awaiting_path(entry) for entry in self._awaiting.values()]
        oldest = None
        for path in paths:
            try:
                mtime = path.stat().st_mtime
            except FileNotFoundError:
                continue
            oldest = mtime if oldest is None else min(oldest, mtime)
        return max(0.0, time.time() - oldest) if oldest is not None else 0.0

    def forget_delivered(self, manager: str, job_id: str) -> None:
        (self.delivered_dir / manager / job_id).unlink(missing_ok=True)

    def delivered_jobs(self) -> list[tuple[str, str]]:
        return [(path.parent.name, path.name) for path in self.delivered_dir.glob("*/*")]

    # --- internals --------------------------------------------------------------------------------
    def _pending_path(self, entry: Entry) -> Path:
        return self.pending_dir / f"{entry.sequence:016d}.json"

    def _awaiting_path(self, entry: Entry) -> Path:
        return self.awaiting_dir / f"{entry.uuid}.json"

    def _forget_awaiting(self, entry: Entry) -> None:
        self._awaiting.pop(entry.uuid, None)
        self._awaiting_path(entry).unlink(missing_ok=True)

    def _mark_delivered(self, entry: Entry) -> None:
        marker = self.delivered_dir / entry.manager / entry.job_id
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        os.utime(marker)
