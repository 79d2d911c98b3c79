"""``lwr serve -c app.yml``: a Pulsar app.yml served as is, jobs run through its inline managers."""

from __future__ import annotations

import os
import subprocess
import sys

from http_helpers import Http
from server import free_port, stop_process, wait_for_healthz


def serve(tmp_path, text: str) -> subprocess.Popen[bytes]:
    (tmp_path / "app.yml").write_text(text)
    log = open(tmp_path / "lwr.log", "ab")
    return subprocess.Popen(
        [sys.executable, "-m", "lwr.cli", "serve", "-c", str(tmp_path / "app.yml")],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_pulsar_app_yml_serves_jobs(tmp_path):
    port = free_port()
    process = serve(
        tmp_path,
        f"""
private_token: yml-token
managers:
  _default_:
    num_concurrent_jobs: 1
  two:
    type: queued_python
    num_concurrent_jobs: 2
server:
  port: {port}
""",
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_for_healthz(url, process, "lwr", lambda: (tmp_path / "lwr.log").read_text(), 60)
        assert Http(url).request("POST", "/jobs", {"job_id": "y0"}).status == 401
        http = Http(url + "managers/two/", "yml-token")
        http.setup("y1")
        assert http.submit("y1", "echo from app.yml").status == 200
        status = http.wait_complete("y1")
        assert (status["status"], status["stdout"]) == ("complete", "from app.yml\n"), status
        assert (tmp_path / "files" / "staging" / "two" / "y1").is_dir()  # paths relative to app.yml
    finally:
        stop_process(process)


def test_a_pulsar_key_lwr_does_not_implement_stops_it_naming_the_key(tmp_path):
    process = serve(tmp_path, "object_store_config_file: object_store_conf.xml\n")
    assert process.wait(60) == 2
    log = (tmp_path / "lwr.log").read_text()
    assert (
        "configuration error" in log and "'object_store_config_file' is not a setting lwr implements" in log
    )


def test_what_an_app_yml_lwr_creates_is_its_own_alone(tmp_path):
    """As with server.ini (umask 077): job records, timelines and their directories are private.
    Served from app.yml they were created under the caller's umask (0755 directories, 0644 files)."""
    port = free_port()
    old_umask = os.umask(0o022)
    try:
        process = serve(tmp_path, f"allow_unauthenticated: true\nserver:\n  port: {port}\n")
    finally:
        os.umask(old_umask)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_for_healthz(url, process, "lwr", lambda: (tmp_path / "lwr.log").read_text(), 60)
        http = Http(url)
        http.setup("private1")
        assert http.submit("private1", "echo out > out.txt").status == 200
        assert http.wait_complete("private1")["status"] == "complete"
    finally:
        stop_process(process)
    records = tmp_path / "files" / "persisted_data" / "jobs"
    created = [records, records / "_default_", *(records / "_default_").iterdir()]
    created += list((tmp_path / "files" / "staging" / "_default_" / "private1").rglob("*"))
    shared = {str(path): oct(path.stat().st_mode & 0o777) for path in created if path.stat().st_mode & 0o077}
    assert not shared, shared
