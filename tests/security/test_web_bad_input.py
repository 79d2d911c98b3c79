"""Hostile or malformed HTTP input gets a 4xx JSON error and one log line, never a 500 and a traceback.

Attack (issue 8, b): a client with the token sends what the handlers never expected: an upload
onto a directory, deeply nested JSON, bytes that are not UTF-8 in the path or the query, a
chunked body, a uuid-mode submit for an id that was never set up. Each is sent to a real lwr.
"""

from __future__ import annotations

import json
import os
import socket
from http.client import HTTPConnection

import pytest

from http_helpers import Http
from server import TOKEN

#: lwr's own server (the default) and Paste's, which lwr still supports: each reaches the app
#: with its own idea of paths, chunked bodies and long lines. Long lines are allowed here so the
#: deep JSON reaches the decoder.
SERVERS = {"lwr": {"max_request_line": "4M"}, "paste": {"use": "egg:Paste#http"}}


@pytest.fixture(params=sorted(SERVERS))
def server(make_server, request):
    return make_server(
        f"bad-input-{request.param}",
        app_options={"private_token": TOKEN},
        server_options=SERVERS[request.param],
    )


@pytest.fixture
def http(server):
    return Http(server.url, TOKEN)


def raw_request(server, request_line: bytes, headers: bytes = b"", body: bytes = b"") -> tuple[int, bytes]:
    """Send bytes exactly as given; return the status and the body."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(
            request_line + b"\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + headers + b"\r\n" + body
        )
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


@pytest.mark.parametrize(
    "target",
    [
        b"/jobs/x/status?private_token=" + TOKEN.encode() + b"&a=%ff%fe",
        b"/jobs/x%ff/status?private_token=" + TOKEN.encode(),
        b"/jobs/x\xff\xfe/status?private_token=" + TOKEN.encode(),
        b"/jobs/x/files?private_token=" + TOKEN.encode() + b"&name=%c3%28&type=output",
        b"/%ff?private_token=%ff",
    ],
)
def test_invalid_utf8_in_the_path_or_query(server, target):
    status, body = raw_request(server, b"GET " + target + b" HTTP/1.1")
    assert_clean_refusal(server, status, body, {400, 401})


def test_nul_and_repeated_parameters(server, http):
    http.setup("nul1")
    reply = http.request("POST", "/jobs/nul1/files", {"name": "a\0b", "type": "input"}, body=b"x")
    assert_clean_refusal(server, reply.status, reply.body, {400})
    status, body = raw_request(
        server, b"GET /jobs/nul1/status?private_token=" + TOKEN.encode() + b"&private_token=other HTTP/1.1"
    )
    assert_clean_refusal(server, status, body, {400})


def test_chunked_upload_is_read_whole_or_refused_never_stored_empty(server, http):
    config = http.setup("chunk1")
    body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    status, reply = raw_request(
        server,
        b"POST /jobs/chunk1/files?name=c.txt&type=input&private_token=" + TOKEN.encode() + b" HTTP/1.1",
        b"Transfer-Encoding: chunked\r\n",
        body,
    )
    stored = os.path.join(config["inputs_directory"], "c.txt")
    if status == 200:  # a server that decodes chunked bodies (lwr's own)
        with open(stored, "rb") as handle:
            assert handle.read() == b"hello world"
    else:  # one that cannot (Paste): 411, and nothing stored
        assert_clean_refusal(server, status, reply, {411})
        assert not os.path.exists(stored)
    assert http.request("GET", "/healthz").status == 200


def test_uuid_submit_with_setup_params_for_an_unknown_id_leaves_no_job(make_server):
    server = make_server("uuid", app_options={"private_token": TOKEN, "assign_ids": "uuid"})
    http = Http(server.url, TOKEN)
    reply = http.submit("never-set-up", "touch ran", setup_params=json.dumps({"tool_id": "cat1"}))
    assert_clean_refusal(server, reply.status, reply.body, {404})
    jobs = server.staging / "_default_"
    assert not jobs.exists() or os.listdir(jobs) == []
    persisted = server.directory / "files" / "persisted_data"
    assert not any(name.endswith(".json") for _, _, names in os.walk(persisted) for name in names)


def test_a_refused_upload_tells_the_client_to_reconnect(server, http: Http):
    """A refusal sent before the body was read closes the connection, and says so first."""
    http.setup("ka1")
    connection = HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        for _ in range(3):
            connection.request(
                "POST", f"/jobs/ka1/files?name=..&type=input&private_token={TOKEN}", body=b"x" * 50
            )
            reply = connection.getresponse()
            reply.read()
            assert (
                reply.status == 400 and reply.will_close
            )  # announced: the client reconnects, never reads EOF
            connection.request("GET", f"/jobs/ka1/status?private_token={TOKEN}")
            reply = connection.getresponse()
            assert reply.status == 200 and reply.read()
    finally:
        connection.close()
