"""A local job's start is one record write (its pid and ``running`` together), left unsynced
because the job directory tells both again: a power loss that takes it loses no job."""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path

from lwr.config import AppSettings, ManagerSettings
from lwr.core.jobs import JobService
from lwr.core.states import JobState
from lwr.managers.queued_python import QueuedPythonManager
from lwr.protocol.submit import SubmitRequest


def _service(tmp_path: Path) -> JobService:
    settings = AppSettings(
        staging_directory=tmp_path / "staging",
        persistence_directory=tmp_path / "persisted",
        managers=(ManagerSettings("_default_", "queued_python"),),
    )
    manager = functools.partial(QueuedPythonManager, "_default_", {"max_concurrent_jobs": 1})
    return JobService(settings, {"_default_": manager})


def _wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_local_start_is_one_unsynced_write_and_a_power_loss_of_it_loses_no_job(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    record_path = tmp_path / "persisted" / "jobs" / "_default_" / "job-1.json"
    service = _service(tmp_path)
    writes: list[tuple[dict, bool]] = []
    queued_copy: list[bytes] = []
    save_data = service.store.save_data

    def recording_save(manager: str, job_id: str, data: bytes, durable: bool = True) -> None:
        record = json.loads(data)
        if record["state"] in ("queued", "running"):
            writes.append((record, durable))
        if record["state"] == "queued":
            queued_copy.append(data)
        save_data(manager, job_id, data, durable)

    service.store.save_data = recording_save  # type: ignore[method-assign]
    service.start()
    try:
        service.setup("_default_", "job-1")
        service.submit("_default_", "job-1", SubmitRequest(command_line=f"echo ran >> {runs}; sleep 1"))
        _wait_for(lambda: service.find("_default_", "job-1").state is JobState.RUNNING)
        pid = service.find("_default_", "job-1").external_id
        assert pid and pid.isdigit()
        (queued, queued_durable), (started, started_durable) = writes
        assert queued["state"] == "queued" and queued["external_id"] is None and queued_durable
        assert started["state"] == "running" and started["external_id"] == pid and not started_durable
        timeline = service.store.timeline("_default_", "job-1")
        assert [(event.get("state"), event.get("external_id")) for event in timeline][1:] == [
            ("queued", None),
            ("running", pid),
        ]
    finally:
        service.release()
    # The machine lost power before that write reached the disk: the record says queued, no pid.
    record_path.write_bytes(queued_copy[0])
    successor = _service(tmp_path)
    successor.start()
    try:
        _wait_for(lambda: successor.find("_default_", "job-1").state.is_final)
        assert successor.find("_default_", "job-1").state is JobState.COMPLETE
        assert runs.read_text() == "ran\n"  # followed to its end, never run again
    finally:
        successor.shutdown()
