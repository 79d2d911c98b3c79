"""TLS to the broker, against a real TLS listener on loopback in front of the real RabbitMQ: a
certificate issued for another name is refused (and lwr says why); the right name connects and
a job runs through it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from mq_helpers import BROKER, publish
from net_helpers import Authority, TlsProxy


@pytest.fixture
def authority(tmp_path) -> Authority:
    directory = tmp_path / "ca"
    directory.mkdir()
    return Authority(directory)


@pytest.fixture
def proxies() -> Iterator[list[TlsProxy]]:
    started: list[TlsProxy] = []
    yield started
    for proxy in started:
        proxy.stop()


def tls_url(vhost, port: int) -> str:
    return f"amqps://guest:guest@localhost:{port}/{vhost.name}"


def wait_for_log(server, text: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = server.log_text()
        if text in log:
            return log
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never appeared in the log:\n{server.log_text()[-3000:]}")


def start_lwr(make_server, name: str, vhost, proxy: TlsProxy, **options: str):
    return make_server(
        name,
        app_options={
            "message_queue_url": tls_url(vhost, proxy.port),
            "amqp_heartbeat": "10",
            "amqp_publish_retry_max": "2",
            **options,
        },
    )


def test_broker_certificate_must_name_the_broker(make_server, vhost, authority, proxies, tmp_path):
    """A certificate from the trusted CA but for another name is refused, with the reason in the
    log and no AMQP byte sent; the system CAs do not trust a private CA; the right name connects
    and a job runs through TLS."""
    from mq_helpers import StatusListener

    impostor = TlsProxy(authority.server_context("broker.elsewhere.test"))
    right = TlsProxy(authority.server_context("localhost"))
    proxies.extend([impostor, right])
    ca = {"amqp_connect_ssl_ca_certs": str(authority.ca_path)}

    refused = start_lwr(make_server, "impostor", vhost, impostor, **ca)
    log = wait_for_log(refused, "broker unavailable")
    assert "certificate verify failed" in log and "localhost" in log, log[-3000:]
    assert "consuming" not in refused.log_text(), "lwr consumed from a broker with another name's certificate"
    assert impostor.forwarded == 0, "no AMQP byte may flow over the impostor's TLS"
    refused.stop()

    untrusted = start_lwr(make_server, "system-cas", vhost, right)
    assert "certificate verify failed" in wait_for_log(untrusted, "broker unavailable")
    assert right.forwarded == 0
    untrusted.stop()

    start_lwr(make_server, "right", vhost, right, **ca)
    listener = StatusListener(vhost.url)
    try:
        publish(
            f"{BROKER}/{vhost.name}",
            "_default_",
            "setup",
            {
                "job_id": "tls-1",
                "command_line": f"echo ok > {tmp_path / 'ran'}",
                "setup_params": {"job_id": "tls-1", "tool_id": "t", "tool_version": "1"},
            },
        )
        assert listener.wait_final("tls-1")["status"] == "complete"
    finally:
        listener.stop()
    assert right.forwarded >= 2, "consumer and publisher both went through TLS"
