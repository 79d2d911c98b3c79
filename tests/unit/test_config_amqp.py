"""AmqpSettings: one typed field per ``amqp_*`` key, defaults as documented, bad values named."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from lwr.config import APP_KEYS, load_app_settings
from lwr.config_amqp import AmqpSettings
from lwr.errors import ConfigError
from lwr.messaging.client import tls_settings

ROOT = Path(__file__).resolve().parents[2]

#: What docs/messaging.md and server.ini.sample promise when a key is absent.
DOCUMENTED = {
    "connect_ssl_ca_certs": None,
    "connect_ssl_keyfile": None,
    "connect_ssl_certfile": None,
    "connect_ssl_cert_reqs": None,
    "heartbeat": 30.0,
    "acknowledge": False,
    "publish_retry_max": 30.0,
}


def test_every_field_has_the_documented_default(tmp_path):
    assert {item.name: item.default for item in dataclasses.fields(AmqpSettings)} == DOCUMENTED
    assert load_app_settings({}, str(tmp_path / "server.ini")).amqp == AmqpSettings()


def test_fields_are_exactly_the_amqp_keys_config_reads():
    assert set(AmqpSettings.keys()) == {key for key in APP_KEYS if key.startswith("amqp_")}


def test_sample_config_values_marked_default_are_the_defaults(tmp_path):
    """server.ini.sample's commented ``#amqp_x = v`` next to ``(default v)`` parse to the default."""
    sample = (ROOT / "server.ini.sample").read_text()
    checked = 0
    for key, raw in re.findall(r"^#(amqp_\w+) = (\S+)$", sample, re.MULTILINE):
        name = key[len("amqp_") :]
        if DOCUMENTED[name] is None:
            continue
        parsed = load_app_settings({key: raw}, str(tmp_path / "server.ini")).amqp
        assert getattr(parsed, name) == DOCUMENTED[name], key
        checked += 1
    assert checked == 3


def test_values_are_typed(tmp_path):
    settings = load_app_settings(
        {
            "amqp_heartbeat": "0",
            "amqp_acknowledge": "true",
            "amqp_publish_retry_max": "2",
            "amqp_connect_ssl_ca_certs": "/ca.pem",
            "amqp_connect_ssl_cert_reqs": "CERT_OPTIONAL",
        },
        str(tmp_path / "server.ini"),
    ).amqp
    assert settings == AmqpSettings(
        heartbeat=0.0,
        acknowledge=True,
        publish_retry_max=2.0,
        connect_ssl_ca_certs="/ca.pem",
        connect_ssl_cert_reqs="cert_optional",
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.heartbeat = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    "key, raw, expected",
    [
        ("amqp_heartbeat", "often", "seconds, a number"),
        ("amqp_publish_retry_max", "30s", "seconds, a number"),
        ("amqp_acknowledge", "maybe", "true or false"),
        ("amqp_connect_ssl_cert_reqs", "sometimes", "cert_none, cert_optional or cert_required"),
    ],
)
def test_bad_value_names_file_and_key(tmp_path, key, raw, expected):
    with pytest.raises(ConfigError) as caught:
        load_app_settings({key: raw}, str(tmp_path / "server.ini"))
    error = caught.value
    assert "server.ini" in error.message and "[app:main]" in error.message and key in error.message
    assert expected in error.message
    assert error.details["key"] == key and error.details["file"].endswith("server.ini")


def test_unknown_amqp_key_is_refused_as_any_unknown_key(tmp_path):
    """Pulsar's sample knows amqp keys lwr does not read; like every unknown key they stop lwr,
    with what lwr does instead."""
    with pytest.raises(
        ConfigError, match="'amqp_consumer_timeout' is a Pulsar setting lwr does not take"
    ) as caught:
        load_app_settings({"amqp_consumer_timeout": "1"}, str(tmp_path / "server.ini"))
    assert caught.value.details["key"] == "amqp_consumer_timeout"


def test_client_tls_options():
    assert tls_settings({"ca_certs": "/ca"}) == AmqpSettings(connect_ssl_ca_certs="/ca")
    with pytest.raises(ValueError, match="ca_cert"):
        tls_settings({"ca_cert": "/ca"})
