"""kombu connections built from settings: URL, TLS options, heartbeat; and the backoff used
whenever the broker is away.

TLS to the broker (an ``amqps://`` URL, or any ``amqp_connect_ssl_*`` key) always verifies the
broker's certificate chain (against ``amqp_connect_ssl_ca_certs``, else the system's CAs) *and*
that it was issued for the host name in the URL; only ``amqp_connect_ssl_cert_reqs = cert_none``
turns verification off, and lwr says so in its log at every connection.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import amqp.exceptions
import kombu
import kombu.exceptions

from lwr.config_amqp import AmqpSettings
from lwr.messaging import naming
from lwr.protocol.retry import Backoff, RetryPolicy

log = logging.getLogger(__name__)

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

_CERT_REQS = {
    "cert_none": ssl.CERT_NONE,
    "cert_optional": ssl.CERT_OPTIONAL,
    "cert_required": ssl.CERT_REQUIRED,
}


def ssl_options(
    amqp_settings: AmqpSettings, tls: bool = False, host: str | None = None
) -> dict[str, Any] | None:
    """kombu's ``ssl`` argument: None for plain AMQP (no ``amqps://`` and no ``amqp_connect_ssl_*``
    key), else py-amqp's TLS options with the certificate and the host name verified.

    ``server_hostname`` is ``host`` (py-amqp sends it as SNI and checks the certificate against
    it); ``None`` (a URL naming several brokers) lets kombu fill in the host of each attempt.
    """
    options: dict[str, Any] = {}
    for key, value in (
        ("ca_certs", amqp_settings.connect_ssl_ca_certs),
        ("keyfile", amqp_settings.connect_ssl_keyfile),
        ("certfile", amqp_settings.connect_ssl_certfile),
    ):
        if value:
            options[key] = value
    cert_reqs = str(amqp_settings.connect_ssl_cert_reqs or "").lower()
    if not tls and not options and not cert_reqs:
        return None
    if cert_reqs == "cert_none":
        log.warning(
            "amqp_connect_ssl_cert_reqs = cert_none: the broker's certificate and host name are NOT "
            "verified; anyone on the network path can impersonate the broker"
        )
        return {**options, "cert_reqs": ssl.CERT_NONE}
    return {**options, "cert_reqs": _CERT_REQS.get(cert_reqs, ssl.CERT_REQUIRED), "server_hostname": host}


def connect(
    url: str,
    amqp_settings: AmqpSettings | None = None,
    heartbeat_seconds: float | None = None,
) -> kombu.Connection:
    """A kombu connection (not yet connected), with the TLS options and heartbeat of
    ``amqp_settings`` (absent: the defaults), the heartbeat overridden by ``heartbeat_seconds``."""
    amqp_settings = amqp_settings or AmqpSettings()
    beat = heartbeat_seconds if heartbeat_seconds is not None else amqp_settings.heartbeat
    # kombu would check a broker named "localhost" against "127.0.0.1": take the name from the URL.
    host = None if ";" in url else urlsplit(url).hostname
    ssl_arg = ssl_options(amqp_settings, tls=url.lower().startswith("amqps://"), host=host)
    return kombu.Connection(url, heartbeat=int(beat) if beat else 0, ssl=ssl_arg or False, connect_timeout=10)


def exchange() -> kombu.Exchange:
    return kombu.Exchange(naming.EXCHANGE_NAME, naming.EXCHANGE_TYPE, durable=True)


def queue(manager: str, name: str) -> kombu.Queue:
    """A durable queue bound to the exchange with its own name as routing key."""
    queue_name = naming.queue_name(manager, name)
    return kombu.Queue(queue_name, exchange(), routing_key=queue_name, durable=True)


class ScreenedConsumer(kombu.Consumer):
    """A kombu consumer that lets ``screen(raw)`` refuse each delivery before kombu decodes it.

    kombu builds its ``Message`` from py-amqp's raw delivery first thing, decompressing the body
    if a ``compression`` header asks for it (unbounded); ``screen`` sees the raw delivery before
    that and returns False for one it has settled itself (rejected).
    """

    def __init__(self, *args: Any, screen: Callable[[Any], bool], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._screen = screen

    def _receive_callback(self, message: Any) -> Any:
        if not self._screen(message):
            return None
        return super()._receive_callback(message)


def raw_body(raw: Any) -> bytes:
    """The body of a raw py-amqp delivery as bytes."""
    body = raw.body
    return body if isinstance(body, bytes) else str(body).encode("utf-8", "surrogateescape")


def reconnect_backoff(amqp_settings: AmqpSettings) -> Backoff:
    """The consumer's and publisher's reconnection pacing: the shared policy, unbounded, capped by
    ``amqp_publish_retry_max``."""
    return Backoff(RetryPolicy(attempts=0, backoff=0.5, cap=amqp_settings.publish_retry_max))
