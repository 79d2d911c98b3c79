"""Which URLs (and, for ``remote_copy``, which paths) server-side staging may touch.

A URL is allowed only if it matches an entry of ``remote_staging_allowed_urls``: same
scheme, same host, same port, and a path under the entry's path, compared segment by
segment after percent-decoding (so ``http://galaxy/api`` does not allow
``http://galaxy/api-evil``). Its host must then resolve only to public addresses; loopback,
link-local, private and other non-global addresses are allowed only when the matching entry
names the host by that very address (for example ``http://127.0.0.1:8080/``) or as
``localhost``. ``file://`` entries allow ``remote_copy`` from and to paths under them.
Refusal raises :class:`UrlRefused` *before* any request.

The check is only worth something if it judges the request that is really made, so:

* a URL that two parsers could read differently is refused outright: anything but printable
  ASCII, a backslash, user information (``@``), a fragment, a ``%`` in the host;
* a path that a server would normalise is refused: ``.`` and ``..`` segments in any
  spelling (``%2e%2E``, ``..;x``) and encoded separators (``%2f``, ``%5c``) or NUL;
* the host is resolved once, here, and :class:`CheckedUrl` carries the address that passed;
  :mod:`lwr.staging.transfer` connects to exactly that address (the name goes only into the
  ``Host`` header, TLS SNI and certificate check), so a second DNS answer cannot redirect it.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Callable
from urllib.parse import unquote_to_bytes, urlsplit

from urllib3.util import parse_url

from lwr.errors import StagingError
from lwr.protocol.redact import safe_url

_DEFAULT_PORTS = {"http": 80, "https": 443}
Resolver = Callable[[str, int], Iterable[str]]
#: Printable ASCII except the backslash: what an unambiguous URL is made of.
_PLAIN_URL = re.compile(r"^[\x21-\x5b\x5d-\x7e]+$")
_HOST = re.compile(r"^[a-z0-9_](?:[a-z0-9_.-]{0,251}[a-z0-9_])?\.?$|^[0-9a-f:.]{2,45}$")


class UrlRefused(StagingError):
    """A URL or path that the allow-list (or the address rules) do not permit; never retried."""


@dataclass(frozen=True)
class _Entry:
    raw: str
    scheme: str
    host: str
    port: int
    segments: tuple[str, ...]


@dataclass(frozen=True)
class CheckedUrl:
    """A URL that passed the allow-list, with the one address it may be fetched from."""

    #: The URL as given (for messages and for resolving a relative redirect).
    url: str
    scheme: str
    #: The host name (lower case), or the address literal without brackets.
    host: str
    port: int
    #: Path and query, exactly as they go on the request line.
    target: str
    #: The address that was checked; the connection goes here and nowhere else.
    address: str

    @property
    def host_is_address(self) -> bool:
        return _ip(self.host) is not None

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == _DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    @property
    def address_url(self) -> str:
        """The URL to hand to the HTTP library: the checked address in place of the name."""
        address = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.scheme}://{address}:{self.port}{self.target}"


def _resolve(host: str, port: int) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)]


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def _under(path: str, prefix: str) -> bool:
    if not prefix or prefix == "/":
        return True
    prefix = prefix.rstrip("/")
    return path == prefix or path.startswith(prefix + "/")


def path_segments(path: str) -> tuple[str, ...]:
    """The decoded segments of a URL path; raises ``ValueError`` for one a server would rewrite.

    ``"/api/jobs/"`` gives ``("api", "jobs")``: the empty segments a trailing or doubled
    slash makes are kept except the last, so the prefix test works on whole segments.
    """
    if not path:
        path = "/"
    if not path.startswith("/"):
        raise ValueError("the path does not start with '/'")
    segments = []
    for raw in path[1:].split("/"):
        if re.search(r"%(?![0-9a-fA-F]{2})", raw):
            raise ValueError("the path has a stray '%'")
        decoded = unquote_to_bytes(raw)
        if b"/" in decoded or b"\\" in decoded or b"\x00" in decoded:
            raise ValueError("the path has an encoded '/', '\\' or NUL")
        name = decoded.split(b";", 1)[0]
        if name in (b".", b".."):
            raise ValueError("the path has a '.' or '..' segment")
        segments.append(decoded.decode("latin-1"))
    if segments and segments[-1] == "":
        segments.pop()
    return tuple(segments)


def _split(url: str) -> tuple[str, str, int, tuple[str, ...], str]:
    """(scheme, host, port, path segments, target) of an unambiguous http(s) URL, or ``ValueError``."""
    if not _PLAIN_URL.match(url):
        raise ValueError("it has a backslash, a space, a control or a non-ASCII character")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError("it is not an http(s) URL")
    if "@" in parts.netloc:
        raise ValueError("it has user information ('@') in the authority")
    if "#" in url:
        raise ValueError("it has a fragment")
    host = (parts.hostname or "").lower()
    if not host or not _HOST.match(host):
        raise ValueError(f"its host {host!r} is not a plain name or address")
    if ":" in host and _ip(host) is None:
        raise ValueError(f"its host {host!r} is not an address")
    port = parts.port or _DEFAULT_PORTS[scheme]
    path = parts.path or "/"
    segments = path_segments(path)
    theirs = parse_url(url)  # the HTTP library's own reading must be the same
    if ((theirs.host or "").strip("[]").lower(), theirs.port or _DEFAULT_PORTS[scheme]) != (
        host,
        port,
    ) or path_segments(theirs.path or "/") != segments:
        raise ValueError("the HTTP library would read it differently")
    target = path + (f"?{parts.query}" if parts.query or url.endswith("?") else "")
    return scheme, host, port, segments, target


class UrlPolicy:
    """The allow-list, parsed once; :meth:`check_url` and :meth:`check_path` enforce it."""

    def __init__(self, allowed: Sequence[str], resolver: Resolver = _resolve) -> None:
        self.resolver = resolver
        self.entries: list[_Entry] = []
        self.directories: list[str] = []
        for raw in allowed:
            text = raw.strip()
            if urlsplit(text).scheme.lower() == "file":
                self.directories.append(os.path.realpath(urlsplit(text).path or "/"))
                continue
            try:
                scheme, host, port, segments, _target = _split(text)
            except ValueError as error:
                raise ValueError(
                    f"remote_staging_allowed_urls: {raw!r} is not a plain http(s):// or file:// "
                    f"prefix: {error}"
                ) from None
            self.entries.append(_Entry(raw, scheme, host, port, segments))

    def check_url(self, url: str) -> CheckedUrl:
        """The checked URL, with the address to connect to; :class:`UrlRefused` unless allowed."""
        try:
            scheme, host, port, segments, target = _split(url)
        except ValueError as error:
            raise UrlRefused(f"URL {_safe(url)!r} refused: {error}", url=_safe(url)) from None
        matched = [
            entry
            for entry in self.entries
            if (entry.scheme, entry.host, entry.port) == (scheme, host, port)
            and segments[: len(entry.segments)] == entry.segments
        ]
        if not matched:
            raise UrlRefused(
                f"URL {_safe(url)} is not allowed by remote_staging_allowed_urls", url=_safe(url)
            )
        literal = _ip(host)
        named_by_address = literal is not None or host == "localhost"
        try:
            addresses = [literal] if literal is not None else [_ip(a) for a in self.resolver(host, port)]
        except OSError as error:
            raise StagingError(f"cannot resolve {host}: {error}", url=_safe(url)) from None
        if not addresses:
            raise StagingError(f"{host} has no address", url=_safe(url))
        for address in addresses:
            if address is None:
                raise UrlRefused(f"{host} resolved to an unparseable address", url=_safe(url))
            if not address.is_global and not named_by_address:
                raise UrlRefused(
                    f"URL {_safe(url)}: {host} resolves to non-public address {address}; list the "
                    "address itself in remote_staging_allowed_urls to allow it",
                    url=_safe(url),
                )
        return CheckedUrl(url, scheme, host, port, target, str(addresses[0]))

    def check_path(self, path: str) -> str:
        """The real path of a ``remote_copy`` source or destination, if under a ``file://`` entry."""
        if not os.path.isabs(path):
            raise UrlRefused(f"remote_copy path {path!r} is not absolute", path=path)
        real = os.path.realpath(path)
        if not any(_under(real, directory) for directory in self.directories):
            raise UrlRefused(
                f"remote_copy path {path} is not under a file:// entry of remote_staging_allowed_urls",
                path=path,
            )
        return real


_safe = safe_url
