"""Atomic file writes: a reader sees the old content or the new, never half of it.

The one primitive for the pattern "write a temporary file beside the target, rename it into
place": every such write in lwr goes through :func:`atomic_file` (streamed writes),
:func:`write_bytes_atomically` (contents in memory) or, where the temporary file must outlive one
attempt (a resumable download), :func:`temporary_beside` and :func:`place`.

``durable`` is always said by the caller. With it the file's data and the directory entry are
fsynced, so the write survives a power loss, not only a killed process; without it a crash of the
machine may leave the old content (never a torn one). Durable writes are for what something else
is then decided on (the job store, a staged input the job is launched on, an output reported
done); a file that is re-sent or rebuilt if lost (an upload before its submit, a client's
download, a status update the store can rebuild) skips the fsync, which costs milliseconds each.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, BinaryIO

PathLike = str | os.PathLike[str]
#: Held around the final rename (and may refuse it by raising): a rename that must not happen
#: once something else has looked at the target's directory (a job submitted meanwhile).
Guard = Callable[[], AbstractContextManager[object]]


def temporary_beside(path: PathLike, suffix: str = ".tmp") -> str:
    """Create an empty, private (0600) temporary file in ``path``'s directory; its name.

    Beside the target so the rename stays on one file system; a dot-file so listings skip it.
    """
    fd, name = _create_beside(path, suffix)
    os.close(fd)
    return name


def _create_beside(path: PathLike, suffix: str) -> tuple[int, str]:
    """:func:`temporary_beside`, still open: writing through this descriptor spares an open."""
    target = Path(path)
    return tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)


def place(temporary: PathLike, path: PathLike, *, durable: bool, mode: int | None = None) -> None:
    """Rename a finished ``temporary`` onto ``path`` (with ``mode`` if given), fsyncing first if ``durable``."""
    if mode is not None:
        os.chmod(temporary, mode)
    if durable:
        fd = os.open(temporary, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    os.replace(temporary, path)
    if durable:
        fsync_directory(Path(path).parent)


@contextmanager
def atomic_file(
    path: PathLike,
    *,
    durable: bool,
    suffix: str = ".tmp",
    mode: int | None = None,
    guard: Guard | None = None,
) -> Iterator[BinaryIO]:
    """A binary handle on a temporary file that replaces ``path`` when the block ends without error.

    An exception in the block (a short body, a digest mismatch), or from ``guard`` (entered just
    for the rename), removes the temporary file and leaves ``path`` as it was. The file is
    created 0600 unless ``mode`` says otherwise.
    """
    fd, temporary = _create_beside(path, suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(temporary, mode)
        with guard() if guard is not None else nullcontext():
            os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    if durable:
        fsync_directory(Path(path).parent)


def write_bytes_atomically(path: Path, data: bytes, durable: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_file`)."""
    with atomic_file(path, durable=durable) as handle:
        handle.write(data)


def write_json_atomically(path: Path, value: Any, durable: bool = True) -> None:
    write_bytes_atomically(path, json.dumps(value, sort_keys=True).encode("utf-8"), durable=durable)


def fsync_directory(directory: PathLike) -> None:
    """Make a rename or unlink in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
