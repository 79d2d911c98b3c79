"""Cleaning a job that was only set up announces nothing (a refused MQ setup's one final status)."""

from __future__ import annotations

import pytest

from lwr.core.jobs import JobService
from lwr.errors import NotFound


def test_cleaning_a_job_only_set_up_announces_nothing(service: JobService) -> None:
    """A refused MQ setup removes its half-made job and announces one ``failed``; the removal
    itself must not add a ``cancelled`` (a second final status for the same job)."""
    heard: list[str] = []

    class Observer:
        def job_changed(self, record) -> None:
            heard.append(record.state.value)

        def job_event(self, record, event) -> None:
            pass

        def batch_queried(self, manager, seconds, failed) -> None:
            pass

    service.add_observer(Observer())
    service.setup("_default_", "half-made")
    service.clean("_default_", "half-made")
    assert heard == []
    with pytest.raises(NotFound):
        service.find("_default_", "half-made")
