"""Public mode: a client cannot replace the job script lwr wrote, nor any file once it submitted.

Attack (issue 8, b): public mode checks a job's command line when it is submitted, then lwr
writes ``lwr/job.sh``. Upload type ``jobdir`` names the whole job directory, ``lwr/`` included,
and an upload was checked against the job's state when it *started* but renamed into place
when its last byte arrived. So a client with the token set up a validated tool, started an
upload of ``lwr/job.sh`` with its own script and held back the last byte, submitted a valid
command line, then sent the last byte: its script replaced lwr's and ran as lwr's account when
the queued job started. Against a real lwr with one job slot (held by another validated job,
so the victim waits in the queue).
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from public_tools import CAT_PY, CAT_TOOL, write_toolbox

from http_helpers import Http
from server import TOKEN

NAP_XML = """<tool id="nap1" version="1.0">
  <validators><command_validator><literal value="sleep"/><integer/></command_validator></validators>
</tool>
"""


@pytest.fixture
def public(make_server, tmp_path: Path):
    toolbox = write_toolbox(tmp_path / "config", {"cat": CAT_TOOL, "nap": {"nap.xml": NAP_XML}})
    return make_server(
        "public-race",
        app_options={"private_token": TOKEN, "tool_config_files": str(toolbox)},
        job_managers_ini="[manager:_default_]\ntype = queued_python\nmax_concurrent_jobs = 1\n",
    )


class HeldUpload:
    """An upload whose last byte is held back until :meth:`finish`."""

    def __init__(self, port: int, job_id: str, name: str, file_type: str, body: bytes) -> None:
        self.body = body
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        target = f"/jobs/{job_id}/files?name={name}&type={file_type}&private_token={TOKEN}"
        self.sock.sendall(
            f"POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[:-1]
        )

    def finish(self) -> tuple[int, dict]:
        self.sock.sendall(self.body[-1:])
        data = b""
        while chunk := self.sock.recv(65536):
            data += chunk
        self.sock.close()
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split()[1]), json.loads(body)


def test_a_held_upload_cannot_replace_the_job_script_after_submit(public, tmp_path):
    http = Http(public.url, TOKEN)
    marker = tmp_path / "pwned"
    http.setup("nap", tool_id="nap1")
    assert http.submit("nap", "sleep 60").status == 200
    http.wait_status("nap", {"running"})

    config = http.setup("victim", tool_id="cat1")
    assert http.upload("victim", "cat.py", CAT_PY, "tool").status == 200
    assert http.upload("victim", "in.txt", b"data\n").status == 200
    evil = f"#!/bin/bash\necho ran > {marker}\n".encode()
    held = HeldUpload(public.port, "victim", "lwr/job.sh", "jobdir", evil)
    time.sleep(1.0)  # the upload's handler has checked the job's state and waits for the last byte
    command = (
        f"python3 {config['tools_directory']}/cat.py {config['inputs_directory']}/in.txt "
        f"{config['outputs_directory']}/out.txt"
    )
    assert http.submit("victim", command).status == 200
    assert http.status("victim")["status"] == "queued"

    status, reply = held.finish()
    assert status in (400, 409), (status, reply)
    assert http.request("PUT", "/jobs/nap/cancel").status == 200
    assert http.wait_complete("victim")["status"] == "complete"
    assert not marker.exists(), "the client's script ran in place of the job script lwr checked"
    assert http.request("GET", "/jobs/victim/files", {"name": "out.txt"}).body == b"data\n"


@pytest.mark.parametrize(
    ("name", "file_type"),
    [
        ("lwr/job.sh", "jobdir"),
        ("./lwr//exit_code", "job_directory"),
        ("lwr/launched", "output_jobdir"),
        ("lwr", "jobdir"),
    ],
)
def test_lwr_own_directory_is_not_the_clients(public, name, file_type):
    http = Http(public.url, TOKEN)
    http.setup("own", tool_id="cat1")
    internal = public.staging / "_default_" / "own" / "lwr"
    before = sorted(path.name for path in internal.iterdir())
    reply = http.upload("own", name, b"0\n", file_type)
    assert reply.status == 400 and reply.json()["code"] == "bad_request", reply
    assert sorted(path.name for path in internal.iterdir()) == before


def test_an_upload_finishing_after_submit_does_not_land(make_server):
    """The rule behind it: a job's files are what they were when it was submitted."""
    server = make_server(
        "late-upload",
        app_options={"private_token": TOKEN},
        job_managers_ini="[manager:_default_]\ntype = queued_python\nmax_concurrent_jobs = 1\n",
    )
    http = Http(server.url, TOKEN)
    http.setup("nap")
    assert http.submit("nap", "sleep 60").status == 200
    http.wait_status("nap", {"running"})
    config = http.setup("late")
    assert http.upload("late", "in.txt", b"submitted\n").status == 200
    held = HeldUpload(server.port, "late", "in.txt", "input", b"changed after submit\n")
    time.sleep(1.0)
    command = f"cat {config['inputs_directory']}/in.txt > {config['outputs_directory']}/out.txt"
    assert http.submit("late", command).status == 200
    status, reply = held.finish()
    assert status == 409 and reply["code"] == "conflict", (status, reply)
    inputs = server.staging / "_default_" / "late" / "inputs"
    assert [path.name for path in inputs.iterdir()] == ["in.txt"]  # no temporary file left behind
    assert http.request("PUT", "/jobs/nap/cancel").status == 200
    assert http.wait_complete("late")["status"] == "complete"
    assert http.request("GET", "/jobs/late/files", {"name": "out.txt"}).body == b"submitted\n"
