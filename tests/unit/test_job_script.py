from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from lwr.core.job_directory import JobDirectory
from lwr.core.job_script import ALREADY_LAUNCHED_STATUS, EnvItem, parse_env, write_job_script
from lwr.errors import BadRequest


def make_job(tmp_path, command, env=()):
    job = JobDirectory(tmp_path / "job")
    job.create()
    return job, write_job_script(job, command, env)


def test_script_records_everything(tmp_path):
    job, script = make_job(
        tmp_path,
        "echo out; echo err >&2; echo $FOO $BAR; pwd; exit 5",
        [EnvItem("FOO", "a b'c"), EnvItem("BAR", "$FOO-x", raw=True)],
    )
    result = subprocess.run(["/bin/bash", script], capture_output=True)
    assert result.returncode == 5
    assert job.exit_code() == 5
    stdout = job.internal_file("tool_stdout").read_text().splitlines()
    assert stdout == ["out", "a b'c a b'c-x", str(job.working)]
    assert job.internal_file("tool_stderr").read_text() == "err\n"
    assert job.internal_file("started_at").exists() and job.internal_file("ended_at").exists()
    assert (job.path / "tmp").is_dir() and (job.path / "home").is_dir()


def test_script_never_runs_twice(tmp_path):
    job, script = make_job(tmp_path, f"echo ran >> {tmp_path / 'count'}")
    assert subprocess.run(["/bin/bash", script]).returncode == 0
    second = subprocess.run(["/bin/bash", script], capture_output=True)
    assert second.returncode == ALREADY_LAUNCHED_STATUS
    assert (tmp_path / "count").read_text() == "ran\n"


def test_trailing_comment_in_command_is_harmless(tmp_path):
    job, script = make_job(tmp_path, "echo hi # a comment")
    assert subprocess.run(["/bin/bash", script]).returncode == 0
    assert job.exit_code() == 0


@pytest.mark.parametrize(
    "raw, problem",
    [
        ("notalist", "list"),
        ([1], "object"),
        ([{"value": "x"}], "object"),
        ([{"name": "A-B", "value": "x"}], "identifier"),
    ],
)
def test_parse_env_rejects(raw, problem):
    with pytest.raises(BadRequest, match=problem):
        parse_env(raw)


def test_parse_env_accepts():
    assert parse_env([{"name": "A", "value": 1, "raw": True}, {"name": "B"}]) == [
        EnvItem("A", "1", True),
        EnvItem("B", "", False),
    ]
    assert parse_env(None) == []


# --- Galaxy's job environment -----------------------------------------------------------------
SHOW = 'echo "${GALAXY_SLOTS:-}|${GALAXY_MEMORY_MB:-}|${GALAXY_MEMORY_MB_PER_SLOT:-}|${GALAXY_SLOTS_CONFIGURED:-}"'


def condor_ad(tmp_path) -> str:
    path = tmp_path / ".machine.ad"
    path.write_text('Arch = "X86_64"\nCpus = 3\nMemory = 2048\n')
    return str(path)


@pytest.mark.parametrize(
    "variables, default, expected",
    [
        ({}, None, "1|||"),
        ({}, 4, "4|||1"),
        ({"GALAXY_SLOTS": "5"}, None, "5|||1"),  # lwr's own environment (e.g. set in local_env.sh)
        ({"SLURM_CPUS_PER_TASK": "2"}, 4, "2|||1"),
        ({"SLURM_CPUS_PER_TASK": "2", "SLURM_NTASKS": "3"}, None, "6|||1"),
        ({"SLURM_CPUS_ON_NODE": "8"}, None, "8|||1"),
        ({"SLURM_CPUS_PER_TASK": "2", "SLURM_MEM_PER_NODE": "4000"}, None, "2|4000|2000|1"),
        ({"SLURM_NTASKS": "2", "SLURM_MEM_PER_CPU": "1000"}, None, "2|2000|1000|1"),
        ({"NSLOTS": "2", "SGE_HGR_h_vmem": "2G"}, None, "2|4096|2048|1"),
        ({"NSLOTS": "4", "SGE_HGR_h_vmem": "512M"}, None, "4|2048|512|1"),
        ({"PBS_NCPUS": "6"}, None, "6|||1"),
        ({"PBS_NUM_PPN": "3"}, None, "3|||1"),
        ({"LSB_DJOB_NUMPROC": "4"}, None, "4|||1"),
        ({"_CONDOR_MACHINE_AD": "<condor>"}, None, "3|2048|682|1"),
        ({"NSLOTS": "garbage"}, None, "1|||"),
    ],
)
def test_galaxy_slots_and_memory_from_the_batch_system(tmp_path, variables, default, expected):
    from lwr.core.job_script import GalaxyEnvironment

    job = JobDirectory(tmp_path / "job")
    job.create()
    script = write_job_script(job, SHOW, [], GalaxyEnvironment(default_slots=default))
    env = {
        "PATH": "/usr/bin:/bin",
        **{k: condor_ad(tmp_path) if v == "<condor>" else v for k, v in variables.items()},
    }
    assert subprocess.run(["/bin/bash", script], env=env).returncode == 0
    assert job.internal_file("tool_stdout").read_text() == expected + "\n"


