"""Hostile or malformed HTTP input gets a 4xx JSON error and one log line, never a 500 and a traceback.

Attack (issue 8, b): a client with the token sends what the handlers never expected: an upload
onto a directory, deeply nested JSON, bytes that are not UTF-8 in the path or the query, a
chunked body, a uuid-mode submit for an id that was never set up. Each is sent to a real lwr.
"""

from __future__ import annotations

import json
import os
import socket

import pytest

from http_helpers import Http
from server import TOKEN


@pytest.fixture
def server(make_server):
    return make_server("bad-input", app_options={"private_token": TOKEN})


@pytest.fixture
def http(server):
    return Http(server.url, TOKEN)


def raw_request(server, request_line: bytes, headers: bytes = b"", body: bytes = b"") -> tuple[int, bytes]:
    """Send bytes exactly as given; return the status and the body."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(request_line + b"\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + headers + b"\r\n" + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, reply_body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), reply_body


def assert_clean_refusal(server, status: int, body: bytes, expected: set[int]) -> None:
    assert status in expected, (status, body)
    assert "error" in json.loads(body)
    log = server.log_text()
    assert "Traceback" not in log and "unexpected error" not in log, log[-3000:]


def test_upload_onto_a_directory_or_below_a_file(server, http):
    http.setup("dir1")
    assert http.upload("dir1", "sub/a.txt", b"a").status == 200
    onto_directory = http.upload("dir1", "sub", b"b")
    assert_clean_refusal(server, onto_directory.status, onto_directory.body, {409})
    below_a_file = http.upload("dir1", "sub/a.txt/b.txt", b"c")
    assert_clean_refusal(server, below_a_file.status, below_a_file.body, {409})
    assert http.request("GET", "/healthz").status == 200


def test_json_nested_100000_deep(server, http):
    http.setup("deep1")
    # 100,000 deep (600 KB URL-encoded) is over the request-line limit; 30,000 reaches the decoder
    deep = "[" * 100_000 + "]" * 100_000
    for name in ("params", "env", "setup_params", "dependencies_description", "submit_extras"):
        reply = http.submit("deep1", "true", **{name: deep})
        assert_clean_refusal(server, reply.status, reply.body, {400, 414})
        reply = http.submit("deep1", "true", **{name: "[" * 30_000 + "]" * 30_000})
        assert_clean_refusal(server, reply.status, reply.body, {400})
    # Deep, but not deep enough for the parser to fail: still refused, before it reaches the job record.
    reply = http.submit("deep1", "true", dependencies_description="[" * 500 + "]" * 500)
    assert_clean_refusal(server, reply.status, reply.body, {400})
    assert http.submit("deep1", "true").status == 200


@pytest.mark.parametrize("target", [
    b"/jobs/x/status?private_token=" + TOKEN.encode() + b"&a=%ff%fe",
    b"/jobs/x%ff/status?private_token=" + TOKEN.encode(),
    b"/jobs/x\xff\xfe/status?private_token=" + TOKEN.encode(),
    b"/jobs/x/files?private_token=" + TOKEN.encode() + b"&name=%c3%28&type=output",
    b"/%ff?private_token=%ff",
])
def test_invalid_utf8_in_the_path_or_query(server, target):
    status, body = raw_request(server, b"GET " + target + b" HTTP/1.1")
    assert_clean_refusal(server, status, body, {400, 401})


def test_nul_and_repeated_parameters(server, http):
    http.setup("nul1")
    reply = http.request("POST", "/jobs/nul1/files", {"name": "a\0b", "type": "input"}, body=b"x")
    assert_clean_refusal(server, reply.status, reply.body, {400})
    status, body = raw_request(server, b"GET /jobs/nul1/status?private_token=" + TOKEN.encode() +
                               b"&private_token=other HTTP/1.1")
    assert_clean_refusal(server, status, body, {400})


def test_chunked_upload_is_read_whole_never_stored_empty(server, http):
    """egg:lwr#http decodes chunked bodies (wsgi.input_terminated): the file arrives whole."""
    config = http.setup("chunk1")
    body = b"5\r\nhello\r\n0\r\n\r\n"
    status, reply = raw_request(
        server, b"POST /jobs/chunk1/files?name=c.txt&type=input&private_token=" + TOKEN.encode() + b" HTTP/1.1",
        b"Transfer-Encoding: chunked\r\n", body)
    assert status == 200, reply
    with open(os.path.join(config["inputs_directory"], "c.txt"), "rb") as stored:
        assert stored.read() == b"hello"
    assert http.request("GET", "/healthz").status == 200


def test_chunked_upload_on_a_server_that_cannot_decode_it_is_411(make_server, tmp_path):
    """Paste's server reports a chunked body as 0 bytes: refused, never stored as an empty file."""
    server = make_server("paste", server_options={"use": "egg:Paste#http"}, app_options={"private_token": TOKEN})
    config = Http(server.url, TOKEN).setup("chunk2")
    status, reply = raw_request(
        server, b"POST /jobs/chunk2/files?name=c.txt&type=input&private_token=" + TOKEN.encode() + b" HTTP/1.1",
        b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n")
    assert_clean_refusal(server, status, reply, {411})
    assert not os.path.exists(os.path.join(config["inputs_directory"], "c.txt"))


def test_uuid_submit_with_setup_params_for_an_unknown_id_leaves_no_job(make_server):
    server = make_server("uuid", app_options={"private_token": TOKEN, "assign_ids": "uuid"})
    http = Http(server.url, TOKEN)
    reply = http.submit("never-set-up", "touch ran", setup_params=json.dumps({"tool_id": "cat1"}))
    assert_clean_refusal(server, reply.status, reply.body, {404})
    jobs = server.staging / "_default_"
    assert not jobs.exists() or os.listdir(jobs) == []
    persisted = server.directory / "files" / "persisted_data"
    assert not any(name.endswith(".json") for _, _, names in os.walk(persisted) for name in names)
