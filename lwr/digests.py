"""SHA-256 of the files lwr moves, shared by the server and the client.

Digests are remembered per file by (device, inode, size, modification time), so a file is read
for hashing once while it is unchanged (Galaxy datasets staged to many jobs do not change), and
computed on a thread of their own beside a transfer: hashlib releases the GIL on large buffers,
so on a multi-core machine hashing overlaps the network and disk work instead of adding to it.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections import OrderedDict

#: Read size when hashing a file.
CHUNK_SIZE = 1 << 20

_Key = tuple[int, int, int, int]


class BackgroundHash:
    """SHA-256 fed chunk by chunk and computed on another thread; at most ``depth`` chunks wait."""

    def __init__(self, depth: int = 8) -> None:
        self._digest = hashlib.sha256()
        self._chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)
        self._thread = threading.Thread(target=self._run, name="lwr-sha256", daemon=True)
        self._thread.start()
        self._result: str | None = None

    def __enter__(self) -> BackgroundHash:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.hexdigest()
        else:
            self.abandon()

    def _run(self) -> None:
        while (chunk := self._chunks.get()) is not None:
            self._digest.update(chunk)

    def update(self, chunk: bytes) -> None:
        self._chunks.put(chunk)

    def hexdigest(self) -> str:
        if self._result is None:
            self._chunks.put(None)
            self._thread.join()
            self._result = self._digest.hexdigest()
        return self._result

    def abandon(self) -> None:
        """Stop the thread without waiting for a result (the transfer failed)."""
        if self._result is not None:
            return
        while True:
            try:
                self._chunks.get_nowait()
            except queue.Empty:
                break
        self._chunks.put(None)
        self._result = ""


class DigestCache:
    """Digests of files, remembered while each file stays unchanged."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._digests: OrderedDict[_Key, str] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _key(info: os.stat_result) -> _Key:
        return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns

    def remember(self, path: str | os.PathLike[str], sha256: str) -> None:
        self._store(self._key(os.stat(path)), sha256)

    def _store(self, key: _Key, sha256: str) -> None:
        with self._lock:
            self._digests[key] = sha256
            self._digests.move_to_end(key)
            while len(self._digests) > self.capacity:
                self._digests.popitem(last=False)

    def sha256(self, path: str | os.PathLike[str], *, remembered: bool = True) -> str:
        """Hex SHA-256 of a file; ``remembered=False`` reads it again (after a digest was rejected)."""
        with open(path, "rb") as source:
            before = os.fstat(source.fileno())
            key = self._key(before)
            if remembered:
                with self._lock:
                    known = self._digests.get(key)
                if known is not None:
                    return known
            digest = hashlib.sha256()
            while chunk := source.read(CHUNK_SIZE):
                digest.update(chunk)
            after = os.fstat(source.fileno())
        result = digest.hexdigest()
        if self._key(after) == key:
            self._store(key, result)
        return result


#: The process's own cache, for callers with no cache of their own (the client).
_PROCESS_CACHE = DigestCache()


def file_sha256(path: str | os.PathLike[str], *, remembered: bool = True) -> str:
    """Hex SHA-256 of a file, remembered for the life of the process while the file is unchanged."""
    return _PROCESS_CACHE.sha256(path, remembered=remembered)
