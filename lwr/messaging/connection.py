"""kombu connections built from settings: URL, SSL options, heartbeat; and the backoff used
whenever the broker is away."""

from __future__ import annotations

import random
import socket
import ssl
from typing import Any

import amqp.exceptions
import kombu
import kombu.exceptions

from lwr.config import AppSettings
from lwr.messaging import naming

#: Seconds between heartbeats unless ``amqp_heartbeat`` says otherwise (0 disables them).
DEFAULT_HEARTBEAT = 30.0
#: Longest wait between reconnection (or republish) attempts unless ``amqp_publish_retry_max`` says otherwise.
DEFAULT_RETRY_MAX = 30.0

#: What a lost or refused broker connection raises; everything else is a bug and is logged as such.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    socket.timeout,
    amqp.exceptions.ConnectionError,
    amqp.exceptions.RecoverableConnectionError,
    amqp.exceptions.RecoverableChannelError,
    amqp.exceptions.ConnectionForced,
    kombu.exceptions.OperationalError,
    kombu.exceptions.ConnectionError,
)

_CERT_REQS = {"cert_none": ssl.CERT_NONE, "cert_optional": ssl.CERT_OPTIONAL, "cert_required": ssl.CERT_REQUIRED}


def ssl_options(amqp_settings: dict[str, Any]) -> dict[str, Any] | None:
    """The ``amqp_connect_ssl_*`` settings as kombu's ``ssl`` argument (None when none are set)."""
    options: dict[str, Any] = {}
    for key in ("ca_certs", "keyfile", "certfile"):
        value = amqp_settings.get(f"amqp_connect_ssl_{key}")
        if value:
            options[key] = value
    cert_reqs = amqp_settings.get("amqp_connect_ssl_cert_reqs")
    if cert_reqs:
        options["cert_reqs"] = _CERT_REQS[str(cert_reqs).lower()]
    return options or None


def heartbeat(settings: AppSettings) -> float:
    return float(settings.amqp.get("amqp_heartbeat", DEFAULT_HEARTBEAT))


def retry_max(settings: AppSettings) -> float:
    return float(settings.amqp.get("amqp_publish_retry_max", DEFAULT_RETRY_MAX))


def connect(url: str, settings: AppSettings | None = None, heartbeat_seconds: float | None = None,
            ssl_settings: dict[str, Any] | None = None) -> kombu.Connection:
    """A kombu connection (not yet connected), with lwr's TLS options and heartbeat, or those given."""
    amqp_settings = dict(settings.amqp) if settings is not None else dict(ssl_settings or {})
    beat = heartbeat_seconds if heartbeat_seconds is not None else (
        heartbeat(settings) if settings is not None else DEFAULT_HEARTBEAT)
    ssl_arg: Any = ssl_options(amqp_settings)
    if ssl_arg is None and url.startswith("amqps://"):
        ssl_arg = True
    return kombu.Connection(url, heartbeat=int(beat) if beat else 0, ssl=ssl_arg or False,
                            connect_timeout=10)


def exchange() -> kombu.Exchange:
    return kombu.Exchange(naming.EXCHANGE_NAME, naming.EXCHANGE_TYPE, durable=True)


def queue(manager: str, name: str) -> kombu.Queue:
    """A durable queue bound to the exchange with its own name as routing key."""
    queue_name = naming.queue_name(manager, name)
    return kombu.Queue(queue_name, exchange(), routing_key=queue_name, durable=True)


class Backoff:
    """Capped exponential backoff with jitter: 0.5 s, 1 s, 2 s, ... up to ``maximum``."""

    def __init__(self, maximum: float = DEFAULT_RETRY_MAX, initial: float = 0.5) -> None:
        self.initial = initial
        self.maximum = max(maximum, initial)
        self._next = initial

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.maximum)
        return delay * random.uniform(0.8, 1.0)

    def reset(self) -> None:
        self._next = self.initial
