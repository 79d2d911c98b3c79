"""Amplification through ``dynamic_file_sources``, against a real lwr over HTTP: a request of
under 1 KiB naming one 16 MiB file four times once made every final status reply (kept in memory
for the job) 64 MiB. The reply stays within the bound and the server's memory does not grow."""

from __future__ import annotations

import json
import time
from pathlib import Path

from lwr.core.status import MAXIMUM_DYNAMIC_SOURCE_BYTES, MAXIMUM_DYNAMIC_SOURCES

from http_helpers import Http

BIG = 16 * 1024 * 1024


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def wait_complete(http: Http, job_id: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        reply = http.request("GET", f"/jobs/{job_id}/status")
        assert reply.status == 200, reply
        if reply.json()["complete"] == "true":
            return
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish")


def test_dynamic_file_sources_cannot_amplify_the_status_reply(lwr_server):
    http = Http(lwr_server.url)
    config = http.setup("amp-1")
    working = config["working_directory"]
    sources = json.dumps(
        [{"path": "galaxy.json"}] * 4 + [{"path": f"s{i}"} for i in range(30)], separators=(",", ":")
    )
    assert len(sources) < 1024
    command = (
        f"head -c {BIG} /dev/zero | tr '\\0' x > {working}/galaxy.json; "
        f"for i in $(seq 0 29); do echo '[]' > {working}/s$i; done"
    )
    assert http.submit("amp-1", command, dynamic_file_sources=sources).status == 200
    before = peak_rss(lwr_server.process.pid)
    wait_complete(http, "amp-1")
    replies = [http.request("GET", "/jobs/amp-1/status") for _ in range(3)]
    growth = peak_rss(lwr_server.process.pid) - before
    for reply in replies:
        assert len(reply.body) < 2 * MAXIMUM_DYNAMIC_SOURCE_BYTES, f"a {len(reply.body)}-byte status reply"
    realized = replies[0].json()["realized_dynamic_file_sources"]
    assert len(realized) <= MAXIMUM_DYNAMIC_SOURCES
    assert sum(len(source["contents"]) for source in realized) <= MAXIMUM_DYNAMIC_SOURCE_BYTES
    assert all(source["path"] != "galaxy.json" for source in realized), (
        "the oversized file is left out, not cut"
    )
    # the first 16 entries count, whether read or left out: four big ones, then s0 ... s11
    assert [source["path"] for source in realized] == [f"s{i}" for i in range(MAXIMUM_DYNAMIC_SOURCES - 4)]
    assert growth < 24 * 1024 * 1024, f"the server's peak memory grew by {growth >> 20} MiB"
    assert "left out of the status reply" in lwr_server.log_text()
