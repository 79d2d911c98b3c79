"""Galaxy's real Pulsar client (``pulsar-check``) against a real lwr whose managers are REAL batch
systems: Slurm through LocalShell and through SecureShell (root on the loopback sshd, as when lwr
and the submit host share a file system), and Grid Engine through DRMAA, each as /managers/NAME."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from .conftest import DRMAA_TUNABLES, JOB_USER, SGE_ENV, SSHD_DIR, SSHD_PORT

PULSAR_CHECK = str(Path(sys.executable).parent / "pulsar-check")


@pytest.fixture(scope="module")
def cluster_server(slurm, sshd, helper_scripts):
    """One lwr with a manager per real backend (module-scoped: the checks share it)."""
    from server import LwrServer

    known_hosts = sshd["shell_known_hosts"]
    managers = f"""
[manager:slurm]
type = queued_cli
job_plugin = Slurm
min_polling_interval = 0.25

[manager:slurm_ssh]
type = queued_cli
job_plugin = Slurm
shell_plugin = SecureShell
shell_hostname = 127.0.0.1
shell_port = {SSHD_PORT}
shell_username = root
shell_private_key = {SSHD_DIR / "id_ed25519"}
shell_known_hosts = {known_hosts}
min_polling_interval = 0.25

[manager:sge]
type = queued_drmaa
native_specification = -l h_rt=600
min_polling_interval = 0.25

[manager:sge_external]
type = queued_external_drmaa
scripts_directory = {helper_scripts}
min_polling_interval = 0.25
"""
    mp = pytest.MonkeyPatch()
    for name, value in {**SGE_ENV, "GLIBC_TUNABLES": DRMAA_TUNABLES}.items():
        mp.setenv(name, value)  # the server process inherits what local_env.sh sets in production
    # job directories must be reachable by the second user that queued_external_drmaa runs jobs as
    base = Path("/tmp/lwr-cluster-tests")
    base.mkdir(mode=0o755, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="server.", dir=base))
    directory.chmod(0o755)
    server = LwrServer(directory=directory, job_managers_ini=managers)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        mp.undo()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize("manager", ["slurm", "slurm_ssh", "sge"])
def test_pulsar_check_on_a_real_batch_system(cluster_server, manager) -> None:
    result = subprocess.run(
        [PULSAR_CHECK, "--url", f"{cluster_server.url}managers/{manager}/", "--suppress_output"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr + cluster_server.log_text()[-5000:]


def test_pulsar_check_errors_on_slurm(cluster_server) -> None:
    result = subprocess.run(
        [PULSAR_CHECK, "--url", f"{cluster_server.url}managers/slurm/", "--suppress_output", "--test_errors"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr + cluster_server.log_text()[-5000:]


#: pulsar-check has no command-line flag for the submit user its client can send; set it the way
#: Galaxy's Pulsar runner does (client option ``submit_user``), by giving its options a ``user``.
CHECK_AS_USER = """
import optparse, os
from pulsar.client.test import check
parse_args = optparse.OptionParser.parse_args
def with_user(self, *args, **kwargs):
    options, rest = parse_args(self, *args, **kwargs)
    options.user = os.environ["CHECK_SUBMIT_USER"]
    return options, rest
optparse.OptionParser.parse_args = with_user
check.main()
"""


def test_pulsar_check_with_jobs_run_as_the_submit_user(cluster_server) -> None:
    """queued_external_drmaa: the client names a user; Grid Engine runs the job as that user."""
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            CHECK_AS_USER,
            "--url",
            f"{cluster_server.url}managers/sge_external/",
            "--suppress_output",
            "--job_id",
            "external-1",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "CHECK_SUBMIT_USER": JOB_USER},
    )
    assert result.returncode == 0, result.stdout + result.stderr + cluster_server.log_text()[-5000:]
    for _ in range(50):
        accounting = subprocess.run(
            ["qacct", "-j", "lwr_external-1"], capture_output=True, text=True, env={**os.environ, **SGE_ENV}
        ).stdout
        if accounting:
            break
        time.sleep(0.1)
    owners = {line.split()[1] for line in accounting.splitlines() if line.startswith("owner ")}
    assert owners == {JOB_USER}
