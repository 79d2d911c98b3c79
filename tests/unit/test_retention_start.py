"""Retention sweeps at start-up: a server restarted more often than its sweep interval still sweeps."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

from lwr.core.retention import Retention
from lwr.core.states import JobState


class ServiceWithOneExpiredJob:
    """The two things Retention asks of the job service, for one job that ended an hour ago."""

    def __init__(self) -> None:
        self.removed = threading.Event()
        self.record = SimpleNamespace(
            manager="_default_",
            job_id="1",
            state=JobState.COMPLETE,
            extras={},
            times={JobState.COMPLETE.value: time.time() - 3600},
        )

    def records(self) -> list[Any]:
        return [] if self.removed.is_set() else [self.record]

    def remove_directory(self, manager: str, job_id: str, why: str) -> bool:
        self.removed.set()
        return True


def test_the_first_sweep_runs_at_start_not_an_interval_later() -> None:
    service = ServiceWithOneExpiredJob()
    retention = Retention(service, complete=1200, failed=1200)  # type: ignore[arg-type]
    assert retention.interval == 300
    retention.start()
    try:
        assert service.removed.wait(5), "no sweep within 5 s of start (interval 300 s)"
    finally:
        retention.stop()
