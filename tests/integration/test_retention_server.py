"""A running lwr removes a finished job nobody cleaned once ``finished_job_retention`` has passed."""

from __future__ import annotations

import os
import time

from http_helpers import Http


def test_finished_job_is_removed_after_the_retention(make_server) -> None:
    server = make_server(app_options={"finished_job_retention": "1"})
    http = Http(server.url)
    config = http.setup("kept-briefly")
    assert http.submit("kept-briefly", "echo done").status == 200
    assert http.wait_complete("kept-briefly")["status"] == "complete"
    deadline = time.monotonic() + 30
    while http.request("GET", "/jobs/kept-briefly/status").status != 404:
        assert time.monotonic() < deadline, "the finished job was never removed"
        time.sleep(0.2)
    assert not os.path.exists(config["job_directory"])
