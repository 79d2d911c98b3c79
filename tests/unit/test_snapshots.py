"""Snapshot writing: a later change wins on disk, a dropped job's bookkeeping does not linger."""

from __future__ import annotations

import json
from pathlib import Path

from lwr.core.jobs import JobService
from lwr.core.snapshots import SnapshotWriter
from lwr.core.states import JobState
from lwr.core.store import JobRecord, JobStore


def _record(job_id: str = "a", state: JobState = JobState.SETUP) -> JobRecord:
    return JobRecord(job_id=job_id, manager="m", state=state, sequence=1)


def _on_disk(store: JobStore, job_id: str = "a") -> dict | None:
    path = store.root / "m" / f"{job_id}.json"
    return json.loads(path.read_text()) if path.exists() else None


def test_an_older_snapshot_never_overwrites_a_newer(tmp_path: Path) -> None:
    store = JobStore(tmp_path, durable=False)
    writer = SnapshotWriter(store)
    record = _record()
    older = writer.snapshot(record, {"at": 1.0, "state": "setup"})
    record.state = JobState.QUEUED
    newer = writer.snapshot(record, {"at": 2.0, "state": "queued"})
    writer.persist(newer)
    writer.persist(older)
    assert _on_disk(store)["state"] == "queued"
    # Both timeline lines are kept: the timeline explains, the record decides.
    assert [event["state"] for event in store.timeline("m", "a")] == ["setup", "queued"]


def test_a_snapshot_taken_before_a_drop_is_never_written(tmp_path: Path) -> None:
    store = JobStore(tmp_path, durable=False)
    writer = SnapshotWriter(store)
    record = _record()
    writer.persist(writer.snapshot(record, {"at": 1.0, "state": "setup"}))
    late = writer.snapshot(record, {"at": 2.0, "state": "queued"})
    writer.delete(("m", "a"), writer.detach(("m", "a")))
    writer.persist(late)
    assert _on_disk(store) is None
    assert store.timeline("m", "a") == []
    assert len(writer) == 0
    # The same id set up again starts afresh and is written.
    writer.persist(writer.snapshot(_record(), {"at": 3.0, "state": "setup"}))
    assert _on_disk(store)["state"] == "setup"


def test_the_bookkeeping_is_dropped_with_the_jobs(service: JobService) -> None:
    for number in range(20):
        service.setup("_default_", f"job-{number}")
    assert len(service._snapshots) == 20
    for number in range(10):
        service.clean("_default_", f"job-{number}")
    for number in range(10, 20):
        service.forget("_default_", f"job-{number}")
    assert len(service._snapshots) == 0


def test_a_snapshot_is_the_stored_record_as_it_was_when_taken(tmp_path: Path) -> None:
    store = JobStore(tmp_path, durable=False)
    writer = SnapshotWriter(store)
    record = _record(state=JobState.QUEUED)
    record.launch = {"command_line": "cat a > b", "env": [{"name": "A", "value": "1", "raw": False}]}
    record.staging = {"in": {"seconds": 0.5, "bytes": 300, "by": "client"}}
    record.times = {"setup": 1.0, "queued": 2.0}
    taken = writer.snapshot(record, {"at": 2.0, "state": "queued"})
    assert json.loads(taken.data) == record.to_dict()
    # Changes made afterwards (under the service lock, before the write) are not in it.
    record.launch["env"][0]["value"] = "2"
    record.staging["in"]["bytes"] = 1
    record.times["running"] = 3.0
    record.state = JobState.RUNNING
    writer.persist(taken)
    stored = _on_disk(store)
    assert stored["state"] == "queued" and stored["launch"]["env"][0]["value"] == "1"
    assert stored["staging"]["in"]["bytes"] == 300 and "running" not in stored["times"]
    assert JobRecord.from_dict(stored).launch["command_line"] == "cat a > b"
