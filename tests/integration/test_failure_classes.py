"""A failed job's status carries its failure class over HTTP, also after a restart of lwr."""

from __future__ import annotations

from http_helpers import Http


def test_killed_job_script_is_classed_and_the_class_survives_a_restart(make_server) -> None:
    server = make_server()
    http = Http(server.url)
    http.setup("killed")
    assert http.submit("killed", "echo started; kill -KILL $$").status == 200
    status = http.wait_complete("killed")
    assert status["status"] == "failed"
    assert status["failure_class"] == "job_script_failed" and status["runner_state"] == "unknown_error"
    assert "signal 9" in status["reason"]
    server.kill9()
    server.start()
    again = Http(server.url).status("killed")
    assert (again["status"], again["failure_class"], again["runner_state"]) == (
        "failed",
        "job_script_failed",
        "unknown_error",
    )


def test_a_successful_job_has_no_failure_class(lwr_server) -> None:
    http = Http(lwr_server.url)
    http.setup("fine")
    assert http.submit("fine", "exit 3").status == 200
    status = http.wait_complete("fine")
    assert status["status"] == "complete" and status["returncode"] == 3
    assert "failure_class" not in status and "runner_state" not in status
