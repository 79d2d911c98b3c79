"""The message handler against a fake job service (no broker)."""

from __future__ import annotations

from typing import Any

import pytest

from lwr.core.states import JobState
from lwr.errors import BadRequest, Conflict, NotFound
from lwr.messaging.acknowledgements import HandledMessages
from lwr.messaging.consumer import MessageHandler
from lwr.messaging.messages import MalformedMessage
from lwr.messaging.outbox import Outbox
from lwr.messaging.status_updates import StatusAnnouncer


class FakeService:
    def __init__(self) -> None:
        self.submitted: list[str] = []
        self.cancelled: list[str] = []
        self.refuse: Exception | None = None

    def submit(self, manager: str, job_id: str, request: Any) -> None:
        if self.refuse is not None:
            raise self.refuse
        if job_id in self.submitted:
            raise Conflict("already submitted")
        self.submitted.append(job_id)

    def cancel(self, manager: str, job_id: str) -> None:
        if job_id not in self.submitted:
            raise NotFound("no such job")
        self.cancelled.append(job_id)

    def status(self, manager: str, job_id: str) -> dict[str, Any]:
        if job_id not in self.submitted:
            raise NotFound("no such job")
        return {"job_id": job_id, "complete": "false", "status": "running"}

    def find_or_none(self, manager: str, job_id: str) -> Any:
        return None


@pytest.fixture
def handler(tmp_path):
    service = FakeService()
    outbox = Outbox(tmp_path / "outbox")
    handler = MessageHandler(
        service,
        StatusAnnouncer(service, outbox),
        outbox,  # type: ignore[arg-type]
        HandledMessages(tmp_path / "handled"),
    )
    return handler


def setup(job_id: str, **extra: Any) -> dict[str, Any]:
    return {"job_id": job_id, "command_line": "true", **extra}


def test_duplicate_setups_are_dropped(handler):
    replies: list = []
    handler.handle("_default_", "setup", setup("1"), replies.append)
    handler.handle("_default_", "setup", setup("1"), replies.append)
    assert handler.service.submitted == ["1"] and handler.duplicates == 1 and replies == []


def test_acknowledged_setup_is_answered_and_acted_on_once(handler):
    replies: list = []
    message = setup("2", acknowledge_uuid="u-2", acknowledge_queue="setup_ack")
    handler.handle("_default_", "setup", message, replies.append)
    handler.handle("_default_", "setup", {**message, "force_noack": True}, replies.append)
    assert [r.uuid for r in replies] == ["u-2", "u-2"]
    assert handler.service.submitted == ["2"]


def test_malformed_but_acknowledged_message_is_answered_then_rejected(handler):
    replies: list = []
    with pytest.raises(MalformedMessage):
        handler.handle(
            "_default_",
            "setup",
            {"job_id": "3", "command_line": 5, "acknowledge_uuid": "u-3", "acknowledge_queue": "setup_ack"},
            replies.append,
        )
    assert [r.uuid for r in replies] == ["u-3"]


def test_refused_setup_announces_a_failure(handler):
    handler.service.refuse = BadRequest("no such thing")
    handler.handle("_default_", "setup", setup("4"), lambda ack: None)
    entry = handler.outbox.peek(timeout=0)
    assert entry is not None and entry.body["status"] == "failed" and "no such thing" in entry.body["reason"]


def test_kill_and_status(handler):
    handler.handle("_default_", "kill", {"job_id": "nobody"}, lambda ack: None)
    handler.handle("_default_", "setup", setup("5"), lambda ack: None)
    handler.handle("_default_", "kill", {"job_id": "5"}, lambda ack: None)
    handler.handle("_default_", "status", {"job_id": "5"}, lambda ack: None)
    handler.handle("_default_", "status", {"job_id": "ghost"}, lambda ack: None)
    statuses = []
    while (entry := handler.outbox.peek(timeout=0)) is not None:
        statuses.append((entry.job_id, entry.body["status"]))
        handler.outbox.confirmed(entry)
    assert handler.service.cancelled == ["5"]
    assert statuses == [("5", "running"), ("ghost", "lost")]


