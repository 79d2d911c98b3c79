"""The durable outbox: order, persistence across restarts, acknowledgements (no broker)."""

from __future__ import annotations

from lwr.messaging.acknowledgements import HandledMessages
from lwr.messaging.outbox import Outbox


def drain(outbox: Outbox) -> list[tuple[str, str]]:
    seen = []
    while (entry := outbox.peek(timeout=0)) is not None:
        seen.append((entry.job_id, entry.body["status"]))
        outbox.confirmed(entry)
    return seen


def test_entries_come_out_in_order_and_survive_a_restart(tmp_path):
    outbox = Outbox(tmp_path)
    for status in ("queued", "running", "complete"):
        outbox.enqueue("_default_", "a", {"status": status}, final=status == "complete")
    outbox.enqueue("_default_", "b", {"status": "queued"}, final=False)
    first = outbox.peek(timeout=0)
    assert first is not None and first.body["status"] == "queued"
    outbox.confirmed(first)
    reopened = Outbox(tmp_path)
    assert drain(reopened) == [("a", "running"), ("a", "complete"), ("b", "queued")]
    assert reopened.is_delivered("_default_", "a")
    assert not reopened.needs_final("_default_", "a")
    assert reopened.needs_final("_default_", "b")
    later = reopened.enqueue("_default_", "c", {"status": "queued"}, final=False)
    assert later.sequence > 3


def test_unconfirmed_entries_are_kept(tmp_path):
    outbox = Outbox(tmp_path)
    outbox.enqueue("_default_", "a", {"status": "complete"}, final=True)
    assert outbox.peek(timeout=0) is not None
    assert Outbox(tmp_path).pending_count() == 1
    assert not Outbox(tmp_path).needs_final("_default_", "a")


def test_acknowledgements_supersede_and_mark_delivery(tmp_path):
    outbox = Outbox(tmp_path, acknowledgements=True)
    outbox.enqueue("_default_", "a", {"status": "running"}, final=False)
    outbox.enqueue("_default_", "a", {"status": "complete"}, final=True)
    running = outbox.peek(timeout=0)
    assert running is not None
    outbox.confirmed(running)
    complete = outbox.peek(timeout=0)
    assert complete is not None
    outbox.confirmed(complete)
    assert outbox.awaiting_count() == 1, "the running update is superseded by complete"
    assert [e.uuid for e in outbox.due_for_republish(0)] == [complete.uuid]
    assert not outbox.is_delivered("_default_", "a")
    reopened = Outbox(tmp_path, acknowledgements=True)
    assert reopened.awaiting_count() == 1
    assert reopened.acknowledged(complete.uuid)
    assert not reopened.acknowledged(complete.uuid)
    assert reopened.is_delivered("_default_", "a")


def test_handled_messages_persist(tmp_path):
    handled = HandledMessages(tmp_path)
    assert not handled.seen("u/1")
    handled.add("u/1")
    assert handled.seen("u/1")
    assert HandledMessages(tmp_path).seen("u/1")
    assert HandledMessages(tmp_path, retention=-1).seen("u/1") is False


def test_an_answer_faster_than_the_publisher_is_not_lost(tmp_path):
    outbox = Outbox(tmp_path, acknowledgements=True)
    entry = outbox.enqueue("_default_", "a", {"status": "complete"}, final=True)
    assert outbox.acknowledged(entry.uuid), "answered between the broker's commit and confirmed()"
    outbox.confirmed(entry)
    assert outbox.awaiting_count() == 0
    assert outbox.is_delivered("_default_", "a")
    assert not outbox.acknowledged("unknown")


def test_leftovers_of_a_killed_write_are_removed(tmp_path):
    Outbox(tmp_path)
    (tmp_path / "pending" / ".0000000000000001.json.abc.tmp").write_text("{")
    (tmp_path / "pending" / "0000000000000002.json").write_text("not json")
    outbox = Outbox(tmp_path)
    assert outbox.pending_count() == 0
    assert list((tmp_path / "pending").iterdir()) == []
