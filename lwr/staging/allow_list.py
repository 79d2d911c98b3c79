"""Which URLs (and, for ``remote_copy``, which paths) server-side staging may touch.

A URL is allowed only if it matches an entry of ``remote_staging_allowed_urls``: same
scheme, same host, same port, and a path under the entry's path (at a ``/`` boundary, so
``http://galaxy/api`` does not allow ``http://galaxy/api-evil``). Its host must then resolve
only to public addresses; loopback, link-local, private and other non-global addresses are
allowed only when the matching entry names the host by that very address (for example
``http://127.0.0.1:8080/``) or as ``localhost``. ``file://`` entries allow ``remote_copy``
from and to paths under them. Refusal raises :class:`UrlRefused` *before* any request.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlsplit

from lwr.errors import StagingError

_DEFAULT_PORTS = {"http": 80, "https": 443}
Resolver = Callable[[str, int], Iterable[str]]


class UrlRefused(StagingError):
    """A URL or path that the allow-list (or the address rules) do not permit; never retried."""


@dataclass(frozen=True)
class _Entry:
    raw: str
    scheme: str
    host: str
    port: int | None
    path: str


def _resolve(host: str, port: int) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)]


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip("[]").split("%")[0])
    except ValueError:
        return None


def _under(path: str, prefix: str) -> bool:
    if not prefix or prefix == "/":
        return True
    prefix = prefix.rstrip("/")
    return path == prefix or path.startswith(prefix + "/")


class UrlPolicy:
    """The allow-list, parsed once; :meth:`check_url` and :meth:`check_path` enforce it."""

    def __init__(self, allowed: Sequence[str], resolver: Resolver = _resolve) -> None:
        self.resolver = resolver
        self.entries: list[_Entry] = []
        self.directories: list[str] = []
        for raw in allowed:
            parts = urlsplit(raw.strip())
            scheme = parts.scheme.lower()
            if scheme == "file":
                self.directories.append(os.path.realpath(parts.path or "/"))
            elif scheme in _DEFAULT_PORTS and parts.hostname:
                self.entries.append(_Entry(raw, scheme, parts.hostname.lower(), parts.port or _DEFAULT_PORTS[scheme],
                                           parts.path or "/"))
            else:
                raise ValueError(f"remote_staging_allowed_urls: {raw!r} is not an http(s):// or file:// prefix")

    def check_url(self, url: str) -> None:
        """Raise :class:`UrlRefused` unless ``url`` may be requested."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as error:
            raise UrlRefused(f"URL {url!r} is malformed: {error}", url=url) from None
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").lower()
        if scheme not in _DEFAULT_PORTS or not host:
            raise UrlRefused(f"URL {_safe(url)} is not an http(s) URL", url=_safe(url))
        port = port or _DEFAULT_PORTS[scheme]
        matched = [entry for entry in self.entries
                   if (entry.scheme, entry.host, entry.port) == (scheme, host, port) and _under(parts.path or "/",
                                                                                                  entry.path)]
        if not matched:
            raise UrlRefused(f"URL {_safe(url)} is not allowed by remote_staging_allowed_urls", url=_safe(url))
        literal = _ip(host)
        named_by_address = literal is not None or host == "localhost"
        try:
            addresses = [literal] if literal is not None else [_ip(a) for a in self.resolver(host, port)]
        except OSError as error:
            raise StagingError(f"cannot resolve {host}: {error}", url=_safe(url)) from None
        for address in addresses:
            if address is None:
                raise UrlRefused(f"{host} resolved to an unparseable address", url=_safe(url))
            if not address.is_global and not named_by_address:
                raise UrlRefused(f"URL {_safe(url)}: {host} resolves to non-public address {address}; list the "
                                 "address itself in remote_staging_allowed_urls to allow it", url=_safe(url))

    def check_path(self, path: str) -> str:
        """The real path of a ``remote_copy`` source or destination, if under a ``file://`` entry."""
        if not os.path.isabs(path):
            raise UrlRefused(f"remote_copy path {path!r} is not absolute", path=path)
        real = os.path.realpath(path)
        if not any(_under(real, directory) for directory in self.directories):
            raise UrlRefused(f"remote_copy path {path} is not under a file:// entry of remote_staging_allowed_urls",
                             path=path)
        return real


def _safe(url: str) -> str:
    """``url`` without its query string (Galaxy's job files URLs carry a job key there)."""
    return url.split("?", 1)[0]
