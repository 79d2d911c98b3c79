"""Fuzz the AMQP message decoder (lwr/messaging/messages.py): bytes in, a job request or a refusal out.

Attack (issue 8, c): a hostile message on lwr's queues. Whatever the body and content type,
decoding either yields a well-typed result or raises ``MalformedMessage`` (which the consumer
rejects without requeueing); any other exception would escape into the consumer. Pure
functions, no broker: bounded by the example counts, a few seconds.
"""

from __future__ import annotations

import json
from typing import Any

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from lwr.core.jobs import SubmitRequest
from lwr.messaging import messages

FUZZ = settings(
    max_examples=300, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)

SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
FIELDS = [
    "setup_params",
    "remote_staging",
    "env",
    "submit_params",
    "dependencies_description",
    "dynamic_file_sources",
    "submit_user",
    "acknowledge_uuid",
    "acknowledge_queue",
    "acknowledge_uuid_response",
    "tool_id",
]
#: Messages shaped like a setup, with each field possibly of the wrong type.
SETUP_LIKE = st.fixed_dictionaries(
    {
        "job_id": st.one_of(st.text(max_size=40), st.integers(), JSON_VALUES),
        "command_line": st.one_of(st.text(max_size=40), JSON_VALUES),
    },
    optional={key: JSON_VALUES for key in FIELDS},
)
BODIES = st.one_of(
    st.binary(max_size=300),
    JSON_VALUES.map(lambda value: json.dumps(value).encode()),
    SETUP_LIKE.map(lambda value: json.dumps(value).encode()),
    SETUP_LIKE.map(json.dumps),
    st.integers(1, 200_000).map(lambda depth: ("[" * depth + "]" * depth).encode()),
    st.integers(1, 200_000).map(lambda depth: ('{"a":' * depth + "1" + "}" * depth).encode()),
    st.just(b"\xff\xfe{}"),
    st.just('{"job_id": "\ud800"}'.encode("utf-8", "surrogatepass")),
)
CONTENT_TYPES = st.sampled_from(
    ["application/json", "", None, "application/x-python-serialize", "text/plain"]
)


QUEUES = st.sampled_from(["pulsar__setup", "pulsar_gpu__kill", "pulsar__status", "setup", ""])
HEADERS = st.one_of(
    st.none(),
    st.dictionaries(
        st.sampled_from(["compression", "content-encoding", "x-death", "x"]), JSON_VALUES, max_size=3
    ),
)


def decode_everything(
    body: Any, content_type: Any, arrived_on: str = "pulsar__setup", headers: Any = None
) -> None:
    """What the consumer does with one message, step by step."""
    size = len(body) if isinstance(body, (bytes, str)) else 0
    refusal = messages.refusal_before_decoding(headers, size)
    assert refusal is None or isinstance(refusal, str)
    try:
        decoded = messages.decode_body(body, content_type)
    except messages.MalformedMessage:
        return
    assert isinstance(decoded, dict)
    try:
        ack = messages.acknowledgement(decoded, arrived_on)
        assert ack is None or ack.queue == arrived_on + "_ack"
    except messages.MalformedMessage:
        pass
    for step in (messages.acknowledged_uuid, messages.job_id_of):
        try:
            step(decoded)
        except messages.MalformedMessage:
            pass
    try:
        request = messages.submit_request(decoded)
    except messages.MalformedMessage:
        return
    assert isinstance(request, SubmitRequest)
    assert isinstance(request.command_line, str) and request.command_line.strip()
    assert isinstance(request.setup_params, dict) and isinstance(request.remote_staging, dict)
    json.dumps(request.launch_record())  # what the job store will persist must serialise


@FUZZ
@given(body=BODIES, content_type=CONTENT_TYPES, arrived_on=QUEUES, headers=HEADERS)
def test_any_body_decodes_or_is_malformed(body, content_type, arrived_on, headers):
    decode_everything(body, content_type, arrived_on, headers)


@FUZZ
@given(message=SETUP_LIKE)
def test_setup_shaped_messages_decode_or_are_malformed(message):
    decode_everything(json.dumps(message).encode(), "application/json")
