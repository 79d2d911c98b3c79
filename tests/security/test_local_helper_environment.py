"""The sudo helpers must not load a library the caller names.

Performed for real: lwr (the service user) runs drmaa_kill and drmaa_launch as the job user
through the installed sudoers rule with ``--env DRMAA_LIBRARY_PATH=`` naming a library of its
own, whose constructor leaves a mark. The mark must never appear: the helpers' environment comes
from the root-owned /etc/lwr/drmaa_helpers.env, which is itself refused unless it and every
directory above it are root's alone.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from .conftest import JOB_USER, LWR_TEST_ROOT, REPO, SERVICE_USER, SHARED_BASE, account, run_as

EVIL_SOURCE = r"""
#include <stdio.h>
#include <unistd.h>
__attribute__((constructor)) static void mark(void) {
    FILE *out = fopen(MARK, "a");
    if (out) { fprintf(out, "loaded as uid %d\n", (int) geteuid()); fclose(out); }
}
"""


@pytest.fixture
def evil_library() -> Iterator[tuple[Path, Path]]:
    """(a shared library lwr controls, the file its constructor writes)."""
    if shutil.which("gcc") is None:
        pytest.fail("gcc is needed to build the attacker's library (apt-get install gcc)")
    SHARED_BASE.mkdir(mode=0o755, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="evil.", dir=SHARED_BASE))
    directory.chmod(0o777)
    mark = directory / "mark"
    source = directory / "evil.c"
    source.write_text(EVIL_SOURCE)
    library = directory / "libevil.so"
    subprocess.run(
        ["gcc", "-shared", "-fPIC", f'-DMARK="{mark}"', "-o", str(library), str(source)], check=True
    )
    service = account(SERVICE_USER)
    os.chown(library, service.pw_uid, service.pw_gid)
    library.chmod(0o755)
    yield library, mark
    shutil.rmtree(directory, ignore_errors=True)


def job_directory_of(user: str) -> Path:
    owner = account(user)
    directory = Path(tempfile.mkdtemp(prefix="job.", dir=SHARED_BASE))
    (directory / "lwr").mkdir()
    (directory / "lwr" / "job.sh").write_text("#!/bin/bash\ntrue\n")
    for path in [directory, directory / "lwr", directory / "lwr" / "job.sh"]:
        os.chown(path, owner.pw_uid, owner.pw_gid)
        path.chmod(0o755)
    return directory


def test_helpers_never_load_a_library_the_caller_names(helper_scripts: Path, evil_library) -> None:
    library, mark = evil_library
    job = job_directory_of(JOB_USER)
    try:
        attempts = [
            ["drmaa_kill", "--external-id", "1", "--env", f"DRMAA_LIBRARY_PATH={library}"],
            [
                "drmaa_launch",
                "--script",
                str(job / "lwr" / "job.sh"),
                "--working-directory",
                str(job),
                "--stdout",
                "/dev/null",
                "--stderr",
                "/dev/null",
                "--env",
                f"DRMAA_LIBRARY_PATH={library}",
            ],
            [
                "drmaa_kill",
                "--external-id",
                "1",
                "--env",
                f"SGE_ROOT={library.parent}",
                "--env",
                f"DRMAA_LIBRARY_PATH={library}",
            ],
        ]
        for helper, *arguments in attempts:
            result = run_as(
                SERVICE_USER,
                ["sudo", "-n", "-u", JOB_USER, "/usr/bin/python3", str(helper_scripts / helper), *arguments],
                timeout=120,
            )
            assert "password is required" not in result.stderr, result.stderr
            assert not mark.exists(), f"{helper} loaded the caller's library: {mark.read_text()}"
            assert result.returncode != 0
    finally:
        shutil.rmtree(job, ignore_errors=True)


# --- the settings file itself ---------------------------------------------------------------------
def helper_common() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "drmaa_helper_common", REPO / "scripts" / "drmaa_helper_common.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["drmaa_helper_common"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def root_directory() -> Iterator[Path]:
    """A directory of root's, not writable by others, with root-only parents (as /etc/lwr is)."""
    directory = Path(tempfile.mkdtemp(prefix="settings.", dir=LWR_TEST_ROOT))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


SETTINGS = "SGE_ROOT=/var/lib/gridengine\nDRMAA_LIBRARY_PATH=/usr/lib/x.so\nLWR_SUBMIT_USER_GROUPS=lwrjobs\n"


def test_settings_file_must_be_roots_alone(root_directory: Path) -> None:
    common = helper_common()
    good = root_directory / "good.env"
    good.write_text(SETTINGS)
    good.chmod(0o644)
    settings = common.load_settings(str(good))
    assert settings.environment == {"SGE_ROOT": "/var/lib/gridengine", "DRMAA_LIBRARY_PATH": "/usr/lib/x.so"}
    assert settings.groups == ["lwrjobs"] and (settings.min_uid, settings.max_uid) == (1000, 59999)

    writable = root_directory / "writable.env"
    writable.write_text(SETTINGS)
    writable.chmod(0o666)
    service = account(SERVICE_USER)
    not_roots = root_directory / "not-roots.env"
    not_roots.write_text(SETTINGS)
    os.chown(not_roots, service.pw_uid, service.pw_gid)
    link = root_directory / "link.env"
    link.symlink_to(good)
    open_directory = root_directory / "open"
    open_directory.mkdir()
    open_directory.chmod(0o777)
    (open_directory / "inside.env").write_text(SETTINGS)
    in_tmp = Path(tempfile.mkdtemp()) / "tmp.env"  # /tmp is writable by everyone
    in_tmp.write_text(SETTINGS)
    unknown = root_directory / "unknown.env"
    unknown.write_text(SETTINGS + "LWR_SUBMIT_USERS=everyone\n")
    try:
        for path in (
            writable,
            not_roots,
            link,
            open_directory / "inside.env",
            in_tmp,
            unknown,
            root_directory / "missing.env",
        ):
            with pytest.raises(SystemExit):
                common.load_settings(str(path))
        assert stat.S_IMODE(good.stat().st_mode) == 0o644
    finally:
        shutil.rmtree(in_tmp.parent, ignore_errors=True)


def test_installed_settings_file_is_what_the_helpers_read() -> None:
    common = helper_common()
    settings = common.load_settings()
    assert settings.environment.get("DRMAA_LIBRARY_PATH"), (
        "no DRMAA_LIBRARY_PATH in /etc/lwr/drmaa_helpers.env"
    )
    assert settings.groups, "no LWR_SUBMIT_USER_GROUPS in /etc/lwr/drmaa_helpers.env"
