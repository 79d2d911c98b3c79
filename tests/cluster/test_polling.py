"""The shared batch-manager logic (lwr/managers/polling.py) on a scripted batch system: which
final state a job gets from the batch system's word and the job script's own record."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from lwr.core import job_directory as layout
from lwr.core.states import JobState
from lwr.managers.base import LaunchSpec
from lwr.managers.polling import BatchStatus, PollingManager, batch_job_name
from lwr.protocol.failure import FailureClass

from .conftest import RecordingListener


class ScriptedBatch(PollingManager):
    """A batch system whose answers the test sets; poll rounds are driven by the test."""

    system_name = "fake"

    def __init__(self, listener: RecordingListener, **settings: object) -> None:
        super().__init__("fake", {"exit_code_grace": 0.5, **settings}, listener)
        self.answers: dict[str, BatchStatus] = {}
        self.failing = False
        self.refuse = False
        self.cancelled: list[str] = []
        self.queries: list[list[str]] = []
        self.gate = threading.Event()
        self.gate.set()
        self._next = 100

    def submit(self, spec: LaunchSpec) -> str:
        self.gate.wait(10)
        if self.refuse:
            raise RuntimeError("queue is closed")
        self._next += 1
        return str(self._next)

    def query(self, external_ids: list[str]) -> dict[str, BatchStatus]:
        self.queries.append(external_ids)
        if self.failing:
            raise OSError("controller down")
        return {key: value for key, value in self.answers.items() if key in external_ids}

    def cancel(self, external_id: str) -> None:
        self.cancelled.append(external_id)


@pytest.fixture
def batch(listener: RecordingListener) -> Iterator[ScriptedBatch]:
    manager = ScriptedBatch(listener)
    yield manager
    manager.shutdown()


def write_exit_code(spec: LaunchSpec, code: int) -> None:
    spec.directory.internal_file(layout.EXIT_CODE).write_text(f"{code}\n")


def submitted(batch: ScriptedBatch, listener: RecordingListener, spec: LaunchSpec) -> str:
    batch.launch(spec)
    return str(listener.wait_for(spec.job_id, "submitted", 10))


def test_exit_code_record_decides_complete_whatever_the_batch_system_says(batch, listener, make_job) -> None:
    spec = make_job("true")
    external_id = submitted(batch, listener, spec)
    batch.answers[external_id] = BatchStatus(JobState.FAILED, "fake: FAILED (NonZeroExitCode)")
    write_exit_code(spec, 3)
    batch.poll_once()
    assert listener.wait_ended(spec.job_id) == (JobState.COMPLETE, None)
    assert listener.of(spec.job_id, "running") == [None]


def test_final_state_without_record_waits_the_grace_then_reports_the_reason(
    batch, listener, make_job
) -> None:
    spec = make_job("true")
    external_id = submitted(batch, listener, spec)
    batch.answers[external_id] = BatchStatus(JobState.FAILED, "fake: OUT_OF_MEMORY (out of memory)")
    batch.poll_once()
    assert listener.of(spec.job_id, "ended") == []  # the record may still be on its way
    threading.Event().wait(0.6)
    batch.poll_once()
    assert listener.wait_ended(spec.job_id) == (JobState.FAILED, "fake: OUT_OF_MEMORY (out of memory)")
    assert listener.failure_classes[spec.job_id] is FailureClass.UNKNOWN  # the status gave no class


def test_the_batch_systems_failure_class_is_reported(batch, listener, make_job) -> None:
    spec = make_job("true")
    external_id = submitted(batch, listener, spec)
    batch.answers[external_id] = BatchStatus(JobState.FAILED, "fake: TIMEOUT", FailureClass.WALLTIME_REACHED)
    batch.poll_once()
    threading.Event().wait(0.6)
    batch.poll_once()
    assert listener.wait_ended(spec.job_id) == (JobState.FAILED, "fake: TIMEOUT")
    assert listener.failure_classes[spec.job_id] is FailureClass.WALLTIME_REACHED


def test_a_cancel_nobody_here_asked_for_is_a_classed_failure(batch, listener, make_job) -> None:
    spec = make_job("true")
    external_id = submitted(batch, listener, spec)
    batch.answers[external_id] = BatchStatus(JobState.CANCELLED, "fake: CANCELLED by 0")
    batch.poll_once()
    threading.Event().wait(0.6)
    batch.poll_once()
    state, reason = listener.wait_ended(spec.job_id)
    assert state is JobState.FAILED and "not requested" in str(reason)
    assert listener.failure_classes[spec.job_id] is FailureClass.CANCELLED_BY_SYSTEM


def test_job_the_batch_system_forgot_without_record_is_lost(batch, listener, make_job) -> None:
    spec = make_job("true")
    submitted(batch, listener, spec)
    spec.directory.internal_file(layout.LAUNCH_GUARD).touch()  # it had started
    batch.poll_once()
    threading.Event().wait(0.6)
    batch.poll_once()
    state, reason = listener.wait_ended(spec.job_id)
    assert state is JobState.LOST and "no longer knows" in str(reason)
    assert listener.failure_classes[spec.job_id] is FailureClass.JOB_LOST


def test_job_forgotten_before_it_started_is_submitted_again(batch, listener, make_job) -> None:
    """A controller restarted without its state forgets queued jobs: they are submitted again
    (the launch guard keeps it to one run), and only after a few tries called lost."""
    spec = make_job("true")
    first = submitted(batch, listener, spec)
    batch.poll_once()
    threading.Event().wait(0.6)
    batch.poll_once()
    deadline = time.monotonic() + 10
    while len(listener.of(spec.job_id, "submitted")) < 2:
        assert time.monotonic() < deadline, "not submitted again"
        time.sleep(0.05)
    assert listener.of(spec.job_id, "submitted")[1] != first
    assert listener.of(spec.job_id, "ended") == []
    for _ in range(3):  # forgotten every time: lost after MAX_RESUBMITS more submissions
        threading.Event().wait(0.6)
        batch.poll_once()
        threading.Event().wait(0.6)
        batch.poll_once()
    state, _reason = listener.wait_ended(spec.job_id)
    assert state is JobState.LOST
    assert len(listener.of(spec.job_id, "submitted")) == 4


def test_a_batch_id_handed_to_another_job_is_not_this_jobs_state(batch, listener, make_job) -> None:
    """A controller restarted without its last state reuses batch ids: the other job's COMPLETED
    under this job's id must not end this one; it is a job the batch system forgot, submitted
    again because it never started."""
    spec = make_job("true")
    first = submitted(batch, listener, spec)
    batch.answers[first] = BatchStatus(JobState.COMPLETE, name="lwr_someone-else")
    batch.poll_once()
    threading.Event().wait(0.6)
    batch.poll_once()
    deadline = time.monotonic() + 10
    while len(listener.of(spec.job_id, "submitted")) < 2:
        assert time.monotonic() < deadline, "not submitted again"
        time.sleep(0.05)
    assert listener.of(spec.job_id, "ended") == []
    second = str(listener.of(spec.job_id, "submitted")[1])
    batch.answers[second] = BatchStatus(JobState.RUNNING, name=batch_job_name(spec.job_id))
    batch.poll_once()
    assert listener.wait_for(spec.job_id, "running", 5) is None
    assert listener.of(spec.job_id, "ended") == []


HELD = BatchStatus(JobState.QUEUED, "launch failed requeued held", held_after_failed_launch=True)


def test_a_job_held_after_its_launch_failed_is_cancelled_and_submitted_again(
    batch, listener, make_job
) -> None:
    """Slurm holds a job whose launch failed (a restarted controller reused a batch id still
    running on the node): it would stay queued for ever, so lwr cancels that copy and submits
    again, and after a few tries fails it with a class Galaxy can resubmit on."""
    spec = make_job("true")
    first = submitted(batch, listener, spec)
    batch.answers[first] = HELD
    batch.poll_once()
    deadline = time.monotonic() + 10
    while len(listener.of(spec.job_id, "submitted")) < 2:
        assert time.monotonic() < deadline, "not submitted again"
        time.sleep(0.05)
    assert batch.cancelled == [first]
    # The old id was forgotten (durably, by the core) before that copy was cancelled: lwr killed
    # in between must submit again on restart, not judge the copy it cancelled itself.
    assert listener.of(spec.job_id, "resubmitting") == [None]
    assert listener.of(spec.job_id, "ended") == []
    for _ in range(3):  # held every time: failed after MAX_RESUBMITS more submissions
        latest = str(listener.of(spec.job_id, "submitted")[-1])
        batch.answers[latest] = HELD
        batch.poll_once()
        deadline = time.monotonic() + 10
        while latest not in batch.cancelled:
            assert time.monotonic() < deadline, "held copy not cancelled"
            time.sleep(0.05)
        time.sleep(0.1)
    state, reason = listener.wait_ended(spec.job_id)
    assert state is JobState.FAILED and "could not be launched" in str(reason)
    assert listener.failure_classes[spec.job_id] is FailureClass.LAUNCH_FAILED
    assert len(listener.of(spec.job_id, "submitted")) == 4


def test_a_held_job_whose_script_had_started_is_failed_not_submitted_again(batch, listener, make_job) -> None:
    spec = make_job("true")
    external_id = submitted(batch, listener, spec)
    spec.directory.internal_file(layout.LAUNCH_GUARD).touch()  # it had started once
    batch.answers[external_id] = HELD
    batch.poll_once()
    state, _reason = listener.wait_ended(spec.job_id)
    assert state is JobState.FAILED
    assert listener.failure_classes[spec.job_id] is FailureClass.LAUNCH_FAILED
    assert batch.cancelled == [external_id]
    assert len(listener.of(spec.job_id, "submitted")) == 1


def test_completed_without_record_is_a_failure(batch, listener, make_job) -> None:
    spec = make_job("true")
    external_id = submitted(batch, listener, spec)
    batch.answers[external_id] = BatchStatus(JobState.COMPLETE)
    batch.poll_once()
    threading.Event().wait(0.6)
    batch.poll_once()
    state, reason = listener.wait_ended(spec.job_id)
    assert state is JobState.FAILED and "recorded no exit code" in str(reason)


def test_a_failed_query_changes_nothing_but_the_record_still_counts(batch, listener, make_job) -> None:
    first, second = make_job("true"), make_job("true")
    submitted(batch, listener, first)
    submitted(batch, listener, second)
    batch.failing = True
    write_exit_code(first, 0)
    for _ in range(3):
        batch.poll_once()
        threading.Event().wait(0.3)
    assert listener.wait_ended(first.job_id) == (JobState.COMPLETE, None)
    assert listener.of(second.job_id, "ended") == []


def test_one_query_per_round_for_all_jobs(batch, listener, make_job) -> None:
    specs = [make_job("true") for _ in range(30)]
    ids = [submitted(batch, listener, spec) for spec in specs]
    for external_id in ids:
        batch.answers[external_id] = BatchStatus(JobState.RUNNING)
    batch.poll_once()
    assert batch.queries == [sorted(ids)]
    assert all(listener.of(spec.job_id, "running") == [None] for spec in specs)


def test_kill_while_waiting_for_submission_never_submits(listener, make_job) -> None:
    batch = ScriptedBatch(listener, submit_threads=1)
    try:
        batch.gate.clear()
        blocker, spec = make_job("true"), make_job("true")
        batch.launch(blocker)  # holds the only submitter
        batch.launch(spec)
        batch.kill(spec.job_id)
        batch.gate.set()
        assert listener.wait_ended(spec.job_id, 10) == (
            JobState.CANCELLED,
            "cancelled before it was submitted",
        )
        assert listener.of(spec.job_id, "submitted") == []
    finally:
        batch.shutdown()


def test_kill_during_submission_cancels_as_soon_as_the_id_is_known(batch, listener, make_job) -> None:
    batch.gate.clear()
    spec = make_job("true")
    batch.launch(spec)
    batch.kill(spec.job_id)
    batch.gate.set()
    external_id = str(listener.wait_for(spec.job_id, "submitted", 10))
    assert batch.cancelled == [external_id]
    batch.poll_once()
    assert listener.wait_ended(spec.job_id, 10) == (JobState.CANCELLED, "cancelled on request")


def test_kill_running_job_cancels_it_and_reports_cancelled(batch, listener, make_job) -> None:
    spec = make_job("true")
    external_id = submitted(batch, listener, spec)
    batch.answers[external_id] = BatchStatus(JobState.RUNNING)
    batch.poll_once()
    batch.kill(spec.job_id)
    batch.kill(spec.job_id)
    assert batch.cancelled == [external_id]
    batch.answers.pop(external_id)  # DRMAA-like: a cancelled job is simply gone
    batch.poll_once()
    assert listener.wait_ended(spec.job_id) == (JobState.CANCELLED, "cancelled on request")


def test_refused_submission_fails_the_job(batch, listener, make_job) -> None:
    batch.refuse = True
    spec = make_job("true")
    batch.launch(spec)
    assert listener.wait_ended(spec.job_id) == (JobState.FAILED, "fake: submission failed: queue is closed")


def test_reattach_without_id_but_launched_follows_the_script_record(batch, listener, make_job) -> None:
    spec = make_job("true")
    spec.directory.internal_file(layout.LAUNCH_GUARD).mkdir()
    batch.reattach(spec, None, was_running=True)
    batch.poll_once()
    threading.Event().wait(0.6)
    batch.poll_once()
    state, reason = listener.wait_ended(spec.job_id)
    assert state is JobState.LOST and "not recorded" in str(reason)
    assert batch.queries == []  # nothing to ask the batch system about


def test_reattach_without_id_and_never_launched_submits_again(batch, listener, make_job) -> None:
    spec = make_job("true")
    batch.reattach(spec, None, was_running=False)
    assert listener.wait_for(spec.job_id, "submitted", 10)


def test_records_are_checked_between_queries_without_asking_the_batch_system(
    batch, listener, make_job
) -> None:
    spec = make_job("true")
    external_id = submitted(batch, listener, spec)
    batch.answers[external_id] = BatchStatus(JobState.RUNNING)
    batch.check_records()
    assert listener.of(spec.job_id, "ended") == []
    write_exit_code(spec, 0)
    batch.check_records()
    assert listener.wait_ended(spec.job_id) == (JobState.COMPLETE, None)
    assert batch.queries == []


def test_poller_reports_the_end_within_the_record_interval(listener, make_job) -> None:
    batch = ScriptedBatch(listener, min_polling_interval=30.0, record_check_interval=0.05)
    try:
        batch.start()
        spec = make_job("true")
        external_id = submitted(batch, listener, spec)
        batch.answers[external_id] = BatchStatus(JobState.RUNNING)
        write_exit_code(spec, 0)
        assert listener.wait_ended(spec.job_id, 2) == (JobState.COMPLETE, None)
        assert batch.queries == []  # the first batch query is 30 s away
    finally:
        batch.shutdown()
