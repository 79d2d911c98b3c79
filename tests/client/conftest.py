"""Servers the client is tested against: real Pulsar (pulsar-app) and real lwr, each a process.

Both are started once per session on free loopback ports, with a private token, an input cache
and a second named manager, so the same test functions run against either (the ``server``
fixture is parametrized by kind).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from files_endpoint import FilesEndpoint
from targets import SECOND_MANAGER, TOKEN, Target

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from server import stop_process  # noqa: E402


class PulsarProcess:
    """Real Pulsar served by paste's HTTP server (see ``serve_pulsar.py``)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def staging(self) -> Path:
        return self.directory / "staging"

    @property
    def log_path(self) -> Path:
        return self.directory / "pulsar.log"

    def start(self, timeout: float = 60.0) -> PulsarProcess:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.staging.mkdir(exist_ok=True)
        (self.directory / "cache").mkdir(exist_ok=True)
        config = {
            "staging_directory": str(self.staging),
            "file_cache_dir": str(self.directory / "cache"),
            "private_token": TOKEN,
            "managers": {
                "_default_": {"type": "queued_python", "num_concurrent_jobs": 4},
                SECOND_MANAGER: {"type": "queued_python", "num_concurrent_jobs": 2},
            },
        }
        app_yml = self.directory / "app.yml"
        app_yml.write_text(yaml.safe_dump(config))
        log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "serve_pulsar.py"), str(app_yml)],
            cwd=self.directory,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"pulsar exited with {self.process.returncode}:\n{self.log_path.read_text()}"
                )
            for line in self.log_path.read_text(errors="replace").splitlines():
                if line.startswith("PORT "):
                    self.port = int(line.split()[1])
                    return self
            time.sleep(0.1)
        raise RuntimeError(f"pulsar did not start within {timeout} s:\n{self.log_path.read_text()}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def stop(self) -> None:
        stop_process(self.process)


@pytest.fixture(scope="session")
def pulsar_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    process = PulsarProcess(tmp_path_factory.mktemp("pulsar")).start()
    try:
        yield Target("pulsar", process.url, TOKEN, checks_integrity=False, staging=process.staging)
    finally:
        process.stop()


@pytest.fixture(scope="session")
def files_endpoint() -> Iterator[FilesEndpoint]:
    """Galaxy's job files API stand-in, for ``remote_transfer``; lwr's allow-list names it."""
    endpoint = FilesEndpoint().start()
    try:
        yield endpoint
    finally:
        endpoint.stop()


@pytest.fixture(scope="session")
def lwr_target(tmp_path_factory: pytest.TempPathFactory, files_endpoint: FilesEndpoint) -> Iterator[Target]:
    from server import LwrServer

    directory = tmp_path_factory.mktemp("lwr")
    server = LwrServer(
        directory=directory,
        app_options={
            "private_token": TOKEN,
            "file_cache_dir": str(directory / "cache"),
            # remote_copy reads client files (lwr check keeps its files under the temporary directory).
            "remote_staging_allowed_urls": f"file://{tempfile.gettempdir()}/,{files_endpoint.base}",
        },
        job_managers_ini=(
            "[manager:_default_]\ntype = queued_python\nmax_concurrent_jobs = 4\n\n"
            f"[manager:{SECOND_MANAGER}]\ntype = queued_python\nmax_concurrent_jobs = 2\n"
        ),
    )
    server.start()
    try:
        yield Target("lwr", server.url, TOKEN, checks_integrity=True, staging=server.staging)
    finally:
        server.stop()


@pytest.fixture(params=["pulsar", "lwr"])
def server(request: pytest.FixtureRequest) -> Target:
    """Each test using it runs once against real Pulsar and once against lwr."""
    return request.getfixturevalue(f"{request.param}_target")
