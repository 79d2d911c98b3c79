"""Client-chosen file names at their edges: very deep, non-ASCII. A 4xx or the file, never a 500.

Attack (issue 8, b): a name of 1,000 nested directories (``a/a/.../f``, 2 KB, well within the
file system's limits) made the upload's ``mkdir(parents=True)`` recurse past Python's limit: a
500 and a traceback per request. And any name outside ASCII (``données/é.txt``) was refused
with a wrong reason (``more than 64 query parameters``) because the query was split by a parser
that cannot give back bytes it decoded. Against a real lwr.
"""

from __future__ import annotations

import pytest

from http_helpers import Http
from server import TOKEN


@pytest.fixture
def server(make_server):
    return make_server("names", app_options={"private_token": TOKEN})


@pytest.fixture
def http(server):
    return Http(server.url, TOKEN)


def assert_no_traceback(server) -> None:
    log = server.log_text()
    assert "Traceback" not in log and "unexpected error" not in log, log[-3000:]


def test_very_deep_names_are_refused(server, http):
    http.setup("deep")
    for depth in (200, 1000, 1900):
        reply = http.upload("deep", "a/" * depth + "f", b"x")
        assert reply.status == 400 and reply.json()["code"] == "bad_request", (depth, reply)
        reply = http.request("GET", "/jobs/deep/files", {"name": "a/" * depth + "f", "type": "output"})
        assert reply.status == 400, (depth, reply)
    assert_no_traceback(server)
    assert http.upload("deep", "a/" * 50 + "f", b"fine").status == 200


@pytest.mark.parametrize(
    "name", ["données/é.txt", "日本語.dat", "emoji-\U0001f600.txt", "space and+plus.txt"]
)
def test_non_ascii_names_are_stored_under_their_name(server, http, name):
    http.setup("uni")
    reply = http.upload("uni", name, name.encode())
    assert reply.status == 200, reply
    assert (server.staging / "_default_" / "uni" / "inputs" / name).read_bytes() == name.encode()
    reply = http.request("GET", "/jobs/uni/files", {"name": f"inputs/{name}", "type": "output_jobdir"})
    assert reply.status == 200 and reply.body == name.encode(), reply
    assert_no_traceback(server)
