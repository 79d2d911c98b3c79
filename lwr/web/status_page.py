"""``GET /status``: one HTML page an admin reads in a browser, rendered here (no JavaScript).

Managers and their queues, the jobs in flight, recent failures with their reasons, the MQ
outbox backlog, and the staging disk. Every job links to its timeline page. The page is an
admin route; a token given as ``?private_token=`` is carried into the links.
"""

from __future__ import annotations

import datetime
import shutil
import time
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

from webob import Response

from lwr import __version__
from lwr.core.jobs import JobService, tree_bytes
from lwr.core.states import JobState
from lwr.core.store import JobRecord
from lwr.web.app import Call, Handler

#: Failures shown on the page (the newest).
RECENT_FAILURES = 25
#: Walking the staging directory for its size is done at most this often.
USAGE_CACHE_SECONDS = 30.0
ACTIVE = (JobState.SETUP, JobState.PREPROCESSING, JobState.QUEUED, JobState.RUNNING, JobState.POSTPROCESSING)
FAILURES = (JobState.FAILED, JobState.LOST, JobState.CANCELLED)

STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #eee; }
.failed, .lost { color: #a00; } .running { color: #060; } .cancelled { color: #850; }
"""


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _table(headers: list[str], rows: list[list[str]], table_id: str) -> str:
    """``rows`` hold HTML already escaped by the caller."""
    head = "".join(f"<th>{escape(header)}</th>" for header in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    if not rows:
        body = f'<tr><td colspan="{len(headers)}">none</td></tr>'
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _page(title: str, body: str) -> Response:
    html = (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>{body}</body></html>"
    )
    return Response(body=html.encode("utf-8"), content_type="text/html", charset="utf-8")


#: What a timeline detail is called on the page (a local start records its batch id with ``running``).
_DETAIL_LABELS = {"external_id": "batch id"}


class StatusPage:
    """The status page and each job's timeline page; ``messaging`` is None in HTTP-only mode."""

    def __init__(self, service: JobService, messaging: Any = None) -> None:
        self.service = service
        self.messaging = messaging
        self._usage: tuple[float, int] = (0.0, 0)

    def routes(self) -> list[tuple[str, str, Handler, bool]]:
        return [
            ("GET", r"/status", self.status_page, True),
            ("GET", r"/status/jobs/(?P<job_manager>[^/]+)/(?P<job_id>[^/]+)", self.timeline_page, True),
        ]

    @staticmethod
    def _token_query(call: Call) -> str:
        token = call.request.GET.get("private_token")
        return "?" + urlencode({"private_token": token}) if token else ""

    def _job_link(self, call: Call, record: JobRecord) -> str:
        href = f"/status/jobs/{quote(record.manager, safe='')}/{quote(record.job_id, safe='')}"
        script = call.request.script_name or ""
        return (
            f'<a class="job" href="{escape(script + href + self._token_query(call))}">'
            f"{escape(record.job_id)}</a>"
        )

    def _staging_bytes(self) -> int:
        measured_at, size = self._usage
        if time.monotonic() - measured_at > USAGE_CACHE_SECONDS or not measured_at:
            size = tree_bytes(self.service.staging)
            self._usage = (time.monotonic(), size)
        return size

    # --- pages ----------------------------------------------------------------------------------
    def status_page(self, call: Call) -> Response:
        records = self.service.records()
        parts = [f"<h1>lwr {escape(__version__)}</h1><p>as of {escape(when(time.time()))}</p>"]

        parts.append("<h2>Managers</h2>")
        rows = []
        for name, manager in self.service.managers.items():
            counts = {state: 0 for state in JobState}
            for record in records:
                if record.manager == name:
                    counts[record.state] += 1
            description = manager.describe()
            rows.append(
                [
                    escape(name),
                    escape(str(description.get("type", ""))),
                    *(str(counts[state]) for state in ACTIVE),
                    str(counts[JobState.COMPLETE]),
                    str(sum(counts[state] for state in FAILURES)),
                    escape(
                        ", ".join(
                            f"{key} {value}"
                            for key, value in sorted(description.items())
                            if key not in ("name", "type")
                        )
                    ),
                ]
            )
        parts.append(
            _table(
                [
                    "manager",
                    "type",
                    *(state.value for state in ACTIVE),
                    "complete",
                    "failed/lost/cancelled",
                    "queue",
                ],
                rows,
                "managers",
            )
        )

        parts.append("<h2>Jobs in flight</h2>")
        active = [record for record in records if not record.state.is_final]
        parts.append(
            _table(
                ["job", "manager", "state", "since", "batch id", "tool"],
                [
                    [
                        self._job_link(call, record),
                        escape(record.manager),
                        f'<span class="{record.state.value}">{escape(record.state.value)}</span>',
                        escape(when(record.times.get(record.state.value))),
                        escape(record.external_id or "-"),
                        escape(record.tool_id or "-"),
                    ]
                    for record in active
                ],
                "active",
            )
        )

        parts.append("<h2>Recent failures</h2>")
        failures = sorted(
            (record for record in records if record.state in FAILURES),
            key=lambda record: record.times.get(record.state.value, 0),
            reverse=True,
        )
        parts.append(
            _table(
                ["job", "manager", "state", "ended", "reason"],
                [
                    [
                        self._job_link(call, record),
                        escape(record.manager),
                        f'<span class="{record.state.value}">{escape(record.state.value)}</span>',
                        escape(when(record.times.get(record.state.value))),
                        escape(record.reason or "-"),
                    ]
                    for record in failures[:RECENT_FAILURES]
                ],
                "failures",
            )
        )

        if self.messaging is not None:
            outbox = self.messaging.outbox
            connected = self.messaging.consumer.connected.is_set()
            parts.append("<h2>Message queue</h2>")
            parts.append(
                _table(
                    ["broker", "pending updates", "awaiting acknowledgement", "oldest undelivered"],
                    [
                        [
                            "connected" if connected else "<strong>disconnected</strong>",
                            str(outbox.pending_count()),
                            str(outbox.awaiting_count()),
                            f"{outbox.oldest_age():.0f} s",
                        ]
                    ],
                    "outbox",
                )
            )

        parts.append("<h2>Staging disk</h2>")
        usage = shutil.disk_usage(self.service.staging)
        parts.append(
            _table(
                ["directory", "job directories", "used by lwr", "filesystem used", "free", "size"],
                [
                    [
                        escape(str(self.service.staging)),
                        str(len(records)),
                        escape(human_bytes(self._staging_bytes())),
                        escape(human_bytes(usage.used)),
                        escape(human_bytes(usage.free)),
                        escape(human_bytes(usage.total)),
                    ]
                ],
                "disk",
            )
        )
        return _page("lwr status", "".join(parts))

    def timeline_page(self, call: Call) -> Response:
        manager, job_id = call.path_args["job_manager"], call.path_args["job_id"]
        record = self.service.find_or_none(manager, job_id)
        if record is None:
            from lwr.errors import NotFound

            raise NotFound(f"no job '{job_id}' on manager '{manager}'", job_id=job_id, manager=manager)
        events = self.service.timeline(manager, job_id)
        rows = []
        for event in events:
            what = (
                event.get("state")
                or event.get("action")
                or ("batch id" if "external_id" in event else "event")
            )
            details = "; ".join(
                f"{_DETAIL_LABELS.get(key, key)}: {value}"
                for key, value in event.items()
                if key not in ("at", "state", "action")
            )
            rows.append(
                [
                    escape(when(event.get("at"))),
                    f'<span class="{escape(str(what))}">{escape(str(what))}</span>',
                    escape(details),
                ]
            )
        delivered = "-"
        if self.messaging is not None and record.state.is_final:
            delivered = "yes" if self.messaging.outbox.is_delivered(manager, job_id) else "no"
        back = (
            f'<p><a id="back" href="{escape((call.request.script_name or "") + "/status" + self._token_query(call))}">'
            "all jobs</a></p>"
        )
        summary = _table(
            ["job", "manager", "state", "reason", "batch id", "retries", "final status delivered"],
            [
                [
                    escape(record.job_id),
                    escape(manager),
                    escape(record.state.value),
                    escape(record.reason or "-"),
                    escape(record.external_id or "-"),
                    str(record.retries),
                    delivered,
                ]
            ],
            "job",
        )
        return _page(
            f"lwr job {job_id}",
            f"<h1>Job {escape(job_id)}</h1>{back}{summary}<h2>Timeline</h2>"
            + _table(["time", "event", "details"], rows, "timeline"),
        )
