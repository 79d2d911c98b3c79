"""A client without the token cannot grow lwr's metrics (one histogram per label value, kept for good).

Attack (issue 8, a): every request is timed by route, method and status, including the ones
refused for want of a token. HTTP lets a method be any token, so each request with a new method
(``AAAA1``, ``AAAA2``, ...) added a histogram of a dozen series that lwr kept in memory and sent
with every scrape of ``/metrics``: unbounded memory from anyone who can reach the port. The
requests go to a real lwr; the scrape counts the method labels it exports.
"""

from __future__ import annotations

import json
import re
import socket

from http_helpers import Http
from server import TOKEN

ATTEMPTS = 300


def send(port: int, method: str) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"{method} /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1])


def test_methods_without_a_token_do_not_grow_the_metrics(make_server):
    server = make_server("metrics-labels", app_options={"private_token": TOKEN})
    for attempt in range(ATTEMPTS):
        assert send(server.port, f"AAAA{attempt}") in (401, 403, 405)
    scrape = Http(server.url, TOKEN).request("GET", "/metrics")
    assert scrape.status == 200
    methods = set(
        re.findall(r'lwr_http_request_duration_seconds_count\{[^}]*method="([^"]*)"', scrape.body.decode())
    )
    assert methods <= {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other"}, sorted(methods)[
        :10
    ]
    assert "other" in methods  # the attempts are still counted, under one label


def test_hosts_of_failed_staging_urls_do_not_grow_the_metrics(make_server):
    """Attack (b): each job naming a new (refused) host in its server-side staging URL added a
    series of lwr_staging_failures_total labelled with that host, kept for good."""
    server = make_server(
        "metrics-hosts",
        app_options={"private_token": TOKEN, "remote_staging_allowed_urls": "http://127.0.0.1:9/allowed/"},
    )
    http = Http(server.url, TOKEN)
    jobs = 80
    for number in range(jobs):
        job_id = f"h{number}"
        http.setup(job_id)
        staging = {
            "setup": [
                {
                    "name": "in.dat",
                    "type": "input",
                    "action": {"action_type": "remote_transfer", "url": f"http://evil{number}.example/x.dat"},
                }
            ]
        }
        assert http.submit(job_id, "true", remote_staging=json.dumps(staging)).status == 200
    for number in range(jobs):
        assert http.wait_complete(f"h{number}")["status"] == "failed"
    scrape = Http(server.url, TOKEN).request("GET", "/metrics").body.decode()
    hosts = set(re.findall(r'lwr_staging_failures_total\{[^}]*host="([^"]*)"', scrape))
    assert 0 < len(hosts) <= 65, sorted(hosts)[:5]
