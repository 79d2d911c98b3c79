"""Fixtures for the cluster-manager tests: real batch systems started by .ci/backends.sh.

A missing backend is a failure, never a skip: CI installs and starts every one of them
(``bash .ci/backends.sh``), and a developer runs the same script once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lwr.core.job_directory import JobDirectory
from lwr.core.job_script import write_job_script
from lwr.core.states import JobState
from lwr.managers.base import LaunchSpec
from lwr.protocol.failure import FailureClass

REPO = Path(__file__).resolve().parents[2]
SSHD_DIR = Path("/var/lib/lwr-test-sshd")
SSHD_PORT = 2222
SSHD_USER = "rjtest"
JOB_USER = "lwrjob"
SGE_ENV = {
    "SGE_ROOT": "/var/lib/gridengine",
    "SGE_CELL": "default",
    "DRMAA_LIBRARY_PATH": "/usr/lib/gridengine-drmaa/lib/libdrmaa.so.1.0",
}
#: libdrmaa links libjemalloc, which only loads when the process starts with room for it. The
#: tunable is inherited by every command lwr runs; 4 MiB (a common suggestion) breaks scancel.
DRMAA_TUNABLES = "glibc.rtld.optional_static_tls=65536"
BACKENDS_HINT = "start the test backends first: bash .ci/backends.sh"
#: Root-owned home of the helpers the installed sudoers rule names (see .ci/backends.sh).
LWR_TEST_ROOT = Path("/var/lib/lwr-tests")
HELPERS = ("drmaa_launch", "drmaa_kill", "chown_working_directory", "drmaa_helper_common.py")


def require_command(*names: str) -> None:
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed; {BACKENDS_HINT}")


@dataclass
class RecordingListener:
    """A ManagerListener that records every call and lets a test wait for the end of a job."""

    events: list[tuple[str, str, object]] = field(default_factory=list)
    lock: threading.Condition = field(default_factory=threading.Condition)
    #: The failure class each ended job was reported with.
    failure_classes: dict[str, FailureClass | None] = field(default_factory=dict)

    def job_submitted(self, job_id: str, external_id: str) -> None:
        self._record("submitted", job_id, external_id)

    def job_resubmitting(self, job_id: str) -> None:
        self._record("resubmitting", job_id, None)

    def job_running(self, job_id: str) -> None:
        self._record("running", job_id, None)

    def job_ended(
        self,
        job_id: str,
        state: JobState,
        reason: str | None = None,
        failure_class: FailureClass | None = None,
    ) -> None:
        self.failure_classes[job_id] = failure_class
        self._record("ended", job_id, (state, reason))

    def _record(self, kind: str, job_id: str, detail: object) -> None:
        with self.lock:
            self.events.append((kind, job_id, detail))
            self.lock.notify_all()

    def of(self, job_id: str, kind: str) -> list[object]:
        with self.lock:
            return [detail for k, j, detail in self.events if j == job_id and k == kind]

    def wait_for(self, job_id: str, kind: str, timeout: float = 60.0) -> object:
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                found = [detail for k, j, detail in self.events if j == job_id and k == kind]
                if found:
                    return found[0]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"no '{kind}' for job {job_id} within {timeout} s; events: {self.events}"
                    )
                self.lock.wait(remaining)

    def wait_ended(self, job_id: str, timeout: float = 60.0) -> tuple[JobState, str | None]:
        return self.wait_for(job_id, "ended", timeout)  # type: ignore[return-value]


@pytest.fixture
def listener() -> RecordingListener:
    return RecordingListener()


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A directory every test user can reach (the batch jobs run as other users too)."""
    base = Path("/tmp/lwr-cluster-tests")
    base.mkdir(mode=0o755, exist_ok=True)
    base.chmod(0o755)
    path = Path(subprocess.check_output(["mktemp", "-d", str(base / "t.XXXXXX")], text=True).strip())
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def make_job(shared_tmp: Path) -> Callable[..., LaunchSpec]:
    """Factory: a job directory with a job script running ``command``, as the core prepares it."""
    counter = iter(range(10_000))

    def make(
        command: str, job_id: str | None = None, owner: str | None = None, **spec_kwargs: object
    ) -> LaunchSpec:
        job_id = job_id or f"job{next(counter)}"
        directory = JobDirectory(shared_tmp / job_id)
        directory.create()
        script = write_job_script(directory, command, [])
        if owner is not None:
            subprocess.run(["chown", "-R", f"{owner}:", str(directory.path)], check=True)
        else:
            os.chmod(directory.path, 0o777)
            for sub in directory.path.iterdir():
                sub.chmod(0o777)
        return LaunchSpec(job_id=job_id, directory=directory, script=script, **spec_kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture(scope="session")
def slurm() -> None:
    require_command("sbatch", "squeue", "scancel", "sacct")
    result = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    if result.returncode != 0 or not result.stdout.strip().startswith(("idle", "mixed", "alloc")):
        pytest.fail(
            f"Slurm is not running ({result.stderr.strip() or result.stdout.strip()}); {BACKENDS_HINT}"
        )


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Settings for a SecureShell to the loopback sshd, with a known_hosts file for its key."""
    require_command("ssh")
    key = SSHD_DIR / "id_ed25519"
    host_key = SSHD_DIR / "ssh_host_ed25519_key.pub"
    if not key.exists() or not host_key.exists():
        pytest.fail(f"the test sshd is not set up; {BACKENDS_HINT}")
    known_hosts = tmp_path_factory.mktemp("ssh") / "known_hosts"
    known_hosts.write_text(
        f"[127.0.0.1]:{SSHD_PORT} {host_key.read_text().split()[0]} {host_key.read_text().split()[1]}\n"
    )
    settings: dict[str, object] = {
        "shell_hostname": "127.0.0.1",
        "shell_port": SSHD_PORT,
        "shell_username": SSHD_USER,
        "shell_private_key": str(key),
        "shell_known_hosts": str(known_hosts),
    }
    probe = subprocess.run(
        [
            "ssh",
            "-p",
            str(SSHD_PORT),
            "-i",
            str(key),
            "-o",
            "BatchMode=yes",
            "-o",
            f"UserKnownHostsFile={known_hosts}",
            f"{SSHD_USER}@127.0.0.1",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if probe.returncode != 0:
        pytest.fail(f"cannot ssh to the test sshd: {probe.stderr.strip()}; {BACKENDS_HINT}")
    return settings


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


@pytest.fixture(scope="session")
def helper_scripts() -> Path:
    """scripts/ as the sudoers rule names it: refreshed from this checkout, readable by every user.

    Jobs of queued_external_drmaa start the helpers as the job's user, who may not be able to
    enter the checkout's directory; the rule names this root-owned copy instead.
    """
    target = LWR_TEST_ROOT / "scripts"
    if not target.is_dir():
        pytest.fail(f"{target} is missing; {BACKENDS_HINT}")
    for name in HELPERS:
        shutil.copy2(REPO / "scripts" / name, target / name)
    return target
