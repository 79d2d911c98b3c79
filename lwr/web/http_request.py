"""HTTP/1.1 request heads, parsed within limits, and request bodies read as WSGI input.

The head is parsed from bytes the server's event loop collected (bounded by the limits here,
so a 32 MiB request line costs at most the limit). Each malformed or oversized head becomes
a :class:`HeadError` carrying the error class (its status and wire code) to answer with. Bodies are read by a worker thread
from the blocking socket: :class:`BodyReader` reads exactly ``Content-Length`` bytes or
decodes ``Transfer-Encoding: chunked``, and ends at the body's end either way, so WSGI
applications may read to EOF (``wsgi.input_terminated``).
"""

from __future__ import annotations

import io
import re
import socket
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import unquote_to_bytes

from lwr.errors import (
    BadRequest,
    HeadersTooLarge,
    HttpVersionNotSupported,
    LwrError,
    NotImplementedByServer,
    RequestTimeout,
    UriTooLong,
)

_METHOD = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_HEADER_NAME = _METHOD
_VERSION = re.compile(rb"^HTTP/(\d)\.(\d)$")
#: Bytes a request target may not hold: controls, space and DEL.
_CONTROL = re.compile(rb"[\x00-\x20\x7f]")
#: A Content-Length: ASCII digits only (``str.isdigit`` also takes ``²``, which ``int`` refuses), and
#: few enough for ``int`` (it refuses over 4,300) and for any file system (10**18 bytes is an exabyte).
_CONTENT_LENGTH = re.compile(r"^[0-9]{1,18}$")
#: A chunk size: hex digits only (``int(x, 16)`` would also take ``0x1f``, ``+1f`` and ``1_f``,
#: which a proxy in front may read differently: a smuggling vector).
_CHUNK_SIZE = re.compile(rb"^[0-9A-Fa-f]{1,16}$")
_CHUNK_LINE_LIMIT = 4096
_TRAILER_LIMIT = 16384


@dataclass(frozen=True)
class Limits:
    """What one request head may be: request line, header count and total header bytes."""

    max_request_line: int = 8192
    max_headers: int = 100
    max_header_size: int = 65536

    @property
    def max_head(self) -> int:
        return self.max_request_line + self.max_header_size + 4


