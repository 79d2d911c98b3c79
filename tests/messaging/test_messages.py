"""Decoding and validating queue messages (no broker)."""

from __future__ import annotations

import json

import pytest

from lwr.messaging import messages, naming
from lwr.messaging.messages import MalformedMessage


@pytest.mark.parametrize(
    ("manager", "name", "expected"),
    [
        ("_default_", "setup", "pulsar__setup"),
        ("_default_", "status_update", "pulsar__status_update"),
        ("_default_", "setup_ack", "pulsar__setup_ack"),
        ("two", "kill", "pulsar_two__kill"),
        ("two", "status_update_ack", "pulsar_two__status_update_ack"),
    ],
)
def test_queue_names_match_pulsar(manager, name, expected):
    assert naming.queue_name(manager, name) == expected


@pytest.mark.parametrize(
    ("body", "content_type", "error"),
    [
        (b"not json", "application/json", "not JSON"),
        (b"[1, 2]", "application/json", "not an object"),
        (b'"text"', "application/json", "not an object"),
        (b"\xff\xfe", "application/json", "not JSON"),
        (b"{}", "application/x-python-serialize", "content type"),
        (None, "application/json", "empty"),
        (b"{" + b" " * (messages.MAXIMUM_BODY_SIZE + 1) + b"}", "application/json", "larger than"),
    ],
)
def test_decode_rejects(body, content_type, error):
    with pytest.raises(MalformedMessage, match=error):
        messages.decode_body(body, content_type)


def test_decode_accepts_json_object():
    assert messages.decode_body(b'{"job_id": "1"}', "application/json") == {"job_id": "1"}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({}, "no job_id"),
        ({"job_id": ["x"]}, "must be a string"),
        ({"job_id": "../etc"}, "job_id"),
        ({"job_id": "1"}, "command_line"),
        ({"job_id": "1", "command_line": 7}, "command_line"),
        ({"job_id": "1", "command_line": "  "}, "command_line"),
        ({"job_id": "1", "command_line": "true", "env": "A=1"}, "env"),
        ({"job_id": "1", "command_line": "true", "env": [{"name": "1bad", "value": "x"}]}, "env"),
        ({"job_id": "1", "command_line": "true", "setup_params": []}, "setup_params"),
        ({"job_id": "1", "command_line": "true", "setup_params": {"job_id": "2"}}, "differs"),
        ({"job_id": "1", "command_line": "true", "setup_params": {"tool_id": 3}}, "tool_id"),
        ({"job_id": "1", "command_line": "true", "remote_staging": "x"}, "remote_staging"),
        ({"job_id": "1", "command_line": "true", "remote_staging": {"setup": {}}}, "setup must be a list"),
        ({"job_id": "1", "command_line": "true", "submit_params": 5}, "submit_params"),
        ({"job_id": "1", "command_line": "true", "dynamic_file_sources": {}}, "dynamic_file_sources"),
    ],
)
def test_setup_validation(body, error):
    with pytest.raises(MalformedMessage, match=error):
        messages.submit_request(body)


def test_setup_as_submit_request():
    body = json.loads(
        json.dumps(
            {
                "job_id": "42",
                "command_line": "echo hi",
                "env": [{"name": "A", "value": "1"}],
                "setup_params": {"job_id": "42", "tool_id": "cat1", "tool_version": "1.0"},
                "remote_staging": {"setup": [], "action_mapper": {}},
                "submit_params": {"queue": "q"},
                "dynamic_file_sources": None,
                "token_endpoint": None,
            }
        )
    )
    request = messages.submit_request(body)
    assert request.command_line == "echo hi"
    assert request.env[0].name == "A"
    assert request.setup_params["tool_id"] == "cat1"
    assert request.submit_params == {"queue": "q"}


def test_setup_without_setup_params_still_sets_up():
    assert messages.submit_request({"job_id": 7, "command_line": "true"}).setup_params == {"job_id": "7"}


@pytest.mark.parametrize(
    "body",
    [
        {"acknowledge_uuid": 5, "acknowledge_queue": "setup_ack"},
        {"acknowledge_uuid": "u", "acknowledge_queue": "setup"},
        {"acknowledge_uuid": "u", "acknowledge_queue": "bad queue_ack"},
        {"acknowledge_uuid": "u", "acknowledge_queue": "kill_ack"},
        {"acknowledge_uuid": "u", "acknowledge_queue": "any_durable_queue_ack"},
        {"acknowledge_uuid": "u", "acknowledge_queue": "setup_ack", "acknowledge_submit_queue": "kill"},
        {"acknowledge_uuid": "u"},
    ],
)
def test_bad_acknowledgement_requests(body):
    with pytest.raises(MalformedMessage):
        messages.acknowledgement(body, "setup")


def test_acknowledgement_request():
    ack = messages.acknowledgement(
        {"acknowledge_uuid": "u-1", "acknowledge_queue": "setup_ack", "acknowledge_submit_queue": "setup"},
        "setup",
    )
    assert ack == messages.Acknowledgement("u-1", "setup_ack")
    assert messages.acknowledgement({"job_id": "1"}, "setup") is None
    assert messages.acknowledged_uuid({"acknowledge_uuid_response": "u-1"}) == "u-1"


def test_ssl_options_from_settings():
    import ssl

    from lwr.config_amqp import AmqpSettings
    from lwr.messaging import connection

    assert connection.ssl_options(AmqpSettings()) is None
    options = connection.ssl_options(
        AmqpSettings(
            connect_ssl_ca_certs="/ca.pem",
            connect_ssl_certfile="/c.pem",
            connect_ssl_keyfile="/k.pem",
            connect_ssl_cert_reqs="cert_required",
        )
    )
    assert options == {
        "ca_certs": "/ca.pem",
        "certfile": "/c.pem",
        "keyfile": "/k.pem",
        "cert_reqs": ssl.CERT_REQUIRED,
        "server_hostname": None,
    }
    built = connection.connect("amqps://u:p@broker:5671//", AmqpSettings(connect_ssl_ca_certs="/ca"))
    assert built.ssl == {"ca_certs": "/ca", "cert_reqs": ssl.CERT_REQUIRED, "server_hostname": "broker"}
    assert connection.connect("amqps://u:p@localhost:5671//", None).ssl == {
        "cert_reqs": ssl.CERT_REQUIRED,
        "server_hostname": "localhost",
    }
    assert connection.connect("amqp://u:p@broker//", None).ssl is False
    assert connection.ssl_options(AmqpSettings(connect_ssl_cert_reqs="cert_none")) == {
        "cert_reqs": ssl.CERT_NONE
    }


def test_backoff_is_capped_and_resets():
    from lwr.protocol.retry import Backoff, RetryPolicy

    backoff = Backoff(RetryPolicy(attempts=0, backoff=0.5, cap=4))
    delays = [backoff.next() for _ in range(8)]
    assert all(0.4 <= d <= 4 for d in delays) and delays[-1] > 3.0
    backoff.reset()
    assert backoff.next() <= 0.5
