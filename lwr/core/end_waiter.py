"""A status request for a job submitted moments ago may wait briefly for the job's end.

Very short jobs (Galaxy's metadata jobs, small tools) end within milliseconds of their submit,
but a client's first status poll, sent right after the submit, would see them running and then
sleep a whole poll interval (Galaxy's Pulsar client: 50 ms to seconds) before asking again.
Waiting a few milliseconds on the first poll reports them finished one interval sooner.

Bounded three ways, so a client polling many long jobs never waits: only jobs submitted less
than ``window`` seconds ago, for at most ``wait`` seconds, and at most ``slots`` requests at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable


class EndWaiter:
    def __init__(self, window: float = 0.25, wait: float = 0.025, slots: int = 4) -> None:
        self.window = window
        self.wait_seconds = wait
        self._slots = threading.BoundedSemaphore(slots)
        self._lock = threading.Lock()
        self._pending: dict[Hashable, tuple[float, threading.Event]] = {}

    def submitted(self, key: Hashable) -> None:
        with self._lock:
            self._pending[key] = (time.monotonic(), threading.Event())
            if len(self._pending) > 10_000:  # jobs that never end in memory: drop the stale ones
                cutoff = time.monotonic() - self.window
                self._pending = {k: v for k, v in self._pending.items() if v[0] >= cutoff}

    def ended(self, key: Hashable) -> None:
        with self._lock:
            entry = self._pending.pop(key, None)
        if entry is not None:
            entry[1].set()

    def wait(self, key: Hashable) -> bool:
        """Wait for a freshly submitted job's end; True if it ended (or was no longer pending)."""
        with self._lock:
            entry = self._pending.get(key)
        if entry is None:
            return False
        submitted_at, event = entry
        if time.monotonic() - submitted_at > self.window:
            with self._lock:
                if self._pending.get(key) is entry:
                    del self._pending[key]
            return False
        if not self._slots.acquire(blocking=False):
            return False
        try:
            return event.wait(self.wait_seconds)
        finally:
            self._slots.release()
