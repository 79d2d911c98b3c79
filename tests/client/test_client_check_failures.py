"""``lwr check`` fails loudly: a non-zero exit, FAIL on the step, and the step named at the end."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from targets import Target

from lwr.client.check import CheckOptions, run_check

ROOT = Path(__file__).resolve().parents[2]


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/"


def run(options: CheckOptions) -> tuple[int, str]:
    out = io.StringIO()
    return run_check(options, out), out.getvalue()


def failed_line(output: str, step: str) -> str:
    lines = [line for line in output.splitlines() if step in line and " FAIL " in line]
    assert lines, output
    return lines[0]


def test_unreachable_server() -> None:
    code, output = run(CheckOptions(url=closed_port_url()))
    assert code == 1
    assert "TransportError" in failed_line(output, "server reachable (/healthz)")
    assert output.rstrip().endswith("s") and "FAILED at step 'server reachable (/healthz)'" in output


def test_wrong_token(server: Target) -> None:
    code, output = run(CheckOptions(url=server.url, private_token="not-the-token"))
    assert code == 1
    # Pulsar guards /healthz with the token too; lwr answers it to anyone.
    step = "server reachable (/healthz)" if server.kind == "pulsar" else "setup, stage inputs and submit"
    assert "Unauthorized" in failed_line(output, step)
    assert f"FAILED at step '{step}'" in output


def test_unknown_manager(server: Target) -> None:
    code, output = run(CheckOptions(url=server.url, private_token=server.token, manager="no-such-manager"))
    assert code == 1
    assert "FAILED at step" in output


def test_job_that_does_not_finish_in_time(server: Target) -> None:
    code, output = run(CheckOptions(url=server.url, private_token=server.token, timeout=0.0))
    assert code == 1
    assert "TimeoutError" in failed_line(output, "job finishes")
    assert "FAILED at step 'job finishes'" in output
    assert "clean the job" in output  # the job is still cleaned up


@pytest.mark.parametrize("entry", ["lwr", "run_client_tests.py"])
def test_command_line_exit_status(entry: str) -> None:
    url = closed_port_url()
    if entry == "lwr":
        argv = [sys.executable, "-m", "lwr.cli", "check", "--url", url]
    else:
        argv = [sys.executable, str(ROOT / "run_client_tests.py"), f"--url={url}"]
    result = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 1
    assert "FAILED at step 'server reachable (/healthz)'" in result.stdout
