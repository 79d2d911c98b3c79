"""Decoding and validating what arrives on the queues: pure functions, no broker.

Anything that does not fit raises :class:`MalformedMessage`; the consumer logs it, rejects
the message (no requeue) and carries on, so one bad message never stalls a queue or touches
another job.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lwr.core.job_directory import validate_job_id
from lwr.core.job_script import parse_env
from lwr.core.jobs import SubmitRequest
from lwr.errors import BadRequest
from lwr.messaging import naming

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


def _object(body: dict[str, Any], key: str) -> dict[str, Any]:
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedMessage(f"{key} must be a JSON object")
    return value


def submit_request(body: dict[str, Any]) -> SubmitRequest:
    """A setup message (the fields of an HTTP submit, plus ``setup_params``) as a submit."""
    job_id = job_id_of(body)
    command_line = body.get("command_line")
    if not isinstance(command_line, str) or not command_line.strip():
        raise MalformedMessage("command_line must be a non-empty string")
    setup_params = _object(body, "setup_params")
    setup_job_id = setup_params.get("job_id")
    if setup_job_id is not None and str(setup_job_id) != job_id:
        raise MalformedMessage("setup_params.job_id differs from job_id")
    for key in ("tool_id", "tool_version"):
        if setup_params.get(key) is not None and not isinstance(setup_params[key], str):
            raise MalformedMessage(f"setup_params.{key} must be a string")
    remote_staging = _object(body, "remote_staging")
    if not isinstance(remote_staging.get("setup", []), list):
        raise MalformedMessage("remote_staging.setup must be a list")
    dynamic_file_sources = body.get("dynamic_file_sources")
    if dynamic_file_sources is not None and not isinstance(dynamic_file_sources, list):
        raise MalformedMessage("dynamic_file_sources must be a list")
    submit_user = body.get("submit_user")
    try:
        env = parse_env(body.get("env"))
    except BadRequest as error:
        raise MalformedMessage(f"env: {error.message}") from None
    return SubmitRequest(
        command_line=command_line,
        env=env,
        submit_params=_object(body, "submit_params"),
        setup_params=setup_params or {"job_id": job_id},
        remote_staging=remote_staging,
        dependencies_description=body.get("dependencies_description"),
        dynamic_file_sources=dynamic_file_sources,
        submit_user=submit_user if isinstance(submit_user, str) else None,
    )
