"""``retain_job_records``: an ended job's compacted record is forgotten, so what lwr holds stays bounded.

Without it, every job ever run in message-queue mode (where nobody cleans) would stay in memory,
in the persistence directory and in every restart's recovery.
"""

from __future__ import annotations

import pytest

from lwr.core.jobs import JobService
from lwr.core.retention import Retention
from lwr.core.states import JobState
from lwr.errors import NotFound

ENDED = 1_000_000.0


def _ended(service: JobService, job_id: str, state: JobState) -> None:
    service.setup("_default_", job_id)
    record = service.find("_default_", job_id)
    with service._lock:
        record.state = state
        record.times[state.value] = ENDED
    service.store.save(record)


def _on_disk(service: JobService) -> set[str]:
    return {record.job_id for record in service.store.load_all()}


def test_a_record_is_forgotten_after_its_directory_and_the_record_period(service: JobService) -> None:
    _ended(service, "done", JobState.COMPLETE)
    _ended(service, "broken", JobState.FAILED)  # failed directories kept for ever here
    retention = Retention(service, complete=10, failed=0, records=100)

    assert retention.sweep(now=ENDED + 20) == 1
    assert not service.directory("_default_", "done").path.exists()
    assert service.find("_default_", "done").extras["directory_removed"]

    retention.sweep(now=ENDED + 99)
    assert _on_disk(service) == {"done", "broken"}

    retention.sweep(now=ENDED + 101)
    with pytest.raises(NotFound):
        service.find("_default_", "done")
    assert _on_disk(service) == {"broken"}
    assert not service.store.timeline("_default_", "done")
    # A job whose directory is still there keeps its record: they go together.
    assert service.find("_default_", "broken").state is JobState.FAILED
    assert service.directory("_default_", "broken").path.is_dir()


def test_no_record_period_keeps_compacted_records(service: JobService) -> None:
    _ended(service, "done", JobState.COMPLETE)
    retention = Retention(service, complete=10, failed=10)
    retention.sweep(now=ENDED + 20)
    retention.sweep(now=ENDED + 10**9)
    assert service.find("_default_", "done").extras["directory_removed"]


def test_a_job_set_up_again_is_not_expired_with_its_old_record(service: JobService) -> None:
    _ended(service, "again", JobState.COMPLETE)
    retention = Retention(service, complete=10, failed=10, records=100)
    retention.sweep(now=ENDED + 20)
    old = service.find("_default_", "again")
    service.setup("_default_", "again")  # resubmitted: a new job under the same id
    assert not service.expire(old, "test")
    assert service.find("_default_", "again").state is JobState.SETUP
    assert service.directory("_default_", "again").path.is_dir()
