"""chown_working_directory runs as root on a tree its caller can change while it runs.

Performed for real: lwr (the service user) and lwrjob (the job user) swap sub-directories of a
job directory for symlinks to a root-owned directory, in a tight loop, while lwr hands the
directory over and takes it back through the installed sudoers rule, many times. A root-owned
file must stay root's. Also: take-back must check whose directory it is taking.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path

from .conftest import JOB_USER, SERVICE_USER, SHARED_BASE, account, run_as, spawn_as

ROUNDS = 25
SUBDIRECTORIES = 40
FILLER_FILES = 30

#: Swaps every working/subN for a symlink to the victim's directory and back until told to stop.
ATTACKER = r"""
import os, sys, time
working, victim, stop = sys.argv[1], sys.argv[2], sys.argv[3]
names = sorted(n for n in os.listdir(working) if n.startswith("sub") and "." not in n)
while not os.path.exists(stop):
    for name in names:
        real, hidden = os.path.join(working, name), os.path.join(working, name + ".real")
        try:
            os.rename(real, hidden)
            os.symlink(victim, real)
        except OSError:
            continue
        time.sleep(0.0005)
        try:
            os.unlink(real)
            os.rename(hidden, real)
        except OSError:
            pass
"""


def chown_helper(helper_scripts: Path, user: str, directory: Path) -> int:
    result = run_as(
        SERVICE_USER,
        [
            "sudo",
            "-n",
            "/usr/bin/python3",
            str(helper_scripts / "chown_working_directory"),
            "--user",
            user,
            "--job-directory",
            str(directory),
        ],
        timeout=120,
    )
    assert "password is required" not in result.stderr and "not allowed" not in result.stderr, result.stderr
    return result.returncode


def make_job_directory(parent: Path, owner: str) -> Path:
    user = account(owner)
    job = parent / "job"
    (job / "lwr").mkdir(parents=True)
    (job / "lwr" / "job.sh").write_text("#!/bin/sh\ntrue\n")
    for index in range(SUBDIRECTORIES):
        sub = job / "working" / f"sub{index}"
        sub.mkdir(parents=True)
        (sub / "secret").write_text("the job's own\n")
        for filler in range(FILLER_FILES):
            (sub / f"f{filler}").write_text("x")
    for path in [job, *job.rglob("*")]:
        os.lchown(path, user.pw_uid, user.pw_gid)
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)
    return job


def test_chown_race_leaves_root_files_alone(helper_scripts: Path, service_dir: Path) -> None:
    job = make_job_directory(service_dir, SERVICE_USER)
    victim = Path(tempfile.mkdtemp(prefix="victim.", dir=SHARED_BASE))
    try:
        victim.chmod(0o755)
        secret = victim / "secret"
        secret.write_text("root only\n")
        secret.chmod(0o600)
        stop = service_dir / "stop"
        # a plain hand-over and take-back work, and change owners as they should (fifos and sockets a
        # tool leaves behind do not make them fail)
        os.mkfifo(job / "working" / "fifo")
        with socket.socket(socket.AF_UNIX) as unix:
            unix.bind(str(job / "working" / "socket"))
        for name in ("fifo", "socket"):
            os.lchown(job / "working" / name, account(SERVICE_USER).pw_uid, account(SERVICE_USER).pw_gid)
        assert chown_helper(helper_scripts, JOB_USER, job) == 0
        assert (job / "working" / "fifo").stat().st_uid == account(JOB_USER).pw_uid
        assert (job / "working" / "sub0" / "secret").stat().st_uid == account(JOB_USER).pw_uid
        assert chown_helper(helper_scripts, SERVICE_USER, job) == 0
        assert (job / "working" / "sub0" / "secret").stat().st_uid == account(SERVICE_USER).pw_uid
        os.chmod(job / "working", 0o777)  # so that both attackers can swap entries, whoever owns the tree
        attackers = [
            spawn_as(user, ["/usr/bin/python3", "-c", ATTACKER, str(job / "working"), str(victim), str(stop)])
            for user in (SERVICE_USER, JOB_USER)
        ]
        try:
            for _ in range(ROUNDS):
                chown_helper(helper_scripts, JOB_USER, job)
                chown_helper(helper_scripts, SERVICE_USER, job)
                info = secret.stat()
                assert (info.st_uid, info.st_gid) == (0, 0), "root's file was re-owned through a symlink"
                info = victim.stat()
                assert (info.st_uid, info.st_gid) == (0, 0), "root's directory was re-owned through a symlink"
        finally:
            stop.touch()
            for attacker in attackers:
                attacker.wait(30)
        assert all(attacker.returncode == 0 for attacker in attackers), [
            a.stderr.read() for a in attackers if a.stderr
        ]
    finally:
        shutil.rmtree(victim, ignore_errors=True)


def test_take_back_refuses_a_directory_outside_lwrs_own(helper_scripts: Path) -> None:
    """Another user's directory, which merely looks like a job directory, is not lwr's to take."""
    other = account("rjtest")
    SHARED_BASE.mkdir(mode=0o755, exist_ok=True)
    parent = Path(tempfile.mkdtemp(prefix="other.", dir=SHARED_BASE))  # root's, not lwr's
    try:
        parent.chmod(0o755)
        job = make_job_directory(parent, "rjtest")
        assert chown_helper(helper_scripts, SERVICE_USER, job) != 0
        assert (job / "working" / "sub0" / "secret").stat().st_uid == other.pw_uid
        assert job.stat().st_uid == other.pw_uid
    finally:
        shutil.rmtree(parent, ignore_errors=True)
