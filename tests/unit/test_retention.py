"""Finished jobs nobody cleans (Galaxy's MQ runner never does) are removed after
``finished_job_retention``; a cleaned job's per-job bookkeeping does not outlive it."""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path

import pytest

import lwr.core.jobs as jobs_module
from lwr.config import AppSettings, ManagerSettings
from lwr.core.jobs import JobService, SubmitRequest
from lwr.errors import NotFound
from lwr.managers.queued_python import QueuedPythonManager


@pytest.fixture
def service(tmp_path: Path):
    settings = AppSettings(staging_directory=tmp_path / "staging", persistence_directory=tmp_path / "persisted",
                           managers=(ManagerSettings("_default_", "queued_python"),),
                           finished_job_retention=0)   # the test sweeps by hand
    manager = functools.partial(QueuedPythonManager, "_default_", {"max_concurrent_jobs": 4})
    job_service = JobService(settings, {"_default_": manager})
    job_service.start()
    yield job_service
    job_service.shutdown()


def run_jobs(service: JobService, count: int) -> list[str]:
    ids = [f"r{index}" for index in range(count)]
    for job_id in ids:
        service.setup("_default_", job_id)
        service.submit("_default_", job_id, SubmitRequest(command_line="true"))
    deadline = time.monotonic() + 60
    while not all(service.find("_default_", job_id).state.is_final for job_id in ids):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return ids


def test_finished_jobs_are_removed_after_the_retention(service: JobService) -> None:
    ids = run_jobs(service, 5)
    assert all(service.find("_default_", job_id).ended_at for job_id in ids)
    assert service.sweep(retention=3600) == 0   # not old enough
    assert service.sweep(retention=0) == 5
    for job_id in ids:
        with pytest.raises(NotFound):
            service.find("_default_", job_id)
        assert not service.directory("_default_", job_id).path.exists()
    assert list(service.store.root.glob("*/*.json")) == []


def test_cleaned_jobs_leave_no_per_job_bookkeeping(service: JobService, monkeypatch) -> None:
    ids = run_jobs(service, 30)
    for job_id in ids:
        service.status("_default_", job_id)
    assert len(service._versions) >= 30
    for job_id in ids:
        service.clean("_default_", job_id)
    service.sweep(retention=3600)
    assert len(service._versions) == 30, "kept a while against late writes"
    monkeypatch.setattr(jobs_module, "CLEANED_BOOKKEEPING_SECONDS", 0.0)
    service.sweep(retention=3600)
    assert (service._versions, service._saved, service._save_locks, service._final_replies, service._cleaned) == (
        {}, {}, {}, {}, {})


def test_a_record_without_ended_at_is_retained_from_the_restart(tmp_path: Path) -> None:
    path = tmp_path / "persisted" / "jobs" / "_default_" / "old.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"job_id": "old", "manager": "_default_", "state": "complete", "sequence": 1}))
    settings = AppSettings(staging_directory=tmp_path / "staging", persistence_directory=tmp_path / "persisted",
                           managers=(), finished_job_retention=0)
    service = JobService(settings, {})
    service.start()
    record = service.find_or_none("_default_", "old")
    assert record is not None and record.ended_at is not None


def test_cleaning_a_job_only_set_up_announces_nothing(service: JobService) -> None:
    """A refused MQ setup removes its half-made job and announces one ``failed``; the removal
    itself must not add a ``cancelled`` (a second final status for the same job)."""
    heard: list[str] = []

    class Observer:
        def job_changed(self, record) -> None:
            heard.append(record.state.value)

    service.add_observer(Observer())
    service.setup("_default_", "half-made")
    service.clean("_default_", "half-made")
    assert heard == []
    with pytest.raises(NotFound):
        service.find("_default_", "half-made")
