"""Which acknowledged messages were already handled: one empty file per uuid, kept a week.

The sender of a message that asks for acknowledgement republishes it until answered, so the
same uuid may arrive many times, also across a restart; only the first is acted on.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

#: How long a handled uuid is remembered.
RETENTION_SECONDS = 7 * 24 * 3600


class HandledMessages:
    """A durable set of handled message uuids."""

    def __init__(self, root: Path, retention: float = RETENTION_SECONDS) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._seen: set[str] = set()
        cutoff = time.time() - retention
        for path in self.root.iterdir():
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                else:
                    self._seen.add(path.name)
            except OSError:
                continue

    @staticmethod
    def _file_name(uuid: str) -> str:
        return "".join(char if char.isalnum() or char in "-_" else "_" for char in uuid)

    def seen(self, uuid: str) -> bool:
        with self._lock:
            return self._file_name(uuid) in self._seen

    def add(self, uuid: str) -> None:
        name = self._file_name(uuid)
        with self._lock:
            if name in self._seen:
                return
            (self.root / name).touch()
            self._seen.add(name)
