"""Cleaning a job that was only set up announces nothing (a refused MQ setup's one final status)."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from lwr.config import AppSettings, ManagerSettings
from lwr.core.jobs import JobService
from lwr.errors import NotFound
from lwr.managers.queued_python import QueuedPythonManager


def test_cleaning_a_job_only_set_up_announces_nothing(tmp_path: Path) -> None:
    """A refused MQ setup removes its half-made job and announces one ``failed``; the removal
    itself must not add a ``cancelled`` (a second final status for the same job)."""
    settings = AppSettings(
        staging_directory=tmp_path / "staging",
        persistence_directory=tmp_path / "persisted",
        managers=(ManagerSettings("_default_", "queued_python"),),
    )
    manager = functools.partial(QueuedPythonManager, "_default_", {"max_concurrent_jobs": 1})
    service = JobService(settings, {"_default_": manager})
    service.start()
    heard: list[str] = []

    class Observer:
        def job_changed(self, record) -> None:
            heard.append(record.state.value)

        def job_event(self, record, event) -> None:
            pass

        def batch_queried(self, manager, seconds, failed) -> None:
            pass

    try:
        service.add_observer(Observer())
        service.setup("_default_", "half-made")
        service.clean("_default_", "half-made")
        assert heard == []
        with pytest.raises(NotFound):
            service.find("_default_", "half-made")
    finally:
        service.shutdown()
