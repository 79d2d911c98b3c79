"""Turns job state changes and status requests into outbox entries.

A :class:`StatusAnnouncer` is a job service observer. It reads the job's state when it is
told of a change, under a lock of that job, so the updates it enqueues for one job follow
the job's (monotonic) life even when changes are reported from several threads (while
different jobs never wait for each other); an update whose status equals the last one
enqueued for the job is skipped.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any

from lwr.core.jobs import JobObserver, JobService
from lwr.core.states import JobState
from lwr.core.status import active_reply, lost_reply
from lwr.core.store import JobRecord
from lwr.errors import NotFound
from lwr.messaging.outbox import Outbox
from lwr.protocol.failure import FailureClass, failure_fields

log = logging.getLogger(__name__)

#: How many recently finished jobs are remembered to drop late duplicate reports.
FINISHED_REMEMBERED = 10000


def failed_reply(
    job_id: str, reason: str, failure_class: FailureClass = FailureClass.LAUNCH_FAILED
) -> dict[str, Any]:
    """A final ``failed`` status for a setup lwr could not accept (the job never existed here)."""
    return {**lost_reply(job_id, reason), "status": "failed", **failure_fields(failure_class)}


class StatusAnnouncer(JobObserver):
    """Enqueues a ``status_update`` for every change of a job's wire status."""

    def __init__(self, service: JobService, outbox: Outbox) -> None:
        self.service = service
        self.outbox = outbox
        self._lock = threading.Lock()
        self._job_locks: dict[tuple[str, str], threading.Lock] = {}
        self._last: dict[tuple[str, str], str] = {}
        #: Jobs whose final status was enqueued lately: a late report of an earlier change
        #: (from another thread) finds the job final and must not enqueue it again.
        self._finished: OrderedDict[tuple[str, str], None] = OrderedDict()

    def _job_lock(self, key: tuple[str, str]) -> threading.Lock:
        with self._lock:
            lock = self._job_locks.get(key)
            if lock is None:
                lock = self._job_locks[key] = threading.Lock()
            return lock

    def job_changed(self, record: JobRecord) -> None:
        if record.state is JobState.SETUP or record.launch.get("origin") == "http":
            # An HTTP client polls; nobody consumes (or acknowledges) its updates on the queue.
            return
        key = (record.manager, record.job_id)
        with self._job_lock(key):
            state = record.state
            if state.is_final:
                try:
                    body = self.service.status(record.manager, record.job_id)
                except NotFound:
                    return
            else:
                # What the service would answer for an active job, without taking its lock.
                body = active_reply(record)
                self._finished.pop(key, None)  # a job id set up again after it finished
            final = body.get("complete") == "true"
            if self._last.get(key) == body.get("status") or (final and key in self._finished):
                return
            self.outbox.enqueue(record.manager, record.job_id, body, final=final)
            self._last[key] = str(body.get("status"))
        if final:
            with self._lock:
                self._last.pop(key, None)
                self._job_locks.pop(key, None)
                self._finished[key] = None
                while len(self._finished) > FINISHED_REMEMBERED:
                    self._finished.popitem(last=False)

    def answer_status_request(self, manager: str, job_id: str) -> None:
        """A ``status`` message: publish the job's status, ``lost`` for a job lwr does not know."""
        with self._job_lock((manager, job_id)):
            try:
                body = self.service.status(manager, job_id)
            except NotFound:
                body = lost_reply(job_id, f"lwr has no job '{job_id}' on manager '{manager}'")
            self.outbox.enqueue(manager, job_id, body, final=body.get("complete") == "true")

    def announce_failure(
        self, manager: str, job_id: str, reason: str, failure_class: FailureClass = FailureClass.LAUNCH_FAILED
    ) -> None:
        with self._job_lock((manager, job_id)):
            self.outbox.enqueue(manager, job_id, failed_reply(job_id, reason, failure_class), final=True)

    def recover(self) -> int:
        """After a restart: enqueue final statuses a crash kept from the outbox; drop stale markers."""
        count = 0
        known = set()
        for record in self.service.store.load_all():
            known.add((record.manager, record.job_id))
            current = self.service.find_or_none(record.manager, record.job_id)
            if current is None or not current.state.is_final:
                continue
            if self.outbox.needs_final(current.manager, current.job_id):
                self.job_changed(current)
                count += 1
        for manager, job_id in self.outbox.delivered_jobs():
            if (manager, job_id) not in known:
                self.outbox.forget_delivered(manager, job_id)
        if count:
            log.info("re-announcing the final status of %d jobs whose delivery was not recorded", count)
        return count
