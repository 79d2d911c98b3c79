"""The pid file cannot lie: a crashed server never blocks a start, two servers never share a pid file."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from http_helpers import Http
from server import LwrServer

LWR = [sys.executable, "-m", "lwr.cli"]


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def wait_healthy(port: int, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not healthy(port):
        assert time.monotonic() < deadline, log.read_text() if log.exists() else "no log"
        time.sleep(0.05)


class Daemons:
    """Starts ``lwr serve --daemon`` processes; kills every pid they wrote at the end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pids: set[int] = set()

    def config(self, name: str) -> LwrServer:
        server = LwrServer(directory=self.root / name)
        server.directory.mkdir(parents=True, exist_ok=True)
        server.write_config()
        return server

    def start(self, server: LwrServer, pid_file: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                *LWR,
                "serve",
                "-c",
                str(server.config_path),
                "--daemon",
                "--pid-file",
                str(pid_file),
                "--log-file",
                str(server.log_path),
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=server.directory,
        )

    def remember(self, pid_file: Path) -> int:
        pid = int(pid_file.read_text())
        self.pids.add(pid)
        return pid

    def cleanup(self) -> None:
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Daemons]:
    made = Daemons(tmp_path)
    yield made
    made.cleanup()


def test_kill9_then_immediate_start_always_starts(daemons, tmp_path):
    server = daemons.config("lwr")
    pid_file = tmp_path / "run" / "lwr.pid"
    previous = None
    for attempt in range(10):
        started = daemons.start(server, pid_file)
        assert started.returncode == 0, f"attempt {attempt}: {started.stderr}"
        wait_healthy(server.port, server.log_path)
        pid = daemons.remember(pid_file)
        assert pid != previous
        previous = pid
        os.kill(pid, signal.SIGKILL)  # and start again at once, the dead pid maybe still a zombie
    assert pid_file.exists(), "kill -9 leaves the file behind; it must not matter"


def test_a_live_unrelated_pid_in_the_file_does_not_block(daemons, tmp_path):
    """A reused pid: the file names a live process that is not lwr (this test's own)."""
    server = daemons.config("lwr")
    pid_file = tmp_path / "lwr.pid"
    pid_file.write_text(f"{os.getpid()}\n")
    started = daemons.start(server, pid_file)
    assert started.returncode == 0, started.stderr
    wait_healthy(server.port, server.log_path)
    assert daemons.remember(pid_file) != os.getpid()


def test_two_concurrent_starts_on_one_pid_file_run_one_server(daemons, tmp_path):
    pid_file = tmp_path / "lwr.pid"
    for round_ in range(3):
        servers = [daemons.config(f"lwr{round_}-{index}") for index in range(2)]
        commands = [
            [
                *LWR,
                "serve",
                "-c",
                str(server.config_path),
                "--daemon",
                "--pid-file",
                str(pid_file),
                "--log-file",
                str(server.log_path),
            ]
            for server in servers
        ]
        processes = [
            subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=server.directory
            )
            for command, server in zip(commands, servers)
        ]
        results = [process.communicate(timeout=60) for process in processes]
        codes = sorted(process.returncode for process in processes)
        assert codes == [0, 1], results
        loser = next(result for result, process in zip(results, processes) if process.returncode == 1)
        assert "already running" in loser[1]
        winner = next(server for server, process in zip(servers, processes) if process.returncode == 0)
        wait_healthy(winner.port, winner.log_path)
        pid = daemons.remember(pid_file)
        others = [server for server in servers if server is not winner]
        assert not any(healthy(server.port) for server in others)
        # Stopping goes through the lock: it stops exactly the winner and removes the file.
        stopped = subprocess.run(
            [*LWR, "serve", "--stop-daemon", "--pid-file", str(pid_file)],
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert stopped.returncode == 0, stopped.stderr
        assert f"pid {pid}" in stopped.stdout
        assert not pid_file.exists()
        assert not healthy(winner.port)


def test_foreground_server_with_a_pid_file_refuses_a_second(daemons, tmp_path):
    first, second = daemons.config("one"), daemons.config("two")
    pid_file = tmp_path / "lwr.pid"
    process = subprocess.Popen(
        [*LWR, "serve", "-c", str(first.config_path), "--pid-file", str(pid_file)],
        stdout=open(first.log_path, "ab"),
        stderr=subprocess.STDOUT,
        cwd=first.directory,
    )
    try:
        wait_healthy(first.port, first.log_path)
        assert int(pid_file.read_text()) == process.pid
        refused = subprocess.run(
            [*LWR, "serve", "-c", str(second.config_path), "--pid-file", str(pid_file)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert refused.returncode == 1 and f"pid {process.pid}" in refused.stderr
        assert healthy(first.port)
    finally:
        process.terminate()
        process.wait(30)
    assert not pid_file.exists()


def test_stop_daemon_after_a_crash_says_not_running_and_clears_the_file(daemons, tmp_path):
    server = daemons.config("lwr")
    pid_file = tmp_path / "lwr.pid"
    assert daemons.start(server, pid_file).returncode == 0
    wait_healthy(server.port, server.log_path)
    os.kill(daemons.remember(pid_file), signal.SIGKILL)
    deadline = time.monotonic() + 10
    while healthy(server.port):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    stopped = subprocess.run(
        [*LWR, "serve", "--stop-daemon", "--pid-file", str(pid_file)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert stopped.returncode == 1 and "not running" in stopped.stderr
    assert not pid_file.exists()


def test_stop_daemon_says_why_it_waits_while_an_upload_drains(daemons, tmp_path):
    """A stop behind a long upload waited minutes without a word (an admin reaches for kill -9)."""
    server = daemons.config("draining")
    pid_file = tmp_path / "draining.pid"
    assert daemons.start(server, pid_file).returncode == 0
    daemons.remember(pid_file)
    wait_healthy(server.port, server.log_path)
    Http(server.url).setup("j1")
    upload = socket.create_connection(("127.0.0.1", server.port))
    upload.sendall(
        b"POST /jobs/j1/files?name=big.dat HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n"
        + b"x" * 1000
    )
    time.sleep(0.5)
    stopping = subprocess.Popen(
        [*LWR, "serve", "--stop-daemon", "--pid-file", str(pid_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(4)
    assert stopping.poll() is None  # still draining the upload
    upload.close()
    out, err = stopping.communicate(timeout=60)
    assert stopping.returncode == 0, out + err
    assert "letting the requests in progress finish" in err and "stopped" in out
