"""The client against real servers: the same tests run against Pulsar and against lwr."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from files_endpoint import FilesEndpoint
from targets import SECOND_MANAGER, Target

from lwr import errors
from lwr.client.action_config import parse_action_config
from lwr.client.check import CheckOptions, run_check
from lwr.client.client import LaunchRequest, LwrClient, open_client
from lwr.client.collect import collect_outputs
from lwr.client.staging import JobDescription, stage_and_submit

ROOT = Path(__file__).resolve().parents[2]


def client_for(server: Target, **kwargs: object) -> LwrClient:
    return open_client(url=server.url, private_token=server.token, **kwargs)  # type: ignore[arg-type]


def check(server: Target, **options: object) -> tuple[int, str]:
    out = io.StringIO()
    code = run_check(CheckOptions(url=server.url, private_token=server.token, **options), out)  # type: ignore[arg-type]
    return code, out.getvalue()


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"default_file_action": "copy"},
        {"default_file_action": "remote_copy"},
        {"default_file_action": "none"},
        {"default_file_action": "message"},
        {"manager": SECOND_MANAGER},
        {"cache": True},
    ],
    ids=["transfer", "copy", "remote_copy", "none", "message", "named-manager", "cache"],
)
def test_check_passes(server: Target, options: dict[str, object]) -> None:
    code, output = check(server, **options)
    assert code == 0, output
    assert "lwr check PASSED" in output
    assert "FAIL" not in output


def test_check_passes_with_remote_transfer(server: Target, files_endpoint: FilesEndpoint) -> None:
    """The server itself fetches inputs from and posts outputs to Galaxy's job files API."""
    before = len(files_endpoint.requests)
    code, output = check(server, default_file_action="remote_transfer", files_endpoint=files_endpoint.url)
    assert code == 0, output
    methods = {method for method, _ in files_endpoint.requests[before:]}
    assert methods == {"GET", "POST"}


def test_run_client_tests_script(server: Target) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "run_client_tests.py"),
            f"--url={server.url}",
            f"--private-token={server.token}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "lwr check PASSED" in result.stdout


def test_wrong_token_is_unauthorized(server: Target) -> None:
    with open_client(url=server.url, private_token="wrong") as client, pytest.raises(errors.Unauthorized):
        client.setup("job-with-a-wrong-token")


