"""queued_cli with the Slurm plugin against a REAL single-node Slurm (started by .ci/backends.sh),
through LocalShell and through SecureShell to a real sshd on 127.0.0.1:2222."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lwr.core import job_directory as layout
from lwr.core.states import JobState
from lwr.errors import BadRequest
from lwr.managers import manager_class
from lwr.managers.base import LaunchSpec
from lwr.managers.cli.manager import CliManager
from lwr.managers.cli.shell_plugins.base import CommandResult
from lwr.managers.cli.shell_plugins.local import LocalShell
from lwr.protocol.failure import FailureClass

from .conftest import DRMAA_TUNABLES, SSHD_USER, RecordingListener

pytestmark = pytest.mark.usefixtures("slurm")

FAST = {"min_polling_interval": 0.25, "exit_code_grace": 2.0}


class CountingShell(LocalShell):
    """A LocalShell that remembers every command it ran (to count squeue calls)."""

    def __init__(self, hide_from_squeue: bool = False) -> None:
        self.commands: list[list[str]] = []
        self.hide_from_squeue = hide_from_squeue

    def run(self, argv: list[str], timeout: float = 60.0) -> CommandResult:
        self.commands.append(argv)
        if self.hide_from_squeue and argv[0] == "squeue":
            return CommandResult(0, "", "")  # as if MinJobAge had passed: only sacct knows the job
        return super().run(argv, timeout)

    def named(self, name: str) -> list[list[str]]:
        return [argv for argv in self.commands if argv[0] == name]


@pytest.fixture
def make_manager(listener: RecordingListener) -> Iterator[Callable[..., CliManager]]:
    managers: list[CliManager] = []

    def make(**settings: Any) -> CliManager:
        shell = settings.pop("shell", None)
        manager = CliManager("slurm", {"job_plugin": "Slurm", **FAST, **settings}, listener, shell=shell)
        manager.start()
        managers.append(manager)
        return manager

    yield make
    for manager in managers:
        for job_id in manager.tracked_ids():  # a failed test leaves no job holding a CPU
            manager.kill(job_id)
        manager.shutdown()


def assert_completed(listener: RecordingListener, spec: LaunchSpec, exit_code: int) -> None:
    assert listener.wait_ended(spec.job_id) == (JobState.COMPLETE, None)
    assert spec.directory.exit_code() == exit_code
    kinds = [kind for kind, job_id, _ in listener.events if job_id == spec.job_id]
    assert kinds == ["submitted", "running", "ended"]


def test_registry_names_the_cli_manager() -> None:
    assert manager_class("queued_cli") is CliManager


def test_local_shell_runs_the_job_script_to_completion(make_manager, make_job, listener) -> None:
    manager = make_manager()
    spec = make_job("echo hello from slurm; echo oops >&2; exit 3")
    manager.launch(spec)
    external_id = listener.wait_for(spec.job_id, "submitted", 30)
    assert str(external_id).isdigit()
    assert_completed(listener, spec, 3)
    assert spec.directory.read_internal(layout.TOOL_STDOUT) == b"hello from slurm\n"
    assert spec.directory.read_internal(layout.TOOL_STDERR) == b"oops\n"
    state = subprocess.run(
        ["squeue", "-h", "--states=all", "-o", "%T", "-j", str(external_id)], capture_output=True, text=True
    ).stdout.strip()
    assert state == "FAILED"  # Slurm calls a non-zero exit FAILED; lwr: the script ran, COMPLETE


def test_secure_shell_submits_over_ssh_as_the_remote_user(make_manager, make_job, listener, sshd) -> None:
    manager = make_manager(shell_plugin="SecureShell", **sshd)
    spec = make_job("id -un")
    manager.launch(spec)
    assert_completed(listener, spec, 0)
    assert spec.directory.read_internal(layout.TOOL_STDOUT) == f"{SSHD_USER}\n".encode()
    assert manager.describe()["shell"] == f"SecureShell({SSHD_USER}@127.0.0.1:2222)"


def test_paramiko_shell_submits_over_ssh(make_manager, make_job, listener, sshd) -> None:
    manager = make_manager(shell_plugin="ParamikoShell", **sshd)
    spec = make_job("id -un")
    manager.launch(spec)
    assert_completed(listener, spec, 0)
    assert spec.directory.read_internal(layout.TOOL_STDOUT) == f"{SSHD_USER}\n".encode()


def test_cancel_a_running_job(make_manager, make_job, listener) -> None:
    manager = make_manager()
    spec = make_job("sleep 300")
    manager.launch(spec)
    external_id = listener.wait_for(spec.job_id, "submitted", 30)
    listener.wait_for(spec.job_id, "running", 30)
    manager.kill(spec.job_id)
    manager.kill(spec.job_id)  # idempotent
    state, reason = listener.wait_ended(spec.job_id, 30)
    assert state is JobState.CANCELLED
    assert reason
    assert spec.directory.exit_code() is None
    squeue = subprocess.run(
        ["squeue", "-h", "--states=all", "-o", "%T", "-j", str(external_id)], capture_output=True, text=True
    ).stdout.strip()
    assert squeue == "CANCELLED"


def test_cancel_a_held_job_before_it_runs(make_manager, make_job, listener) -> None:
    manager = make_manager()
    spec = make_job("echo never", submit_params={"native_specification": "--hold"})
    manager.launch(spec)
    listener.wait_for(spec.job_id, "submitted", 30)
    time.sleep(1.0)
    assert listener.of(spec.job_id, "running") == []  # held: QUEUED
    manager.kill(spec.job_id)
    assert listener.wait_ended(spec.job_id, 30)[0] is JobState.CANCELLED
    assert not spec.directory.internal_file(layout.STARTED_AT).exists()


def test_reattach_by_external_id_with_a_fresh_manager(make_job, listener) -> None:
    first = CliManager("slurm", {"job_plugin": "Slurm", **FAST}, listener)
    first.start()
    spec = make_job("sleep 2; echo finished")
    first.launch(spec)
    external_id = str(listener.wait_for(spec.job_id, "submitted", 30))
    first.shutdown()  # lwr stops; the job goes on in Slurm

    second_listener = RecordingListener()
    second = CliManager("slurm", {"job_plugin": "Slurm", **FAST}, second_listener)
    try:
        second.reattach(spec, external_id, was_running=False)
        second.start()
        assert second_listener.wait_ended(spec.job_id, 60) == (JobState.COMPLETE, None)
        assert spec.directory.read_internal(layout.TOOL_STDOUT) == b"finished\n"
        assert second_listener.of(spec.job_id, "submitted") == []  # never submitted again
    finally:
        second.shutdown()
    assert listener.of(spec.job_id, "ended") == []


def test_job_forgotten_by_squeue_is_judged_by_sacct(make_manager, make_job, listener) -> None:
    """After MinJobAge squeue no longer lists a job; the one sacct call for all such jobs tells."""
    shell = CountingShell(hide_from_squeue=True)
    manager = make_manager(shell=shell)
    spec = make_job("true")
    # $$ is the job script itself: killed, it records no exit code, so only Slurm can tell.
    manager.launch(make_job("kill -9 $$", job_id="killed"))
    state, reason = listener.wait_ended("killed", 60)
    assert state is JobState.FAILED
    assert reason is not None and reason.startswith("slurm: ")
    assert shell.named("sacct")
    manager.launch(spec)
    assert listener.wait_ended(spec.job_id, 60) == (JobState.COMPLETE, None)


def test_one_squeue_per_polling_interval_for_many_jobs(make_manager, make_job, listener) -> None:
    shell = CountingShell()
    manager = make_manager(shell=shell, min_polling_interval=0.5, submit_threads=4)
    specs = [make_job(f"echo {index}") for index in range(24)]
    started = time.monotonic()
    for spec in specs:
        manager.launch(spec)
    for spec in specs:
        assert listener.wait_ended(spec.job_id, 120) == (JobState.COMPLETE, None)
    elapsed = time.monotonic() - started
    squeues = shell.named("squeue")
    assert len(shell.named("sbatch")) == len(specs)
    assert len(squeues) == manager.query_count
    assert len(squeues) <= elapsed / 0.5 + 1
    # every status round asked about every submitted job in the same single call
    widest = max(len(argv[-1].split(",")) for argv in squeues)
    assert widest >= len(specs) // 2
    assert not shell.named("scontrol")


def test_bad_native_specification_is_refused_at_launch(make_manager, make_job) -> None:
    manager = make_manager()
    with pytest.raises(BadRequest):
        manager.launch(
            make_job("true", submit_params={"submit_native_specification": "-p debug\n#SBATCH --x"})
        )
    with pytest.raises(BadRequest):
        manager.launch(make_job("true", submit_params={"native_specification": "--comment 'unbalanced"}))


def test_submission_refused_by_slurm_fails_the_job(make_manager, make_job, listener) -> None:
    manager = make_manager()
    spec = make_job("true", submit_params={"native_specification": "--partition no-such-partition"})
    manager.launch(spec)
    state, reason = listener.wait_ended(spec.job_id, 30)
    assert state is JobState.FAILED
    assert reason is not None and "invalid partition" in reason.lower()
    assert listener.failure_classes[spec.job_id] is FailureClass.LAUNCH_FAILED


def test_a_job_over_its_time_limit_fails_as_walltime_reached(make_manager, make_job, listener) -> None:
    """The real Slurm kills a job at its (one-minute minimum) limit; Galaxy hears walltime_reached."""
    manager = make_manager()
    spec = make_job("sleep 300", submit_params={"native_specification": "--time=0:01"})
    manager.launch(spec)
    state, reason = listener.wait_ended(spec.job_id, 240)
    assert state is JobState.FAILED
    assert reason is not None and "TIMEOUT" in reason
    assert listener.failure_classes[spec.job_id] is FailureClass.WALLTIME_REACHED


def test_slurm_commands_work_under_the_drmaa_tunable(make_job) -> None:
    """One lwr may run DRMAA and Slurm managers: the tunable DRMAA needs must not break scancel."""
    spec = make_job("sleep 300")
    env = {**os.environ, "GLIBC_TUNABLES": DRMAA_TUNABLES}
    job = subprocess.run(
        ["sbatch", "--parsable", "-o", "/dev/null", spec.script],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout.strip()
    cancel = subprocess.run(["scancel", job], capture_output=True, text=True, env=env)
    assert cancel.returncode == 0, cancel.stderr
