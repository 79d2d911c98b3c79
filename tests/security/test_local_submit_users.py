"""Which accounts lwr may act as: an explicit allow-list, enforced by lwr and by the helpers.

Performed for real: a real lwr server with a queued_external_drmaa manager refuses submit users
that are service accounts (slurm, nobody), root, lwr's own user and ordinary users outside the
job users' group; lwr (the service user), through the installed sudoers rule, cannot run the
helpers as those accounts; and the helpers refuse them even when sudo is not in the way.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import JOB_USER, SERVICE_USER, account, run_as
from .test_local_chown_race import chown_helper, make_job_directory
from http_helpers import Http

REFUSED = ["slurm", "nobody", "root", "rjtest", "sgeadmin"]
SGE_ENV = {
    "SGE_ROOT": "/var/lib/gridengine",
    "SGE_CELL": "default",
    "DRMAA_LIBRARY_PATH": "/usr/lib/gridengine-drmaa/lib/libdrmaa.so.1.0",
    "GLIBC_TUNABLES": "glibc.rtld.optional_static_tls=65536",
}


def test_lwr_refuses_submit_users_off_the_allow_list(
    make_server, helper_scripts: Path, service_dir: Path, monkeypatch
) -> None:
    for name in REFUSED:
        account(name)
    for name, value in SGE_ENV.items():
        monkeypatch.setenv(name, value)
    server = make_server(
        app_options={"staging_directory": str(service_dir / "staging")},
        job_managers_ini=(
            "[manager:_default_]\ntype = queued_external_drmaa\nmin_polling_interval = 0.25\n"
            f"scripts_directory = {helper_scripts}\n"
        ),
    )
    http = Http(server.url)
    for user in [*REFUSED, "lwr"]:
        job_id = f"as-{user}"
        http.setup(job_id)
        reply = http.submit(job_id, "id -un", params=json.dumps({"user": user}))
        assert reply.status == 400, (user, reply.status, reply.body)
        assert reply.json().get("submit_user") == user or "submit_user" in reply.json()["error"], reply.json()
    http.setup("as-job-user")
    assert http.submit("as-job-user", "id -un", params=json.dumps({"user": JOB_USER})).status == 200
    final = http.wait_complete("as-job-user", timeout=120)
    assert (final["status"], final["stdout"]) == ("complete", f"{JOB_USER}\n"), final


@pytest.mark.parametrize("helper", ["drmaa_kill", "drmaa_launch"])
def test_the_sudo_rule_only_lets_lwr_act_as_job_users(helper_scripts: Path, helper: str) -> None:
    for user in REFUSED:
        account(user)
        result = run_as(
            SERVICE_USER,
            ["sudo", "-n", "-u", user, "/usr/bin/python3", str(helper_scripts / helper), "--help"],
            timeout=60,
        )
        assert result.returncode != 0, f"lwr ran {helper} as {user}: {result.stdout}"
        assert "usage" not in result.stdout.lower()


@pytest.mark.parametrize("user", ["rjtest", "nobody", "slurm"])
def test_the_helpers_refuse_users_off_the_allow_list_without_sudo(helper_scripts: Path, user: str) -> None:
    account(user)
    result = subprocess.run(
        [
            "runuser",
            "-u",
            user,
            "--",
            "/usr/bin/env",
            "-i",
            "PATH=/usr/bin:/bin",
            "/usr/bin/python3",
            str(helper_scripts / "drmaa_kill"),
            "--external-id",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "job users" in result.stderr, result.stderr


def test_chown_helper_hands_directories_to_job_users_only(helper_scripts: Path, service_dir: Path) -> None:
    service = account(SERVICE_USER)
    for user in ["nobody", "rjtest", "sgeadmin"]:
        parent = service_dir / user
        parent.mkdir()
        os.chown(parent, service.pw_uid, service.pw_gid)
        job = make_job_directory(parent, SERVICE_USER)
        assert chown_helper(helper_scripts, user, job) != 0
        assert {path.stat().st_uid for path in [job, *job.rglob("*")]} == {service.pw_uid}, user
        shutil.rmtree(parent)
    # and takes back only from them: a directory of another ordinary user stays theirs
    other = account("rjtest")
    parent = service_dir / "taken"
    parent.mkdir()
    os.chown(parent, service.pw_uid, service.pw_gid)
    job = make_job_directory(parent, "rjtest")
    assert chown_helper(helper_scripts, SERVICE_USER, job) != 0
    assert {path.stat().st_uid for path in [job, *job.rglob("*")]} == {other.pw_uid}
