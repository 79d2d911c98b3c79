"""Decoding and validating what arrives on the queues: pure functions, no broker.

Anything that does not fit raises :class:`MalformedMessage`; the consumer logs it, rejects
the message (no requeue) and carries on, so one bad message never stalls a queue or touches
another job.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from lwr.core.job_directory import validate_job_id
from lwr.errors import BadRequest
from lwr.messaging import naming
from lwr.protocol.submit import SubmitRequest, decode_submit

#: Largest message body accepted. Setup messages carry small files inline (``message``
#: staging actions), so this is generous, but it bounds what one message can cost.
MAXIMUM_BODY_SIZE = 8 * 1024 * 1024

_JSON_TYPES = ("application/json", "", None)


class MalformedMessage(BadRequest):
    """A message that is not a JSON object of the expected shape; rejected, never retried."""


@dataclass(frozen=True)
class Acknowledgement:
    """The acknowledgement a sender asked for: answer ``uuid`` on ``queue``."""

    uuid: str
    queue: str


def refusal_before_decoding(headers: Mapping[str, Any] | None, size: int) -> str | None:
    """Why a delivery must be refused before kombu builds its message from it, or None.

    kombu decompresses a body whose ``compression`` header it knows while it builds the message,
    with no bound: a few hundred bytes become gigabytes before any check of lwr's could run.
    Galaxy's Pulsar client never compresses, so a compressed body is refused unopened.
    """
    if headers and headers.get("compression"):
        return f"compressed message ({str(headers.get('compression'))[:60]!r}) refused unopened"
    if size > MAXIMUM_BODY_SIZE:
        return f"message of {size} bytes is larger than {MAXIMUM_BODY_SIZE}"
    return None


def decode_body(body: bytes | str | None, content_type: str | None) -> dict[str, Any]:
    """The JSON object in ``body``; anything else (wrong type, not JSON, too large) is malformed."""
    if content_type not in _JSON_TYPES:
        raise MalformedMessage(f"content type {content_type!r} is not application/json")
    if body is None:
        raise MalformedMessage("empty message")
    if len(body) > MAXIMUM_BODY_SIZE:
        raise MalformedMessage(f"message of {len(body)} bytes is larger than {MAXIMUM_BODY_SIZE}")
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise MalformedMessage(f"message is not JSON: {error}") from None
    except RecursionError:
        raise MalformedMessage("message is JSON nested too deeply") from None
    if not isinstance(value, dict):
        raise MalformedMessage(f"message is a JSON {type(value).__name__}, not an object")
    return value


def acknowledgement(body: dict[str, Any], arrived_on: str) -> Acknowledgement | None:
    """The acknowledgement request of a message that arrived on queue ``arrived_on`` (``setup``…).

    Galaxy's Pulsar client asks for the answer on ``<queue>_ack`` of the queue it published to,
    and nowhere else; any other name is refused, since answering means declaring that queue
    (durable) on the broker.
    """
    if naming.ACK_UUID not in body:
        return None
    uuid = body.get(naming.ACK_UUID)
    queue = body.get(naming.ACK_QUEUE)
    expected = arrived_on + naming.ACK_SUFFIX
    if not isinstance(uuid, str) or not 0 < len(uuid) <= 200:
        raise MalformedMessage("acknowledge_uuid must be a short string")
    if queue != expected:
        raise MalformedMessage(f"acknowledge_queue must be {expected!r} for a message on {arrived_on!r}")
    submit_queue = body.get(naming.ACK_SUBMIT_QUEUE)
    if submit_queue is not None and submit_queue != arrived_on:
        raise MalformedMessage(f"acknowledge_submit_queue must be {arrived_on!r}")
    return Acknowledgement(uuid, expected)


def acknowledged_uuid(body: dict[str, Any]) -> str:
    """The uuid of an answer on an ``_ack`` queue (``{"acknowledge_uuid_response": uuid}``)."""
    uuid = body.get(naming.ACK_UUID_RESPONSE)
    if not isinstance(uuid, str) or not uuid:
        raise MalformedMessage("acknowledge_uuid_response must be a string")
    return uuid


def message_identity(body: dict[str, Any]) -> str:
    """What makes a setup message this one: its ``acknowledge_uuid``, else a digest of its body.

    Only a broker's redelivery is compared with it, so a resubmission whose body happens to be
    identical (Galaxy resends the same job) still runs again.
    """
    uuid = body.get(naming.ACK_UUID)
    if isinstance(uuid, str) and uuid:
        return f"uuid:{uuid}"
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def job_id_of(body: dict[str, Any]) -> str:
    job_id = body.get("job_id")
    if job_id is None:
        raise MalformedMessage("message has no job_id")
    if isinstance(job_id, int) and not isinstance(job_id, bool):
        job_id = str(job_id)
    if not isinstance(job_id, str):
        raise MalformedMessage("job_id must be a string")
    try:
        return validate_job_id(job_id)
    except BadRequest as error:
        raise MalformedMessage(f"job_id: {error.message}") from None


def submit_request(body: dict[str, Any]) -> SubmitRequest:
    """A setup message (the fields of an HTTP submit, plus ``setup_params``) as a submit."""
    job_id = job_id_of(body)
    try:
        request = decode_submit(body, job_id, message_identity=message_identity(body))
    except BadRequest as error:
        raise MalformedMessage(error.message) from None
    # A setup message sets its job up itself, with or without setup parameters.
    return request if request.setup_params else replace(request, setup_params={"job_id": job_id})
