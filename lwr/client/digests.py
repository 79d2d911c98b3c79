"""SHA-256 digests of the files the client moves: remembered per file, or computed alongside a transfer."""

from __future__ import annotations

import hashlib
import os
import queue
import threading

#: Read size when hashing a file.
CHUNK_SIZE = 1 << 20

_DIGESTS: dict[tuple[int, int, int, int], str] = {}
_DIGESTS_LOCK = threading.Lock()
_DIGESTS_MAX = 4096


def file_sha256(path: str, *, remembered: bool = True) -> str:
    """Hex SHA-256 of a file, read in large chunks.

    Remembered for the life of the process by device, inode, size and modification time, so an
    input staged to many jobs (Galaxy datasets do not change) is read for hashing only once;
    ``remembered=False`` hashes again (after the server rejected a digest).
    """
    with open(path, "rb") as source:
        before = os.fstat(source.fileno())
        key = (before.st_dev, before.st_ino, before.st_size, before.st_mtime_ns)
        with _DIGESTS_LOCK:
            known = _DIGESTS.get(key)
        if known is not None and remembered:
            return known
        digest = hashlib.sha256()
        while chunk := source.read(CHUNK_SIZE):
            digest.update(chunk)
        after = os.fstat(source.fileno())
    result = digest.hexdigest()
    if (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns):
        with _DIGESTS_LOCK:
            if len(_DIGESTS) >= _DIGESTS_MAX:
                _DIGESTS.clear()
            _DIGESTS[key] = result
    return result


class BackgroundHash:
    """SHA-256 computed in a thread of its own, so hashing overlaps receiving and writing.

    hashlib releases the GIL on large updates; the bounded queue keeps memory at a few chunks.
    """

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        self._thread = threading.Thread(target=self._run, name="lwr-sha256", daemon=True)
        self._result: str | None = None

    def __enter__(self) -> BackgroundHash:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._finish()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            self._digest.update(chunk)

    def update(self, chunk: bytes) -> None:
        self._queue.put(chunk)

    def _finish(self) -> None:
        if self._result is None:
            self._queue.put(None)
            self._thread.join()
            self._result = self._digest.hexdigest()

    def hexdigest(self) -> str:
        self._finish()
        assert self._result is not None
        return self._result
