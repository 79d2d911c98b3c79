"""Over HTTP, a resubmission of a job whose run ended (a new setup, or a submit carrying its own
setup_params as Galaxy's client does with jobs_directory) runs it again on a clean directory."""

from __future__ import annotations

import json

from http_helpers import Http


def test_resubmission_after_the_end_runs_again_on_a_clean_directory(lwr_server, tmp_path):
    http = Http(lwr_server.url)
    marker = tmp_path / "runs"
    command = f"ls; echo run >> {marker}; touch leftover"
    setup_params = json.dumps({"job_id": "again1", "tool_id": "t", "tool_version": "1"})
    for _ in range(2):  # the client sets the job up itself, in the submit
        assert http.submit("again1", command, setup_params=setup_params).status == 200
        status = http.wait_complete("again1")
        assert (status["status"], status["stdout"]) == ("complete", ""), status
    http.setup("again1")  # a new setup of its own
    assert http.submit("again1", command).status == 200
    assert http.wait_complete("again1")["stdout"] == ""
    assert marker.read_text() == "run\n" * 3
    # a submit without a setup of a job that already ran is still refused
    reply = http.submit("again1", command)
    assert reply.status == 409 and "already submitted" in reply.json()["error"]
