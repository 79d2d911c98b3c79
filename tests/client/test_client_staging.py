"""Staging against a scripted server: what is sent where, and what a failure leaves behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from stub_http import Reply, Seen, StubServer

from lwr.client.action_config import parse_action_config
from lwr.client.client import open_client
from lwr.client.errors import InvalidJob, MissingInput, TransportError
from lwr.client.http import RetryPolicy
from lwr.client.staging import JobDescription, stage_and_submit

FAST = RetryPolicy(attempts=2, backoff=0.01, cap=0.02)
SETUP = {
    "job_id": "j1",
    "job_directory": "/srv/j1",
    "working_directory": "/srv/j1/working",
    "inputs_directory": "/srv/j1/inputs",
    "outputs_directory": "/srv/j1/outputs",
    "configs_directory": "/srv/j1/configs",
    "tools_directory": "/srv/j1/tool_files",
    "metadata_directory": "/srv/j1/metadata",
    "unstructured_files_directory": "/srv/j1/unstructured",
    "system_properties": {"separator": "/"},
}


def server_answering(upload_status: int = 200) -> StubServer:
    def handler(request: Seen, earlier: int) -> Reply:
        if request.path == "/jobs":
            return Reply.json(SETUP)
        if request.path.endswith("/files") and request.method == "POST":
            if upload_status != 200:
                return Reply(upload_status, b"disk full")
            name, file_type = request.query["name"][0], request.query["type"][0]
            directory = {"input": "inputs", "config": "configs", "tool": "tool_files"}.get(
                file_type, file_type
            )
            return Reply.json({"path": f"/srv/j1/{directory}/{name}"})
        return Reply(200, b"OK")

    return StubServer(handler)


def test_missing_input_is_refused_before_setup(tmp_path: Path) -> None:
    description = JobDescription("cat /nowhere/x", "j1", inputs=[str(tmp_path / "absent.dat")])
    with server_answering() as server:
        with pytest.raises(MissingInput, match="absent.dat does not exist"):
            stage_and_submit(open_client(url=server.url, retry=FAST), description, parse_action_config({}))
    assert server.seen == []


def test_clashing_names_are_refused_before_setup(tmp_path: Path) -> None:
    for directory in ("a", "b"):
        (tmp_path / directory).mkdir()
        (tmp_path / directory / "x.dat").write_text(directory)
    description = JobDescription(
        "true", "j1", inputs=[str(tmp_path / "a" / "x.dat"), str(tmp_path / "b" / "x.dat")]
    )
    with server_answering() as server:
        with pytest.raises(InvalidJob):
            stage_and_submit(open_client(url=server.url, retry=FAST), description, parse_action_config({}))
    assert server.seen == []


def test_a_failed_upload_cleans_the_job_up(tmp_path: Path) -> None:
    (tmp_path / "in.dat").write_text("x")
    description = JobDescription(f"cat {tmp_path / 'in.dat'}", "j1", inputs=[str(tmp_path / "in.dat")])
    with server_answering(upload_status=503) as server:
        with pytest.raises(TransportError):
            stage_and_submit(open_client(url=server.url, retry=FAST), description, parse_action_config({}))
    assert [(request.method, request.path) for request in server.seen][-1] == ("DELETE", "/jobs/j1")
    assert not any(request.path.endswith("/submit") for request in server.seen)


def test_what_is_submitted(tmp_path: Path) -> None:
    (tmp_path / "in.dat").write_text("x")
    config_file = tmp_path / "params.json"
    config_file.write_text(
        json.dumps({"input": str(tmp_path / "in.dat"), "out": str(tmp_path / "dataset_2.dat")})
    )
    description = JobDescription(
        f"tool --params {config_file} --in {tmp_path / 'in.dat'} > {tmp_path / 'dataset_2.dat'}",
        "j1",
        inputs=[str(tmp_path / "in.dat")],
        config_files=[str(config_file)],
        outputs=[str(tmp_path / "dataset_2.dat")],
        env={"A": "1"},
    )
    with server_answering() as server:
        staged = stage_and_submit(
            open_client(url=server.url, retry=FAST), description, parse_action_config({})
        )
    assert staged.command_line == (
        "tool --params /srv/j1/configs/params.json --in /srv/j1/inputs/in.dat > /srv/j1/outputs/dataset_2.dat"
    )
    uploads = {
        (r.query["type"][0], r.query["name"][0]): r.body for r in server.seen if r.path.endswith("/files")
    }
    assert uploads[("input", "in.dat")] == b"x"
    assert json.loads(uploads[("config", "params.json")]) == {
        "input": "/srv/j1/inputs/in.dat",
        "out": "/srv/j1/outputs/dataset_2.dat",
    }
    (submit,) = [request for request in server.seen if request.path == "/jobs/j1/submit"]
    assert submit.query["command_line"] == [staged.command_line]
    assert json.loads(submit.query["env"][0]) == [{"name": "A", "value": "1"}]
    remote_staging = json.loads(submit.query["remote_staging"][0])
    assert remote_staging["action_mapper"]["default_action"] == "transfer"
    assert remote_staging["client_outputs"]["output_files"] == [str(tmp_path / "dataset_2.dat")]
    assert "setup" not in remote_staging
