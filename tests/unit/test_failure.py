"""Failure classes (lwr/protocol/failure.py): wire strings, Galaxy's runner states, and the status reply."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from lwr.core.job_directory import JobDirectory
from lwr.core.states import JobState
from lwr.core.status import lost_reply, status_reply
from lwr.core.store import JobRecord, JobStore
from lwr.protocol.failure import (
    FailureClass,
    failure_fields,
    is_disk_full,
    parse,
    runner_state,
    staging_failure,
)

#: galaxy.jobs.runners.util.runner_states of Galaxy 25 (Galaxy itself is not a dependency here).
GALAXY_RUNNER_STATES = {
    "walltime_reached",
    "memory_limit_reached",
    "Job output not returned from cluster",
    "unknown_error",
    "global_walltime_reached",
    "tool_timelimit_reached",
    "output_size_limit",
    "tool_detected",
}


@pytest.mark.parametrize("failure_class", list(FailureClass))
def test_every_class_maps_to_a_runner_state_galaxy_knows(failure_class: FailureClass) -> None:
    assert runner_state(failure_class) in GALAXY_RUNNER_STATES


def test_the_limit_classes_are_the_ones_galaxy_resubmits_on() -> None:
    assert runner_state(FailureClass.WALLTIME_REACHED) == "walltime_reached"
    assert runner_state(FailureClass.MEMORY_LIMIT_REACHED) == "memory_limit_reached"
    assert runner_state(FailureClass.NODE_FAILURE) == "unknown_error"
    assert failure_fields(None) == {}
    assert failure_fields(FailureClass.DISK_FULL) == {
        "failure_class": "disk_full",
        "runner_state": "unknown_error",
    }


def test_parse_reads_stored_values() -> None:
    assert parse(None) is None
    assert parse("preempted") is FailureClass.PREEMPTED
    assert parse("from-a-newer-lwr") is FailureClass.UNKNOWN


def test_disk_full_is_found_through_the_cause_chain() -> None:
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError("download failed") from inner
    except RuntimeError as outer:
        assert is_disk_full(outer)
        assert staging_failure(outer) is FailureClass.DISK_FULL
    assert staging_failure(ConnectionResetError()) is FailureClass.STAGING_FAILED
    assert not is_disk_full(OSError(errno.EACCES, "denied"))


def test_failure_class_is_stored_and_in_the_final_status(tmp_path: Path) -> None:
    directory = JobDirectory(tmp_path / "staging" / "j1")
    directory.create()
    store = JobStore(tmp_path / "persisted")
    store.save(
        JobRecord(
            "j1", "_default_", JobState.FAILED, 1, reason="slurm: TIMEOUT", failure_class="walltime_reached"
        )
    )
    (record,) = store.load_all()
    reply = status_reply(record, directory)
    assert reply["status"] == "failed" and reply["reason"] == "slurm: TIMEOUT"
    assert reply["failure_class"] == "walltime_reached" and reply["runner_state"] == "walltime_reached"
    complete = status_reply(JobRecord("j2", "_default_", JobState.COMPLETE, 2), directory)
    assert "failure_class" not in complete and "runner_state" not in complete
    assert lost_reply("j3", "unknown job")["failure_class"] == "job_lost"


def test_a_record_written_before_failure_classes_still_loads(tmp_path: Path) -> None:
    import json

    path = tmp_path / "persisted" / "jobs" / "_default_" / "old.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"job_id": "old", "manager": "_default_", "state": "failed", "sequence": 1}))
    (record,) = JobStore(tmp_path / "persisted").load_all()
    assert record.failure_class is None


def test_a_job_script_that_ends_without_exit_code_on_a_full_disk_is_disk_full(
    tmp_path: Path, monkeypatch
) -> None:
    import os

    from lwr.managers import local_process

    directory = JobDirectory(tmp_path / "job")
    directory.create()
    state, _reason, failure_class = local_process.outcome(directory, cancelled=False, returncode=1)
    assert (state, failure_class) == (JobState.FAILED, FailureClass.JOB_SCRIPT_FAILED)
    real = os.statvfs(directory.path)
    full = os.statvfs_result(
        (
            real.f_bsize,
            real.f_frsize,
            real.f_blocks,
            0,
            0,
            real.f_files,
            real.f_ffree,
            real.f_favail,
            real.f_flag,
            real.f_namemax,
        )
    )
    monkeypatch.setattr(local_process.os, "statvfs", lambda path: full)
    state, reason, failure_class = local_process.outcome(directory, cancelled=False, returncode=1)
    assert (state, failure_class) == (JobState.FAILED, FailureClass.DISK_FULL)
    assert "full" in str(reason)
