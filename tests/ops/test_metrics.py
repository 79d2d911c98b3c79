"""/metrics: Prometheus text with lwr's names, fed by real jobs of a real server."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

from mq_helpers import publish, remote_input, setup_message, wait_for
from prometheus_client.parser import text_string_to_metric_families

from lwr.observability.metrics import METRIC_NAMES, remote_host

from http_helpers import Http
from server import TOKEN, free_port

ROOT = Path(__file__).resolve().parents[2]


def scrape(http: Http, path: str = "/metrics") -> dict[str, list[tuple[dict[str, str], float]]]:
    reply = http.request("GET", path)
    assert reply.status == 200, reply
    assert reply.headers["content-type"].startswith("text/plain")
    return parse(reply.body.decode())


def parse(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    matching = [v for found, v in samples.get(name, []) if all(found.get(k) == w for k, w in labels.items())]
    assert matching, f"no sample {name}{labels} in {sorted(samples)}"
    return sum(matching)


def test_metrics_of_http_jobs_behind_the_token(make_server):
    server = make_server(app_options={"private_token": TOKEN})
    assert Http(server.url).request("GET", "/metrics").status == 401
    http = Http(server.url, TOKEN)
    http.setup("m1")
    assert http.upload("m1", "in.txt", b"x" * 1000).status == 200
    assert http.submit("m1", "cat ../inputs/in.txt > ../outputs/out.txt").status == 200
    assert http.wait_complete("m1")["status"] == "complete"
    assert http.request("GET", "/jobs/m1/files", {"name": "out.txt"}).body == b"x" * 1000
    http.setup("m2")
    assert http.submit("m2", "exit 3").status == 200
    http.wait_complete("m2")

    samples = scrape(http)
    assert value(samples, "lwr_jobs", manager="_default_", state="complete") == 2
    assert value(samples, "lwr_jobs", manager="_default_", state="running") == 0
    assert value(samples, "lwr_jobs_ended_total", manager="_default_", state="complete") == 2
    assert value(samples, "lwr_staged_bytes_total", direction="in", by="client") >= 1000
    assert value(samples, "lwr_staged_bytes_total", direction="out", by="client") >= 1000
    assert value(samples, "lwr_staging_seconds_count", direction="in", by="client") == 1
    assert value(samples, "lwr_job_run_seconds_count", manager="_default_") >= 1
    assert (
        value(samples, "lwr_http_request_duration_seconds_count", route="status", method="GET", status="200")
        >= 2
    )
    assert value(samples, "lwr_http_request_duration_seconds_count", route="setup", status="200") == 2
    assert value(samples, "lwr_process_resident_memory_bytes") > 0
    assert value(samples, "lwr_process_open_fds") > 0
    assert value(samples, "lwr_staging_disk_free_bytes") > 0
    exported = {name for name in samples if not name.endswith("_created")}  # prometheus-client's own
    assert exported <= METRIC_NAMES, exported - METRIC_NAMES


def test_metrics_on_a_port_of_their_own(make_server):
    port = free_port()
    make_server(app_options={"private_token": TOKEN, "metrics_port": str(port)})
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        samples = parse(response.read().decode())
    assert value(samples, "lwr_jobs", manager="_default_", state="queued") == 0


def test_metrics_in_message_queue_mode(mq_server, vhost, listener, files_endpoint, tmp_path):
    server = mq_server()
    source = tmp_path / "input.dat"
    source.write_bytes(b"y" * 4096)
    publish(
        vhost.url,
        "_default_",
        "setup",
        setup_message(
            "mq-m1", "wc -c < ../inputs/input.dat", remote_staging=remote_input(files_endpoint.url, source)
        ),
    )
    assert listener.wait_final("mq-m1")["status"] == "complete"
    missing = tmp_path / "missing.dat"
    publish(
        vhost.url,
        "_default_",
        "setup",
        setup_message("mq-m2", "true", remote_staging=remote_input(files_endpoint.url, missing)),
    )
    assert listener.wait_final("mq-m2")["status"] == "failed"

    http = Http(server.url)
    samples = wait_for(
        lambda: (s := scrape(http)) and value(s, "lwr_outbox_pending") == 0 and s, "the outbox to drain"
    )
    assert value(samples, "lwr_broker_connected") == 1
    assert value(samples, "lwr_outbox_oldest_undelivered_age_seconds") == 0
    assert value(samples, "lwr_staged_bytes_total", direction="in", by="lwr") == 4096
    assert value(samples, "lwr_staging_failures_total", direction="in", host="127.0.0.1") == 1
    assert value(samples, "lwr_jobs_ended_total", state="failed") == 1
    assert value(samples, "lwr_job_queue_wait_seconds_count") >= 1


def test_remote_host_of_staging_errors():
    assert (
        remote_host("download of http://galaxy.example.org:8080/api/x failed after 5 attempts")
        == "galaxy.example.org"
    )
    assert remote_host("GET https://user:pw@[::1]/f: HTTP 500") == "[::1]"
    assert remote_host("output dataset_1.dat (output) was not produced") == "unknown"
    assert remote_host("remote_copy path /data/x is not under a file:// entry") == "local"


def test_every_name_of_the_grafana_dashboard_is_exported():
    """docs/grafana-dashboard.json (InfluxQL over Telegraf's prometheus input) queries only names /metrics
    exports, and it uses the main ones."""
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    expressions = [target["query"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    used = {name for expr in expressions for name in re.findall(r"\blwr_[a-z_]+", expr)}
    assert used, "the dashboard queries no lwr metric"
    assert used <= METRIC_NAMES, used - METRIC_NAMES
    for name in (
        "lwr_jobs",
        "lwr_jobs_ended_total",
        "lwr_outbox_pending",
        "lwr_broker_connected",
        "lwr_http_request_duration_seconds_bucket",
        "lwr_staging_disk_free_bytes",
    ):
        assert name in used, name


def test_batch_system_queries_are_timed_and_failures_counted(tmp_path):
    """The polling managers' hook reaches the metrics through the job service, which knows no metrics."""
    from lwr.config import load_app_settings
    from lwr.core.jobs import JobService
    from lwr.observability.metrics import LwrMetrics

    settings = load_app_settings(
        {"staging_directory": str(tmp_path / "s"), "persistence_directory": str(tmp_path / "p")},
        str(tmp_path / "server.ini"),
    )
    from lwr.app import manager_factories

    service = JobService(settings, manager_factories(settings))
    metrics = LwrMetrics(service)
    service.observers.append(metrics)
    from lwr.core.jobs import _ManagerEvents

    events = _ManagerEvents(service, "_default_")
    events.batch_queried(0.2, False)
    events.batch_queried(3.0, True)
    samples = parse(metrics.exposition().decode())
    assert value(samples, "lwr_batch_query_seconds_count", manager="_default_") == 2
    assert value(samples, "lwr_batch_query_failures_total", manager="_default_") == 1


def test_requests_refused_for_their_token_are_counted_as_unauthorized(make_server):
    """A Galaxy with a wrong token shows up as route="unauthorized", not among unmatched paths."""
    server = make_server(app_options={"private_token": TOKEN})
    assert Http(server.url, "not-the-token").request("GET", "/jobs/j1/status").status == 401
    assert Http(server.url, TOKEN).request("GET", "/no/such/route").status == 404
    samples = scrape(Http(server.url, TOKEN))
    name = "lwr_http_request_duration_seconds_count"
    assert value(samples, name, route="unauthorized", method="GET", status="401") == 1
    assert value(samples, name, route="unmatched", method="GET", status="404") == 1


def test_readyz_is_503_with_the_reason_while_new_jobs_would_be_refused(make_server):
    """/healthz says alive; /readyz says whether a setup would be accepted (no token needed)."""
    ready = make_server("ready", app_options={"private_token": TOKEN})
    reply = Http(ready.url).request("GET", "/readyz")
    assert reply.status == 200 and json.loads(reply.body)["ready"] is True
    full = make_server("full", app_options={"private_token": TOKEN, "min_free_disk": "100%%"})
    reply = Http(full.url).request("GET", "/readyz")
    body = json.loads(reply.body)
    assert reply.status == 503 and body["ready"] is False and body["code"] == "unavailable", body
    assert body["reasons"] == ["the staging filesystem is below min_free_disk"]
    assert Http(full.url).request("GET", "/healthz").status == 200  # alive all the same


def test_readyz_is_503_while_the_broker_cannot_be_reached(make_server):
    """Message-queue mode with no broker listening (a closed port, not RabbitMQ): alive, not ready."""
    server = make_server(
        app_options={"private_token": TOKEN, "message_queue_url": f"amqp://lwr:x@127.0.0.1:{free_port()}/lwr"}
    )
    reply = Http(server.url).request("GET", "/readyz")
    body = json.loads(reply.body)
    assert reply.status == 503 and body["reasons"] == ["not connected to the message broker"], body
    assert Http(server.url).request("GET", "/healthz").status == 200
