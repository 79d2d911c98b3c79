"""Retention: remove the directories of ended jobs that no client cleaned.

Galaxy's HTTP runner cleans each job it collected; in message-queue mode, or when a client
gives up, nobody does, and the staging disk fills. ``retain_complete_jobs`` and
``retain_failed_jobs`` (failed, cancelled and lost jobs) say how long after its end a job's
directory is kept; ``0`` keeps it forever. The record stays, compacted (no launch details),
with its timeline, so ``GET /jobs`` and a late status request still answer for the job.

``retain_job_records`` bounds what stays: that long after its end, a job whose directory is
gone is forgotten (record and timeline), so memory, the persistence directory and the time a
restart takes follow the jobs of the last weeks, not every job lwr ever ran. A status request
after that answers ``lost``, as for any job lwr does not know.
"""

from __future__ import annotations

import logging
import threading
import time

from lwr.core.jobs import JobService
from lwr.core.states import JobState
from lwr.core.store import JobRecord

log = logging.getLogger(__name__)

#: Bounds of the time between sweeps (a quarter of the shortest retention).
SWEEP_MIN, SWEEP_MAX = 0.5, 300.0


class Retention:
    """A thread sweeping the job service's ended jobs every ``interval`` seconds."""

    def __init__(self, service: JobService, complete: float, failed: float, records: float = 0.0) -> None:
        self.service = service
        self.complete = complete
        self.failed = failed
        self.records = records
        periods = [period for period in (complete, failed, records) if period > 0]
        self.interval = min(SWEEP_MAX, max(SWEEP_MIN, min(periods) / 4)) if periods else 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return self.interval > 0

    def start(self) -> None:
        if not self.enabled:
            return
        log.info(
            "retention: complete jobs %.0f s, failed jobs %.0f s, records %.0f s (0 = kept); "
            "sweeping every %.1f s",
            self.complete,
            self.failed,
            self.records,
            self.interval,
        )
        self._thread = threading.Thread(target=self._run, name="retention", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        # The first sweep runs at start-up, not an interval later: a server restarted more often
        # than its interval (the soak kills lwr every ~15 s) would otherwise never sweep, and
        # its staging disk would fill with ended jobs for good.
        while True:
            try:
                self.sweep()
            except Exception:  # noqa: BLE001 - one bad sweep must not end retention
                log.exception("retention sweep failed")
            if self._stop.wait(self.interval):
                return

    def period(self, record: JobRecord) -> float:
        """How long ``record``'s directory is kept after its end (0: forever)."""
        return self.complete if record.state is JobState.COMPLETE else self.failed

    def sweep(self, now: float | None = None) -> int:
        """Remove every expired directory and forget every expired record; return how many directories went."""
        now = time.time() if now is None else now
        removed = 0
        for record in self.service.records():
            if not record.state.is_final:
                continue
            if record.extras.get("directory_removed"):
                self._expire_record(record, now)
                continue
            period = self.period(record)
            if period <= 0:
                continue
            ended = self._ended(record, now)
            if now - ended < period:
                continue
            why = f"{record.state.value} for more than {period:.0f} s"
            if self.service.remove_directory(record.manager, record.job_id, why):
                log.info(
                    "retention: removed the directory of job %s on %s (%s)",
                    record.job_id,
                    record.manager,
                    why,
                )
                removed += 1
        return removed

    def _ended(self, record: JobRecord, now: float) -> float:
        ended = record.times.get(record.state.value)
        if ended is not None:
            return ended
        try:  # a record from before lwr kept times: its directory's age
            return self.service.directory(record.manager, record.job_id).path.stat().st_mtime
        except OSError:
            return now

    def _expire_record(self, record: JobRecord, now: float) -> None:
        """Forget a compacted record ``retain_job_records`` after its job ended."""
        if self.records <= 0:
            return
        ended = record.times.get(record.state.value, record.extras["directory_removed"])
        if now - ended < self.records:
            return
        if self.service.expire(record, f"ended more than {self.records:.0f} s ago"):
            log.info("retention: forgot the record of job %s on %s", record.job_id, record.manager)
