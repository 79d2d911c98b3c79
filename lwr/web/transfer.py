"""Streaming file bodies: uploads to disk in bounded memory, downloads with Range support.

An upload is written to a temporary name beside its target and renamed into place only when
every byte arrived (and, if the client sent one, the digest matched, in the client's algorithm): an interrupted or
corrupt upload leaves nothing under the real name.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO

from lwr.core.atomic import Guard, atomic_file
from lwr.digests import BackgroundHash, title
from lwr.errors import BadRequest, IntegrityError, PayloadTooLarge
from lwr.protocol.digest import SHA256, format_digest
from lwr.protocol.ranges import RangeNotSatisfiable, parse_range

CHUNK_SIZE = 1 << 20

__all__ = ["CHUNK_SIZE", "RangeNotSatisfiable", "iter_file", "parse_range", "receive_upload"]


def receive_upload(
    environ: dict[str, Any],
    target: Path,
    max_size: int | None,
    expected: str | tuple[str, str] | None,
    guard: Guard | None = None,
) -> dict[str, Any]:
    """Stream the request body to ``target`` atomically; reply with its path, size and digest.

    ``expected`` is (algorithm, hex), or a bare hex SHA-256; the body is hashed with that algorithm.
    ``guard`` is held around the rename into place (:func:`lwr.core.atomic.atomic_file`).
    """
    if isinstance(expected, str):
        expected = (SHA256, expected) if expected.strip() else None
    algorithm, expected_hex = expected if expected else (SHA256, "")
    expected_hex = expected_hex.strip().lower()
    length_header = environ.get("CONTENT_LENGTH") or ""
    stream: BinaryIO = environ["wsgi.input"]
    if length_header.strip():
        try:
            length: int | None = int(length_header)
        except ValueError:
            raise BadRequest("Content-Length is not a number") from None
    elif environ.get("wsgi.input_terminated"):
        length = None
    else:
        length = 0
    if length is not None and length < 0:
        raise BadRequest("Content-Length is negative")
    if max_size is not None and length is not None and length > max_size:
        raise PayloadTooLarge(
            f"upload of {length} bytes is over the limit of {max_size} bytes", limit=max_size, size=length
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = BackgroundHash(algorithm=algorithm) if expected_hex else None
    received = 0
    try:
        # Not fsynced: an upload is re-sent if lost, and the submit that acts on it comes later.
        with atomic_file(target, durable=False, suffix=".upload", guard=guard) as out:
            # One reused buffer when the stream can fill it; the hashing path needs immutable
            # chunks, since its thread still reads them while the next one arrives.
            reusable = digest is None and hasattr(stream, "readinto")
            size = CHUNK_SIZE if length is None else max(1, min(CHUNK_SIZE, length))
            buffer = memoryview(bytearray(size)) if reusable else None
            while length is None or received < length:
                wanted = size if length is None else min(size, length - received)
                if buffer is not None:
                    count = stream.readinto(buffer[:wanted])  # type: ignore[attr-defined]
                    chunk: bytes | memoryview = buffer[:count]
                else:
                    chunk = stream.read(wanted)
                if not chunk:
                    break
                received += len(chunk)
                if max_size is not None and received > max_size:
                    raise PayloadTooLarge(f"upload is over the limit of {max_size} bytes", limit=max_size)
                out.write(chunk)
                if digest is not None:
                    digest.update(chunk)  # type: ignore[arg-type]
            if length is not None and received != length:
                raise BadRequest(
                    f"upload interrupted: received {received} of {length} bytes",
                    received=received,
                    expected=length,
                )
            actual = digest.hexdigest() if digest is not None else None
            digest = None
            if expected_hex and actual != expected_hex:
                raise IntegrityError(
                    f"upload does not match its {title(algorithm)}",
                    algorithm=algorithm,
                    expected=expected_hex,
                    actual=actual,
                )
    except BaseException:
        if digest is not None:
            digest.abandon()
        raise
    reply: dict[str, Any] = {"path": str(target), "size": received}
    if actual:
        reply["digest"] = format_digest(algorithm, actual)
        if algorithm == SHA256:
            reply["sha256"] = actual
    return reply


def iter_file(handle: IO[bytes], start: int, length: int) -> Iterator[bytes]:
    """Yield ``length`` bytes from ``start``, a chunk at a time, closing the file at the end."""
    try:
        handle.seek(start)
        remaining = length
        while remaining > 0:
            chunk = handle.read(min(CHUNK_SIZE, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
    finally:
        handle.close()
