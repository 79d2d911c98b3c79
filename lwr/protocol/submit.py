"""A submit as the protocol defines it, decoded once for every transport.

Galaxy's Pulsar client sends the same launch fields over HTTP (JSON strings in the query of
``POST /jobs/{id}/submit``, the submit parameters under ``params``) and over AMQP (one JSON
setup message, the submit parameters under ``submit_params``). Each transport only turns its
form into a mapping of decoded values; :func:`decode_submit` checks them and builds the one
:class:`SubmitRequest` the job service runs.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lwr.errors import BadRequest

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: The query arguments of an HTTP submit that carry JSON (``command_line`` is plain text).
JSON_SUBMIT_FIELDS = (
    "env",
    "params",
    "setup_params",
    "remote_staging",
    "dependencies_description",
    "dynamic_file_sources",
    "submit_extras",
)


@dataclass(frozen=True)
class EnvItem:
    """One variable the client asked to export; ``raw`` values are shell expressions."""

    name: str
    value: str
    raw: bool = False

    def export_line(self) -> str:
        value = self.value if self.raw else shlex.quote(self.value)
        return f"export {self.name}={value}"


@dataclass(frozen=True)
class SubmitRequest:
    """A submit, decoded from HTTP query arguments or an MQ setup message."""

    command_line: str
    env: list[EnvItem] = field(default_factory=list)
    submit_params: dict[str, Any] = field(default_factory=dict)
    setup_params: dict[str, Any] = field(default_factory=dict)
    remote_staging: dict[str, Any] = field(default_factory=dict)
    dependencies_description: Any = None
    dynamic_file_sources: Any = None
    submit_user: str | None = None
    #: Output names created empty before the tool runs (Galaxy's ``touch_outputs``).
    touch_outputs: list[str] = field(default_factory=list)
    #: The identity of the MQ message this submit came in (kept to recognise its redelivery).
    message_identity: str | None = None

    def launch_record(self) -> dict[str, Any]:
        return {
            "command_line": self.command_line,
            "env": [item.__dict__ for item in self.env],
            "submit_params": self.submit_params,
            "remote_staging": self.remote_staging,
            "submit_user": self.submit_user,
            "dynamic_file_sources": self.dynamic_file_sources,
            # Status updates go on the queue only for MQ clients (an HTTP client polls, and
            # nobody would ever consume or acknowledge its jobs' updates).
            "origin": "mq" if self.message_identity is not None else "http",
        }


def parse_env(items: Any) -> list[EnvItem]:
    """Validate the ``env`` list of a submit (``[{"name": .., "value": .., "raw": ..}]``)."""
    if items is None:
        return []
    if not isinstance(items, list):
        raise BadRequest("env must be a JSON list of {name, value} objects")
    parsed = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping) or "name" not in item:
            raise BadRequest("env item must be an object with a name", index=index)
        name = item["name"]
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            raise BadRequest("env name must be a shell identifier", index=index, name=str(name))
        value = item.get("value", "")
        parsed.append(
            EnvItem(name=name, value="" if value is None else str(value), raw=bool(item.get("raw")))
        )
    return parsed


def parse_touch_outputs(value: Any) -> list[str]:
    """Galaxy's ``touch_outputs``: output names to create empty before the tool runs."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(name, str) and name for name in value):
        raise BadRequest("touch_outputs must be a list of output names")
    return list(value)


def _object(fields: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = fields.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{key} must be a JSON object")
    return value


def submit_user(
    submit_params: Mapping[str, Any], submit_extras: Mapping[str, Any], fields: Mapping[str, Any]
) -> str | None:
    """The user a job runs as (queued_external_drmaa). Galaxy's runner sends its destination's
    ``submit_user`` as the submit parameter ``user``, as Pulsar reads it."""
    for value in (
        submit_extras.get("submit_user"),
        submit_params.get("user"),
        submit_params.get("submit_user"),
        fields.get("submit_user"),
    ):
        if isinstance(value, str) and value:
            return value
    return None


def decode_submit(
    fields: Mapping[str, Any], job_id: str, message_identity: str | None = None
) -> SubmitRequest:
    """Check the decoded launch fields of one submit; any fault is a :class:`BadRequest`.

    ``fields`` holds ``command_line``, ``env``, ``params`` (HTTP) or ``submit_params`` (AMQP),
    ``setup_params``, ``remote_staging``, ``dependencies_description``, ``dynamic_file_sources``
    and ``submit_extras`` (``touch_outputs``), each as parsed JSON.
    """
    command_line = fields.get("command_line")
    if not isinstance(command_line, str) or not command_line.strip():
        raise BadRequest("command_line must be a non-empty string")
    submit_params = _object(fields, "submit_params") or _object(fields, "params")
    submit_extras = _object(fields, "submit_extras")
    setup_params = _object(fields, "setup_params")
    setup_job_id = setup_params.get("job_id")
    if setup_job_id is not None and str(setup_job_id) != job_id:
        raise BadRequest("setup_params.job_id differs from job_id")
    for key in ("tool_id", "tool_version"):
        if setup_params.get(key) is not None and not isinstance(setup_params[key], str):
            raise BadRequest(f"setup_params.{key} must be a string")
    remote_staging = _object(fields, "remote_staging")
    if not isinstance(remote_staging.get("setup", []), list):
        raise BadRequest("remote_staging.setup must be a list")
    dynamic_file_sources = fields.get("dynamic_file_sources")
    if dynamic_file_sources is not None and not isinstance(dynamic_file_sources, list):
        raise BadRequest("dynamic_file_sources must be a list")
    touch_outputs = submit_extras.get("touch_outputs", fields.get("touch_outputs"))
    return SubmitRequest(
        command_line=command_line,
        env=parse_env(fields.get("env")),
        submit_params=submit_params,
        setup_params=setup_params,
        remote_staging=remote_staging,
        dependencies_description=fields.get("dependencies_description"),
        dynamic_file_sources=dynamic_file_sources,
        submit_user=submit_user(submit_params, submit_extras, fields),
        touch_outputs=parse_touch_outputs(touch_outputs),
        message_identity=message_identity,
    )
