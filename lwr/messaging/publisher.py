"""The publisher: drains the outbox to the broker, in order, each batch committed by the broker.

One thread and one connection. Updates go out in batches inside an AMQP transaction: when
``tx.commit`` returns, the broker has taken every message of the batch (persistent messages
on durable queues included), which is the publisher confirm, for a batch at a time. An
update leaves the outbox only then; while the broker is away the thread waits with capped
exponential backoff and tries the same batch again, so updates are never reordered or
dropped. A non-final update followed in the same batch by a newer one of the same job is
not sent (the newer one supersedes it). With acknowledgements on, it also republishes
updates the receiver has not answered.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import kombu

from lwr.config import AppSettings
from lwr.messaging import connection as amqp
from lwr.messaging import naming
from lwr.messaging.outbox import Entry, Outbox

log = logging.getLogger(__name__)

#: Seconds before an unacknowledged status update is published again (Pulsar uses 30).
REPUBLISH_AFTER = 30.0
#: Most updates committed in one transaction.
BATCH = 200


class StatusPublisher:
    """Publishes ``status_update`` messages from an :class:`Outbox` until stopped."""

    def __init__(
        self, url: str, settings: AppSettings, outbox: Outbox, republish_after: float = REPUBLISH_AFTER
    ) -> None:
        self.url = url
        self.settings = settings
        self.outbox = outbox
        self.republish_after = republish_after
        self.backoff = amqp.reconnect_backoff(settings.amqp)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connection: kombu.Connection | None = None
        self._producer: kombu.Producer | None = None
        self._declared: set[str] = set()
        #: Counters for tests and logs.
        self.published = 0
        self.failures = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="lwr-mq-publisher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._publish_due()
            except amqp.CONNECTION_ERRORS as error:
                self._connection_failed(error)
            except Exception:  # noqa: BLE001 - the publisher must outlive any one bad update
                log.exception("status publisher: unexpected error; retrying")
                self._close()
                self._stop.wait(self.backoff.next())

    def _publish_due(self) -> None:
        batch = self.outbox.peek_batch(timeout=1.0, limit=BATCH)
        if batch:
            skipped = self.outbox.superseded(batch)
            for entry in batch:
                if entry.sequence not in skipped:
                    self._publish(entry, republish=False)
            self._commit()
            for entry in batch:
                self.outbox.confirmed(entry, sent=entry.sequence not in skipped)
            self.published += len(batch) - len(skipped)
            self.backoff.reset()
        elif self._connection is not None:
            self._connection.heartbeat_check()
        if self.outbox.acknowledgements:
            due = self.outbox.due_for_republish(self.republish_after)
            for waiting in due:
                log.info(
                    "status update %s for job %s not acknowledged; republishing", waiting.uuid, waiting.job_id
                )
                self._publish(waiting, republish=True)
            if due:
                self._commit()
            for waiting in due:
                self.outbox.republished(waiting)

    def _commit(self) -> None:
        assert self._producer is not None
        self._producer.channel.tx_commit()

    def _publish(self, entry: Entry, republish: bool) -> None:
        producer = self._ensure_producer()
        routing_key = naming.queue_name(entry.manager, naming.STATUS_UPDATE)
        if routing_key not in self._declared:
            # Declare the receiver's queue too: a direct exchange drops messages no queue is bound for.
            amqp.queue(entry.manager, naming.STATUS_UPDATE)(producer.channel).declare()
            self._declared.add(routing_key)
        body: dict[str, Any] = dict(entry.body)
        if self.outbox.acknowledgements:
            body[naming.ACK_UUID] = entry.uuid
            body[naming.ACK_QUEUE] = naming.STATUS_UPDATE + naming.ACK_SUFFIX
            body[naming.ACK_SUBMIT_QUEUE] = naming.STATUS_UPDATE
            if republish:
                body[naming.ACK_FORCE_NOACK] = True
        producer.publish(
            body,
            serializer="json",
            exchange=amqp.exchange(),
            routing_key=routing_key,
            delivery_mode=2,
            retry=False,
        )

    def _ensure_producer(self) -> kombu.Producer:
        if self._producer is None:
            connection = amqp.connect(self.url, self.settings.amqp)
            connection.connect()
            self._connection = connection
            channel = connection.channel()
            amqp.exchange()(channel).declare()
            channel.tx_select()
            self._producer = kombu.Producer(channel)
            self._declared = set()
            log.info("status publisher connected to %s", connection.as_uri())
        return self._producer

    def _connection_failed(self, error: BaseException) -> None:
        self.failures += 1
        delay = self.backoff.next()
        log.warning(
            "status publisher: broker unavailable (%s: %s); %d updates pending, retrying in %.1f s",
            type(error).__name__,
            error,
            self.outbox.pending_count(),
            delay,
        )
        self._close()
        self._stop.wait(delay)

    def _close(self) -> None:
        connection, self._connection, self._producer = self._connection, None, None
        if connection is not None:
            try:
                connection.release()
            except Exception:  # noqa: BLE001 - closing a broken connection may fail in any way
                log.debug("status publisher: error closing connection", exc_info=True)
