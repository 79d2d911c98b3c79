"""Server-side staging around a job's run: fetch its inputs before launch, deliver its outputs after.

Staging waits on remote hosts, so it runs off the caller's thread: in the staging hooks' bounded
pool (or a thread of its own when there are no hooks). The :class:`StagingRunner` only moves the
files and measures the move; it reports to a :class:`StagingListener` (the job service), which
alone records the summaries and changes the job's state.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Protocol

from lwr.core.job_directory import JobDirectory
from lwr.core.states import JobState
from lwr.core.store import JobRecord
from lwr.errors import LwrError
from lwr.protocol.failure import FailureClass, staging_failure

log = logging.getLogger(__name__)


class StagingHooks(Protocol):
    """Server-side staging (MQ mode): fetch inputs before launch, push outputs after the job.

    ``before_launch`` and ``after_finish`` return the bytes they moved (None if unknown).
    """

    def wants(self, record: JobRecord) -> bool: ...

    def before_launch(self, record: JobRecord, directory: JobDirectory) -> int | None: ...

    def after_finish(self, record: JobRecord, directory: JobDirectory) -> int | None: ...

    def schedule(self, record: JobRecord, name: str, work: Callable[[], None]) -> None:
        """Run ``work`` (one job's staging step) later, in the hooks' own bounded pool."""


class StagingListener(Protocol):
    """What staging reports to the job service; called from the staging thread, never under a lock."""

    def authorize_launch(self, record: JobRecord, directory: JobDirectory) -> None:
        """Raise an :class:`LwrError` to refuse launching a job whose inputs just arrived."""

    def staged(
        self, record: JobRecord, direction: str, summary: dict[str, Any], failed: bool = False
    ) -> None:
        """Record a staging summary (``direction`` ``"in"``/``"out"``); ``failed``: output delivery failed."""

    def inputs_staged(self, record: JobRecord, directory: JobDirectory, summary: dict[str, Any]) -> None:
        """Inputs are in and the launch is allowed: queue and launch the job if it is still preprocessing."""

    def finish(
        self,
        record: JobRecord,
        state: JobState,
        reason: str | None,
        failure_class: FailureClass | None = None,
    ) -> None:
        """End the job in ``state`` (nothing if it already ended)."""


class StagingRunner:
    """Runs one job's pre- or postprocessing in the background and tells the listener how it went."""

    def __init__(self, hooks: StagingHooks | None, listener: StagingListener) -> None:
        self.hooks = hooks
        self.listener = listener

    def preprocess(self, record: JobRecord, directory: JobDirectory) -> None:
        """Fetch the job's inputs, then have it queued (or failed, with the reason)."""

        def run() -> None:
            hooks = self.hooks
            started = time.time()
            try:
                moved = hooks.before_launch(record, directory) if hooks is not None else None
            except Exception as error:  # noqa: BLE001 - any staging failure fails the job, with its reason
                log.exception(
                    "staging inputs of job %s failed",
                    record.job_id,
                    extra={"job_id": record.job_id, "manager": record.manager},
                )
                self.listener.staged(record, "in", _summary(started, error=error))
                self.listener.finish(
                    record, JobState.FAILED, f"staging inputs failed: {error}", staging_failure(error)
                )
                return
            try:
                self.listener.authorize_launch(record, directory)
            except LwrError as error:
                self.listener.finish(record, JobState.FAILED, error.message, None)
                return
            self.listener.inputs_staged(record, directory, _summary(started, moved=moved))

        self._schedule(record, f"preprocess-{record.job_id}", run)

    def postprocess(self, record: JobRecord, directory: JobDirectory) -> None:
        """Deliver the job's outputs, then end it as its manager said (or failed, with the reason)."""

        def run() -> None:
            hooks = self.hooks
            outcome = record.extras.get("manager_outcome", {"state": JobState.COMPLETE.value, "reason": None})
            started = time.time()
            try:
                moved = hooks.after_finish(record, directory) if hooks is not None else None
            except Exception as error:  # noqa: BLE001
                log.exception(
                    "staging outputs of job %s failed",
                    record.job_id,
                    extra={"job_id": record.job_id, "manager": record.manager},
                )
                self.listener.staged(record, "out", _summary(started, error=error), failed=True)
                self.listener.finish(
                    record, JobState.FAILED, f"staging outputs failed: {error}", staging_failure(error)
                )
                return
            self.listener.staged(record, "out", _summary(started, moved=moved))
            self.listener.finish(record, JobState(outcome["state"]), outcome.get("reason"))

        self._schedule(record, f"postprocess-{record.job_id}", run)

    def _schedule(self, record: JobRecord, name: str, run: Callable[[], None]) -> None:
        """Staging waits on remote hosts: it runs in the hooks' bounded pool, never a thread per job."""
        hooks = self.hooks
        if hooks is None:
            threading.Thread(target=run, name=name, daemon=True).start()
        else:
            hooks.schedule(record, name, run)


def _summary(started: float, moved: int | None = None, error: Exception | None = None) -> dict[str, Any]:
    """A staging summary as the record and timeline keep it: seconds, then bytes or the error."""
    seconds = round(time.time() - started, 3)
    if error is not None:
        return {"seconds": seconds, "error": str(error), "by": "lwr"}
    return {"seconds": seconds, "bytes": moved or 0, "by": "lwr"}
