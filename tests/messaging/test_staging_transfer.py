"""Server-side staging transfers against a loopback HTTP server: retries, redirects re-checked,
atomic placement, streamed multipart uploads."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from lwr.errors import StagingError
from lwr.staging.allow_list import UrlPolicy, UrlRefused
from lwr.staging.transfer import Transfers


class Script:
    """Answers each path with the next of its scripted responses: (status, headers, body)."""

    def __init__(self) -> None:
        self.responses: dict[str, list[tuple[int, dict[str, str], bytes]]] = {}
        self.seen: list[tuple[str, str, bytes]] = []
        self.request_headers: list[dict[str, str]] = []
        script = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                script.seen.append((self.command, self.path, body))
                script.request_headers.append({key.lower(): value for key, value in self.headers.items()})
                queue = script.responses.get(self.path.split("?")[0], [(404, {}, b"")])
                status, headers, data = queue.pop(0) if len(queue) > 1 else queue[0]
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = _answer  # noqa: N815
            do_POST = _answer  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def script():
    server = Script()
    yield server
    server.server.shutdown()


def transfers(script: Script, *extra: str) -> Transfers:
    return Transfers(UrlPolicy([script.base + "/ok/", *extra]), attempts=3, backoff=0.01)


def test_download_retries_transient_failures_and_places_atomically(script, tmp_path):
    script.responses["/ok/file"] = [
        (503, {}, b""),
        (200, {"Content-Length": "10"}, b"short"),
        (200, {}, b"the content"),
    ]
    destination = tmp_path / "inputs" / "file.dat"
    transfers(script).download(script.base + "/ok/file?path=/x", destination)
    assert destination.read_bytes() == b"the content"
    assert list(destination.parent.iterdir()) == [destination], "no partial file left behind"
    assert len(script.seen) == 3


def test_download_gives_up_and_leaves_nothing(script, tmp_path):
    script.responses["/ok/file"] = [(500, {}, b"")]
    destination = tmp_path / "file.dat"
    with pytest.raises(StagingError, match="after 3 attempts"):
        transfers(script).download(script.base + "/ok/file", destination)
    assert list(tmp_path.iterdir()) == []


def test_client_errors_are_not_retried(script, tmp_path):
    script.responses["/ok/file"] = [(404, {}, b"")]
    with pytest.raises(StagingError, match="HTTP 404"):
        transfers(script).download(script.base + "/ok/file", tmp_path / "f")
    assert len(script.seen) == 1


def test_redirects_are_followed_only_to_allowed_urls(script, tmp_path):
    script.responses["/ok/moved"] = [(302, {"Location": "/ok/file"}, b"")]
    script.responses["/ok/file"] = [(200, {}, b"moved here")]
    script.responses["/ok/away"] = [(302, {"Location": "/elsewhere/secret"}, b"")]
    transfers(script).download(script.base + "/ok/moved", tmp_path / "a")
    assert (tmp_path / "a").read_bytes() == b"moved here"
    with pytest.raises(UrlRefused):
        transfers(script).download(script.base + "/ok/away", tmp_path / "b")
    assert not any(path.startswith("/elsewhere") for _m, path, _b in script.seen)
    with pytest.raises(UrlRefused):
        transfers(script).download(script.base + "/elsewhere/secret", tmp_path / "c")
    assert not any(path.startswith("/elsewhere") for _m, path, _b in script.seen)


def test_upload_is_a_streamed_multipart_form(script, tmp_path):
    script.responses["/ok/upload"] = [(502, {}, b""), (200, {}, b"{}")]
    source = tmp_path / "out.dat"
    source.write_bytes(b"\x00output bytes\xff" * 1000)
    transfers(script).upload(script.base + "/ok/upload?path=/galaxy/out.dat", source)
    method, _path, body = script.seen[-1]
    assert method == "POST" and len(script.seen) == 2
    assert b'name="file"' in body and source.read_bytes() in body
    headers = script.request_headers[-1]
    assert "transfer-encoding" not in headers, "a Content-Length body must not also claim to be chunked"
    assert int(headers["content-length"]) == len(body)


def test_upload_redirect_that_would_drop_the_body_fails(script, tmp_path):
    script.responses["/ok/upload"] = [(302, {"Location": "/ok/other"}, b"")]
    source = tmp_path / "out.dat"
    source.write_text("x")
    with pytest.raises(StagingError, match="redirected with 302"):
        transfers(script).upload(script.base + "/ok/upload", source)


def test_remote_copy_in_and_out(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "in.dat").write_text("input")
    staging = Transfers(UrlPolicy([f"file://{shared}"]))
    staging.copy_in(str(shared / "in.dat"), tmp_path / "job" / "inputs" / "in.dat")
    assert (tmp_path / "job" / "inputs" / "in.dat").read_text() == "input"
    (tmp_path / "out.dat").write_text("output")
    staging.copy_out(tmp_path / "out.dat", str(shared / "results" / "out.dat"))
    assert (shared / "results" / "out.dat").read_text() == "output"
    with pytest.raises(UrlRefused):
        staging.copy_in("/etc/hostname", tmp_path / "x")


class RangeServer:
    """Serves ``DATA``; the first full GET breaks off half-way; range requests are honoured."""

    DATA = bytes(range(256)) * 1024

    def __init__(self) -> None:
        self.ranges: list[str | None] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                wanted = self.headers.get("Range")
                server.ranges.append(wanted)
                data = RangeServer.DATA
                if wanted:
                    start = int(wanted.split("=")[1].rstrip("-"))
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                    self.send_header("Content-Length", str(len(data) - start))
                    self.end_headers()
                    self.wfile.write(data[start:])
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_interrupted_download_resumes_with_a_range_request(tmp_path):
    server = RangeServer()
    try:
        staging = Transfers(UrlPolicy([server.base + "/"]), attempts=3, backoff=0.01)
        destination = tmp_path / "inputs" / "data.bin"
        partial = tmp_path / "lwr" / "partial" / "data"
        staging.download(server.base + "/data", destination, partial)
        assert destination.read_bytes() == RangeServer.DATA
        assert server.ranges == [None, f"bytes={len(RangeServer.DATA) // 2}-"]
        assert not partial.exists()
        # A partial file left by a killed lwr is resumed too.
        partial.write_bytes(RangeServer.DATA[:100])
        staging.download(server.base + "/data", tmp_path / "inputs" / "again.bin", partial)
        assert (tmp_path / "inputs" / "again.bin").read_bytes() == RangeServer.DATA
        assert server.ranges[-1] == "bytes=100-"
    finally:
        server.server.shutdown()
