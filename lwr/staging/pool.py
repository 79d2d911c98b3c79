"""One bounded pool for all server-side staging, fair across the remote hosts it talks to.

Staging a job (fetching its inputs, delivering its outputs) waits on a remote Galaxy. A thread
per job (Pulsar issue 349) lets one stalled or dead Galaxy hold a thread and a socket for every
job sent to it, until the process runs out of both and every other Galaxy's jobs stall too. Here
a fixed number of workers run staging tasks; each remote host may hold at most ``per_host`` of
them at once, and the rest of its tasks wait in a backlog that costs no thread and no file
descriptor. A worker always takes the oldest task of a host below its limit, so a stalled host's
backlog never delays another host's jobs.

:meth:`StagingPool.backlog` is the figure to export as a metric: tasks waiting and running, in
total and per host.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Callable

log = logging.getLogger(__name__)

#: Defaults of ``staging_threads`` and ``staging_threads_per_host``.
DEFAULT_WORKERS = 16
DEFAULT_PER_HOST = 4


@dataclass(frozen=True)
class _Task:
    host: str
    name: str
    work: Callable[[], None]


class StagingPool:
    """``workers`` threads running staging tasks, at most ``per_host`` at once per remote host."""

    def __init__(
        self, workers: int = DEFAULT_WORKERS, per_host: int = DEFAULT_PER_HOST, name: str = "staging"
    ) -> None:
        if workers < 1 or per_host < 1:
            raise ValueError("workers and per_host must be positive")
        self.workers = workers
        self.per_host = min(per_host, workers)
        self.name = name
        self._lock = threading.Condition()
        #: Waiting tasks per host; hosts in the order they are served (round robin).
        self._waiting: OrderedDict[str, deque[_Task]] = OrderedDict()
        self._running: dict[str, int] = {}
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self.completed = 0
        self.failed = 0

    def submit(self, host: str, name: str, work: Callable[[], None]) -> None:
        """Queue ``work`` for ``host``; it runs when a worker and one of the host's slots are free."""
        with self._lock:
            if self._stopping:
                raise RuntimeError("the staging pool is stopped")
            self._waiting.setdefault(host, deque()).append(_Task(host, name, work))
            if len(self._threads) < self.workers:
                # Workers start on demand (an idle lwr holds none), never more than ``workers``.
                thread = threading.Thread(
                    target=self._work, name=f"{self.name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
            self._lock.notify()

    def backlog(self) -> dict[str, Any]:
        """``{"waiting": N, "running": N, "workers": N, "per_host": N, "hosts": {host: {...}}}``."""
        with self._lock:
            hosts = {
                host: {"waiting": len(self._waiting.get(host, ())), "running": self._running.get(host, 0)}
                for host in {*self._waiting, *self._running}
            }
            return {
                "waiting": sum(len(tasks) for tasks in self._waiting.values()),
                "running": sum(self._running.values()),
                "workers": self.workers,
                "threads": len(self._threads),
                "per_host": self.per_host,
                "completed": self.completed,
                "failed": self.failed,
                "hosts": hosts,
            }

    def shutdown(self, wait: float = 0.0) -> None:
        """Stop taking tasks; waiting ones are dropped (the job service re-runs them after a restart)."""
        with self._lock:
            self._stopping = True
            self._waiting.clear()
            self._lock.notify_all()
            threads = list(self._threads)
        if wait:
            for thread in threads:
                thread.join(wait)

    # --- workers -----------------------------------------------------------------------------------
    def _next(self) -> _Task | None:
        """The oldest task of the first host (round robin) below its limit; caller holds the lock."""
        for host, tasks in self._waiting.items():
            if self._running.get(host, 0) < self.per_host:
                task = tasks.popleft()
                if tasks:
                    self._waiting.move_to_end(host)  # the next task goes to another host first
                else:
                    del self._waiting[host]
                self._running[host] = self._running.get(host, 0) + 1
                return task
        return None

    def _work(self) -> None:
        while True:
            with self._lock:
                task = self._next()
                while task is None:
                    if self._stopping:
                        return
                    self._lock.wait()
                    task = self._next()
            try:
                task.work()
                succeeded = True
            except Exception:  # noqa: BLE001 - a task reports its own failure; the worker lives on
                log.exception("staging task %s for %s failed", task.name, task.host)
                succeeded = False
            with self._lock:
                left = self._running[task.host] - 1
                if left:
                    self._running[task.host] = left
                else:
                    del self._running[task.host]
                if succeeded:
                    self.completed += 1
                else:
                    self.failed += 1
                # A slot of this host is free: a worker waiting only for it may go on.
                self._lock.notify_all()