def test_status_update_acknowledgements_reach_the_outbox(tmp_path):
    service = FakeService()
    outbox = Outbox(tmp_path / "outbox", acknowledgements=True)
    handler = MessageHandler(
        service,
        StatusAnnouncer(service, outbox),
        outbox,  # type: ignore[arg-type]
        HandledMessages(tmp_path / "handled"),
    )
    entry = outbox.enqueue("_default_", "6", {"status": "complete"}, final=True)
    outbox.confirmed(entry)
    handler.handle(
        "_default_", "status_update_ack", {"acknowledge_uuid_response": entry.uuid}, lambda ack: None
    )
    assert outbox.awaiting_count() == 0 and outbox.is_delivered("_default_", "6")
    with pytest.raises(MalformedMessage):
        handler.handle("_default_", "status_update_ack", {"acknowledge_uuid_response": 5}, lambda ack: None)


def test_states_are_announced_once_each(tmp_path):
    from lwr.core.store import JobRecord

    service = FakeService()
    service.submitted.append("7")
    outbox = Outbox(tmp_path)
    announcer = StatusAnnouncer(service, outbox)  # type: ignore[arg-type]
    record = JobRecord(job_id="7", manager="_default_", state=JobState.SETUP, sequence=1)
    for state in (JobState.SETUP, JobState.QUEUED, JobState.RUNNING, JobState.POSTPROCESSING):
        record.state = state
        announcer.job_changed(record)
    assert outbox.pending_count() == 2, "setup is not announced; postprocessing is 'running' on the wire"


def test_jobs_submitted_over_http_are_not_announced(tmp_path):
    """One lwr may serve HTTP and MQ clients: an HTTP client polls, and nobody would ever consume
    (or acknowledge) its jobs' updates, which would be republished forever."""
    from lwr.core.store import JobRecord

    service = FakeService()
    outbox = Outbox(tmp_path, acknowledgements=True)
    announcer = StatusAnnouncer(service, outbox)  # type: ignore[arg-type]
    polled = JobRecord(
        job_id="h1", manager="_default_", state=JobState.QUEUED, sequence=1, launch={"origin": "http"}
    )
    queued = JobRecord(
        job_id="m1", manager="_default_", state=JobState.QUEUED, sequence=2, launch={"origin": "mq"}
    )
    for record in (polled, queued):
        announcer.job_changed(record)
    assert outbox.pending_count() == 1


def test_unexpected_setup_failure_is_announced(handler):
    handler.service.refuse = OSError(28, "No space left on device")
    handler.handle("_default_", "setup", setup("8"), lambda ack: None)
    entry = handler.outbox.peek(timeout=0)
    assert entry is not None and entry.body["status"] == "failed" and "No space left" in entry.body["reason"]
    assert entry.body["failure_class"] == "disk_full"  # refused cleanly, and Galaxy can tell why


def test_recovery_reannounces_undelivered_final_statuses(tmp_path):
    from lwr.core.store import JobRecord

    records = [
        JobRecord(job_id=j, manager="_default_", state=state, sequence=i)
        for i, (j, state) in enumerate(
            [
                ("done", JobState.COMPLETE),
                ("delivered", JobState.COMPLETE),
                ("active", JobState.RUNNING),
                ("queued-final", JobState.FAILED),
            ]
        )
    ]

    class Store:
        def load_all(self) -> list:
            return records

    class Service(FakeService):
        store = Store()

        def find_or_none(self, manager: str, job_id: str) -> Any:
            return next((r for r in records if r.job_id == job_id), None)

        def status(self, manager: str, job_id: str) -> dict[str, Any]:
            record = self.find_or_none(manager, job_id)
            return {"job_id": job_id, "complete": "true", "status": record.state.value}

    outbox = Outbox(tmp_path)
    delivered = outbox.enqueue("_default_", "delivered", {"status": "complete"}, final=True)
    outbox.confirmed(delivered)
    outbox.enqueue("_default_", "queued-final", {"status": "failed"}, final=True)
    (outbox.delivered_dir / "_default_").mkdir(exist_ok=True)
    (outbox.delivered_dir / "_default_" / "cleaned-long-ago").touch()
    announcer = StatusAnnouncer(Service(), outbox)  # type: ignore[arg-type]
    assert announcer.recover() == 1
    pending = []
    while (entry := outbox.peek(timeout=0)) is not None:
        pending.append(entry.job_id)
        outbox.confirmed(entry)
    assert pending == ["queued-final", "done"]
    assert not (outbox.delivered_dir / "_default_" / "cleaned-long-ago").exists()


