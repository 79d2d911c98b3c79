"""Client side of the MQ protocol, for ``lwr check --amqp-url`` / ``lwr submit --amqp-url`` and tests.

A :class:`MessageQueueClient` publishes ``setup``, ``status`` and ``kill`` messages the way
Galaxy's Pulsar runner does and waits for a job's final ``status_update``. The status queue
of a manager is shared by everything listening to it: run checks against a manager Galaxy
does not consume (updates of other jobs are held a moment and requeued for whoever waits
for them, but a Galaxy handler consuming the same queue would take this job's updates).

    client = MessageQueueClient("amqp://guest:guest@rabbit//", manager="check")
    client.submit("job-1", "echo hello", tool_id="check")
    final = client.wait_for_final("job-1", timeout=120)
    assert final["status"] == "complete" and final["stdout"] == "hello\\n"
"""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable
from typing import Any

import kombu

from lwr.config_amqp import AmqpSettings
from lwr.messaging import connection as amqp
from lwr.messaging import messages, naming

#: ``ssl``'s keys: the suffixes of the ``amqp_connect_ssl_*`` keys.
SSL_KEYS = ("ca_certs", "certfile", "keyfile", "cert_reqs")


def tls_settings(ssl: dict[str, Any]) -> AmqpSettings:
    """``{"ca_certs": ...}`` as the settings an lwr with ``amqp_connect_ssl_ca_certs`` would have."""
    unknown = sorted(set(ssl) - set(SSL_KEYS))
    if unknown:
        raise ValueError(f"unknown TLS option(s) {', '.join(unknown)}; expected {', '.join(SSL_KEYS)}")
    return AmqpSettings(**{f"connect_ssl_{key}": value for key, value in ssl.items()})


