"""A stand-in for Galaxy's job files API, the ``files_endpoint`` of ``remote_transfer``.

The server under test fetches inputs with ``GET ?path=P&file_type=T`` and posts outputs with
``POST ?path=P&file_type=T`` (a multipart form, field ``file``); here both act on local paths.
"""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit


def _multipart_file(content_type: str, body: bytes) -> bytes:
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        return body  # not a form: the body is the file
    delimiter = b"--" + match.group(1).encode()
    for part in body.split(delimiter)[1:]:
        if part.startswith(b"--"):
            break
        headers, _, contents = part.partition(b"\r\n\r\n")
        if b'name="file"' in headers:
            return contents[:-2] if contents.endswith(b"\r\n") else contents
    raise ValueError("no file field in the form")


class FilesEndpoint:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _path(self) -> Path:
                query = parse_qs(urlsplit(self.path).query)
                endpoint.requests.append((self.command, query["path"][0]))
                return Path(query["path"][0])

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 - stdlib naming
                path = self._path()
                if not path.is_file():
                    self._reply(404, b"no such file")
                    return
                self._reply(200, path.read_bytes())

            def do_POST(self) -> None:  # noqa: N802
                path = self._path()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(_multipart_file(self.headers.get("Content-Type", ""), body))
                self._reply(200, b"{}")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    @property
    def url(self) -> str:
        return self.base + "api/jobs/1/files?job_key=test"

    def start(self) -> FilesEndpoint:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
