"""queued_python: a local first-in-first-out queue running at most N jobs at once."""

from __future__ import annotations

import logging
import os
import subprocess
import threading
from collections import deque
from collections.abc import Mapping
from typing import Any

from lwr.core.states import JobState
from lwr.managers import local_process
from lwr.managers.base import GALAXY_SLOTS_OPTION, LaunchSpec, Manager, ManagerListener, Option
from lwr.protocol.failure import FailureClass, is_disk_full

log = logging.getLogger(__name__)


def concurrency(text: str) -> int:
    """``max_concurrent_jobs``: a positive integer, or ``*`` for all cores."""
    if text.strip() == "*":
        return os.cpu_count() or 1
    value = int(text)
    if value < 1:
        raise ValueError("expected a positive integer or *")
    return value


class QueuedPythonManager(Manager):
    """Runs job scripts as local processes, ``max_concurrent_jobs`` at a time, in arrival order."""

    type_name = "queued_python"
    options = {
        "max_concurrent_jobs": Option(
            concurrency, 1, "jobs run at once; * for one per core", "a positive integer or *"
        ),
        "galaxy_slots": GALAXY_SLOTS_OPTION,
    }

    def __init__(self, name: str, settings: Mapping[str, Any], listener: ManagerListener) -> None:
        super().__init__(name, settings, listener)
        self.limit: int = self.settings["max_concurrent_jobs"]
        self._lock = threading.Lock()
        self._waiting: deque[LaunchSpec] = deque()
        self._active: dict[str, LaunchSpec] = {}
        self._pids: dict[str, int] = {}
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._cancelled: set[str] = set()
        self._wake = threading.Condition(self._lock)
        self._stopping = False
        self._dispatcher: threading.Thread | None = None

    def start(self) -> None:
        """Start the dispatcher: it, not the caller's thread, starts queued jobs as slots free."""
        self._dispatcher = threading.Thread(
            target=self._dispatch_forever, name=f"dispatch-{self.name}", daemon=True
        )
        self._dispatcher.start()

    def shutdown(self) -> None:
        with self._lock:
            self._stopping = True
            self._wake.notify_all()

    def launch(self, spec: LaunchSpec) -> None:
        with self._lock:
            self._waiting.append(spec)
            self._wake.notify()

    def reattach(self, spec: LaunchSpec, external_id: str | None, was_running: bool) -> None:
        if not local_process.was_launched(spec.directory):
            self.launch(spec)
            return
        with self._lock:
            self._active[spec.job_id] = spec
            if external_id and external_id.isdigit():
                self._pids[spec.job_id] = int(external_id)
        local_process.follow(
            spec.directory, None, lambda rc: self._ended(spec, rc), f"reattached-{spec.job_id}"
        )

    def kill(self, job_id: str) -> None:
        with self._lock:
            queued = next((spec for spec in self._waiting if spec.job_id == job_id), None)
            if queued is not None:
                self._waiting.remove(queued)
            active = self._active.get(job_id)
            if active is not None:
                self._cancelled.add(job_id)
            pid = self._pids.get(job_id)
            process = self._processes.get(job_id)
        if queued is not None:
            self.listener.job_ended(job_id, JobState.CANCELLED, "cancelled while queued")
        elif active is not None:
            local_process.terminate_job(active.directory, pid, process)

    def _dispatch_forever(self) -> None:
        """Start waiting jobs, first in first out, whenever a slot is free."""
        while True:
            with self._lock:
                self._wake.wait_for(
                    lambda: self._stopping or (self._waiting and len(self._active) < self.limit)
                )
                if self._stopping:
                    return
                spec = self._waiting.popleft()
                self._active[spec.job_id] = spec
            try:
                self._run(spec)
            except Exception:  # noqa: BLE001 - the dispatcher must outlive any one job
                log.exception("starting job %s failed", spec.job_id)

    def _run(self, spec: LaunchSpec) -> None:
        if local_process.was_launched(spec.directory):
            # Launched before a restart, but the record did not say so yet: follow, never rerun.
            local_process.follow(spec.directory, None, lambda rc: self._ended(spec, rc), f"job-{spec.job_id}")
            return
        try:
            process = local_process.start_job_process(spec.directory, spec.script)
        except OSError as error:
            log.exception("could not start job %s", spec.job_id)
            with self._lock:
                self._active.pop(spec.job_id, None)
                self._wake.notify()
            self.listener.job_ended(
                spec.job_id,
                JobState.FAILED,
                f"could not start the job script: {error}",
                FailureClass.DISK_FULL if is_disk_full(error) else FailureClass.LAUNCH_FAILED,
            )
            return
        with self._lock:
            self._pids[spec.job_id] = process.pid
            self._processes[spec.job_id] = process
            cancelled_while_starting = spec.job_id in self._cancelled
        self.listener.job_started(spec.job_id, str(process.pid))
        local_process.follow(spec.directory, process, lambda rc: self._ended(spec, rc), f"job-{spec.job_id}")
        if cancelled_while_starting:
            local_process.terminate_job(spec.directory, process.pid, process)

    def _ended(self, spec: LaunchSpec, returncode: int | None) -> None:
        with self._lock:
            self._active.pop(spec.job_id, None)
            self._pids.pop(spec.job_id, None)
            self._processes.pop(spec.job_id, None)
            cancelled = spec.job_id in self._cancelled
            self._cancelled.discard(spec.job_id)
            self._wake.notify()
        state, reason, failure_class = local_process.outcome(spec.directory, cancelled, returncode)
        self.listener.job_ended(spec.job_id, state, reason, failure_class)

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {
                **super().describe(),
                "max_concurrent_jobs": self.limit,
                "running": len(self._active),
                "queued": len(self._waiting),
            }
