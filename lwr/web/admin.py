"""The admin API: every job lwr holds, its timeline, repairs, and ``/metrics``.

These routes see all clients' jobs, so they are *admin* routes: the web app asks for the
admin token (today: the private token; in ``assign_ids = uuid`` mode one must be set). They
answer what reconciliation with Galaxy needs: which jobs lwr has, in which state, since when,
and whether their final status reached the client.

``GET /jobs``: ``?manager=&state=complete,failed&min_age=2h&max_age=7d&limit=100&after=CURSOR``
answers ``{"jobs": [...], "next": CURSOR or null}`` (oldest first; age since the last change).
"""

from __future__ import annotations

import time
from typing import Any

from webob import Response

from lwr import __version__
from lwr.config import parse_duration
from lwr.core.jobs import JobService
from lwr.core.states import JobState
from lwr.core.store import JobRecord
from lwr.errors import BadRequest, Conflict, NotFound, ServiceUnavailable
from lwr.observability.metrics import CONTENT_TYPE, LwrMetrics
from lwr.web.app import Call, Handler

DEFAULT_PAGE = 100
MAXIMUM_PAGE = 1000


def job_summary(record: JobRecord, delivered: bool | None) -> dict[str, Any]:
    """One job as ``GET /jobs`` lists it."""
    times = record.times
    return {
        "id": record.job_id,
        "manager": record.manager,
        "state": record.state.value,
        "reason": record.reason,
        "batch_id": record.external_id,
        "tool_id": record.tool_id,
        "created": times.get(JobState.SETUP.value),
        "updated": max(times.values()) if times else None,
        "retries": record.retries,
        "directory_removed": bool(record.extras.get("directory_removed")),
        "final_status_delivered": delivered,
    }


def parse_states(text: str | None) -> set[JobState] | None:
    if not text:
        return None
    states = set()
    for name in text.split(","):
        try:
            states.add(JobState(name.strip()))
        except ValueError:
            raise BadRequest(
                f"unknown state '{name.strip()}'; expected one of "
                f"{', '.join(state.value for state in JobState)}",
                parameter="state",
                expected=[state.value for state in JobState],
            ) from None
    return states


def _duration(call: Call, name: str) -> float | None:
    raw = call.arg(name, required=False)
    if not raw:
        return None
    try:
        return parse_duration(raw)
    except ValueError as error:
        raise BadRequest(f"parameter '{name}': {error}", parameter=name) from None


