"""Server-side staging against a stalled Galaxy (Pulsar issue 349): 1,000 jobs whose files endpoint
accepts connections and never answers, beside a healthy endpoint whose jobs must still finish.

lwr stages in one bounded pool (lwr/staging/pool.py): the stalled host holds at most
``staging_threads_per_host`` connections and threads; its other jobs wait in a backlog that costs
neither, and /managers shows it. Once the endpoint answers again, every job finishes.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from typing import Any

import kombu
from mq_helpers import exchange, queue_name, wait_for
from test_mq_jobs import remote_input, setup_message

from http_helpers import Http

STALLED_JOBS = 1000
HEALTHY_JOBS = 20
PER_HOST = 2


class StalledEndpoint:
    """Accepts every connection, reads the request, answers nothing until ``release()``; then
    serves ``payload`` to every request, held ones included. Counts connections open at once."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.released = threading.Event()
        self.open = 0
        self.peak = 0
        self.accepted = 0
        self._lock = threading.Lock()
        self.socket = socket.create_server(("127.0.0.1", 0), backlog=1024)
        self.port = self.socket.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}/"
        self.url = f"{self.base}api/jobs/1/files?job_key=k3y"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            with self._lock:
                self.open += 1
                self.accepted += 1
                self.peak = max(self.peak, self.open)
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        try:
            with connection:
                reader = connection.makefile("rb")
                while True:
                    request = b""
                    while not request.endswith(b"\r\n\r\n"):
                        line = reader.readline()
                        if not line:
                            return
                        request += line
                    self.released.wait()
                    connection.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(self.payload) + self.payload
                    )
        except OSError:
            pass
        finally:
            with self._lock:
                self.open -= 1

    def release(self) -> None:
        self.released.set()

    def stop(self) -> None:
        self.released.set()
        self.socket.close()


def publish_many(url: str, bodies: list[dict[str, Any]]) -> None:
    key = queue_name("_default_", "setup")
    with kombu.Connection(url) as connection:
        channel = connection.channel()
        kombu.Queue(key, exchange(), routing_key=key, durable=True)(channel).declare()
        producer = kombu.Producer(channel)
        for body in bodies:
            producer.publish(body, exchange=exchange(), routing_key=key, serializer="json", delivery_mode=2)


def process_usage(pid: int) -> tuple[int, int]:
    """(threads, open file descriptors) of a process."""
    threads = next(
        int(line.split()[1])
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("Threads:")
    )
    return threads, len(os.listdir(f"/proc/{pid}/fd"))


def final_statuses(listener: Any) -> dict[str, dict[str, Any]]:
    return {body["job_id"]: body for body in list(listener.all) if body.get("complete") == "true"}


def test_a_stalled_galaxy_exhausts_nothing_and_other_jobs_flow(
    mq_server, vhost, listener, files_endpoint, tmp_path
) -> None:
    stalled = StalledEndpoint(b"stalled input\n")
    try:
        healthy_source = tmp_path / "healthy.dat"
        healthy_source.write_text("healthy input\n")
        server: Any = mq_server(
            remote_staging_allowed_urls=f"{files_endpoint.base},{stalled.base}",
            staging_threads="8",
            staging_threads_per_host=str(PER_HOST),
            job_managers_ini="[manager:_default_]\ntype = queued_python\nmax_concurrent_jobs = 4\n",
        )
        pid = server.process.pid
        publish_many(
            vhost.url,
            [
                setup_message(
                    f"stalled-{index}",
                    "cat ../inputs/input.dat",
                    remote_staging=remote_input(stalled.url, Path("/x/stalled.dat")),
                )
                for index in range(STALLED_JOBS)
            ],
        )
        publish_many(
            vhost.url,
            [
                setup_message(
                    f"healthy-{index}",
                    "cat ../inputs/input.dat",
                    remote_staging=remote_input(files_endpoint.url, healthy_source),
                )
                for index in range(HEALTHY_JOBS)
            ],
        )

        def healthy_done() -> bool:
            finals = final_statuses(listener)
            return all(f"healthy-{index}" in finals for index in range(HEALTHY_JOBS))

        wait_for(healthy_done, "the healthy host's jobs", timeout=180)
        finals = final_statuses(listener)
        assert {finals[f"healthy-{index}"]["status"] for index in range(HEALTHY_JOBS)} == {"complete"}
        assert finals["healthy-0"]["stdout"] == "healthy input\n"

        http = Http(server.url)
        stalled_host = f"127.0.0.1:{stalled.port}"

        def backlog() -> dict[str, Any]:
            return http.request("GET", "/managers").json()["staging"]

        wait_for(
            lambda: (
                sum(backlog()["hosts"].get(stalled_host, {"waiting": 0, "running": 0}).values())
                == STALLED_JOBS
            ),
            "every stalled job in the staging backlog",
            timeout=120,
        )
        staging = backlog()
        assert staging["hosts"][stalled_host] == {"waiting": STALLED_JOBS - PER_HOST, "running": PER_HOST}
        assert staging["threads"] <= 8
        threads, fds = process_usage(pid)
        assert stalled.peak <= PER_HOST, f"{stalled.peak} connections to the stalled host at once"
        assert threads < 100, f"{threads} threads in lwr with {STALLED_JOBS} jobs stalled"
        assert fds < 200, f"{fds} file descriptors open in lwr with {STALLED_JOBS} jobs stalled"
        assert not any(job_id.startswith("stalled-") for job_id in final_statuses(listener))

        stalled.release()
        wait_for(
            lambda: (
                sum(1 for job_id in final_statuses(listener) if job_id.startswith("stalled-")) == STALLED_JOBS
            ),
            "every stalled job to finish once its host answers",
            timeout=600,
        )
        finals = final_statuses(listener)
        statuses = {finals[f"stalled-{index}"]["status"] for index in range(STALLED_JOBS)}
        assert statuses == {"complete"}, statuses
        assert finals["stalled-999"]["stdout"] == "stalled input\n"
        assert stalled.peak <= PER_HOST
        assert backlog()["hosts"] == {}
    finally:
        stalled.stop()
