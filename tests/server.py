"""Start a real lwr server process on a free loopback port, for integration tests and benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent

#: The private token of the token-protected test servers.
TOKEN = "s3cret-token"
#: Keys by which a test server's config says how clients authenticate.
AUTH_KEYS = ("private_token", "private_key", "allow_unauthenticated", "tenants_file")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_healthz(
    url: str,
    process: subprocess.Popen[bytes] | None,
    name: str,
    log_text: Callable[[], str],
    timeout: float,
    interval: float = 0.05,
) -> None:
    """Poll ``url``/healthz until it answers 200; fail early, with the log, if the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{log_text()}")
        try:
            with urllib.request.urlopen(url + "healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(interval)
    raise RuntimeError(f"{name} did not answer within {timeout} s:\n{log_text()}")


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM a server process, then SIGKILL it if it has not exited within 15 s."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@dataclass
class LwrServer:
    """A running ``lwr serve`` subprocess and the files it was configured with."""

    directory: Path
    app_options: dict[str, str] = field(default_factory=dict)
    job_managers_ini: str | None = None
    server_options: dict[str, str | None] = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    #: A server whose options name no token opts in to open mode explicitly (lwr warns at start-up);
    #: False leaves lwr's own default (a generated token), as tests of that default need.
    open_unless_token: bool = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def config_path(self) -> Path:
        return self.directory / "server.ini"

    @property
    def log_path(self) -> Path:
        return self.directory / "server.log"

    @property
    def staging(self) -> Path:
        return self.directory / "files" / "staging"

    def write_config(self) -> None:
        if not self.port:
            self.port = free_port()
        server = {
            "use": "egg:lwr#http",
            "host": "127.0.0.1",
            "port": str(self.port),
            "threadpool_workers": "16",
            "request_queue_size": "128",
            **self.server_options,
        }
        lines = ["[server:main]"] + [f"{key} = {value}" for key, value in server.items() if value is not None]
        lines += ["", "[app:main]", "paste.app_factory = lwr.app:app_factory"]
        options = dict(self.app_options)
        if self.open_unless_token and not any(key in options for key in AUTH_KEYS):
            options["allow_unauthenticated"] = "true"
        if self.job_managers_ini is not None:
            (self.directory / "job_managers.ini").write_text(self.job_managers_ini)
            options.setdefault("job_managers_config", "job_managers.ini")
        lines += [f"{key} = {value}" for key, value in options.items()]
        self.config_path.write_text("\n".join(lines) + "\n")

    def start(self, wait: bool = True) -> LwrServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.write_config()
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lwr.cli", "serve", "-c", str(self.config_path)],
            cwd=self.directory,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        wait_for_healthz(self.url, self.process, "lwr", self.log_text, timeout)

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        stop_process(self.process)

    def log_text(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""