def test_lifecycle_call_by_call(server: Target, tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_bytes(b"x" * 100_000 + b"\n")
    with client_for(server) as client:
        job = client.setup(f"calls-{server.kind}-{time.monotonic_ns()}")
        assert job.job_directory
        remote = client.upload(job.job_id, "data.txt", "input", str(data))
        assert remote == job.remote_path("input", "data.txt")
        client.upload(job.job_id, "sub/dir/inline.txt", "input", b"inline contents")
        command = (
            f"wc -c < {remote} > ../outputs/count.txt; cat {job.remote_path('input', 'sub/dir/inline.txt')}"
        )
        client.submit(job.job_id, LaunchRequest(command_line=command))
        status = client.wait(job.job_id, timeout=60)
        assert status["status"] == "complete"
        assert int(status["returncode"]) == 0
        assert "count.txt" in status["outputs_directory_contents"]
        destination = tmp_path / "back" / "count.txt"
        client.download(job.job_id, "count.txt", "output", str(destination))
        assert destination.read_text().strip() == "100001"
        with pytest.raises((errors.NotFound, errors.LwrError)):
            client.download(job.job_id, "no-such-output", "output", str(tmp_path / "missing"))
        assert not (tmp_path / "missing").exists()
        client.clean(job.job_id)


def test_cancel_a_running_job(server: Target) -> None:
    with client_for(server) as client:
        job = client.setup(f"cancel-{server.kind}-{time.monotonic_ns()}")
        client.submit(job.job_id, LaunchRequest(command_line="sleep 60"))
        deadline = time.monotonic() + 30
        while client.status(job.job_id)["status"] not in ("running",) and time.monotonic() < deadline:
            time.sleep(0.1)
        started = time.monotonic()
        client.cancel(job.job_id)
        status = client.wait(job.job_id, timeout=30)
        assert time.monotonic() - started < 30
        assert status["status"] in ("cancelled", "complete", "failed")
        client.clean(job.job_id)


def test_stage_with_action_config_and_collect(server: Target, tmp_path: Path) -> None:
    """A job whose input is only mentioned in a config file, staged through a glob entry."""
    (tmp_path / "refs").mkdir()
    reference = tmp_path / "refs" / "genome.fa"
    reference.write_text(">chr1\nACGT\n")
    config_file = tmp_path / "params.txt"
    config_file.write_text(f"reference={reference}\n")
    output = tmp_path / "out" / "dataset_1.dat"
    action_config = parse_action_config(
        {"paths": [{"glob": f"{tmp_path}/refs/*.fa", "path_types": "unstructured", "action": "transfer"}]}
    )
    description = JobDescription(
        command_line=f"grep -c A $(sed 's/reference=//' {config_file}) > {output}",
        job_id=f"glob-{server.kind}-{time.monotonic_ns()}",
        config_files=[str(config_file)],
        outputs=[str(output)],
    )
    with client_for(server) as client:
        staged = stage_and_submit(client, description, action_config)
        remote_reference = staged.renames[str(reference)]
        assert remote_reference.startswith(staged.config.directory("unstructured") + "/")
        assert str(config_file) in staged.renames
        status = client.wait(staged.job_id, timeout=60)
        collected = collect_outputs(client, staged.job_id, description, action_config, status)
        assert collected.ok, collected.failures
        assert output.read_text().strip() == "1"
        client.clean(staged.job_id)


def lwr_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lwr.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


def test_lwr_submit_runs_a_command_with_files_both_ways(server: Target, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("hello world\n")
    result = lwr_cli(
        "submit", "--url", server.url, "--private-token", server.token,
        "--input", "in.txt", "--output", "out.txt", "--env", "GREETING=hi there",
        "--", "tr a-z A-Z < in.txt > out.txt; echo \"said $GREETING\"; echo oops >&2; exit 7",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 7, result.stderr
    assert (tmp_path / "out.txt").read_text() == "HELLO WORLD\n"
    assert "said hi there" in result.stdout
    assert "oops" in result.stderr
    assert "job complete" in result.stderr


def test_lwr_submit_argument_form_and_big_file_progress(server: Target, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    with open(big, "wb") as handle:
        handle.write(os.urandom(1024) * 6 * 1024)  # 6 MiB: over the progress threshold
    result = lwr_cli(
        "submit", "--url", server.url, "--private-token", server.token,
        "--input", "big.bin", "--output", "copy.bin", "--", "cp", "big.bin", "copy.bin",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "copy.bin").read_bytes() == big.read_bytes()
    assert "up big.bin" in result.stderr and "down copy.bin" in result.stderr  # tqdm progress bars


def test_lwr_status_cancel_clean_commands(server: Target, tmp_path: Path) -> None:
    with client_for(server) as client:
        job = client.setup(f"cli-{server.kind}-{time.monotonic_ns()}")
        client.submit(job.job_id, LaunchRequest(command_line="sleep 30"))
    env = {"LWR_URL": server.url, "LWR_PRIVATE_TOKEN": server.token}
    status = lwr_cli("status", job.job_id, cwd=tmp_path, env=env)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["status"] in ("queued", "running", "preprocessing")
    assert lwr_cli("cancel", job.job_id, cwd=tmp_path, env=env).returncode == 0
    with client_for(server) as client:
        client.wait(job.job_id, timeout=30)
    assert lwr_cli("clean", job.job_id, cwd=tmp_path, env=env).returncode == 0


def test_lwr_check_command(server: Target, tmp_path: Path) -> None:
    result = lwr_cli("check", "--url", server.url, "--private-token", server.token, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_lwr_submit_stages_a_directory_and_refuses_clashing_names(server: Target, tmp_path: Path) -> None:
    (tmp_path / "reads").mkdir()
    (tmp_path / "reads" / "a.txt").write_text("a\n")
    (tmp_path / "reads" / "b.txt").write_text("bb\n")
    result = lwr_cli(
        "submit", "--url", server.url, "--private-token", server.token,
        "--input", "reads", "--output", "count.txt", "--", "cat reads/*.txt | wc -c > count.txt",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "count.txt").read_text().strip() == "5"

    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "a.txt").write_text("clash\n")
    (tmp_path / "a.txt").write_text("a\n")
    clash = lwr_cli(
        "submit", "--url", server.url, "--private-token", server.token,
        "--input", "a.txt", "--input", "other/a.txt", "--", "true",
        cwd=tmp_path,
    )  # fmt: skip
    assert clash.returncode == 1
    assert "would both be 'a.txt' on the server" in clash.stderr
