"""Fixtures of the operations tests: lwr servers over HTTP and, with a private vhost, over AMQP."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "messaging"))

import mq_fixtures  # noqa: E402
from mq_helpers import StatusListener  # noqa: E402

vhost, files_endpoint, listener, mq_server = (
    mq_fixtures.vhost,
    mq_fixtures.files_endpoint,
    mq_fixtures.listener,
    mq_fixtures.mq_server,
)


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """Poll ``condition`` until it returns something true; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def setup_message(job_id: str, command: str, **extra: object) -> dict:
    return {
        "job_id": job_id,
        "command_line": command,
        "setup_params": {"job_id": job_id, "tool_id": "t", "tool_version": "1"},
        **extra,
    }


def remote_input(endpoint_url: str, source: Path, name: str = "input.dat") -> dict:
    url = f"{endpoint_url}&path={source}&file_type=input"
    return {
        "setup": [
            {
                "name": name,
                "type": "input",
                "action": {
                    "action_type": "remote_transfer",
                    "url": url,
                    "source": {"path": str(source)},
                    "path": str(source),
                },
            }
        ]
    }


class RefusingEndpoint:
    """A files endpoint that answers every POST with 400 until ``accept`` is set; then it keeps the body."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.accept = False
        self.received: list[bytes] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if not endpoint.accept:
                    self.send_response(400)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                endpoint.received.append(body)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.url = f"{self.base}api/jobs/1/files?job_key=k3y"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture
def refusing_endpoint() -> Iterator[RefusingEndpoint]:
    endpoint = RefusingEndpoint()
    yield endpoint
    endpoint.stop()


def final_of(listener: StatusListener, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
    """The final status of ``job_id``, however many other jobs' updates came first."""

    def final() -> dict[str, Any] | None:
        listener_updates = [u for u in listener.for_job(job_id) if u.get("complete") == "true"]
        return listener_updates[-1] if listener_updates else None

    return wait_for(final, f"the final status of {job_id}", timeout)