class AdminApi:
    """Handlers of the admin routes; ``messaging`` (the MQ transport) is None in HTTP-only mode."""

    def __init__(self, service: JobService, metrics: LwrMetrics | None, messaging: Any = None) -> None:
        self.service = service
        self.metrics = metrics
        self.messaging = messaging

    def routes(self) -> list[tuple[str, str, Handler, bool]]:
        job = r"/jobs/(?P<job_id>[^/]+)"
        return [
            ("GET", r"/jobs", self.list_jobs, True),
            ("GET", job, self.show, True),
            ("GET", job + r"/timeline", self.timeline, True),
            ("POST", job + r"/redeliver", self.redeliver, True),
            ("POST", job + r"/retry_postprocessing", self.retry_postprocessing, True),
            ("POST", job + r"/forget", self.forget, True),
            ("GET", r"/metrics", self.metrics_text, True),
            ("GET", r"/readyz", self.readyz, False),
        ]

    def readyz(self, call: Call) -> Any:
        """Readiness (a load balancer's or orchestrator's probe; no token): 503 while a new job
        would be refused or never heard of, which ``/healthz`` (alive) does not say."""
        reasons = []
        try:
            if self.service.disk_floor.shortfall(self.service.staging):
                reasons.append("the staging filesystem is below min_free_disk")
        except OSError:
            reasons.append("the staging directory cannot be read")
        if self.messaging is not None and not self.messaging.consumer.connected.is_set():
            reasons.append("not connected to the message broker")
        if reasons:
            raise ServiceUnavailable(f"not ready: {'; '.join(reasons)}", ready=False, reasons=reasons)
        return {"version": __version__, "ready": True}

    # --- reading --------------------------------------------------------------------------------
    def delivered(self, record: JobRecord) -> bool | None:
        """Whether the client got the job's final status over AMQP (None: HTTP-only, or not final)."""
        if self.messaging is None or not record.state.is_final:
            return None
        return bool(self.messaging.outbox.is_delivered(record.manager, record.job_id))

    def list_jobs(self, call: Call) -> Any:
        manager = call.arg("manager", required=False)
        if manager and manager not in self.service.managers:
            known = {record.manager for record in self.service.records()}
            if manager not in known:
                raise NotFound(f"no manager named '{manager}'", manager=manager)
        states = parse_states(call.arg("state", required=False))
        min_age, max_age = _duration(call, "min_age"), _duration(call, "max_age")
        try:
            limit = int(call.arg("limit", str(DEFAULT_PAGE)))
            after = int(call.arg("after", "0"))
        except ValueError:
            raise BadRequest("limit and after must be integers") from None
        if not 0 < limit <= MAXIMUM_PAGE:
            raise BadRequest(f"limit must be between 1 and {MAXIMUM_PAGE}", parameter="limit")
        now = time.time()
        page: list[JobRecord] = []
        more = False
        for record in self.service.records():
            if record.sequence <= after or (manager and record.manager != manager):
                continue
            if states is not None and record.state not in states:
                continue
            age = now - max(record.times.values()) if record.times else 0.0
            if (min_age is not None and age < min_age) or (max_age is not None and age > max_age):
                continue
            if len(page) == limit:
                more = True
                break
            page.append(record)
        return {
            "jobs": [job_summary(record, self.delivered(record)) for record in page],
            "next": str(page[-1].sequence) if more else None,
        }

    def _record(self, call: Call) -> JobRecord:
        job_id = call.path_args["job_id"]
        record = self.service.find_or_none(call.manager, job_id)
        if record is None:
            raise NotFound(
                f"no job '{job_id}' on manager '{call.manager}'", job_id=job_id, manager=call.manager
            )
        return record

    def show(self, call: Call) -> Any:
        record = self._record(call)
        return {
            **job_summary(record, self.delivered(record)),
            "times": dict(record.times),
            "staging": record.staging,
            "launch": {
                key: record.launch.get(key) for key in ("command_line", "submit_params", "submit_user")
            },
        }

    def timeline(self, call: Call) -> Any:
        record = self._record(call)
        return {
            "id": record.job_id,
            "manager": record.manager,
            "state": record.state.value,
            "reason": record.reason,
            "batch_id": record.external_id,
            "retries": record.retries,
            "staging": record.staging,
            "final_status_delivered": self.delivered(record),
            "events": self.service.timeline(record.manager, record.job_id),
        }

    def metrics_text(self, call: Call) -> Response:
        if self.metrics is None:
            raise NotFound("metrics are not enabled on this lwr")
        return Response(
            body=self.metrics.exposition(), content_type=CONTENT_TYPE.split(";")[0], charset="utf-8"
        )

    # --- repairs --------------------------------------------------------------------------------
    def redeliver(self, call: Call) -> Any:
        """Announce a final status again over AMQP (Galaxy missed it, or its queue was purged)."""
        record = self._record(call)
        if self.messaging is None:
            raise Conflict("this lwr has no message queue (message_queue_url is not set); HTTP clients poll")
        if not record.state.is_final:
            raise Conflict(
                f"job '{record.job_id}' is {record.state.value}; only a final status is redelivered",
                job_id=record.job_id,
                status=record.state.wire_name,
            )
        self.messaging.announcer.answer_status_request(record.manager, record.job_id)
        self.service.note(
            record.manager,
            record.job_id,
            {"action": "final status announced again", "state": record.state.value},
        )
        return {"id": record.job_id, "redelivered": record.state.value}

    def retry_postprocessing(self, call: Call) -> Any:
        record = self._record(call)
        self.service.retry_postprocessing(record.manager, record.job_id)
        return {"id": record.job_id, "state": record.state.value, "retries": record.retries}

    def forget(self, call: Call) -> Any:
        record = self._record(call)
        self.service.forget(record.manager, record.job_id)
        if self.messaging is not None:
            self.messaging.outbox.forget_delivered(record.manager, record.job_id)
        return {"id": record.job_id, "forgotten": True}
