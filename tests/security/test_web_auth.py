"""No configuration lets a client without a token run commands, unless the admin opts in loudly.

Attack (issue 8, a/e): a local user reaches lwr on loopback with the sample's defaults and runs
a command as lwr's account. Each test starts a real lwr process.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from http_helpers import Http
from server import TOKEN, LwrServer


def default_server(tmp_path, name="lwr", **kwargs) -> LwrServer:
    """An lwr with the sample's authentication defaults: nothing about tokens configured."""
    return LwrServer(directory=tmp_path / name, open_unless_token=False, **kwargs)


def token_file(server: LwrServer):
    return server.directory / "files" / "persisted_data" / "private_token"


def test_default_config_generates_a_private_token_and_refuses_anonymous_commands(tmp_path):
    server = default_server(tmp_path).start()
    try:
        marker = tmp_path / "ran-as-lwr"
        anonymous = Http(server.url)
        assert anonymous.request("POST", "/jobs", {"job_id": "evil"}).status == 401
        reply = anonymous.submit("evil", f"touch {marker}", setup_params='{"tool_id": "x"}')
        assert reply.status == 401 and reply.json()["error"]
        path = token_file(server)
        info = path.stat()
        assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == os.geteuid()
        token = path.read_text().strip()
        assert len(token) >= 32
        assert str(path) in server.log_text() and "generated" in server.log_text()
        owner = Http(server.url, token)
        owner.setup("good")
        assert owner.submit("good", "true").status == 200
        assert owner.wait_complete("good")["status"] == "complete"
        assert not marker.exists()
    finally:
        server.stop()
    # Every later start uses the same token and says where it is.
    again = default_server(tmp_path).start()
    try:
        assert token_file(again).read_text().strip() == token
        assert Http(again.url, token).status("good")["status"] == "complete"
        assert Http(again.url).request("GET", "/jobs/good/status").status == 401
        assert again.log_text().count(str(token_file(again))) >= 2
    finally:
        again.stop()


def test_lwr_check_reads_the_generated_token_file(tmp_path):
    server = default_server(tmp_path).start()
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "lwr.cli",
                "check",
                "--url",
                server.url,
                "--private-token-file",
                str(token_file(server)),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stdout + result.stderr + server.log_text()
        anonymous = subprocess.run(
            [sys.executable, "-m", "lwr.cli", "check", "--url", server.url],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert anonymous.returncode != 0
    finally:
        server.stop()


def test_opting_in_to_no_token_is_warned_at_every_start(tmp_path):
    for _ in range(2):
        server = default_server(tmp_path, app_options={"allow_unauthenticated": "true"}).start()
        try:
            Http(server.url).setup("open1")
        finally:
            server.stop()
    warnings = [
        line for line in server.log_text().splitlines() if "WARNING" in line and "WITHOUT A TOKEN" in line
    ]
    assert len(warnings) == 2
    assert not token_file(server).exists()


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"allow_unauthenticated": "true", "private_token": TOKEN}, "contradicts"),
        ({"private_token": "change_me"}, "placeholder"),
        # Pulsar's app.yml.sample and lwr's own docs/operations.md examples, copied as they are
        ({"private_token": "changemeinproduction"}, "placeholder"),
        ({"private_token": "CHANGE-ME"}, "placeholder"),
        ({"private_token": "short"}, "placeholder"),
    ],
)
def test_contradictory_or_weak_token_settings_stop_lwr(tmp_path, options, fragment):
    server = default_server(tmp_path, app_options=options)
    with pytest.raises(RuntimeError):
        server.start()
    assert fragment in server.log_text() and "server.ini" in server.log_text()


def test_a_token_file_other_users_can_read_stops_lwr(tmp_path):
    server = default_server(tmp_path)
    path = token_file(server)
    path.parent.mkdir(parents=True)
    path.write_text("a-token-others-can-read\n")
    path.chmod(0o644)
    with pytest.raises(RuntimeError):
        server.start()
    assert "chmod 600" in server.log_text()


def test_a_token_file_that_is_a_symlink_stops_lwr(tmp_path):
    server = default_server(tmp_path)
    path = token_file(server)
    path.parent.mkdir(parents=True)
    secret = tmp_path / "elsewhere"
    secret.write_text("planted-token-0123\n")
    secret.chmod(0o600)
    path.symlink_to(secret)
    with pytest.raises(RuntimeError):
        server.start()
    assert "not a regular file" in server.log_text()
