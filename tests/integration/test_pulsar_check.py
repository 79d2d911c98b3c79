"""Galaxy's real Pulsar client (``pulsar-check``, from pulsar-app) against a real lwr process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TOKEN

PULSAR_CHECK = str(Path(sys.executable).parent / "pulsar-check")


def run_check(url: str, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PULSAR_CHECK, "--url", url, "--suppress_output", *options], capture_output=True,
                          text=True, timeout=180)


@pytest.mark.parametrize("options", [
    [],
    ["--job_id", "job-77"],
    ["--test_errors"],
    ["--explicit_tool_declarations"],
    ["--legacy_galaxy_json"],
], ids=["plain", "job_id", "test_errors", "explicit_tool_declarations", "legacy_galaxy_json"])
def test_pulsar_check_without_token(lwr_server, options):
    result = run_check(lwr_server.url, *options)
    assert result.returncode == 0, result.stdout + result.stderr + lwr_server.log_text()


def test_pulsar_check_with_token(token_server):
    result = run_check(token_server.url, "--private_token", TOKEN)
    assert result.returncode == 0, result.stdout + result.stderr + token_server.log_text()


def test_pulsar_check_with_wrong_token_fails(token_server):
    result = run_check(token_server.url, "--private_token", "wrong")
    assert result.returncode != 0


def test_pulsar_check_on_named_manager(token_server):
    result = run_check(token_server.url + "managers/two/", "--private_token", TOKEN)
    assert result.returncode == 0, result.stdout + result.stderr + token_server.log_text()
