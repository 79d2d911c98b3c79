"""Typed ``amqp_*`` settings of ``[app:main]``: one field per key lwr reads, each default once.

config.py parses and validates the raw values (its key table); this module only says what
they mean and what they are when absent, so the messaging code never repeats a default.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Every field below is ``[app:main]``'s key of the same name with this prefix.
PREFIX = "amqp_"


@dataclass(frozen=True)
class AmqpSettings:
    """What lwr's AMQP transport reads; field ``heartbeat`` is key ``amqp_heartbeat`` and so on."""

    #: TLS to the broker: CA file checking the broker's certificate (unset: the system's CAs).
    connect_ssl_ca_certs: str | None = None
    #: TLS client key and certificate, for brokers that authenticate clients by certificate.
    connect_ssl_keyfile: str | None = None
    connect_ssl_certfile: str | None = None
    #: cert_none, cert_optional or cert_required (unset: required, with the host name checked).
    connect_ssl_cert_reqs: str | None = None
    #: Seconds between heartbeats (0 disables them).
    heartbeat: float = 30.0
    #: Pulsar's acknowledgement protocol for status updates.
    acknowledge: bool = False
    #: Longest wait between reconnection (or republish) attempts, seconds.
    publish_retry_max: float = 30.0

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The ``[app:main]`` keys these fields come from."""
        return tuple(PREFIX + item.name for item in dataclasses.fields(cls))

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> AmqpSettings:
        """The ``amqp_*`` entries of already parsed ``[app:main]`` values; others are ignored."""
        return cls(**{key[len(PREFIX) :]: value for key, value in values.items() if key.startswith(PREFIX)})
