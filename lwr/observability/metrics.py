"""Prometheus metrics of one lwr: a job service observer, a WSGI timer and live collectors.

Everything lives in the application's own :class:`CollectorRegistry` (two lwr apps in one
process never share figures). Counters and histograms are fed by hooks: the job service's
observer hooks (state changes, staging summaries, batch-system queries) and the WSGI
middleware around the web app. Gauges of what is true *now* (jobs held, outbox backlog,
broker connection, process, staging disk) are read at scrape time by a collector.

The names are a contract with dashboards (docs/grafana-dashboard.json); :data:`METRIC_NAMES`
lists every exported sample name and a test checks the dashboard against it.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

import psutil
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lwr import __version__
from lwr.core.jobs import JobObserver, JobService
from lwr.core.states import JobState
from lwr.core.store import JobRecord

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Job durations (seconds): from a few seconds to a few days.
DURATION_BUCKETS = (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 3 * 86400)
#: Staging durations: a small input in well under a second, a large one in hours.
STAGING_BUCKETS = (0.05, 0.25, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600)
#: Batch-system queries (squeue, qstat, condor_q, DRMAA).
QUERY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
#: HTTP requests, status polls to multi-gigabyte downloads.
HTTP_BUCKETS = (0.005, 0.025, 0.1, 0.25, 1, 5, 30, 120, 600)

#: HTTP methods counted under their own name. A client may send any token as its method, before
#: it is authenticated: each new label value would be a new histogram kept for the process's
#: life, so every other method is counted as ``other``.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})

#: Distinct remote hosts staging failures are counted under; any later one is ``other``. The hosts
#: come from URLs clients name (a refused one included): unbounded, each new host would be a
#: series kept for the process's life.
MAXIMUM_HOSTS = 64

#: Every sample name /metrics exports (histograms as their _bucket/_sum/_count).
METRIC_NAMES = frozenset(
    {
        "lwr_info",
        "lwr_jobs",
        "lwr_jobs_ended_total",
        *(f"lwr_job_queue_wait_seconds{suffix}" for suffix in ("_bucket", "_sum", "_count")),
        *(f"lwr_job_run_seconds{suffix}" for suffix in ("_bucket", "_sum", "_count")),
        *(f"lwr_staging_seconds{suffix}" for suffix in ("_bucket", "_sum", "_count")),
        "lwr_staged_bytes_total",
        "lwr_staging_failures_total",
        "lwr_outbox_pending",
        "lwr_outbox_awaiting_ack",
        "lwr_outbox_oldest_undelivered_age_seconds",
        "lwr_broker_connected",
        *(f"lwr_batch_query_seconds{suffix}" for suffix in ("_bucket", "_sum", "_count")),
        "lwr_batch_query_failures_total",
        *(f"lwr_http_request_duration_seconds{suffix}" for suffix in ("_bucket", "_sum", "_count")),
        "lwr_process_resident_memory_bytes",
        "lwr_process_open_fds",
        "lwr_process_threads",
        "lwr_process_cpu_seconds_total",
        "lwr_staging_disk_free_bytes",
        "lwr_staging_disk_total_bytes",
    }
)

_HOST = re.compile(r"\b[a-z][a-z0-9+.-]*://(?:[^@/\s]*@)?(\[[^\]]+\]|[^/:\s?#]+)", re.IGNORECASE)


def remote_host(error: str) -> str:
    """The host a staging error names (its first URL), ``local`` for a path copy, else ``unknown``."""
    match = _HOST.search(error)
    if match:
        return match.group(1).lower()
    if "remote_copy" in error or "/" in error:
        return "local"
    return "unknown"


class MessagingProbe(Protocol):
    """What the metrics read of the MQ transport (duck-typed: the outbox and the consumer)."""

    @property
    def outbox(self) -> Any: ...

    @property
    def consumer(self) -> Any: ...


class LwrMetrics(JobObserver):
    """The metrics of one lwr application; also the observer that feeds them."""

    def __init__(self, service: JobService, messaging: MessagingProbe | None = None) -> None:
        self.service = service
        self.messaging = messaging
        self._hosts: set[str] = set()
        self._hosts_lock = threading.Lock()
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.ended = Counter(
            "lwr_jobs_ended",
            "Jobs that reached a final state, by manager and state.",
            ["manager", "state"],
            registry=registry,
        )
        self.queue_wait = Histogram(
            "lwr_job_queue_wait_seconds",
            "From queued to running.",
            ["manager"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.run_time = Histogram(
            "lwr_job_run_seconds",
            "From running to the end of the job script.",
            ["manager"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.staging_time = Histogram(
            "lwr_staging_seconds",
            "Staging durations; direction in or out, by client or lwr.",
            ["manager", "direction", "by"],
            buckets=STAGING_BUCKETS,
            registry=registry,
        )
        self.staged_bytes = Counter(
            "lwr_staged_bytes",
            "Bytes staged into or out of job directories.",
            ["direction", "by"],
            registry=registry,
        )
        self.staging_failures = Counter(
            "lwr_staging_failures",
            "Server-side staging failures by remote host.",
            ["direction", "host"],
            registry=registry,
        )
        self.batch_query = Histogram(
            "lwr_batch_query_seconds",
            "Batch-system status queries.",
            ["manager"],
            buckets=QUERY_BUCKETS,
            registry=registry,
        )
        self.batch_failures = Counter(
            "lwr_batch_query_failures",
            "Batch-system status queries that failed.",
            ["manager"],
            registry=registry,
        )
        self.http = Histogram(
            "lwr_http_request_duration_seconds",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            buckets=HTTP_BUCKETS,
            registry=registry,
        )
        registry.register(_LiveCollector(self))
        for manager in service.managers:  # so dashboards see every manager from the start
            self.batch_failures.labels(manager)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    # --- observer hooks -----------------------------------------------------------------------------
    def job_event(self, record: JobRecord, event: dict[str, Any]) -> None:
        at = float(event.get("at", time.time()))
        state = event.get("state")
        if state == JobState.RUNNING.value and JobState.QUEUED.value in record.times:
            self.queue_wait.labels(record.manager).observe(max(0.0, at - record.times[JobState.QUEUED.value]))
        if state is not None and JobState(state).is_final:
            self.ended.labels(record.manager, state).inc()
            started = record.times.get(JobState.RUNNING.value)
            if started is not None:
                until = record.times.get(JobState.POSTPROCESSING.value, at)
                self.run_time.labels(record.manager).observe(max(0.0, min(until, at) - started))
        for direction in ("in", "out"):
            staged = event.get(f"staging_{direction}")
            if not isinstance(staged, dict):
                continue
            by = str(staged.get("by", "lwr"))
            self.staging_time.labels(record.manager, direction, by).observe(float(staged.get("seconds", 0)))
            if staged.get("error"):
                self.staging_failures.labels(direction, self._host(str(staged["error"]))).inc()
            elif by == "lwr":  # client staging's bytes are counted by the HTTP middleware
                self.staged_bytes.labels(direction, by).inc(int(staged.get("bytes") or 0))

    def _host(self, error: str) -> str:
        """The host label of a staging error: its host, while fewer than MAXIMUM_HOSTS were seen."""
        host = remote_host(error)
        with self._hosts_lock:
            if host in self._hosts:
                return host
            if len(self._hosts) >= MAXIMUM_HOSTS:
                return "other"
            self._hosts.add(host)
            return host

    def batch_queried(self, manager: str, seconds: float, failed: bool) -> None:
        self.batch_query.labels(manager).observe(seconds)
        if failed:
            self.batch_failures.labels(manager).inc()

    # --- HTTP ---------------------------------------------------------------------------------------
    def http_request(
        self, route: str, method: str, status: int, seconds: float, request_bytes: int, response_bytes: int
    ) -> None:
        method = method if method in HTTP_METHODS else "other"
        self.http.labels(route, method, str(status)).observe(seconds)
        if status < 300 and route == "upload":
            self.staged_bytes.labels("in", "client").inc(request_bytes)
        elif status < 300 and route == "download":
            self.staged_bytes.labels("out", "client").inc(response_bytes)


class _LiveCollector(Collector):
    """Gauges read when scraped: nothing to keep in sync."""

    def __init__(self, metrics: LwrMetrics) -> None:
        self.metrics = metrics
        self.process = psutil.Process(os.getpid())

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        service = self.metrics.service
        info = GaugeMetricFamily("lwr_info", "This lwr's version.", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        jobs = GaugeMetricFamily(
            "lwr_jobs", "Jobs lwr holds now, by manager and state.", labels=["manager", "state"]
        )
        counts: dict[tuple[str, str], int] = {(m, s.value): 0 for m in service.managers for s in JobState}
        for record in service.records():
            key = (record.manager, record.state.value)
            counts[key] = counts.get(key, 0) + 1
        for (manager, state), count in sorted(counts.items()):
            jobs.add_metric([manager, state], count)
        yield jobs
        messaging = self.metrics.messaging
        if messaging is not None:
            outbox = messaging.outbox
            yield GaugeMetricFamily(
                "lwr_outbox_pending",
                "Status updates not yet confirmed by the broker.",
                value=outbox.pending_count(),
            )
            yield GaugeMetricFamily(
                "lwr_outbox_awaiting_ack",
                "Status updates awaiting the receiver's answer.",
                value=outbox.awaiting_count(),
            )
            yield GaugeMetricFamily(
                "lwr_outbox_oldest_undelivered_age_seconds",
                "Age of the oldest status update not yet delivered.",
                value=outbox.oldest_age(),
            )
            yield GaugeMetricFamily(
                "lwr_broker_connected",
                "1 while the consumer is connected to the broker.",
                value=1 if messaging.consumer.connected.is_set() else 0,
            )
        yield from self._process()
        try:
            usage = shutil.disk_usage(service.staging)
        except OSError:
            return
        yield GaugeMetricFamily(
            "lwr_staging_disk_free_bytes", "Free space of the staging filesystem.", value=usage.free
        )
        yield GaugeMetricFamily(
            "lwr_staging_disk_total_bytes", "Size of the staging filesystem.", value=usage.total
        )

    def _process(self) -> Iterator[Metric]:
        with self.process.oneshot():
            yield GaugeMetricFamily(
                "lwr_process_resident_memory_bytes",
                "Resident memory of lwr.",
                value=self.process.memory_info().rss,
            )
            yield GaugeMetricFamily(
                "lwr_process_open_fds", "Open file descriptors of lwr.", value=self.process.num_fds()
            )
            yield GaugeMetricFamily(
                "lwr_process_threads", "Threads of lwr.", value=self.process.num_threads()
            )
            cpu = self.process.cpu_times()
            yield CounterMetricFamily(
                "lwr_process_cpu_seconds",
                "CPU time used by lwr (user + system).",
                value=cpu.user + cpu.system,
            )


class MetricsMiddleware:
    """Times every request (to the end of its body) by the route the web app matched."""

    def __init__(self, app: Callable[..., Iterable[bytes]], metrics: LwrMetrics) -> None:
        self.app = app
        self.metrics = metrics

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.monotonic()
        seen: dict[str, Any] = {"status": 500, "length": 0}

        def recording_start_response(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            seen["status"] = int(status.split(" ", 1)[0])
            for name, value in headers:
                if name.lower() == "content-length" and value.isdigit():
                    seen["length"] = int(value)
            return start_response(status, headers, *args)

        def done() -> None:
            try:
                request_bytes = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                request_bytes = 0
            self.metrics.http_request(
                str(environ.get("lwr.route", "unmatched")),
                str(environ.get("REQUEST_METHOD")),
                seen["status"],
                time.monotonic() - started,
                request_bytes,
                seen["length"],
            )

        body = self.app(environ, recording_start_response)
        file_wrapper = environ.get("wsgi.file_wrapper")
        if isinstance(file_wrapper, type) and isinstance(body, file_wrapper):
            done()  # the server sends this file its own fast way; wrapping it would defeat that
            return body
        return _ClosingBody(body, done)


class _ClosingBody:
    """A WSGI body that calls ``done`` once the server closes it (the download was sent)."""

    def __init__(self, body: Iterable[bytes], done: Callable[[], None]) -> None:
        self.body = body
        self.done = done

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.body)

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self.done()
