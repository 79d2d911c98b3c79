"""The consumer: ``setup``, ``kill`` and ``status`` for every manager, on one connection.

The consumer's thread receives, decodes and acknowledges; the work is done by a few worker
threads, each message going to the worker its job id hashes to, so the messages of one job
are handled in order and never concurrently. A message is acknowledged to the broker only
once handled: a setup is acknowledged after the job is durably recorded, so a
crash before that means a redelivery (the broker's ``redelivered`` flag): a redelivered setup
whose identity is the one recorded for the job's run is dropped as a duplicate. A setup that is
not a redelivery, for a job whose run ended, is a resubmission and runs the job again on a clean
directory; one for a job still active is a ``Conflict``, dropped. Malformed messages are logged
and rejected (not requeued). A lost connection is retried with capped exponential backoff.

Each delivery is looked at before kombu builds a message from it (``ScreenedConsumer``):
a compressed or oversized body is rejected unopened, and a redelivered message whose handling
started too often without finishing (it killed lwr each time) is rejected too
(:mod:`lwr.messaging.deliveries`). Nothing one message contains can make the consumer loop on it.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kombu

from lwr.config import AppSettings
from lwr.core.jobs import SETUP_MESSAGE, JobService
from lwr.core.states import JobState
from lwr.errors import Conflict, LwrError, NotFound
from lwr.messaging import connection as amqp
from lwr.messaging import messages, naming
from lwr.messaging.acknowledgements import HandledMessages
from lwr.messaging.deliveries import RedeliveryGuard
from lwr.messaging.messages import Acknowledgement, MalformedMessage
from lwr.messaging.outbox import Outbox
from lwr.messaging.status_updates import StatusAnnouncer
from lwr.protocol.failure import FailureClass, is_disk_full

log = logging.getLogger(__name__)

#: Messages the broker may hand over before they are acknowledged.
PREFETCH = 64
#: Worker threads handling messages (a job's messages always go to the same one).
WORKERS = 4

STATUS_UPDATE_ACK = naming.STATUS_UPDATE + naming.ACK_SUFFIX


class MessageHandler:
    """What each kind of message does to the job service; broker-agnostic."""

    def __init__(
        self, service: JobService, announcer: StatusAnnouncer, outbox: Outbox, handled: HandledMessages
    ) -> None:
        self.service = service
        self.announcer = announcer
        self.outbox = outbox
        self.handled = handled
        #: Counters for tests and logs.
        self.rejected = 0
        self.duplicates = 0

    def handle(
        self,
        manager: str,
        name: str,
        body: dict[str, Any],
        reply: Callable[[Acknowledgement], None],
        redelivered: bool = False,
    ) -> None:
        """Act on one decoded message; ``reply(ack)`` answers an acknowledgement request.

        ``redelivered`` is the broker's flag: the message was handed out before and not acknowledged.

        Raises :class:`MalformedMessage` for a message to reject.
        """
        if name == STATUS_UPDATE_ACK:
            uuid = messages.acknowledged_uuid(body)
            if not self.outbox.acknowledged(uuid):
                log.debug("acknowledgement of %s which was not awaited (duplicate?)", uuid)
            return
        ack = messages.acknowledgement(body, name)
        if ack is not None and self.handled.seen(ack.uuid):
            self.duplicates += 1
            log.info("%s message %s was already handled; acknowledging again, not acting", name, ack.uuid)
            reply(ack)
            return
        try:
            job_id = messages.job_id_of(body)
            if name == naming.SETUP:
                self._setup(manager, job_id, body, redelivered)
            elif name == naming.KILL:
                try:
                    self.service.cancel(manager, job_id)
                except NotFound:
                    log.warning("kill for unknown job %s on manager %s ignored", job_id, manager)
            elif name == naming.STATUS:
                self.announcer.answer_status_request(manager, job_id)
        except MalformedMessage:
            if ack is not None:
                # Answered all the same: republishing a malformed message cannot make it right.
                self.handled.add(ack.uuid)
                reply(ack)
            raise
        if ack is not None:
            self.handled.add(ack.uuid)
            reply(ack)

    def _setup(self, manager: str, job_id: str, body: dict[str, Any], redelivered: bool = False) -> None:
        """Submit, unless the broker redelivers the setup that started the job's recorded run.

        A setup for a job whose run ended is a resubmission and runs again (the job service cleans
        its directory); the same message handed out again by the broker is not.
        """
        request = messages.submit_request(body)
        record = self.service.find_or_none(manager, job_id)
        if (
            redelivered
            and record is not None
            and record.state is not JobState.SETUP
            and record.extras.get(SETUP_MESSAGE, request.message_identity) == request.message_identity
        ):
            self.duplicates += 1
            log.info(
                "setup of job %s on %s is a duplicate, a redelivery of the recorded one (%s); dropped",
                job_id,
                manager,
                record.state.value,
            )
            return
        try:
            self.service.submit(manager, job_id, request)
            log.info("job %s on %s accepted from the setup queue", job_id, manager)
        except Conflict:
            self.duplicates += 1
            log.info("setup of job %s on %s is a duplicate (already submitted); dropped", job_id, manager)
        except MalformedMessage:
            raise
        except LwrError as error:
            log.error("setup of job %s on %s refused: %s", job_id, manager, error.message)
            self._fail_setup(manager, job_id, f"setup refused: {error.message}")
        except Exception as error:  # noqa: BLE001 - disk full, a bug: Galaxy must still hear of it
            log.exception(
                "setup of job %s on %s failed", job_id, manager, extra={"job_id": job_id, "manager": manager}
            )
            self._fail_setup(
                manager,
                job_id,
                f"setup failed: {type(error).__name__}: {error}",
                FailureClass.DISK_FULL if is_disk_full(error) else FailureClass.LAUNCH_FAILED,
            )

    def _fail_setup(
        self, manager: str, job_id: str, reason: str, failure_class: FailureClass = FailureClass.LAUNCH_FAILED
    ) -> None:
        """Answer a setup that did not launch with a final ``failed`` status (a half-made job is removed)."""
        record = self.service.find_or_none(manager, job_id)
        if record is not None and record.state is not JobState.SETUP:
            return  # it was accepted after all; its own status updates tell the rest
        if record is not None:
            try:
                self.service.clean(manager, job_id)
            except Exception:  # noqa: BLE001 - best effort; the failure is announced either way
                log.exception("could not remove the half-made job %s", job_id)
        self.announcer.announce_failure(manager, job_id, reason, failure_class)


class Consumer:
    """One thread consuming every lwr queue on one connection, reconnecting with backoff."""

    def __init__(
        self,
        url: str,
        settings: AppSettings,
        managers: list[str],
        handler: MessageHandler,
        acknowledgements: bool,
        redeliveries: RedeliveryGuard,
    ) -> None:
        self.url = url
        self.redeliveries = redeliveries
        self.settings = settings
        self.handler = handler
        self.backoff = amqp.reconnect_backoff(settings.amqp)
        names = [naming.SETUP, naming.KILL, naming.STATUS] + ([STATUS_UPDATE_ACK] if acknowledgements else [])
        self.routes = {
            naming.queue_name(manager, name): (manager, name) for manager in managers for name in names
        }
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._producer: kombu.Producer | None = None
        self._declared: set[str] = set()
        self._workers = [
            ThreadPoolExecutor(1, thread_name_prefix=f"lwr-mq-worker-{i}") for i in range(WORKERS)
        ]
        #: Handled messages, back from the workers: (message, manager, replies, outcome).
        self._done: queue.SimpleQueue[tuple[kombu.Message, str, list[Acknowledgement], bool]] = (
            queue.SimpleQueue()
        )
        self._outstanding = 0
        self.connected = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="lwr-mq-consumer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0, wait: bool = False) -> None:
        """Stop consuming; messages not yet handled go back to the broker unacknowledged.

        ``wait``: also wait for the messages being handled right now (a restart does, so no
        job record is still being written when its successor reads them all).
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        for worker in self._workers:
            worker.shutdown(wait=wait, cancel_futures=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._consume()
            except amqp.CONNECTION_ERRORS as error:
                self.connected.clear()
                delay = self.backoff.next()
                log.warning(
                    "consumer: broker unavailable (%s: %s); reconnecting in %.1f s",
                    type(error).__name__,
                    error,
                    delay,
                )
                self._stop.wait(delay)
            except Exception:  # noqa: BLE001 - the consumer must outlive any bug in one message
                self.connected.clear()
                log.exception("consumer: unexpected error; reconnecting")
                self._stop.wait(self.backoff.next())

    def _consume(self) -> None:
        with amqp.connect(self.url, self.settings.amqp) as connection:
            connection.connect()
            channel = connection.channel()
            channel.basic_qos(0, PREFETCH, False)
            amqp.exchange()(channel).declare()
            queues = [amqp.queue(manager, name) for manager, name in self.routes.values()]
            self._producer = kombu.Producer(connection.channel())
            self._declared = set()
            with amqp.ScreenedConsumer(
                channel, queues=queues, on_message=self._on_message, screen=self._screen
            ):
                log.info("consuming %s on %s", ", ".join(sorted(self.routes)), connection.as_uri())
                self.connected.set()
                self.backoff.reset()
                while not self._stop.is_set():
                    try:
                        connection.drain_events(timeout=0.01 if self._outstanding else 1)
                    except socket.timeout:
                        pass
                    self._settle()
                    connection.heartbeat_check()
            self.connected.clear()

    def _screen(self, raw: Any) -> bool:
        """In the consumer thread, on py-amqp's raw delivery: False if it was refused (and rejected)."""
        routing_key = str(raw.delivery_info.get("routing_key", ""))
        body = amqp.raw_body(raw)
        reason = messages.refusal_before_decoding(raw.headers, len(body))
        key = self.redeliveries.key(body)
        if reason is None and not self.redeliveries.admissible(
            key, bool(raw.delivery_info.get("redelivered"))
        ):
            reason = (
                f"handling this message started {self.redeliveries.limit} times after redelivery and never "
                "finished (it stopped lwr each time); refused as poison"
            )
        if reason is None:
            return True
        self._reject(routing_key, MalformedMessage(reason))
        raw.channel.basic_reject(raw.delivery_tag, requeue=False)
        self.redeliveries.settled(key)
        return False

    def _on_message(self, message: kombu.Message) -> None:
        """In the consumer thread: decode, then hand to the job's worker (or reject at once)."""
        routing_key = message.delivery_info.get("routing_key", "")
        manager, name = self.routes.get(routing_key, ("", ""))
        try:
            if not name:
                raise MalformedMessage(f"routing key {routing_key!r} is not one lwr consumes")
            body = messages.decode_body(message.body, message.content_type)
        except Exception as error:  # noqa: BLE001 - whatever the body does, it is rejected, never redelivered
            reason = (
                error
                if isinstance(error, MalformedMessage)
                else MalformedMessage(f"message could not be decoded: {type(error).__name__}: {error}")
            )
            self._reject(routing_key, reason)
            message.reject(requeue=False)
            self._forget(message)
            return
        job_id = body.get("job_id")
        worker = self._workers[zlib.crc32(str(job_id).encode()) % len(self._workers)]
        self._outstanding += 1
        worker.submit(self._work, message, manager, name, body)

    def _work(self, message: kombu.Message, manager: str, name: str, body: dict[str, Any]) -> None:
        """In a worker thread: act on the message; the consumer thread settles it with the broker."""
        routing_key = message.delivery_info.get("routing_key", "")
        replies: list[Acknowledgement] = []
        ok = True
        try:
            self.redeliveries.starting(
                self.redeliveries.key(amqp.raw_body(message)), bool(message.delivery_info.get("redelivered"))
            )
        except OSError as error:
            log.warning("could not count the redelivery of a message on %s: %s", routing_key, error)
        try:
            self.handler.handle(
                manager,
                name,
                body,
                replies.append,
                redelivered=bool(message.delivery_info.get("redelivered")),
            )
        except MalformedMessage as error:
            self._reject(routing_key, error)
            ok = False
        except Exception:  # noqa: BLE001 - one failing message must not stop the others
            self.handler.rejected += 1
            log.exception("failed to handle message on %s; rejecting it", routing_key)
            ok = False
        self._done.put((message, manager, replies, ok))

    def _settle(self) -> None:
        """Answer acknowledgement requests and ack (or reject) the messages the workers finished."""
        while True:
            try:
                message, manager, replies, ok = self._done.get_nowait()
            except queue.Empty:
                return
            self._outstanding -= 1
            if message.channel is None or not message.channel.is_open:
                # Received on a connection since lost: the broker redelivers it; the duplicate is dropped.
                continue
            for ack in replies:
                self._reply(manager, ack)
            if ok:
                message.ack()
            else:
                message.reject(requeue=False)
            self._forget(message)

    def _forget(self, message: kombu.Message) -> None:
        body = amqp.raw_body(message)
        if message.delivery_info.get("redelivered"):
            self.redeliveries.settled(self.redeliveries.key(body))

    def _reject(self, routing_key: str, error: MalformedMessage) -> None:
        self.handler.rejected += 1
        log.error("rejecting malformed message on %s: %s", routing_key, error.message)

    def _reply(self, manager: str, ack: Acknowledgement) -> None:
        """Answer an acknowledgement request on the sender's ``_ack`` queue of the same manager."""
        assert self._producer is not None
        routing_key = naming.queue_name(manager, ack.queue)
        if routing_key not in self._declared:
            amqp.queue(manager, ack.queue)(self._producer.channel).declare()
            self._declared.add(routing_key)
        self._producer.publish(
            {naming.ACK_UUID_RESPONSE: ack.uuid},
            serializer="json",
            exchange=amqp.exchange(),
            routing_key=routing_key,
            delivery_mode=2,
        )
