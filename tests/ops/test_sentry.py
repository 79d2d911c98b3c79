"""Unexpected errors reach Sentry, tagged with job id and manager: a real lwr, a fake Sentry on loopback."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from mq_helpers import publish, remote_input, setup_message, wait_for

from lwr.observability.sentry import tag_job

from http_helpers import Http


class FakeSentry:
    """Receives the SDK's envelopes (``POST /api/<project>/envelope/``) and keeps their events."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        sentry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                for line in body.splitlines():
                    try:
                        item = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(item, dict) and ("exception" in item or "logentry" in item):
                        sentry.events.append(item)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.dsn = f"http://publickey@127.0.0.1:{self.server.server_address[1]}/1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def tagged(self, job_id: str) -> list[dict[str, Any]]:
        return [event for event in self.events if (event.get("tags") or {}).get("job_id") == job_id]

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture
def sentry() -> Iterator[FakeSentry]:
    fake = FakeSentry()
    yield fake
    fake.stop()


def test_an_unexpected_http_error_is_reported_with_job_and_manager(make_server, sentry, tmp_path):
    server = make_server(app_options={"sentry_dsn": sentry.dsn})
    # A record edited by hand into nonsense: reading it is an error lwr did not expect.
    records = server.directory / "files" / "persisted_data" / "jobs" / "_default_"
    records.mkdir(parents=True, exist_ok=True)
    (records / "broken-1.json").write_text(
        json.dumps(
            {
                "job_id": "broken-1",
                "manager": "_default_",
                "state": "complete",
                "sequence": 1,
                "times": "garbled",
            }
        )
    )
    server.stop()
    server.start()
    reply = Http(server.url).request("GET", "/jobs/broken-1")
    assert reply.status == 500 and "traceback" not in reply.body.decode().lower()
    incident = reply.json()["incident"]
    events = wait_for(lambda: sentry.tagged("broken-1"), "the error to reach Sentry")
    tags = events[0]["tags"]
    assert tags["manager"] == "_default_" and tags["incident"] == incident
    assert events[0]["exception"]["values"][-1]["type"] == "AttributeError"
    assert events[0]["release"].startswith("lwr@")


def test_a_staging_failure_in_mq_mode_is_reported(
    mq_server, vhost, listener, files_endpoint, sentry, tmp_path
):
    mq_server(sentry_dsn=sentry.dsn)
    publish(
        vhost.url,
        "_default_",
        "setup",
        setup_message("mq-s1", "true", remote_staging=remote_input(files_endpoint.url, tmp_path / "absent")),
    )
    assert listener.wait_final("mq-s1")["status"] == "failed"
    events = wait_for(lambda: sentry.tagged("mq-s1"), "the staging failure to reach Sentry")
    assert events[0]["tags"]["manager"] == "_default_"
    assert "staging inputs of job mq-s1 failed" in json.dumps(events[0])


def test_a_wrong_dsn_is_a_configuration_error(make_server):
    with pytest.raises(RuntimeError) as failed:
        make_server(app_options={"sentry_dsn": "not a dsn"})
    assert "sentry_dsn" in str(failed.value)


def test_tags_come_from_the_log_record_extras():
    event = tag_job({"extra": {"job_id": "j1", "manager": "m", "other": 1}, "tags": {"manager": "kept"}}, {})
    assert event["tags"] == {"job_id": "j1", "manager": "kept"}
