"""Nothing lost: kill -9 of the server with one job running and one queued, then a restart."""

from __future__ import annotations

import time

from http_helpers import Http

ONE_AT_A_TIME = "[manager:_default_]\ntype = queued_python\nmax_concurrent_jobs = 1\n"


def counting_command(log, name, seconds):
    return f"echo {name} >> {log}; sleep {seconds}; echo done > out.txt"


def test_kill9_with_running_and_queued_job(make_server, tmp_path):
    log = tmp_path / "runs.log"
    server = make_server(job_managers_ini=ONE_AT_A_TIME)
    http = Http(server.url)
    http.setup("running1")
    http.setup("queued1")
    assert http.submit("running1", counting_command(log, "running1", 8)).status == 200
    assert http.submit("queued1", counting_command(log, "queued1", 0)).status == 200
    http.wait_status("running1", {"running"})
    assert http.status("queued1")["status"] == "queued"

    server.kill9()
    time.sleep(0.3)
    server.start()

    assert http.status("running1")["status"] == "running"
    first = http.wait_complete("running1", timeout=30)
    second = http.wait_complete("queued1", timeout=30)
    assert first["status"] == "complete" and first["returncode"] == 0
    assert second["status"] == "complete" and second["returncode"] == 0
    assert "out.txt" in first["working_directory_contents"]
    assert log.read_text().split() == ["running1", "queued1"], "a job ran twice or not at all"


def test_job_that_ended_while_server_was_down(make_server, tmp_path):
    server = make_server(job_managers_ini=ONE_AT_A_TIME)
    http = Http(server.url)
    http.setup("ends-alone")
    assert http.submit("ends-alone", "sleep 1; exit 7").status == 200
    http.wait_status("ends-alone", {"running"})
    server.kill9()
    time.sleep(1.5)
    server.start()
    status = http.wait_complete("ends-alone", timeout=10)
    assert status["status"] == "complete"
    assert status["returncode"] == 7


def test_setup_survives_restart_and_can_be_submitted(make_server, tmp_path):
    server = make_server()
    http = Http(server.url)
    http.setup("staged")
    assert http.upload("staged", "in.txt", b"kept").status == 200
    server.kill9()
    server.start()
    assert http.submit("staged", "cat ../inputs/in.txt").status == 200
    status = http.wait_complete("staged")
    assert status["stdout"] == "kept"


def test_restart_many_times_never_reruns(make_server, tmp_path):
    """Crash the server repeatedly while jobs flow; every job runs exactly once."""
    log = tmp_path / "runs.log"
    server = make_server(
        job_managers_ini="[manager:_default_]\ntype = queued_python\nmax_concurrent_jobs = 2\n"
    )
    http = Http(server.url)
    names = [f"j{index}" for index in range(8)]
    for name in names:
        http.setup(name)
        assert http.submit(name, counting_command(log, name, 0.3)).status == 200
    for _ in range(3):
        time.sleep(0.4)
        server.kill9()
        server.start()
    for name in names:
        assert http.wait_complete(name, timeout=60)["status"] == "complete"
    assert sorted(log.read_text().split()) == sorted(names)
