"""Redeliveries of messages whose handling never finished: a durable count, so a message that
kills lwr while it is handled cannot do so forever.

The broker redelivers a message that was delivered but neither acknowledged nor rejected
(lwr was killed, or the connection dropped). Only redelivered messages are counted (first
deliveries cost nothing), and only once a worker starts handling one, so messages that merely
waited in the prefetch window across restarts are never counted: one small file per message,
named by the digest of its body, holding how often handling it started without finishing.
Once that reaches :data:`LIMIT` the next redelivery is refused (rejected without requeue,
logged). Settling a message forgets its count.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path

from lwr.core.atomic import write_bytes_atomically

log = logging.getLogger(__name__)

#: Unfinished handlings of a redelivered message tolerated before it is refused as poison.
LIMIT = 3


class RedeliveryGuard:
    """Counts, per message body, the handlings of redeliveries that never finished."""

    def __init__(self, root: Path, limit: int = LIMIT) -> None:
        self.root = root
        self.limit = limit
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    @staticmethod
    def key(body: bytes) -> str:
        return hashlib.sha256(body).hexdigest()

    def _count(self, key: str) -> int:
        try:
            return int((self.root / key).read_text() or "0")
        except (OSError, ValueError):
            return 0

    def admissible(self, key: str, redelivered: bool) -> bool:
        """False for a redelivery whose handling already started ``limit`` times without finishing."""
        if not redelivered:
            return True
        with self._lock:
            return self._count(key) < self.limit

    def starting(self, key: str, redelivered: bool) -> None:
        """A worker starts handling the message: count it (durably) if it is a redelivery."""
        if not redelivered:
            return
        with self._lock:
            write_bytes_atomically(self.root / key, str(self._count(key) + 1).encode(), durable=True)

    def settled(self, key: str) -> None:
        """The message was acknowledged or rejected: forget it."""
        with self._lock:
            try:
                (self.root / key).unlink()
            except FileNotFoundError:
                pass