class HeadError(Exception):
    """A request head the server answers itself: the error class of :mod:`lwr.errors` that says
    what is wrong (its ``http_status`` and wire ``code``) and a one-line reason."""

    def __init__(self, kind: type[LwrError], reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason

    @property
    def status(self) -> int:
        return self.kind.http_status

    def error(self) -> LwrError:
        return self.kind(self.reason)


@dataclass
class RequestHead:
    method: str
    target: str
    path: str
    query: str
    version: tuple[int, int]
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_length: int | None = None
    chunked: bool = False

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        values = [value for key, value in self.headers if key.lower() == lowered]
        return ", ".join(values) if values else None

    @property
    def keep_alive(self) -> bool:
        tokens = {token.strip().lower() for token in (self.header("Connection") or "").split(",")}
        if self.version >= (1, 1):
            return "close" not in tokens
        return "keep-alive" in tokens

    @property
    def expects_continue(self) -> bool:
        return (self.header("Expect") or "").strip().lower() == "100-continue" and self.version >= (1, 1)


def check_partial(buffer: bytes | bytearray, limits: Limits) -> None:
    """Refuse a head still arriving as soon as it is over a limit (before the whole of it came)."""
    line_end = buffer.find(b"\r\n")
    if (line_end < 0 and len(buffer) > limits.max_request_line) or line_end > limits.max_request_line:
        raise HeadError(UriTooLong, f"request line longer than {limits.max_request_line} bytes")
    if len(buffer) > limits.max_head:
        raise HeadError(HeadersTooLarge, f"request headers larger than {limits.max_header_size} bytes")


def parse_head(data: bytes, limits: Limits) -> RequestHead:
    """Parse a complete head (everything before the blank line, without it)."""
    lines = data.split(b"\r\n")
    request_line = lines[0]
    if len(request_line) > limits.max_request_line:
        raise HeadError(UriTooLong, f"request line longer than {limits.max_request_line} bytes")
    if len(data) - len(request_line) > limits.max_header_size:
        raise HeadError(HeadersTooLarge, f"request headers larger than {limits.max_header_size} bytes")
    parts = request_line.split(b" ")
    if len(parts) != 3 or not _METHOD.match(parts[0]) or not parts[1]:
        raise HeadError(BadRequest, "malformed request line")
    version = _VERSION.match(parts[2])
    if version is None:
        raise HeadError(BadRequest, "malformed HTTP version")
    major, minor = int(version.group(1)), int(version.group(2))
    if major != 1:
        raise HeadError(HttpVersionNotSupported, "only HTTP/1.x is served")
    target = parts[1]
    if _CONTROL.search(target):
        raise HeadError(BadRequest, "control characters in the request target")
    if target.startswith((b"http://", b"https://")):
        slash = target.find(b"/", target.find(b"//") + 2)
        target = target[slash:] if slash >= 0 else b"/"
    if not target.startswith(b"/"):
        raise HeadError(BadRequest, "request target must be a path")
    raw_path, _, raw_query = target.partition(b"?")
    headers = []
    if len(lines) - 1 > limits.max_headers:
        raise HeadError(HeadersTooLarge, f"more than {limits.max_headers} headers")
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not _HEADER_NAME.match(name):
            raise HeadError(BadRequest, "malformed header line")
        headers.append((name.decode("ascii"), value.strip(b" \t").decode("latin-1")))
    head = RequestHead(
        method=parts[0].decode("ascii"),
        target=target.decode("latin-1"),
        path=unquote_to_bytes(raw_path).decode("latin-1"),
        query=raw_query.decode("latin-1"),
        version=(major, minor),
        headers=headers,
    )
    _frame_body(head)
    return head


def _frame_body(head: RequestHead) -> None:
    """How the body is delimited; an ambiguous framing (a smuggling vector) is refused."""
    encoding = head.header("Transfer-Encoding")
    lengths = {value.strip() for key, value in head.headers if key.lower() == "content-length"}
    if encoding is not None:
        if lengths:
            raise HeadError(BadRequest, "both Content-Length and Transfer-Encoding")
        if encoding.strip().lower() != "chunked":
            raise HeadError(
                NotImplementedByServer, f"Transfer-Encoding {encoding!r} is not supported (only chunked)"
            )
        if head.version < (1, 1):
            raise HeadError(BadRequest, "Transfer-Encoding in an HTTP/1.0 request")
        head.chunked = True
        return
    if not lengths:
        return
    if len(lengths) != 1:
        raise HeadError(BadRequest, "conflicting Content-Length headers")
    text = lengths.pop()
    if not _CONTENT_LENGTH.match(text):
        raise HeadError(BadRequest, "Content-Length is not a number of at most 18 digits")
    head.content_length = int(text)


class BodyReader(io.RawIOBase):
    """``wsgi.input``: the body of one request, ending where the body ends.

    ``leftover`` is what the event loop read past the head. Each ``recv`` waits at most the
    socket's timeout (the server's ``body_timeout``); silence past it raises
    :class:`RequestTimeout`. ``on_first_read`` sends ``100 Continue`` when the client asked.
    """

    def __init__(
        self,
        sock: socket.socket,
        head: RequestHead,
        leftover: bytes,
        on_first_read: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self._sock = sock
        self._buffer = bytearray(leftover)
        self._chunked = head.chunked
        self._remaining = 0 if head.chunked else (head.content_length or 0)
        self._chunk_left = 0
        self._done = not head.chunked and self._remaining == 0
        self._on_first_read = on_first_read
        self.received = 0

    def readable(self) -> bool:
        return True

    @property
    def complete(self) -> bool:
        """Whether the whole body was read (the connection can then carry another request)."""
        return self._done

    def leftover(self) -> bytes:
        """Bytes read past the body's end: the start of a pipelined next request."""
        data = bytes(self._buffer)
        self._buffer.clear()
        return data

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(target).cast("B")
        if self._done or not len(view):
            return 0
        if self._on_first_read is not None:
            callback, self._on_first_read = self._on_first_read, None
            callback()
        if self._chunked:
            if self._chunk_left == 0:
                self._next_chunk()
                if self._done:
                    return 0
            wanted = min(len(view), self._chunk_left)
        else:
            wanted = min(len(view), self._remaining)
        count = self._fill(view[:wanted])
        if count == 0:
            # The client closed early; the reader of a short body tells it apart by its length.
            self._done = True
            return 0
        self.received += count
        if self._chunked:
            self._chunk_left -= count
            if self._chunk_left == 0:
                self._expect(b"\r\n")
        else:
            self._remaining -= count
            if self._remaining == 0:
                self._done = True
        return count

    def _fill(self, view: memoryview) -> int:
        if self._buffer:
            count = min(len(view), len(self._buffer))
            view[:count] = self._buffer[:count]
            del self._buffer[:count]
            return count
        try:
            return self._sock.recv_into(view)
        except socket.timeout:
            raise RequestTimeout("the request body stopped arriving") from None
        except (ConnectionError, OSError):
            return 0

    def _recv_more(self) -> bool:
        try:
            data = self._sock.recv(65536)
        except socket.timeout:
            raise RequestTimeout("the request body stopped arriving") from None
        except (ConnectionError, OSError):
            data = b""
        self._buffer += data
        return bool(data)

    def _line(self, limit: int) -> bytes:
        while True:
            end = self._buffer.find(b"\r\n")
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 2]
                return line
            if len(self._buffer) > limit:
                raise BadRequest("malformed chunked body: line too long")
            if not self._recv_more():
                raise BadRequest("request body ended inside a chunk header")

    def _expect(self, literal: bytes) -> None:
        if self._line(len(literal)) != b"":
            raise BadRequest("malformed chunked body: chunk not followed by CRLF")

    def _next_chunk(self) -> None:
        line = self._line(_CHUNK_LINE_LIMIT).split(b";", 1)[0].strip(b" \t")
        if not _CHUNK_SIZE.match(line):
            raise BadRequest("malformed chunked body: bad chunk size")
        size = int(line, 16)
        if size == 0:
            read = 0
            while self._line(_TRAILER_LIMIT) != b"":  # trailers are read and dropped
                read += 1
                if read > 100:
                    raise BadRequest("malformed chunked body: too many trailers")
            self._done = True
            return
        self._chunk_left = size
