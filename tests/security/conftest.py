"""Fixtures for the local-attacker tests: the real service user ``lwr``, the real job user
``lwrjob`` and the real sudoers rule that .ci/backends.sh installs (a missing piece is a failure,
never a skip: CI runs .ci/backends.sh, and a developer runs it once). The network tests' fixtures
live in net_helpers.py."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from net_helpers import listener, mq_server, vhost  # noqa: E402, F401

REPO = Path(__file__).resolve().parents[2]
BACKENDS_HINT = "set up the test users and the sudoers rule first: bash .ci/backends.sh"
SERVICE_USER = "lwr"
JOB_USER = "lwrjob"
#: Root-owned home of the helpers the installed sudoers rule names (see .ci/backends.sh).
LWR_TEST_ROOT = Path("/var/lib/lwr-tests")
SUDOERS_RULE = Path("/etc/sudoers.d/lwr-external-drmaa")
HELPERS = ("drmaa_launch", "drmaa_kill", "chown_working_directory", "drmaa_helper_common.py")
#: Where tests make directories every test user can reach.
SHARED_BASE = Path("/tmp/lwr-security-tests")


def account(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pytest.fail(f"no '{name}' user; {BACKENDS_HINT}")


@pytest.fixture
def helper_scripts() -> Path:
    """scripts/ where the installed sudoers rule names them, refreshed from this checkout before
    every test (other checkouts' test sessions refresh the same directory)."""
    target = LWR_TEST_ROOT / "scripts"
    if not target.is_dir() or not SUDOERS_RULE.exists():
        pytest.fail(f"{target} or {SUDOERS_RULE} is missing; {BACKENDS_HINT}")
    if str(target) not in SUDOERS_RULE.read_text():
        pytest.fail(f"{SUDOERS_RULE} does not name {target}; {BACKENDS_HINT}")
    for name in HELPERS:
        shutil.copy2(REPO / "scripts" / name, target / name)
        os.chown(target / name, 0, 0)
    return target


@pytest.fixture
def service_dir() -> Iterator[Path]:
    """A fresh directory owned by the service user lwr (as its staging directory would be)."""
    service = account(SERVICE_USER)
    SHARED_BASE.mkdir(mode=0o755, exist_ok=True)
    SHARED_BASE.chmod(0o755)
    path = Path(tempfile.mkdtemp(prefix="t.", dir=SHARED_BASE))
    path.chmod(0o755)
    os.chown(path, service.pw_uid, service.pw_gid)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run_as(user: str, argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` as ``user`` with a clean environment (as sudo would see it from lwr)."""
    home = account(user).pw_dir
    return subprocess.run(
        ["runuser", "-u", user, "--", "/usr/bin/env", "-i", "PATH=/usr/bin:/bin", f"HOME={home}", *argv],
        capture_output=True,
        text=True,
        **kwargs,
    )  # type: ignore[call-overload]


def spawn_as(user: str, argv: list[str]) -> subprocess.Popen[str]:
    home = account(user).pw_dir
    return subprocess.Popen(
        ["runuser", "-u", user, "--", "/usr/bin/env", "-i", "PATH=/usr/bin:/bin", f"HOME={home}", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
