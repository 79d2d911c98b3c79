"""kill -9 of a real lwr while its cluster jobs are queued and running, then a restart: the jobs are
re-attached by their batch ids (never submitted again) and reach complete with their exit codes."""

from __future__ import annotations

import subprocess
import time
import uuid

import pytest

from .conftest import DRMAA_TUNABLES, SGE_ENV
from http_helpers import Http

MANAGERS = """
[manager:slurm]
type = queued_cli
job_plugin = Slurm
min_polling_interval = 0.25

[manager:sge]
type = queued_drmaa
min_polling_interval = 0.25
"""


@pytest.fixture
def server(make_server, monkeypatch, slurm):
    for name, value in {**SGE_ENV, "GLIBC_TUNABLES": DRMAA_TUNABLES}.items():
        monkeypatch.setenv(name, value)
    return make_server(job_managers_ini=MANAGERS)


def runs_of(log) -> list[str]:
    return log.read_text().split() if log.exists() else []


def test_kill9_then_restart_reattaches_slurm_and_sge_jobs(server, tmp_path) -> None:
    log = tmp_path / "runs.log"
    log.touch()
    log.chmod(0o666)
    slurm, sge = Http(server.url + "managers/slurm/"), Http(server.url + "managers/sge/")
    run = uuid.uuid4().hex[:8]  # batch job names are unique to this run: sacct remembers earlier ones
    running, held, sge_running = f"slurm-running-{run}", f"slurm-held-{run}", f"sge-running-{run}"
    jobs = {running: slurm, held: slurm, sge_running: sge}
    for job_id, http in jobs.items():
        http.setup(job_id)
    assert slurm.submit(running, f"echo slurm-running >> {log}; sleep 3; exit 5").status == 200
    assert sge.submit(sge_running, f"echo sge-running >> {log}; sleep 3; exit 6").status == 200
    # held in Slurm until released by hand after the restart: re-attached while still queued
    reply = slurm.request(
        "POST",
        f"/jobs/{held}/submit",
        {"command_line": f"echo slurm-held >> {log}", "params": '{"native_specification": "--hold"}'},
    )
    assert reply.status == 200, reply.body
    slurm.wait_status(running, {"running"})
    sge.wait_status(sge_running, {"running"})
    assert slurm.status(held)["status"] == "queued"

    server.kill9()
    time.sleep(0.5)
    server.start()

    held_id = subprocess.run(
        ["squeue", "-h", "-n", f"lwr_{held}", "-o", "%i"], capture_output=True, text=True
    )
    subprocess.run(["scontrol", "release", held_id.stdout.strip()], check=True)
    assert slurm.wait_complete(running, timeout=60)["returncode"] == 5
    assert sge.wait_complete(sge_running, timeout=60)["returncode"] == 6
    assert slurm.wait_complete(held, timeout=60)["returncode"] == 0
    assert sorted(runs_of(log)) == ["sge-running", "slurm-held", "slurm-running"], (
        "a job ran twice or not at all"
    )
    names = f"lwr_{held},lwr_{running}"
    for _ in range(100):  # job records reach slurmdbd a moment after the jobs end
        submitted = subprocess.run(
            ["sacct", "-n", "-X", "-P", "-o", "JobName", "--name", names, "-S", "now-1hour"],
            capture_output=True,
            text=True,
        ).stdout.split()
        if len(submitted) >= 2:
            break
        time.sleep(0.1)
    assert sorted(submitted) == names.split(","), "submitted again after the restart"
