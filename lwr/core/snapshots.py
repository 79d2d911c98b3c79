"""Versioned snapshot writing: a job's record is written outside the job service's lock.

The job service changes a record under its lock and takes a numbered copy of it (a
:class:`Snapshot`); the copy is written after the lock is released, so a slow disk never
stalls other jobs. Two writes of one job can then race: the numbers make a later change win
on disk, and a job's write lock keeps its record and timeline consistent.

The bookkeeping (number, last number saved, write lock) lives in one :class:`_Slot` per job,
dropped with the job: memory follows the jobs lwr holds, not every job it ever saw. A snapshot
keeps its slot, so one taken before its job was dropped is recognised and never written.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from lwr.core.store import JobRecord, JobStore

#: A job's identity in the service: (manager, job_id).
Key = tuple[str, str]


class _Slot:
    """One job's writing bookkeeping, for the life of the job in the service."""

    __slots__ = ("lock", "version", "saved", "dropped")

    def __init__(self) -> None:
        #: Serialises this job's writes (record and timeline).
        self.lock = threading.Lock()
        #: The number of the latest snapshot taken.
        self.version = 0
        #: The number of the latest snapshot on disk.
        self.saved = 0
        #: The job was dropped: nothing numbered in this slot may reach the disk any more.
        self.dropped = False


@dataclass(frozen=True)
class Snapshot:
    key: Key
    version: int
    #: The record as stored (:meth:`JobRecord.encode`), encoded when the snapshot was taken.
    data: bytes
    slot: _Slot = field(repr=False, compare=False)
    #: The timeline line this change adds (None: a plain rewrite of the record).
    event: dict[str, Any] | None = None


class SnapshotWriter:
    """Numbers the snapshots of each job and writes them so that an older never overwrites a newer."""

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._slots: dict[Key, _Slot] = {}

    def snapshot(self, record: JobRecord, event: dict[str, Any] | None = None) -> Snapshot:
        """A numbered copy of ``record`` (caller holds the service lock); later numbers win on disk."""
        key = (record.manager, record.job_id)
        with self._lock:
            slot = self._slots.get(key)
            if slot is None:
                slot = self._slots[key] = _Slot()
            slot.version += 1
            version = slot.version
        return Snapshot(key, version, record.encode(), slot, event)

    def persist(self, snapshot: Snapshot, durable: bool = True) -> None:
        """Write a snapshot atomically, outside the service lock; an older one never overwrites a newer.

        Every write survives ``kill -9``. ``durable`` (fsync) also makes it survive a power
        loss; it is skipped only for states the job directory or batch system can tell again.
        """
        slot = snapshot.slot
        with slot.lock:
            if slot.dropped:
                return
            if snapshot.event is not None:
                self.store.append_event(snapshot.key[0], snapshot.key[1], snapshot.event)
            if snapshot.version <= slot.saved:
                return
            self.store.save_data(snapshot.key[0], snapshot.key[1], snapshot.data, durable=durable)
            slot.saved = snapshot.version

    def detach(self, key: Key) -> _Slot | None:
        """Forget the job's bookkeeping (caller holds the service lock, as it drops the record).

        Snapshots taken from now on start a new slot; pass the result to :meth:`delete`.
        """
        with self._lock:
            return self._slots.pop(key, None)

    def delete(self, key: Key, slot: _Slot | None) -> None:
        """Delete the job's record and timeline; no snapshot of the detached ``slot`` is written after."""
        if slot is None:
            self.store.delete(*key)
            return
        with slot.lock:
            self.store.delete(*key)
            slot.dropped = True

    def __len__(self) -> int:
        """How many jobs have bookkeeping (bounded by the jobs the service holds)."""
        with self._lock:
            return len(self._slots)
