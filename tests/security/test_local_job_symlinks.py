"""A job plants symlinks, fifos and flipping names in its own directory; lwr must not follow them.

Performed for real against an lwr process with a private token: the job (its own shell
command) replaces lwr's records and its outputs with links to the server's ``server.ini`` (which
holds the token), ``/etc/passwd`` and ``/dev/zero``, or with fifos, and flips an output between a
file and a link while the test downloads it 300 times. Nothing of those files may reach the
client, and the server must keep answering with bounded memory.
"""

from __future__ import annotations

import http.client
import json
import resource
import shlex
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from http_helpers import Http
from server import TOKEN, LwrServer

#: The server may use this much memory (heap and private mappings); reading /dev/zero unbounded exceeds it fast.
DATA_LIMIT = 1 << 30
DOWNLOADS = 300
PASSWD_MARK = "root:x:0:0"


@pytest.fixture
def server(make_server) -> LwrServer:
    started = make_server(app_options={"private_token": TOKEN})
    assert started.process is not None
    resource.prlimit(started.process.pid, resource.RLIMIT_DATA, (DATA_LIMIT, DATA_LIMIT))
    return started


def request(server: LwrServer, method: str, path: str, params: dict[str, Any]) -> tuple[int, bytes]:
    """One request with a timeout, so that a server stuck on a fifo fails the test instead of hanging it."""
    query = urllib.parse.urlencode({**params, "private_token": TOKEN})
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request(method, f"{path}?{query}")
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def run_job(server: LwrServer, job_id: str, command: str) -> dict[str, Any]:
    http = Http(server.url, TOKEN)
    http.setup(job_id)
    assert http.submit(job_id, command).status == 200
    http.wait_complete(job_id)
    status, body = request(server, "GET", f"/jobs/{job_id}/status", {})
    assert status == 200, body[:2000]
    return json.loads(body)


def assert_no_leak(text: str, server: LwrServer) -> None:
    assert TOKEN not in text, "server.ini (with the private token) reached the client"
    assert PASSWD_MARK not in text, "/etc/passwd reached the client"


def test_status_never_follows_links_the_job_planted(server: LwrServer) -> None:
    ini, passwd = server.config_path, "/etc/passwd"
    command = (
        f"ln -sfn {ini} ../lwr/tool_stdout; ln -sfn {passwd} ../lwr/tool_stderr; "
        f"ln -sfn {ini} ../lwr/job_stdout; ln -sfn {passwd} ../lwr/job_stderr; "
        f"ln -sfn {ini} ../metadata/tool_stdout; ln -sfn {ini} galaxy.json; echo done"
    )
    http = Http(server.url, TOKEN)
    http.setup("links")
    sources = json.dumps([{"path": "galaxy.json"}])
    assert http.submit("links", command, dynamic_file_sources=sources).status == 200
    http.wait_complete("links")
    status, body = request(server, "GET", "/jobs/links/status", {})
    assert status == 200, body[:2000]
    reply = json.loads(body)
    assert reply["status"] == "complete"
    assert_no_leak(body.decode(), server)
    assert reply["stdout"] == reply["stderr"] == reply["job_stdout"] == ""


def test_exit_code_linked_to_dev_zero_does_not_grow_the_server(server: LwrServer) -> None:
    reply = run_job(
        server, "zero", "ln -sfn /dev/zero ../lwr/exit_code; ln -sfn /dev/zero ../lwr/tool_stdout"
    )
    assert reply["returncode"] is None and reply["stdout"] == ""
    assert server.process is not None and server.process.poll() is None
    rss_kib = int(
        next(
            line.split()[1]
            for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines()
            if line.startswith("VmRSS:")
        )
    )
    assert rss_kib < 512 * 1024


def test_fifos_in_place_of_records_do_not_block_the_server(server: LwrServer) -> None:
    command = (
        "rm -f ../lwr/tool_stdout ../lwr/job_stdout ../metadata/tool_stderr; mkfifo ../lwr/tool_stdout; "
        "mkfifo ../lwr/job_stdout; mkfifo ../metadata/tool_stderr; mkfifo ../outputs/out.dat"
    )
    reply = run_job(server, "fifo", command)
    assert reply["stdout"] == reply["job_stdout"] == ""
    status, _body = request(server, "GET", "/jobs/fifo/files", {"name": "out.dat", "type": "output"})
    assert status == 404
    assert request(server, "GET", "/healthz", {})[0] == 200


#: Flips outputs/out.dat between a real file and a link to server.ini (atomic renames, as fast as
#: it can) until told to stop.
FLIPPER = """
import os, sys
ini, out = sys.argv[1], "../outputs/out.dat"
open("../outputs/ready", "w").close()
for count in range(2_000_000):
    if count % 64 == 0 and os.path.exists("stop"):
        break
    os.symlink(ini, "link.tmp")
    os.rename("link.tmp", out)
    with open("real.tmp", "w") as real:
        real.write("the real output\\n")
    os.rename("real.tmp", out)
print("flipped")
"""


def test_downloads_of_a_flipping_output_never_serve_what_it_points_to(server: LwrServer) -> None:
    http = Http(server.url, TOKEN)
    config = http.setup("flip")
    working = Path(config["working_directory"])
    command = f"/usr/bin/python3 -c {shlex.quote(FLIPPER)} {server.config_path}"
    assert http.submit("flip", command).status == 200
    try:
        outputs = Path(config["outputs_directory"])
        http.wait_status("flip", {"running", "complete", "failed"})
        while not (outputs / "ready").exists():
            time.sleep(0.05)
        served = attempts = 0
        # at least DOWNLOADS attempts, and until some were served (how often depends on the scheduler)
        while attempts < DOWNLOADS or (served < 20 and attempts < 20 * DOWNLOADS):
            attempts += 1
            status, body = request(server, "GET", "/jobs/flip/files", {"name": "out.dat", "type": "output"})
            assert_no_leak(body.decode(errors="replace"), server)
            if status == 200:
                assert body == b"the real output\n"
                served += 1
            else:
                assert status in (400, 404), (status, body)
            time.sleep(0.002)
        assert served >= 20
    finally:
        (working / "stop").touch()
    assert http.wait_complete("flip")["stdout"] == "flipped\n"


def test_an_output_linked_to_an_input_of_the_same_job_still_downloads(server: LwrServer) -> None:
    http = Http(server.url, TOKEN)
    config = http.setup("linked")
    assert http.upload("linked", "in.txt", b"input bytes\n").status == 200
    inputs = config["inputs_directory"]
    reply = run_job_existing(
        http,
        server,
        "linked",
        f"ln -s {inputs}/in.txt ../outputs/abs.txt; ln -s ../inputs/in.txt ../outputs/rel.txt",
    )
    assert reply["status"] == "complete"
    for name in ("abs.txt", "rel.txt"):
        status, body = request(server, "GET", "/jobs/linked/files", {"name": name, "type": "output"})
        assert (status, body) == (200, b"input bytes\n")


def run_job_existing(http: Http, server: LwrServer, job_id: str, command: str) -> dict[str, Any]:
    assert http.submit(job_id, command).status == 200
    return http.wait_complete(job_id)