def test_notices_go_to_the_job_stderr_and_dependencies_before_the_command(tmp_path):
    from lwr.core.job_script import GalaxyEnvironment

    job = JobDirectory(tmp_path / "job")
    job.create()
    galaxy = GalaxyEnvironment(
        dependency_commands=("PKG=activated; export PKG",), notices=("lwr: it's missing",)
    )
    script = write_job_script(job, 'echo "$PKG"', [], galaxy)
    result = subprocess.run(["/bin/bash", script], capture_output=True, text=True)
    assert result.stderr == "lwr: it's missing\n"
    assert job.internal_file("tool_stdout").read_text() == "activated\n"
    assert job.internal_file("tool_stderr").read_text() == ""


# --- what the script forks --------------------------------------------------------------------
def stub_path(tmp_path, *names):
    """A PATH whose ``names`` log each call to ``calls`` and then run the real command."""
    import shutil

    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name in names:
        stub = stubs / name
        stub.write_text(f'#!/bin/bash\necho {name} >> {tmp_path / "calls"}\nexec {shutil.which(name)} "$@"\n')
        stub.chmod(0o755)
    return f"{stubs}:/usr/bin:/bin"


def test_core_metrics_read_the_clock_without_forking_date(tmp_path):
    from lwr.core.job_metrics import JobInstrumentation
    from lwr.core.job_script import GalaxyEnvironment

    job = JobDirectory(tmp_path / "job")
    job.create()
    before, after = JobInstrumentation(None).commands(str(job.metadata))
    script = write_job_script(
        job, "true", [], GalaxyEnvironment(instrument_pre=before, instrument_post=after)
    )
    env = {"PATH": stub_path(tmp_path, "date")}
    assert subprocess.run(["/bin/bash", script], env=env).returncode == 0
    assert not (tmp_path / "calls").exists()
    start = (job.metadata / "__instrument_core_epoch_start").read_text()
    end = (job.metadata / "__instrument_core_epoch_end").read_text()
    assert start.endswith("\n") and end.endswith("\n")  # the very lines `date +"%s"` writes
    assert 0 < int(start) <= int(end) <= time.time() + 1


def test_only_the_core_plugins_date_is_rewritten():
    from lwr.core.job_metrics import without_date_forks

    assert without_date_forks('date +"%s" > /m/x\necho "$A" > /m/y') == (
        '{ printf \'%(%s)T\\n\' -1 2>/dev/null || date +"%s"; } > /m/x\necho "$A" > /m/y'
    )
    for other in ('date +"%Y" > /m/x', 'echo date +"%s" > /m/x', 'date +"%s"'):
        assert without_date_forks(other) == other


def test_a_local_launch_hands_the_run_lock_over_and_forks_no_flock(tmp_path, monkeypatch):
    from lwr.managers import local_process

    marker, background = tmp_path / "tool_ran", tmp_path / "background"
    job, script = make_job(tmp_path, f"sleep 30 & echo $! > {background}; touch {marker}; sleep 0.5")
    monkeypatch.setenv("PATH", stub_path(tmp_path, "flock"))  # lwr's environment, the script's too
    process = local_process.start_job_process(job, script)
    try:
        deadline = time.monotonic() + 10
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert local_process.is_running(job)  # the script holds the lock lwr took for it
        second = subprocess.run(["/bin/bash", script], capture_output=True, text=True)
        assert second.returncode == ALREADY_LAUNCHED_STATUS and "already running" in second.stderr
        assert process.wait(20) == 0 and job.exit_code() == 0
        # The tool's background process got neither the lock nor the descriptor that carried it.
        assert not local_process.is_running(job)
    finally:
        os.kill(int(background.read_text()), signal.SIGKILL)
    assert (tmp_path / "calls").read_text().split() == ["flock"]  # the second copy's, started by hand


def test_a_local_launch_while_a_copy_holds_the_lock_runs_nothing(tmp_path, monkeypatch):
    import fcntl

    from lwr.managers import local_process

    # A stray value in lwr's own environment is not handed on as if it were the lock.
    monkeypatch.setenv("LWR_RUN_LOCK_FD", "0")
    job, script = make_job(tmp_path, f"echo ran >> {tmp_path / 'count'}")
    holder = os.open(job.internal_file("run.lock"), os.O_WRONLY | os.O_CREAT, 0o600)
    fcntl.flock(holder, fcntl.LOCK_EX)  # a copy still running, say from before a restart
    try:
        assert local_process.start_job_process(job, script).wait(20) == ALREADY_LAUNCHED_STATUS
    finally:
        os.close(holder)
    assert not (tmp_path / "count").exists()
    assert not local_process.was_launched(job)
