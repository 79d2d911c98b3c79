"""The local queue, driven directly through the manager contract."""

from __future__ import annotations

import threading
import time

from lwr.core.job_directory import JobDirectory
from lwr.core.job_script import write_job_script
from lwr.core.states import JobState
from lwr.managers.base import LaunchSpec
from lwr.managers.queued_python import QueuedPythonManager


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, object]] = []
        self.ended = threading.Condition()

    def job_submitted(self, job_id, external_id):
        self.events.append(("submitted", job_id, external_id))

    def job_running(self, job_id):
        self.events.append(("running", job_id, None))

    def job_started(self, job_id, external_id):
        self.job_submitted(job_id, external_id)
        self.job_running(job_id)

    def job_ended(self, job_id, state, reason=None, failure_class=None):
        with self.ended:
            self.events.append(("ended", job_id, state))
            self.ended.notify_all()

    def wait_ended(self, count: int, timeout: float = 20) -> None:
        with self.ended:
            assert self.ended.wait_for(
                lambda: len([e for e in self.events if e[0] == "ended"]) >= count, timeout
            )


def spec(tmp_path, job_id, command) -> LaunchSpec:
    directory = JobDirectory(tmp_path / job_id)
    directory.create()
    return LaunchSpec(job_id, directory, write_job_script(directory, command, []))


def test_fifo_with_limit_and_instant_end_notice(tmp_path):
    recorder = Recorder()
    manager = QueuedPythonManager("q", {"max_concurrent_jobs": 1}, recorder)
    manager.start()
    started = time.monotonic()
    for index in range(3):
        manager.launch(spec(tmp_path, f"j{index}", "sleep 0.2"))
    recorder.wait_ended(3)
    elapsed = time.monotonic() - started
    assert [e[1] for e in recorder.events if e[0] == "running"] == ["j0", "j1", "j2"]
    assert all(e[2] is JobState.COMPLETE for e in recorder.events if e[0] == "ended")
    assert elapsed >= 0.6  # one at a time


def test_cancel_running_and_queued(tmp_path):
    recorder = Recorder()
    manager = QueuedPythonManager("q", {"max_concurrent_jobs": 1}, recorder)
    manager.start()
    manager.launch(spec(tmp_path, "long", "sleep 60"))
    manager.launch(spec(tmp_path, "next", "true"))
    manager.kill("next")
    manager.kill("long")
    recorder.wait_ended(2)
    ended = {e[1]: e[2] for e in recorder.events if e[0] == "ended"}
    assert ended == {"long": JobState.CANCELLED, "next": JobState.CANCELLED}


def test_reattach_follows_a_job_started_by_an_earlier_manager(tmp_path):
    first = Recorder()
    old = QueuedPythonManager("q", {"max_concurrent_jobs": 1}, first)
    old.start()
    job = spec(tmp_path, "survivor", "sleep 0.5; exit 4")
    old.launch(job)
    time.sleep(0.2)
    second = Recorder()
    new = QueuedPythonManager("q", {"max_concurrent_jobs": 1}, second)
    new.reattach(job, None, was_running=True)
    new.start()
    second.wait_ended(1)
    assert second.events[-1] == ("ended", "survivor", JobState.COMPLETE)
    assert job.directory.exit_code() == 4


def test_script_killed_before_recording_is_failed(tmp_path):
    recorder = Recorder()
    manager = QueuedPythonManager("q", {"max_concurrent_jobs": 1}, recorder)
    manager.start()
    manager.launch(spec(tmp_path, "killed", "kill -9 $$"))  # $$ is the job script itself
    recorder.wait_ended(1)
    assert recorder.events[-1] == ("ended", "killed", JobState.FAILED)
