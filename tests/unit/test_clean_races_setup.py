"""A clean (or an admin's forget) that races a new setup of the same id drops only the old job.

Galaxy resubmits a failed job under the same id; the old job's clean can still be on its way.
The removal judges one record; if a setup replaced it in between, the new job (its record, its
record file on disk and its directory) must survive.
"""

from __future__ import annotations

import pytest

from lwr.core.jobs import JobService
from lwr.core.states import JobState


def _end(service: JobService, job_id: str) -> None:
    """Mark a set-up job failed, as a refused setup would leave it: final, so it may be set up again."""
    record = service.find("_default_", job_id)
    with service._lock:
        record.state = JobState.FAILED
    service.store.save(record)


@pytest.mark.parametrize("removal", ["clean", "forget"])
def test_a_setup_between_the_judgement_and_the_removal_keeps_the_new_job(
    service: JobService, removal: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    service.setup("_default_", "again")
    _end(service, "again")
    old = service.find("_default_", "again")
    real_find = service.find_or_none if removal == "forget" else service.find
    lookup = "find_or_none" if removal == "forget" else "find"

    def find_then_resubmit(manager: str, job_id: str):
        found = real_find(manager, job_id)
        monkeypatch.setattr(service, lookup, real_find)
        service.setup(manager, job_id)  # Galaxy's resubmission, between the lookup and the removal
        (service.directory(manager, job_id).path / "inputs" / "staged").write_text("new")
        return found

    monkeypatch.setattr(service, lookup, find_then_resubmit)
    getattr(service, removal)("_default_", "again")

    new = service.find("_default_", "again")
    assert new is not old
    assert new.state is JobState.SETUP
    directory = service.directory("_default_", "again").path
    assert (directory / "inputs" / "staged").read_text() == "new"
    assert [record.state for record in service.store.load_all()] == [JobState.SETUP]


def test_setting_up_an_ended_job_again_starts_from_an_empty_directory(service: JobService) -> None:
    service.setup("_default_", "rerun")
    leftover = service.directory("_default_", "rerun").path / "outputs" / "old"
    leftover.write_text("from the first run")
    _end(service, "rerun")
    service.setup("_default_", "rerun")
    assert not leftover.exists()
    assert (service.directory("_default_", "rerun").path / "outputs").is_dir()
