from __future__ import annotations

import subprocess

import pytest

from lwr.core.job_directory import JobDirectory
from lwr.core.job_script import ALREADY_LAUNCHED_STATUS, EnvItem, parse_env, write_job_script
from lwr.errors import BadRequest


def make_job(tmp_path, command, env=()):
    job = JobDirectory(tmp_path / "job")
    job.create()
    return job, write_job_script(job, command, env)


def test_script_records_everything(tmp_path):
    job, script = make_job(tmp_path, "echo out; echo err >&2; echo $FOO $BAR; pwd; exit 5",
                           [EnvItem("FOO", "a b'c"), EnvItem("BAR", "$FOO-x", raw=True)])
    result = subprocess.run(["/bin/bash", script], capture_output=True)
    assert result.returncode == 5
    assert job.exit_code() == 5
    stdout = job.internal_file("tool_stdout").read_text().splitlines()
    assert stdout == ["out", "a b'c a b'c-x", str(job.working)]
    assert job.internal_file("tool_stderr").read_text() == "err\n"
    assert job.internal_file("started_at").exists() and job.internal_file("ended_at").exists()
    assert (job.path / "tmp").is_dir() and (job.path / "home").is_dir()


def test_script_never_runs_twice(tmp_path):
    job, script = make_job(tmp_path, f"echo ran >> {tmp_path / 'count'}")
    assert subprocess.run(["/bin/bash", script]).returncode == 0
    second = subprocess.run(["/bin/bash", script], capture_output=True)
    assert second.returncode == ALREADY_LAUNCHED_STATUS
    assert (tmp_path / "count").read_text() == "ran\n"


def test_trailing_comment_in_command_is_harmless(tmp_path):
    job, script = make_job(tmp_path, "echo hi # a comment")
    assert subprocess.run(["/bin/bash", script]).returncode == 0
    assert job.exit_code() == 0


@pytest.mark.parametrize("raw, problem", [
    ("notalist", "list"), ([1], "object"), ([{"value": "x"}], "object"), ([{"name": "A-B", "value": "x"}], "identifier"),
])
def test_parse_env_rejects(raw, problem):
    with pytest.raises(BadRequest, match=problem):
        parse_env(raw)


def test_parse_env_accepts():
    assert parse_env([{"name": "A", "value": 1, "raw": True}, {"name": "B"}]) == [
        EnvItem("A", "1", True), EnvItem("B", "", False)]
    assert parse_env(None) == []
