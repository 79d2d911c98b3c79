"""The one ``multipart/form-data`` shape lwr speaks: a form whose field ``file`` carries a file.

lwr's server posts a job's outputs to Galaxy's job files API in this shape
(:mod:`lwr.staging.transfer`), and lwr's client reads it in its own files endpoint
(:mod:`lwr.client.files_endpoint`). The reader streams: the file's bytes go straight to their
file, every other field is read and dropped, a part's head is at most :data:`MAX_PART_HEAD`
bytes and a form at most :data:`MAX_PARTS` parts, so whoever sends the form (a job holding the
endpoint's key) cannot make the reader hold more than a chunk and one part head in memory.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from email.message import Message
from email.parser import HeaderParser
from typing import BinaryIO

from lwr.errors import BadRequest

#: The form field that carries the file.
FIELD = "file"
#: Largest head of one part (its Content-Disposition and Content-Type lines).
MAX_PART_HEAD = 16 * 1024
#: Most parts one form may have (lwr sends one).
MAX_PARTS = 64
CHUNK = 1 << 20
#: RFC 2046's boundary: 1 to 70 of these characters, not ending in a space.
_BOUNDARY = re.compile(r"^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$")
#: Longest rest of a delimiter line (transport padding, or ``--`` and padding after the last).
_DELIMITER_LINE = 1024


def form_head(boundary: str, filename: str) -> bytes:
    """What precedes the file's bytes in a form of one ``file`` field."""
    quoted = re.sub(r'[\x00-\x1f"\\\x7f]', "_", filename)
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{FIELD}"; filename="{quoted}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()


def form_tail(boundary: str) -> bytes:
    """What follows the file's bytes: the form's close delimiter."""
    return f"\r\n--{boundary}--\r\n".encode("ascii")


def boundary_of(content_type: str) -> str:
    """The boundary of a ``multipart/form-data`` Content-Type; BadRequest if it has none."""
    header = Message()
    header["Content-Type"] = content_type
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not _BOUNDARY.match(boundary):
        raise BadRequest("multipart/form-data without a valid boundary")
    return boundary


class _Stream:
    """The body, read a chunk at a time, with what was read but not yet consumed."""

    def __init__(self, source: BinaryIO) -> None:
        self.source = source
        # A CRLF before the body makes the first delimiter look like every other one.
        self.buffer = bytearray(b"\r\n")

    def _fill(self) -> None:
        data = self.source.read(CHUNK)
        if not data:
            raise BadRequest("the form ended before its close delimiter")
        self.buffer += data

    def until(self, marker: bytes, sink: Callable[[bytes], object] | None, limit: int | None) -> int:
        """Pass what comes before ``marker`` to ``sink`` (None: drop it), consume the marker, and
        return how many bytes came before it; BadRequest past ``limit`` bytes or at the body's end."""
        passed = 0
        keep = len(marker) - 1
        while True:
            found = self.buffer.find(marker)
            end = found if found >= 0 else max(0, len(self.buffer) - keep)
            passed += end
            if limit is not None and passed > limit:
                raise BadRequest(f"a part of the form is longer than {limit} bytes where it may not be")
            if end and sink is not None:
                sink(bytes(self.buffer[:end]))
            if found >= 0:
                del self.buffer[: found + len(marker)]
                return passed
            del self.buffer[:end]
            self._fill()


def copy_file_field(source: BinaryIO, content_type: str, out: BinaryIO) -> int:
    """Copy the bytes of the form's first ``file`` field that has a filename to ``out``; the count.

    Reads the whole form (to its close delimiter, so a truncated form is refused, not half
    stored); other fields are dropped unread into memory. BadRequest if there is no such field.
    """
    delimiter = b"\r\n--" + boundary_of(content_type).encode("ascii")
    stream = _Stream(source)
    stream.until(delimiter, None, None)  # the preamble
    written = -1
    for _part in range(MAX_PARTS + 1):
        line = bytearray()
        stream.until(b"\r\n", line.extend, _DELIMITER_LINE)
        if line.startswith(b"--"):
            if written < 0:
                raise BadRequest(f"no {FIELD} field with a filename in the form")
            return written
        if line.strip(b" \t"):
            raise BadRequest("malformed multipart delimiter line")
        head = bytearray()
        stream.buffer[:0] = b"\r\n"  # an empty head is then "\r\n\r\n" too
        stream.until(b"\r\n\r\n", head.extend, MAX_PART_HEAD)
        headers = HeaderParser().parsestr(head.decode("utf-8", "replace").lstrip("\r\n"))
        name = headers.get_param("name", header="content-disposition")
        if written < 0 and name == FIELD and headers.get_filename() is not None:
            written = stream.until(delimiter, out.write, None)
        else:
            stream.until(delimiter, None, None)
    raise BadRequest(f"the form has more than {MAX_PARTS} parts")
