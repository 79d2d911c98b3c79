"""Zero-downtime restart: ``lwr serve --restart`` replaces a running server under load; no request is
refused or fails, an upload in progress completes, every job runs exactly once."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from http_helpers import Http
from server import LwrServer, wait_for_healthz

LWR = [sys.executable, "-m", "lwr.cli"]
MANAGERS = "[manager:_default_]\ntype = queued_python\nmax_concurrent_jobs = {}\n"


class Generation:
    """One ``lwr serve`` process of the restart chain (all share a directory, port and pid file)."""

    def __init__(self, base: LwrServer, pid_file: Path, restart: bool, concurrency: int) -> None:
        base.job_managers_ini = MANAGERS.format(concurrency)
        base.write_config()
        command = [*LWR, "serve", "-c", str(base.config_path), "--pid-file", str(pid_file)]
        if restart:
            command.append("--restart")
        self.log = open(base.log_path, "ab")
        self.process = subprocess.Popen(
            command,
            cwd=base.directory,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.log.close()


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[tuple[LwrServer, list[Generation]]]:
    base = LwrServer(directory=tmp_path / "lwr")
    base.directory.mkdir(parents=True)
    generations: list[Generation] = []
    yield base, generations
    for generation in generations:
        generation.stop()


class Load:
    """Status polls, health checks and job submissions in threads, counting every failure."""

    def __init__(self, http: Http, runs_log: Path) -> None:
        self.http = http
        self.runs_log = runs_log
        self.failures: list[str] = []
        self.requests = 0
        self.jobs: list[str] = []
        self.kept_alive_requests = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.poll, args=(index,)) for index in range(2)]
        self.threads.append(threading.Thread(target=self.poll_kept_alive))
        self.threads.append(threading.Thread(target=self.submit))

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)

    def call(self, what: str, action) -> object:
        try:
            result = action()
        except Exception as error:  # noqa: BLE001 - every kind of failure counts
            with self.lock:
                self.failures.append(f"{what}: {error!r}")
            return None
        with self.lock:
            self.requests += 1
        return result

    def poll(self, index: int) -> None:
        deadline = time.monotonic() + 120
        while not self.stop.is_set() and time.monotonic() < deadline:
            with self.lock:
                job = self.jobs[-1 - index] if len(self.jobs) > index else None
            if job is None:
                reply = self.call("healthz", lambda: self.http.request("GET", "/healthz"))
                if reply is not None and reply.status != 200:  # type: ignore[attr-defined]
                    self.failures.append(f"healthz: {reply}")
            else:
                self.call(f"status {job}", lambda job=job: self.http.status(job))

    def poll_kept_alive(self) -> None:
        """One connection reused for every request, as Galaxy's HTTP client pools them: a server
        closing it under a request would fail that request."""
        connection = http.client.HTTPConnection(self.http.host, self.http.port, timeout=60)
        deadline = time.monotonic() + 120
        reused = 0
        while not self.stop.is_set() and time.monotonic() < deadline:

            def one() -> int:
                connection.request("GET", "/healthz")
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    raise AssertionError(response.status)
                return 0 if response.will_close else 1

            reused += self.call("kept-alive healthz", one) or 0  # type: ignore[operator]
            time.sleep(0.005)
        connection.close()
        self.kept_alive_requests = reused

    def submit(self) -> None:
        for number in range(200):
            if self.stop.is_set():
                return
            job = f"job{number}"
            command = f"echo {job} >> {self.runs_log}; sleep 0.3; cat ../inputs/in.txt"
            if self.call(f"setup {job}", lambda job=job: self.http.setup(job)) is None:
                continue
            reply = self.call(f"upload {job}", lambda job=job: self.http.upload(job, "in.txt", job.encode()))
            if reply is None or reply.status != 200:  # type: ignore[attr-defined]
                self.failures.append(f"upload {job}: {reply}")
                continue
            reply = self.call(
                f"submit {job}", lambda job=job, command=command: self.http.submit(job, command)
            )
            if reply is None or reply.status != 200:  # type: ignore[attr-defined]
                self.failures.append(f"submit {job}: {reply}")
                continue
            with self.lock:
                self.jobs.append(job)
            time.sleep(0.05)


class SlowUpload(threading.Thread):
    """A 64 MiB upload sent 1 MiB every 50 ms, so it is in progress across a restart."""

    size = 64 << 20

    def __init__(self, http: Http, job: str) -> None:
        super().__init__()
        self.http = http
        self.job = job
        self.status_line = b""
        self.started_sending = threading.Event()

    def run(self) -> None:
        block = b"u" * (1 << 20)
        with socket.create_connection((self.http.host, self.http.port), timeout=120) as sock:
            sock.sendall(
                f"POST /jobs/{self.job}/files?name=big.bin&type=input HTTP/1.1\r\nHost: x\r\n"
                f"Content-Length: {self.size}\r\n\r\n".encode()
            )
            for index in range(self.size // len(block)):
                sock.sendall(block)
                if index == 2:
                    self.started_sending.set()
                time.sleep(0.05)
            self.status_line = sock.makefile("rb").readline()


def http_client_connection(target: Http) -> http.client.HTTPConnection:
    return http.client.HTTPConnection(target.host, target.port, timeout=60)


def wait_for_handover(old: Generation, new: Generation, pid_file: Path) -> None:
    old.process.wait(180)
    assert old.process.returncode == 0
    assert new.process.poll() is None
    deadline = time.monotonic() + 30
    while pid_file.read_text().strip() != str(new.process.pid):
        assert time.monotonic() < deadline, pid_file.read_text()
        time.sleep(0.05)


def test_restart_under_load_refuses_nothing_and_runs_every_job_once(chain, tmp_path):
    base, generations = chain
    pid_file = tmp_path / "lwr.pid"
    runs_log = tmp_path / "runs.log"
    generations.append(Generation(base, pid_file, restart=False, concurrency=2))
    http = Http(base.url)
    wait_for_healthz(base.url, generations[0].process, "lwr", base.log_text, 30)
    http.setup("big")

    idle = http_client_connection(http)  # kept alive and idle across the restart
    idle.request("GET", "/healthz")
    assert idle.getresponse().read()

    with Load(http, runs_log) as load:
        time.sleep(1.5)
        upload = SlowUpload(http, "big")
        upload.start()
        assert upload.started_sending.wait(30)
        # New configuration on the restart: three jobs at once instead of two.
        generations.append(Generation(base, pid_file, restart=True, concurrency=3))
        wait_for_handover(generations[0], generations[1], pid_file)
        idle.request("GET", "/healthz")  # on the same connection, now the new server's
        reply = idle.getresponse()
        assert reply.status == 200 and not reply.will_close and reply.read()
        upload.join(120)
        time.sleep(1.0)
        generations.append(Generation(base, pid_file, restart=True, concurrency=4))
        wait_for_handover(generations[1], generations[2], pid_file)
        time.sleep(1.5)

    assert load.failures == [], load.failures[:10]
    assert load.requests > 50 and load.kept_alive_requests > 50
    assert upload.status_line.startswith(b"HTTP/1.1 200"), upload.status_line
    assert (base.staging / "_default_" / "big" / "inputs" / "big.bin").stat().st_size == SlowUpload.size
    for job in load.jobs:
        status = http.wait_complete(job, timeout=120)
        assert status["status"] == "complete" and status["returncode"] == 0, status
        assert status["stdout"] == job
    assert sorted(runs_log.read_text().split()) == sorted(load.jobs), "a job ran twice or not at all"
    managers = json.loads(http.request("GET", "/managers").body)["managers"]
    assert managers[0]["max_concurrent_jobs"] == 4, "the last restart's configuration is in force"
    log = base.log_text()
    assert log.count("handing over to pid") == 2 and "Traceback" not in log
    assert "passed 1 waiting connection(s) on" in log


def test_restart_with_no_server_running_just_starts(chain, tmp_path):
    base, generations = chain
    pid_file = tmp_path / "lwr.pid"
    generations.append(Generation(base, pid_file, restart=True, concurrency=1))
    wait_for_healthz(base.url, generations[0].process, "lwr", base.log_text, 30)
    assert pid_file.read_text().strip() == str(generations[0].process.pid)


def test_a_successor_that_fails_to_start_leaves_the_old_server_serving(chain, tmp_path):
    base, generations = chain
    pid_file = tmp_path / "lwr.pid"
    generations.append(Generation(base, pid_file, restart=False, concurrency=1))
    wait_for_healthz(base.url, generations[0].process, "lwr", base.log_text, 30)
    broken = LwrServer(
        directory=tmp_path / "broken", port=base.port, app_options={"assign_ids": "sequential"}
    )
    broken.directory.mkdir()
    broken.write_config()
    result = subprocess.run(
        [*LWR, "serve", "-c", str(broken.config_path), "--restart", "--pid-file", str(pid_file)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "assign_ids" in result.stderr
    http = Http(base.url)
    assert http.request("GET", "/healthz").status == 200
    assert pid_file.read_text().strip() == str(generations[0].process.pid)
    # ... and it can still be restarted properly afterwards.
    generations.append(Generation(base, pid_file, restart=True, concurrency=1))
    wait_for_handover(generations[0], generations[1], pid_file)
    assert http.request("GET", "/healthz").status == 200


def test_run_sh_restart_replaces_the_daemon(tmp_path):
    import shutil

    from server import ROOT, free_port

    project = tmp_path / "project"
    project.mkdir()
    for name in ("run.sh", "server.ini.sample"):
        shutil.copy(ROOT / name, project / name)
    port = free_port()
    sample = (project / "server.ini.sample").read_text().replace("port = 8913", f"port = {port}")
    (project / "server.ini").write_text(sample)
    (project / "local_env.sh").write_text(f"export LWR_VENV={Path(sys.executable).parent.parent}\n")
    env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    url = f"http://127.0.0.1:{port}/"

    def run_sh(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "run.sh", *args], cwd=project, capture_output=True, text=True, timeout=120, env=env
        )

    pid_file = project / "lwr.pid"
    pids = []
    try:
        assert run_sh("--daemon").returncode == 0
        wait_for_healthz(url, None, "lwr", lambda: (project / "lwr.log").read_text(), 30)
        pids.append(int(pid_file.read_text()))
        for _ in range(2):
            restarted = run_sh("--restart")
            assert restarted.returncode == 0, restarted.stderr
            pids.append(int(pid_file.read_text()))
            assert pids[-1] != pids[-2]
            wait_for_healthz(url, None, "lwr", lambda: (project / "lwr.log").read_text(), 30)
    finally:
        stopped = run_sh("--stop-daemon")
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert stopped.returncode == 0, stopped.stderr
    assert f"pid {pids[-1]}" in stopped.stdout
    assert not pid_file.exists() and not (project / "lwr.pid.control").exists()


def test_restart_over_tls_refuses_nothing(chain, tmp_path):
    import ssl

    from test_slowloris import self_signed

    base, generations = chain
    pem, cert = self_signed(tmp_path)
    base.server_options = {"ssl_pem": pem}
    pid_file = tmp_path / "lwr.pid"
    generations.append(Generation(base, pid_file, restart=False, concurrency=1))
    context = ssl.create_default_context(cafile=cert)

    def get(path: str = "/healthz") -> int:
        connection = http.client.HTTPSConnection("127.0.0.1", base.port, context=context, timeout=30)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            return response.status
        finally:
            connection.close()

    deadline = time.monotonic() + 30
    while True:
        try:
            get()
            break
        except OSError:
            assert time.monotonic() < deadline, base.log_text()
            time.sleep(0.1)
    failures: list[str] = []
    served = [0]
    stop = threading.Event()

    def poll() -> None:
        end = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < end:
            try:
                status = get()
                if status != 200:
                    failures.append(str(status))
                served[0] += 1
            except Exception as error:  # noqa: BLE001
                failures.append(repr(error))

    pollers = [threading.Thread(target=poll) for _ in range(2)]
    for poller in pollers:
        poller.start()
    try:
        time.sleep(1)
        generations.append(Generation(base, pid_file, restart=True, concurrency=1))
        wait_for_handover(generations[0], generations[1], pid_file)
        time.sleep(1)
    finally:
        stop.set()
        for poller in pollers:
            poller.join(60)
    assert failures == [] and served[0] > 20, failures[:5]


def test_download_in_progress_completes_and_does_not_hold_the_restart(chain, tmp_path):
    import hashlib

    base, generations = chain
    pid_file = tmp_path / "lwr.pid"
    generations.append(Generation(base, pid_file, restart=False, concurrency=1))
    http = Http(base.url)
    wait_for_healthz(base.url, generations[0].process, "lwr", base.log_text, 30)
    size = 64 << 20
    data = os.urandom(1 << 20) * 64
    http.setup("dl")
    assert http.upload("dl", "big.bin", data).status == 200
    assert http.submit("dl", "cp ../inputs/big.bin ../outputs/big.bin").status == 200
    assert http.wait_complete("dl")["status"] == "complete"
    received = hashlib.sha256()
    total = [0]
    first_mib = threading.Event()

    def download() -> None:
        with socket.create_connection((http.host, http.port), timeout=120) as sock:
            sock.sendall(b"GET /jobs/dl/files?name=big.bin&type=output HTTP/1.1\r\nHost: x\r\n\r\n")
            stream = sock.makefile("rb")
            while stream.readline() not in (b"\r\n", b""):
                pass
            while total[0] < size:
                chunk = stream.read(min(1 << 20, size - total[0]))
                if not chunk:
                    return
                received.update(chunk)
                total[0] += len(chunk)
                first_mib.set()
                time.sleep(0.3)

    reader = threading.Thread(target=download)
    reader.start()
    assert first_mib.wait(30)
    generations.append(Generation(base, pid_file, restart=True, concurrency=1))
    deadline = time.monotonic() + 60
    while pid_file.read_text().strip() != str(generations[1].process.pid):
        assert time.monotonic() < deadline, base.log_text()
        time.sleep(0.05)
    # Read at ~3 MiB/s: a handover that waited for the server to send everything would come at
    # 60 MiB or more (the rest in socket buffers); one that does not wait comes long before.
    assert reader.is_alive() and total[0] < size // 2, (
        f"the handover waited for the download ({total[0]} bytes)"
    )
    assert http.request("GET", "/healthz").status == 200
    reader.join(120)
    assert total[0] == size and received.hexdigest() == hashlib.sha256(data).hexdigest()
    generations[0].process.wait(60)
    assert generations[0].process.returncode == 0


def test_restart_with_a_metrics_port_hands_it_over(chain, tmp_path):
    import urllib.request

    from server import free_port

    base, generations = chain
    metrics_port = free_port()
    base.app_options = {"metrics_port": str(metrics_port)}
    pid_file = tmp_path / "lwr.pid"
    generations.append(Generation(base, pid_file, restart=False, concurrency=1))
    wait_for_healthz(base.url, generations[0].process, "lwr", base.log_text, 30)
    generations.append(Generation(base, pid_file, restart=True, concurrency=1))
    wait_for_handover(generations[0], generations[1], pid_file)
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
        assert b"lwr_jobs" in response.read()
    assert "Traceback" not in base.log_text()
