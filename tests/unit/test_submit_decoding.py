"""One submit decoder for both transports: the same launch, sent over HTTP or AMQP, decodes alike."""

from __future__ import annotations

import json

import pytest

from lwr.errors import BadRequest
from lwr.messaging import messages
from lwr.protocol.submit import JSON_SUBMIT_FIELDS, decode_submit

LAUNCH = {
    "command_line": "echo hi",
    "env": [{"name": "A", "value": "1"}],
    "setup_params": {"job_id": "42", "tool_id": "cat1", "tool_version": "1.0"},
    "remote_staging": {"setup": [], "action_mapper": {}},
    "dependencies_description": {"requirements": [{"name": "samtools", "version": "1.9", "type": "package"}]},
    "dynamic_file_sources": [{"path": "galaxy.json"}],
    "submit_extras": {"touch_outputs": ["out.dat"]},
}
SUBMIT_PARAMS = {"native_specification": "--cpus-per-task=2", "user": "alice"}


def http_form() -> dict:
    """What the HTTP route hands the decoder: Galaxy's query arguments, each JSON parsed."""
    query = {
        name: json.dumps(value)
        for name, value in {**LAUNCH, "params": SUBMIT_PARAMS}.items()
        if name != "command_line"
    }
    fields = {name: json.loads(query[name]) if name in query else None for name in JSON_SUBMIT_FIELDS}
    return {**fields, "command_line": LAUNCH["command_line"]}


def test_http_and_amqp_forms_decode_to_the_same_submit():
    over_http = decode_submit(http_form(), "42")
    over_amqp = messages.submit_request({**LAUNCH, "job_id": "42", "submit_params": SUBMIT_PARAMS})
    assert over_http == over_amqp.__class__(**{**over_amqp.__dict__, "message_identity": None})
    # Galaxy's destination submit_user arrives as the submit parameter "user" on both transports
    assert over_http.submit_user == over_amqp.submit_user == "alice"
    assert over_http.touch_outputs == over_amqp.touch_outputs == ["out.dat"]


@pytest.mark.parametrize(
    "fields,error",
    [
        ({"command_line": ""}, "command_line"),
        ({"command_line": "true", "params": [1]}, "params"),
        ({"command_line": "true", "setup_params": {"job_id": "other"}}, "differs"),
        ({"command_line": "true", "env": {"A": 1}}, "env"),
        ({"command_line": "true", "submit_extras": {"touch_outputs": "x"}}, "touch_outputs"),
    ],
)
def test_bad_fields_are_refused_alike(fields, error):
    with pytest.raises(BadRequest, match=error):
        decode_submit(fields, "42")
    with pytest.raises(messages.MalformedMessage, match=error):
        messages.submit_request({**fields, "job_id": "42", "submit_params": fields.get("params")})
