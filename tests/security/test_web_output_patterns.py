"""An ``output_workdir`` pattern costs lwr the job's own files, never an exponential walk.

Attack (issue 8, b): a download of an ``output_workdir`` name with ``*`` was matched with
``glob``, which follows symlinked directories. A job that made three links to ``.`` in its
working directory turned the pattern ``*/`` twelve times into 3**12 paths (seven seconds of a
worker); twenty times, days. Sixteen such requests held every worker of a real lwr, for every
client. Against a real lwr.
"""

from __future__ import annotations

import time

import pytest

from http_helpers import Http
from server import TOKEN


@pytest.fixture
def http(make_server):
    return Http(make_server("patterns", app_options={"private_token": TOKEN}).url, TOKEN)


def test_symlink_loops_do_not_make_a_pattern_exponential(http):
    http.setup("loops")
    command = "ln -s . a; ln -s . b; ln -s . c; ln -s / root; mkdir sub; echo out > sub/x.dat; echo t > r.txt"
    assert http.submit("loops", command).status == 200
    assert http.wait_complete("loops")["status"] == "complete"
    started = time.monotonic()
    reply = http.request(
        "GET", "/jobs/loops/files", {"name": "*/" * 20 + "nothing", "type": "output_workdir"}
    )
    assert reply.status == 404 and reply.json()["code"] == "not_found", reply
    reply = http.request("GET", "/jobs/loops/files", {"name": "root/*/passwd", "type": "output_workdir"})
    assert reply.status == 404, reply
    assert time.monotonic() - started < 5
    for pattern, body in {"*.txt": b"t\n", "sub/*.dat": b"out\n", "s?b/x.*": b"out\n"}.items():
        reply = http.request("GET", "/jobs/loops/files", {"name": pattern, "type": "output_workdir"})
        assert (reply.status, reply.body) == (200, body), (pattern, reply)


def test_a_star_does_not_match_a_hidden_file(http):
    http.setup("hidden")
    assert http.submit("hidden", "echo secret > .hidden; echo seen > visible").status == 200
    assert http.wait_complete("hidden")["status"] == "complete"
    reply = http.request("GET", "/jobs/hidden/files", {"name": "*", "type": "output_workdir"})
    assert (reply.status, reply.body) == (200, b"seen\n")
    reply = http.request("GET", "/jobs/hidden/files", {"name": ".h*", "type": "output_workdir"})
    assert (reply.status, reply.body) == (200, b"secret\n")