def test_a_late_report_does_not_repeat_the_final_status(tmp_path):
    from lwr.core.store import JobRecord

    service = FakeService()
    service.submitted.append("9")
    service.status = lambda manager, job_id: {"job_id": job_id, "complete": "true", "status": "complete"}  # type: ignore[method-assign]
    outbox = Outbox(tmp_path)
    announcer = StatusAnnouncer(service, outbox)  # type: ignore[arg-type]
    record = JobRecord(job_id="9", manager="_default_", state=JobState.RUNNING, sequence=1)
    announcer.job_changed(record)
    record.state = JobState.COMPLETE
    announcer.job_changed(record)
    announcer.job_changed(record)  # the running report, delivered late by another thread
    assert outbox.pending_count() == 2
    again = JobRecord(job_id="9", manager="_default_", state=JobState.QUEUED, sequence=2)
    announcer.job_changed(again)  # the same id set up anew
    again.state = JobState.COMPLETE
    announcer.job_changed(again)
    assert outbox.pending_count() == 4


class EndedJobService(FakeService):
    """A job '9' whose run ended; submits of it are resubmissions (they run again)."""

    def __init__(self, recorded_identity: str | None) -> None:
        super().__init__()
        from lwr.core.jobs import SETUP_MESSAGE
        from lwr.core.store import JobRecord

        extras = {SETUP_MESSAGE: recorded_identity} if recorded_identity else {}
        self.record = JobRecord(
            job_id="9", manager="_default_", state=JobState.COMPLETE, sequence=1, extras=extras
        )

    def submit(self, manager: str, job_id: str, request: Any) -> None:
        self.submitted.append(job_id)

    def find_or_none(self, manager: str, job_id: str) -> Any:
        return self.record if job_id == "9" else None


@pytest.mark.parametrize(
    "redelivered, same_message, runs",
    [
        (True, True, False),  # the broker hands out the recorded setup again: dropped
        (True, False, True),  # redelivered, but not the setup of the recorded run: a resubmission
        (False, True, True),  # a new publish, even of an identical body (Galaxy's resubmission): runs
        (False, False, True),
    ],
)
def test_redelivery_is_dropped_resubmission_runs(tmp_path, redelivered, same_message, runs):
    from lwr.messaging.messages import message_identity

    message = setup("9")
    service = EndedJobService(message_identity(message if same_message else setup("9", command_line="false")))
    outbox = Outbox(tmp_path / "outbox")
    handler = MessageHandler(
        service,
        StatusAnnouncer(service, outbox),
        outbox,  # type: ignore[arg-type]
        HandledMessages(tmp_path / "handled"),
    )
    handler.handle("_default_", "setup", message, [].append, redelivered=redelivered)
    assert (service.submitted == ["9"]) is runs
    assert handler.duplicates == (0 if runs else 1)


def test_message_identity_is_the_ack_uuid_else_the_body():
    from lwr.messaging.messages import message_identity

    assert message_identity(setup("1", acknowledge_uuid="u")) == message_identity(
        setup("1", acknowledge_uuid="u", command_line="x")
    )
    assert message_identity(setup("1")) == message_identity(dict(reversed(list(setup("1").items()))))
    assert message_identity(setup("1")) != message_identity(setup("1", command_line="false"))
