"""What an admin reads in the log when lwr starts and stops: where it listens, its managers and
directories; that a SIGTERM was obeyed, and what became of the jobs still running."""

from __future__ import annotations

import re

from http_helpers import Http

TWO_MANAGERS = (
    "[manager:_default_]\ntype = queued_python\nmax_concurrent_jobs = 1\n\n[manager:now]\ntype = unqueued\n"
)


def test_the_log_says_where_lwr_listens_and_what_it_serves(make_server):
    server = make_server(job_managers_ini=TWO_MANAGERS)
    log = server.log_text()
    # a log line (time, level, logger), not a bare print: it lands in the log server.ini configures
    assert re.search(rf"^\S+ \S+ INFO \S+: serving on http://127\.0\.0\.1:{server.port} ", log, re.M), log
    started = next(line for line in log.splitlines() if "lwr started" in line)
    assert str(server.staging) in started and str(server.directory / "files" / "persisted_data") in started
    assert "_default_ (queued_python)" in started and "now (unqueued)" in started


def test_sigterm_with_a_job_running_is_logged_with_the_job_left_running(make_server):
    server = make_server()
    http = Http(server.url)
    http.setup("long1")
    assert http.submit("long1", "sleep 30").status == 200
    http.wait_status("long1", {"running"})
    server.stop()
    assert server.process is not None and server.process.returncode == 0
    log = server.log_text()
    assert "stopping: no new connections" in log and "drain_timeout" in log, log
    assert "lwr stopped: 1 unfinished jobs left as they are (they keep running)" in log, log
    server.start()
    assert http.status("long1")["status"] == "running"  # re-attached, as the log promised
    http.request("PUT", "jobs/long1/cancel")