class MessageQueueClient:
    """Talks to one manager of an lwr (or Pulsar) through a broker."""

    def __init__(
        self,
        url: str,
        manager: str = naming.DEFAULT_MANAGER,
        ssl: dict[str, Any] | None = None,
        heartbeat: float = 0,
    ) -> None:
        self.url = url
        self.manager = manager
        self.amqp_settings = tls_settings(ssl or {})
        self.heartbeat = heartbeat

    def _connect(self) -> kombu.Connection:
        return amqp.connect(self.url, self.amqp_settings, heartbeat_seconds=self.heartbeat)

    def publish(self, name: str, body: dict[str, Any]) -> None:
        """Publish ``body`` on the manager's ``name`` queue (declared durable first), persistently."""
        with self._connect() as connection:
            channel = connection.channel()
            amqp.queue(self.manager, name)(channel).declare()
            kombu.Producer(channel).publish(
                body,
                serializer="json",
                exchange=amqp.exchange(),
                routing_key=naming.queue_name(self.manager, name),
                delivery_mode=2,
            )

    def submit(
        self,
        job_id: str,
        command_line: str,
        env: list[dict[str, Any]] | None = None,
        tool_id: str | None = None,
        tool_version: str | None = None,
        remote_staging: dict[str, Any] | None = None,
        **extra: Any,
    ) -> None:
        """A ``setup`` message that also sets the job up (no HTTP round trip)."""
        self.declare_status_queue()
        body = {
            "job_id": job_id,
            "command_line": command_line,
            "env": env or [],
            "setup_params": {"job_id": job_id, "tool_id": tool_id, "tool_version": tool_version},
            "remote_staging": remote_staging or {},
            **extra,
        }
        self.publish(naming.SETUP, body)

    def request_status(self, job_id: str) -> None:
        self.publish(naming.STATUS, {"job_id": job_id, "request": "status"})

    def kill(self, job_id: str) -> None:
        self.publish(naming.KILL, {"job_id": job_id})

    def declare_status_queue(self) -> None:
        """Make sure updates published before :meth:`wait_for_final` starts are kept."""
        with self._connect() as connection:
            amqp.queue(self.manager, naming.STATUS_UPDATE)(connection.channel()).declare()

    def wait_for_final(
        self,
        job_id: str,
        timeout: float = 300,
        poll: float = 30,
        on_update: Callable[[dict[str, Any]], None] | None = None,
        lost_only_after_seen: bool = False,
    ) -> dict[str, Any]:
        """The job's final status reply; asks for the status every ``poll`` seconds meanwhile.

        ``on_update`` sees every update of the job, the final one included. With
        ``lost_only_after_seen``, a ``lost`` answer before any other update of the job is not
        taken as final: lwr answers ``lost`` to a status request that overtakes the job's
        setup (lwr busy or restarting), and the setup is still coming. Updates of other jobs
        are held unacknowledged (no prefetch limit, so the job's own updates behind them still
        arrive) and requeued every few tenths of a second, and when the connection closes, for another
        client waiting on the same queue; updates asking for an acknowledgement are answered. Raises
        ``TimeoutError`` if no final update arrives within ``timeout`` seconds.
        """
        found: list[dict[str, Any]] = []
        seen: list[str] = []
        held: list[kombu.Message] = []
        deadline = time.monotonic() + timeout
        next_request = time.monotonic() + poll
        next_release = time.monotonic() + random.uniform(0.2, 0.6)

        with self._connect() as connection:
            producer = kombu.Producer(connection.channel())

            def on_message(body: Any, message: kombu.Message) -> None:
                if not isinstance(body, dict) or body.get("job_id") != job_id:
                    held.append(message)  # another job's: requeued soon, for whoever waits for it
                    return
                message.ack()
                self._answer_acknowledgement(producer, body)
                state = str(body.get("status"))
                if on_update is not None:
                    on_update(body)
                if body.get("complete") == "true" and not (
                    lost_only_after_seen and state == "lost" and not seen
                ):
                    found.append(body)
                seen.append(state)

            def screen(raw: Any) -> bool:
                """Refuse a compressed or oversized update before kombu would inflate it."""
                if messages.refusal_before_decoding(raw.headers, len(amqp.raw_body(raw))) is None:
                    return True
                raw.channel.basic_reject(raw.delivery_tag, requeue=False)
                return False

            queue = amqp.queue(self.manager, naming.STATUS_UPDATE)
            with amqp.ScreenedConsumer(
                connection, queues=[queue], callbacks=[on_message], accept=["json"], screen=screen
            ):
                while not found:
                    now = time.monotonic()
                    if now >= deadline:
                        lost = (
                            " (lwr answered 'lost': it has not taken the job's setup)"
                            if set(seen) == {"lost"}
                            else ""
                        )
                        raise TimeoutError(f"no final status for job {job_id} within {timeout:.0f} s{lost}")
                    if now >= next_request:
                        self.request_status(job_id)
                        next_request = now + poll
                    try:
                        connection.drain_events(timeout=min(1.0, deadline - now))
                    except socket.timeout:
                        pass
                    if held and time.monotonic() >= next_release:
                        # Another client waiting on this queue may hold ours: hand theirs back now and
                        # then (at random moments, so two clients do not keep swapping the same ones).
                        for message in held:
                            message.requeue()
                        held.clear()
                        next_release = time.monotonic() + random.uniform(0.2, 0.6)
                    if self.heartbeat:
                        connection.heartbeat_check()
        return found[0]

    def _answer_acknowledgement(self, producer: kombu.Producer, body: dict[str, Any]) -> None:
        """Answer an update that asks for it (lwr's or Pulsar's ``amqp_acknowledge``), only ever on
        ``status_update_ack``: a server cannot make this client declare queues of its choosing."""
        try:
            request = messages.acknowledgement(body, naming.STATUS_UPDATE)
        except messages.MalformedMessage:
            return
        if request is None:
            return
        ack = amqp.queue(self.manager, request.queue)
        producer.publish(
            {naming.ACK_UUID_RESPONSE: request.uuid},
            serializer="json",
            exchange=amqp.exchange(),
            routing_key=ack.routing_key,
            declare=[ack],
            delivery_mode=2,
        )
