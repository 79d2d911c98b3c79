"""Retention: remove the directories of ended jobs that no client cleaned.

Galaxy's HTTP runner cleans each job it collected; in message-queue mode, or when a client
gives up, nobody does, and the staging disk fills. ``retain_complete_jobs`` and
``retain_failed_jobs`` (failed, cancelled and lost jobs) say how long after its end a job's
directory is kept; ``0`` keeps it forever. The record stays, compacted (no launch details),
with its timeline, so ``GET /jobs`` still answers for the job until it is cleaned or
forgotten.
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

    def __init__(self, service: JobService, complete: float, failed: float) -> None:
        self.service = service
        self.complete = complete
        self.failed = failed
        periods = [period for period in (complete, failed) if period > 0]
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
            "retention: complete jobs %.0f s, failed jobs %.0f s (0 = kept); sweeping every %.1f s",
            self.complete,
            self.failed,
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
        """Remove every expired directory; return how many were removed."""
        now = time.time() if now is None else now
        removed = 0
        for record in self.service.records():
            if not record.state.is_final or record.extras.get("directory_removed"):
                continue
            period = self.period(record)
            if period <= 0:
                continue
            ended = record.times.get(record.state.value)
            if ended is None:  # a record from before lwr kept times: its directory's age
                try:
                    ended = self.service.directory(record.manager, record.job_id).path.stat().st_mtime
                except OSError:
                    ended = now
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
