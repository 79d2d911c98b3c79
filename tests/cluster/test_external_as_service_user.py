"""queued_external_drmaa as production runs it: lwr as an unprivileged service user ("lwr"), the
helpers through the REAL sudoers rule that .ci/backends.sh installs from scripts/sudoers.example,
the job on real Grid Engine as the second user ``lwrjob``. The code it runs is copied out of the
checkout to a root-owned directory first, since other users may not be able to enter the checkout."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from .conftest import BACKENDS_HINT, DRMAA_TUNABLES, JOB_USER, LWR_TEST_ROOT, REPO, SGE_ENV

SERVICE_USER = "lwr"
SUDOERS_RULE = Path("/etc/sudoers.d/lwr-external-drmaa")


@pytest.fixture
def service_python_path() -> Path:
    """This checkout's lwr package and the driver, where the service user can read them."""
    target = LWR_TEST_ROOT / "python"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(REPO / "lwr", target / "lwr", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(Path(__file__).with_name("service_user_driver.py"), target / "service_user_driver.py")
    for path in [target, *target.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


def test_external_drmaa_through_the_sudoers_rule_as_an_unprivileged_lwr(
    service_python_path, helper_scripts
) -> None:
    try:
        service = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        pytest.fail(f"no '{SERVICE_USER}' user; {BACKENDS_HINT}")
    if str(helper_scripts) not in SUDOERS_RULE.read_text():
        pytest.fail(f"{SUDOERS_RULE} is not the rule for {REPO}; {BACKENDS_HINT}")
    base = Path("/tmp/lwr-cluster-tests")
    base.mkdir(mode=0o755, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="service.", dir=base))
    try:
        work.chmod(0o755)
        os.chown(work, service.pw_uid, service.pw_gid)
        env = {
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(service_python_path),
            **SGE_ENV,
            "GLIBC_TUNABLES": DRMAA_TUNABLES,
            "HOME": service.pw_dir,
        }
        result = subprocess.run(
            [
                "runuser",
                "-u",
                SERVICE_USER,
                "--",
                "/usr/bin/env",
                "-i",
                *(f"{key}={value}" for key, value in env.items()),
                "/usr/bin/python3",
                str(service_python_path / "service_user_driver.py"),
                str(work),
                JOB_USER,
                str(helper_scripts),
            ],
            capture_output=True,
            text=True,
            timeout=180,
            cwd=str(work),
        )
        assert result.returncode == 0, result.stdout + result.stderr
        report = json.loads(result.stdout.strip().splitlines()[-1])
        kinds = [event[0] for event in report["events"]]
        assert kinds == ["submitted", "running", "ended"], report
        assert report["events"][-1][2] == ["complete", None]
        assert report["tool_stdout"] == f"{JOB_USER}\n"
        assert report["exit_code"] == 0
        assert report["owner_after"] == service.pw_uid  # taken back through the rule
        assert len(report["refused"]) == 2  # root and lwr itself (production = true)
        assert report["sudo_other_command_rc"] != 0  # the rule allows nothing else
    finally:
        shutil.rmtree(work, ignore_errors=True)
