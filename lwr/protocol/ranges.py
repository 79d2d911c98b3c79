"""HTTP byte ranges, both directions: the ``Range`` a server serves and the ``Content-Range`` a client resumes from.

One parser for lwr's download route, the client's files endpoint and the client's resumed downloads.
Only single ranges are served; anything else is ignored, which RFC 9110 allows (the whole file is sent).
"""

from __future__ import annotations

import re

from lwr.errors import LwrError

_RANGE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")
_CONTENT_RANGE = re.compile(r"^bytes ([0-9]+)-([0-9]+)?")
#: Digits of a byte position that can mean a real offset; a longer number is past any file
#: (and ``int`` refuses more than 4,300 digits).
_MAXIMUM_DIGITS = 18
_BEYOND_ANY_FILE = 10**_MAXIMUM_DIGITS


def _position(digits: str) -> int:
    """A byte position as a number; one too long for any file as :data:`_BEYOND_ANY_FILE`."""
    stripped = digits.lstrip("0") or "0"
    return _BEYOND_ANY_FILE if len(stripped) > _MAXIMUM_DIGITS else int(stripped)


class RangeNotSatisfiable(LwrError):
    """The Range header asks for bytes the file does not have."""

    code = "range_not_satisfiable"
    http_status = 416


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """A single ``bytes=`` range of a ``size``-byte file as (start, end inclusive); ``None``: the whole file.

    ``bytes=10-`` from byte 10, ``bytes=-10`` the last 10 bytes, ``bytes=0-9`` the first 10. Raises
    :class:`RangeNotSatisfiable` for a range that starts beyond the file or an empty suffix.
    """
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":
        length = _position(last)
        if length == 0:
            raise RangeNotSatisfiable("empty suffix range", size=size)
        return max(0, size - length), size - 1
    start = _position(first)
    end = min(_position(last), size - 1) if last else size - 1
    if start >= size or start > end:
        raise RangeNotSatisfiable(f"range starts beyond the file's {size} bytes", size=size)
    return start, end


def content_range(start: int, end: int, size: int) -> str:
    """The ``Content-Range`` of a 206 reply."""
    return f"bytes {start}-{end}/{size}"


def unsatisfiable_range(size: int) -> str:
    """The ``Content-Range`` of a 416 reply."""
    return f"bytes */{size}"


def content_range_start(header: str | None) -> int:
    """Where a 206 reply's body starts (``Content-Range: bytes START-END/SIZE``); -1 if unreadable."""
    match = _CONTENT_RANGE.match((header or "").strip())
    return _position(match.group(1)) if match else -1
