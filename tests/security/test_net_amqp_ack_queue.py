"""Hostile ``acknowledge_queue`` names against a real MQ-mode lwr on the real RabbitMQ: lwr must
not declare (durable) queues a message names; it answers only on ``<queue>_ack``."""

from __future__ import annotations

import subprocess
import time

import kombu
from mq_helpers import exchange, publish, queue_name


def queues(vhost) -> set[str]:
    result = subprocess.run(
        ["rabbitmqctl", "list_queues", "-p", vhost.name, "-q", "--no-table-headers", "name"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return {line.strip() for line in result.stdout.splitlines() if line.strip()}


def setup(job_id: str, marker, **extra: object) -> dict:
    return {
        "job_id": job_id,
        "command_line": f"echo {job_id} >> {marker}",
        "setup_params": {"job_id": job_id, "tool_id": "t", "tool_version": "1"},
        **extra,
    }


def test_hostile_acknowledge_queues_are_refused(mq_server, vhost, listener, tmp_path):
    server = mq_server()
    marker = tmp_path / "ran"
    hostile = ["galaxy_internal_ack", "kill_ack", "status_update_ack", "x" * 150 + "_ack"]
    for index, name in enumerate(hostile):
        publish(
            vhost.url,
            "_default_",
            "setup",
            setup(f"hostile-{index}", marker, acknowledge_uuid=f"u-{index}", acknowledge_queue=name),
        )
    # Galaxy's own form is still answered, on pulsar__setup_ack.
    key = queue_name("_default_", "setup_ack")
    answers: list[dict] = []
    with kombu.Connection(vhost.url) as connection:
        ack_queue = kombu.Queue(key, exchange(), routing_key=key, durable=True)
        ack_queue(connection.channel()).declare()
        publish(
            vhost.url,
            "_default_",
            "setup",
            setup(
                "galaxy-1",
                marker,
                acknowledge_uuid="u-ok",
                acknowledge_queue="setup_ack",
                acknowledge_submit_queue="setup",
            ),
        )
        assert listener.wait_final("galaxy-1")["status"] == "complete"
        with kombu.Consumer(
            connection,
            queues=[ack_queue],
            accept=["json"],
            callbacks=[lambda body, message: (answers.append(body), message.ack())],
        ):
            deadline = time.monotonic() + 30
            while not answers and time.monotonic() < deadline:
                try:
                    connection.drain_events(timeout=0.5)
                except TimeoutError:
                    pass
    assert answers == [{"acknowledge_uuid_response": "u-ok"}]
    declared = queues(vhost)
    assert not {queue_name("_default_", name) for name in hostile} & declared, declared
    assert marker.read_text().split() == ["galaxy-1"], "messages with hostile ack queues are not acted on"
    assert server.log_text().count("acknowledge_queue must be 'setup_ack'") == len(hostile)
