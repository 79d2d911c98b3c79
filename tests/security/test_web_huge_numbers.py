"""Numbers in request heads that Python cannot (or should not) convert: a 4xx, never a dead server.

Attack (issue 8, a and b): Python refuses to convert a decimal string of more than 4,300 digits
(``int()`` raises ValueError), and ``str.isdigit`` accepts characters ``int`` does not (``²``,
Latin-1 0xB2). Before lwr bounded them, one request without a token carrying such a
``Content-Length`` raised out of the HTTP server's event loop and ended the lwr process, and a
``Range`` of that length made a download answer 500 with a traceback in the log. Each number
is sent to a real lwr (and to the client's files endpoint, which runs the same HTTP server).
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from lwr.client.files_endpoint import FilesEndpoint

from http_helpers import Http
from server import TOKEN

#: Just past the digits Python converts, and characters isdigit() accepts but int() refuses.
HUGE = "9" * 5000
CONTENT_LENGTHS = [HUGE, "\xb2", "1\xb9", "0" * 5000 + "1", "+5", " 5 5"]


def send(port: int, head: bytes) -> tuple[int, bytes]:
    """Send a request head byte for byte (no body); the status and body of the reply, or (0, b"")."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
    if not data:
        return 0, b""
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def upload_head(path: str, length: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Content-Length: {length}\r\n\r\n".encode("latin-1")
    )


@pytest.fixture
def server(make_server):
    return make_server("huge-numbers", app_options={"private_token": TOKEN})


def test_content_length_without_a_token_does_not_end_the_server(server):
    for length in CONTENT_LENGTHS:
        status, body = send(server.port, upload_head("/jobs/x/files?name=a", length))
        assert status == 400, (length[:10], status, body)
        assert json.loads(body)["code"] == "bad_request"
        assert server.process.poll() is None, server.log_text()[-3000:]
        assert Http(server.url).request("GET", "/healthz").status == 200
    assert "Traceback" not in server.log_text()


def test_huge_range_is_answered_not_a_500(server):
    http = Http(server.url, TOKEN)
    http.setup("r1")
    assert http.upload("r1", "a.txt", b"0123456789").status == 200
    params = {"name": "inputs/a.txt", "type": "output_jobdir"}
    expected = {
        f"bytes=2-{HUGE}": (206, b"23456789"),  # to the end of the file
        f"bytes=-{HUGE}": (206, b"0123456789"),  # a suffix longer than the file: all of it
        f"bytes={HUGE}-": (416, None),  # starts beyond the file
        f"bytes={HUGE}-{HUGE}": (416, None),
    }
    for header, (status, body) in expected.items():
        reply = http.request("GET", "/jobs/r1/files", params, headers={"Range": header})
        assert reply.status == status, (header[:20], reply)
        if body is not None:
            assert reply.body == body
        else:
            assert json.loads(reply.body)["code"] == "range_not_satisfiable"
    log = server.log_text()
    assert "Traceback" not in log and "unexpected error" not in log, log[-3000:]


def test_files_endpoint_survives_huge_numbers(tmp_path: Path):
    source = tmp_path / "input.dat"
    source.write_bytes(b"0123456789")
    with FilesEndpoint() as endpoint:
        endpoint.allow_read([str(source)])
        query = f"job_key={endpoint.job_key}&path={source}"
        for length in CONTENT_LENGTHS:
            status, _body = send(endpoint.port, upload_head(f"/api/jobs/1/files?{query}", length))
            assert status == 400, (length[:10], status)
        head = (
            f"GET /api/jobs/1/files?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            f"Range: bytes=2-{HUGE}\r\n\r\n"
        ).encode()
        status, body = send(endpoint.port, head)
        assert (status, body) == (206, b"23456789")
