"""The message-queue transport, wired: outbox, status announcer, publisher and consumer.

Built before the job service starts (so recovery's state changes are announced and the
staging hooks are in place), started after it recovered (so no message is handled against
a half-loaded service)::

    transport = MessagingTransport(service, settings)   # attach
    service.start()                                     # recover jobs
    transport.start()                                   # publish and consume
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any, Callable

from lwr.config import AppSettings
from lwr.core.jobs import JobService
from lwr.errors import NotFound
from lwr.messaging.acknowledgements import HandledMessages
from lwr.messaging.consumer import Consumer, MessageHandler
from lwr.messaging.deliveries import RedeliveryGuard
from lwr.messaging.outbox import Outbox
from lwr.messaging.publisher import StatusPublisher
from lwr.messaging.status_updates import StatusAnnouncer

log = logging.getLogger(__name__)


class MessagingTransport:
    """Everything lwr does over AMQP, for one broker URL."""

    def __init__(self, service: JobService, settings: AppSettings) -> None:
        assert settings.message_queue_url
        url = settings.message_queue_url
        acknowledgements = settings.amqp.acknowledge
        root = settings.persistence_directory / "messaging"
        self.outbox = Outbox(root / "outbox", acknowledgements=acknowledgements)
        self.handled = HandledMessages(root / "handled")
        self.announcer = StatusAnnouncer(service, self.outbox)
        service.add_observer(self.announcer)
        self.publisher = StatusPublisher(url, settings, self.outbox)
        self.handler = MessageHandler(service, self.announcer, self.outbox, self.handled)
        self.consumer = Consumer(
            url,
            settings,
            list(service.managers),
            self.handler,
            acknowledgements,
            RedeliveryGuard(root / "redeliveries"),
        )

    def start(self) -> None:
        self.announcer.recover()
        self.publisher.start()
        self.consumer.start()

    def stop(self, wait: bool = False) -> None:
        self.consumer.stop(wait=wait)
        self.publisher.stop()


class HttpDisabledApp:
    """The web face of an lwr with ``enable_http = false``: ``/healthz`` answers, the job API is 404.

    Process supervisors and load balancers keep their health check; no job can be set up,
    staged or read over HTTP.
    """

    def __init__(self, version: str) -> None:
        self.version = version

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").rstrip("/") == "/healthz":
            status, body = "200 OK", {"version": self.version, "status": "ok", "http_jobs": "disabled"}
        else:
            error = NotFound(
                "the HTTP job API is disabled on this lwr (enable_http = false); jobs come through its message queue"
            )
            status, body = "404 Not Found", error.as_dict()
        data = json.dumps(body).encode("utf-8")
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]
