"""Exchange, queue and routing-key names of the Pulsar AMQP protocol.

Pulsar routes every message through one durable direct exchange; the queue name and the
routing key are the same string, ``pulsar_<manager>__<name>`` (``pulsar__<name>`` for the
default manager). A site may override the ``pulsar_<manager>_`` part (Pulsar's
``amqp_key_prefix``).
"""

from __future__ import annotations

from lwr.protocol.names import DEFAULT_MANAGER

__all__ = ["DEFAULT_MANAGER", "EXCHANGE_NAME", "queue_name"]

EXCHANGE_NAME = "pulsar"
EXCHANGE_TYPE = "direct"

#: Queues lwr consumes for every manager.
SETUP = "setup"
KILL = "kill"
STATUS = "status"
#: The queue lwr publishes to.
STATUS_UPDATE = "status_update"
#: Suffix of the queue acknowledgements of a queue's messages are answered on.
ACK_SUFFIX = "_ack"

#: Keys of the optional acknowledgement protocol.
ACK_UUID = "acknowledge_uuid"
ACK_QUEUE = "acknowledge_queue"
ACK_SUBMIT_QUEUE = "acknowledge_submit_queue"
ACK_UUID_RESPONSE = "acknowledge_uuid_response"
ACK_FORCE_NOACK = "force_noack"


def key_prefix(manager: str, amqp_key_prefix: str | None = None) -> str:
    """``pulsar_`` for the default manager, ``pulsar_<manager>_`` otherwise (or the override)."""
    if amqp_key_prefix is not None:
        return amqp_key_prefix
    return "pulsar_" if manager == DEFAULT_MANAGER else f"pulsar_{manager}_"


def queue_name(manager: str, name: str, amqp_key_prefix: str | None = None) -> str:
    """``queue_name("_default_", "setup") == "pulsar__setup"``; also the routing key."""
    return f"{key_prefix(manager, amqp_key_prefix)}_{name}"
