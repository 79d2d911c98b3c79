"""A scriptable HTTP server on loopback, for testing the transport's retries, errors and integrity."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Seen:
    """One request the stub received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    #: The client's (address, port): one per connection.
    peer: tuple[str, int] = ("", 0)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    #: Send a Content-Length this much larger than the body, then close: a truncated transfer.
    short_by: int = 0

    @classmethod
    def json(cls, value: Any, status: int = 200) -> Reply:
        return cls(status, json.dumps(value).encode(), {"Content-Type": "application/json"})

    @classmethod
    def file(cls, contents: bytes, digest: str | None = "auto") -> Reply:
        headers = {"Content-Type": "application/octet-stream"}
        if digest == "auto":
            digest = hashlib.sha256(contents).hexdigest()
        if digest:
            headers["X-Lwr-Sha256"] = digest
        return cls(200, contents, headers)


Handler = Callable[[Seen, int], Reply]


class StubServer:
    """Answers every request with ``handler(request, number of earlier requests to that path)``."""

    def __init__(self, handler: Handler, port: int = 0) -> None:
        self.handler = handler
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        stub = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                seen = Seen(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    dict(self.headers.items()),
                    body,
                    self.client_address[:2],
                )
                with stub._lock:
                    earlier = sum(1 for request in stub.seen if request.path == seen.path)
                    stub.seen.append(seen)
                reply = stub.handler(seen, earlier)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body) + reply.short_by))
                if reply.short_by:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(reply.body)
                if reply.short_by:
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", port), RequestHandler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def __enter__(self) -> StubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def requests_to(self, path: str) -> list[Seen]:
        return [request for request in self.seen if request.path == path]
