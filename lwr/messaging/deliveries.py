"""Redeliveries of messages that were never settled: a durable count, so a message that kills
lwr while it is handled cannot do so forever.

The broker redelivers a message that was delivered but neither acknowledged nor rejected
(lwr was killed, or the connection dropped). Only such redeliveries are counted (first
deliveries cost nothing): one small file per message, named by the digest of its body, holding
how often it came back unsettled. Past :data:`LIMIT` the message is refused (rejected without
requeue, logged). Settling a message forgets its count.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

#: Unsettled redeliveries tolerated before a message is refused as poison.
LIMIT = 3


class RedeliveryGuard:
    """Counts the unsettled redeliveries of each message body; used by the consumer thread only."""

    def __init__(self, root: Path, limit: int = LIMIT) -> None:
        self.root = root
        self.limit = limit
        self.root.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(body: bytes) -> str:
        return hashlib.sha256(body).hexdigest()

    def admit(self, key: str, redelivered: bool) -> bool:
        """Count a delivery of ``key``; False once it came back unsettled more than ``limit`` times."""
        if not redelivered:
            return True
        path = self.root / key
        try:
            count = int(path.read_text() or "0") + 1
        except (OSError, ValueError):
            count = 1
        temporary = path.with_suffix(".tmp")
        with open(temporary, "w") as handle:
            handle.write(str(count))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        return count <= self.limit

    def settled(self, key: str) -> None:
        """The message was acknowledged or rejected: forget it."""
        try:
            (self.root / key).unlink()
        except FileNotFoundError:
            pass
