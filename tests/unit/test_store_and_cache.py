from __future__ import annotations

import threading

from lwr.core.file_cache import FileCache
from lwr.core.states import FINAL_STATES, JobState
from lwr.core.store import JobRecord, JobStore


def test_store_round_trip_and_order(tmp_path):
    store = JobStore(tmp_path)
    store.save(JobRecord("b", "m", JobState.QUEUED, 2, launch={"command_line": "x"}))
    store.save(JobRecord("a", "m", JobState.RUNNING, 1, external_id="42"))
    (tmp_path / "jobs" / "m" / "broken.json").write_text("{not json")
    loaded = store.load_all()
    assert [record.job_id for record in loaded] == ["a", "b"]
    assert loaded[0].external_id == "42" and loaded[1].launch == {"command_line": "x"}
    store.delete("m", "a")
    assert [record.job_id for record in store.load_all()] == ["b"]
    assert not list((tmp_path / "jobs" / "m").glob(".*tmp"))


def test_wire_names():
    assert JobState.SETUP.wire_name == "preprocessing"
    assert JobState.POSTPROCESSING.wire_name == "running"
    assert {state.value for state in FINAL_STATES} == {"complete", "failed", "cancelled", "lost"}


def test_cache_claim_is_exclusive_under_concurrency(tmp_path):
    cache = FileCache(tmp_path)
    results: list[bool] = []
    barrier = threading.Barrier(16)

    def claim() -> None:
        barrier.wait()
        results.append(cache.claim("t", "1.2.3.4", "/data/f"))

    threads = [threading.Thread(target=claim) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 1
    assert cache.status("t", "1.2.3.4", "/data/f")["ready"] is False

    def receive(target):
        target.write_bytes(b"data")
        return {"size": 4}

    cache.insert("t", "1.2.3.4", "/data/f", receive)
    status = cache.status("t", "1.2.3.4", "/data/f")
    assert status["ready"] is True
    reply = cache.copy_to("t", status["token"], tmp_path / "job" / "f")
    assert (tmp_path / "job" / "f").read_bytes() == b"data" and reply["size"] == 4
    assert cache.claim("t", "1.2.3.4", "/data/f") is False
    assert cache.status("other", "1.2.3.4", "/data/f")["ready"] is False
