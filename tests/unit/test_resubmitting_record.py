"""A batch id the manager gives up on (held or forgotten copy) is forgotten on disk, so a restart
submits the job again instead of judging the copy lwr cancelled itself (soak run 5's lost job)."""

from __future__ import annotations

from pathlib import Path

from lwr.core.jobs import JobService, _ManagerEvents
from lwr.core.store import JobStore


def test_a_resubmission_forgets_the_old_batch_id_durably(service: JobService, tmp_path: Path) -> None:
    service.setup("_default_", "job-1")
    events = _ManagerEvents(service, "_default_")
    events.job_submitted("job-1", "1678")
    assert _stored_external_id(tmp_path) == "1678"
    events.job_resubmitting("job-1")
    assert service.find("_default_", "job-1").external_id is None
    assert _stored_external_id(tmp_path) is None
    events.job_submitted("job-1", "1679")
    assert _stored_external_id(tmp_path) == "1679"


def _stored_external_id(root: Path) -> str | None:
    (record,) = JobStore(root / "persisted", durable=False).load_all()
    return record.external_id
