"""The digests of the files lwr moves (SHA-256, and BLAKE3 between lwr's own client and server).

This module is the one place that knows the algorithms: :data:`ALGORITHMS` names them in lwr's
order of preference, :func:`new_hash` makes one. SHA-256 is what Pulsar's protocol and every
other client use; BLAKE3 is several times faster per core (and parallel over a whole file), so
lwr's client and server use it when both have it (:mod:`lwr.protocol.digest` says how they agree).

Digests are remembered per algorithm and file, by (device, inode, size, modification time), so a
file is read for hashing once while it is unchanged (Galaxy datasets staged to many jobs do not
change), and computed on a thread of their own beside a transfer: hashlib and blake3 release the
GIL on large buffers, so on a multi-core machine hashing overlaps the network and disk work
instead of adding to it.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections import OrderedDict
from typing import Any, Protocol

_blake3: Any
try:
    import blake3 as _blake3
except ImportError:  # pragma: no cover - a declared dependency; without it lwr speaks SHA-256 only
    _blake3 = None

#: Read size when hashing a file.
CHUNK_SIZE = 1 << 20

SHA256 = "sha256"
BLAKE3 = "blake3"

#: The algorithms this process can compute, most preferred first (SHA-256 always, and last).
ALGORITHMS: tuple[str, ...] = ((BLAKE3,) if _blake3 is not None else ()) + (SHA256,)

#: How messages name each algorithm.
_TITLES = {SHA256: "SHA-256", BLAKE3: "BLAKE3"}

_Key = tuple[int, int, int, int]


def title(algorithm: str) -> str:
    """An algorithm's name in messages: ``SHA-256``, ``BLAKE3``."""
    return _TITLES.get(algorithm, algorithm)


class Hash(Protocol):
    """What lwr uses of a hashlib-style object."""

    def update(self, data: bytes, /) -> Any: ...

    def hexdigest(self) -> str: ...


class UnknownAlgorithm(ValueError):
    """An algorithm name this process cannot compute."""


def new_hash(algorithm: str = SHA256, *, whole_file: bool = False) -> Hash:
    """A fresh hash object; ``whole_file`` lets BLAKE3 spread one large input over every core.

    A stream's hash (:class:`BackgroundHash`) stays on one thread: the transfer beside it needs
    the other core.
    """
    if algorithm == SHA256:
        return hashlib.sha256()
    if algorithm == BLAKE3 and _blake3 is not None:
        if whole_file:
            return _blake3.blake3(max_threads=_blake3.blake3.AUTO)  # type: ignore[no-any-return]
        return _blake3.blake3()  # type: ignore[no-any-return]
    raise UnknownAlgorithm(algorithm)


def bytes_digest(data: bytes, algorithm: str = SHA256) -> str:
    """Hex digest of bytes in memory."""
    digest = new_hash(algorithm)
    digest.update(data)
    return digest.hexdigest()


class BackgroundHash:
    """A digest fed chunk by chunk and computed on another thread; at most ``depth`` chunks wait."""

    def __init__(self, depth: int = 8, algorithm: str = SHA256) -> None:
        self.algorithm = algorithm
        self._digest = new_hash(algorithm)
        self._chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)
        self._thread = threading.Thread(target=self._run, name=f"lwr-{algorithm}", daemon=True)
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
    """Digests of files, per algorithm, remembered while each file stays unchanged."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._digests: OrderedDict[tuple[str, _Key], str] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _key(info: os.stat_result) -> _Key:
        return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns

    def remember(self, path: str | os.PathLike[str], hexdigest: str, algorithm: str = SHA256) -> None:
        self._store((algorithm, self._key(os.stat(path))), hexdigest)

    def _store(self, key: tuple[str, _Key], hexdigest: str) -> None:
        with self._lock:
            self._digests[key] = hexdigest
            self._digests.move_to_end(key)
            while len(self._digests) > self.capacity:
                self._digests.popitem(last=False)

    def digest(
        self, path: str | os.PathLike[str], algorithm: str = SHA256, *, remembered: bool = True
    ) -> str:
        """Hex digest of a file; ``remembered=False`` reads it again (after a digest was rejected)."""
        with open(path, "rb") as source:
            before = os.fstat(source.fileno())
            key = (algorithm, self._key(before))
            if remembered:
                with self._lock:
                    known = self._digests.get(key)
                if known is not None:
                    return known
            digest = new_hash(algorithm, whole_file=True)
            while chunk := source.read(CHUNK_SIZE):
                digest.update(chunk)
            after = os.fstat(source.fileno())
        result = digest.hexdigest()
        if (algorithm, self._key(after)) == key:
            self._store(key, result)
        return result

    def sha256(self, path: str | os.PathLike[str], *, remembered: bool = True) -> str:
        """Hex SHA-256 of a file (:meth:`digest` with SHA-256)."""
        return self.digest(path, SHA256, remembered=remembered)


#: The process's own cache, for callers with no cache of their own (the client).
_PROCESS_CACHE = DigestCache()


def file_digest(path: str | os.PathLike[str], algorithm: str = SHA256, *, remembered: bool = True) -> str:
    """Hex digest of a file, remembered for the life of the process while the file is unchanged."""
    return _PROCESS_CACHE.digest(path, algorithm, remembered=remembered)


def file_sha256(path: str | os.PathLike[str], *, remembered: bool = True) -> str:
    """Hex SHA-256 of a file, remembered for the life of the process while the file is unchanged."""
    return _PROCESS_CACHE.digest(path, SHA256, remembered=remembered)
