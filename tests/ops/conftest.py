"""Fixtures of the operations tests: lwr servers over HTTP and, with a private vhost, over AMQP."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "messaging"))

import mq_fixtures  # noqa: E402

vhost, files_endpoint, listener, mq_server = (
    mq_fixtures.vhost,
    mq_fixtures.files_endpoint,
    mq_fixtures.listener,
    mq_fixtures.mq_server,
)


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
