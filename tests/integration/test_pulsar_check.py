"""Galaxy's real Pulsar client (``pulsar-check``, from pulsar-app) against a real lwr process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from server import TOKEN

PULSAR_CHECK = str(Path(sys.executable).parent / "pulsar-check")


def run_check(url: str, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PULSAR_CHECK, "--url", url, "--suppress_output", *options],
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.parametrize(
    "options",
    [
        [],
        ["--job_id", "job-77"],
        ["--test_errors"],
        ["--explicit_tool_declarations"],
        ["--legacy_galaxy_json"],
    ],
    ids=["plain", "job_id", "test_errors", "explicit_tool_declarations", "legacy_galaxy_json"],
)
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


def test_pulsar_check_over_tls_with_token(make_server, tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    pem = tmp_path / "server.pem"
    pem.write_bytes(cert.read_bytes() + key.read_bytes())
    server = make_server(
        "tls",
        app_options={"private_token": TOKEN},
        server_options={"use": "egg:lwr#http", "ssl_pem": str(pem)},
        wait=False,
    )
    https_url = server.url.replace("http://", "https://")
    import os
    import time

    env = {**os.environ, "SSL_CERT_FILE": str(cert)}
    deadline = time.monotonic() + 30
    while (
        subprocess.run(
            ["curl", "-sf", "--cacert", str(cert), https_url + "healthz"], capture_output=True
        ).returncode
        != 0
    ):
        assert time.monotonic() < deadline, server.log_text()
        time.sleep(0.1)
    result = subprocess.run(
        [PULSAR_CHECK, "--url", https_url, "--private_token", TOKEN, "--suppress_output"],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr + server.log_text()
    plain = subprocess.run(["curl", "-s", server.url + "healthz"], capture_output=True)
    assert plain.returncode != 0 or b"version" not in plain.stdout


def test_pulsar_check_under_waitress(make_server):
    """Any PasteDeploy server can serve lwr; waitress is a common choice."""
    server = make_server(
        "waitress",
        server_options={
            "use": "egg:waitress#main",
            "threads": "8",
            "threadpool_workers": None,
            "request_queue_size": None,
        },
    )
    result = run_check(server.url)
    assert result.returncode == 0, result.stdout + result.stderr + server.log_text()


def test_pulsar_client_follows_uuid_ids(make_server, tmp_path):
    """With assign_ids = uuid lwr picks the job id and Galaxy's Pulsar client follows it.

    (pulsar-check itself cannot run here: it asserts the client's own job id is in the paths.)
    """
    import time

    from pulsar.client.manager import build_client_manager

    server = make_server("uuid", app_options={"assign_ids": "uuid"})
    manager = build_client_manager()
    source = tmp_path / "in.txt"
    source.write_text("uuid job input")
    job_ids = []
    for _ in range(2):
        client = manager.get_client({"url": server.url, "default_file_action": "transfer"}, "7")
        setup = client.setup("cat", "1.0")
        client.job_id = setup["job_id"]
        job_ids.append(setup["job_id"])
        client.put_file(str(source), "input", name="in.txt", action_type="transfer")
        client.launch(f"cat {setup['inputs_directory']}/in.txt > {setup['outputs_directory']}/out.txt")
        deadline = time.monotonic() + 60
        while client.get_status() not in ("complete", "failed", "cancelled", "lost"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        destination = tmp_path / f"out-{setup['job_id']}.txt"
        client.fetch_output(
            path=str(destination),
            name="out.txt",
            working_directory=str(tmp_path),
            action_type="transfer",
            output_type="output",
        )
        assert destination.read_text() == "uuid job input"
    assert len(set(job_ids)) == 2 and "7" not in job_ids and all(len(job_id) == 32 for job_id in job_ids)
