"""Where the listening socket comes from: bound here, passed by systemd, or handed over by the old server.

A restart must not close the listening socket even for a moment (a connection arriving then
would be refused), so the socket outlives any one server process: systemd holds it
(socket activation, ``LISTEN_FDS``), or the server being replaced passes its descriptor to
its successor (:mod:`lwr.handover`). Connections arriving while neither process accepts wait
in the kernel's backlog; none is refused.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field
from typing import Any, Callable

from lwr.config import ServerSettings
from lwr.errors import ConfigError

log = logging.getLogger(__name__)

SD_LISTEN_FDS_START = 3


@dataclass
class Listener:
    """The listening socket, where it came from, and who to tell once the server serves on it."""

    sock: socket.socket
    origin: str
    on_ready: list[Callable[[Any], None]] = field(default_factory=list)
    #: Client connections handed over with it: (socket, bytes already read, client address).
    adopted: list[tuple[socket.socket, bytes, Any]] = field(default_factory=list)

    def ready(self, server: Any) -> None:
        """The server is about to accept: tell systemd, start the restart control socket, ..."""
        for callback in self.on_ready:
            callback(server)

    def close(self) -> None:
        self.sock.close()


def systemd_socket() -> socket.socket | None:
    """The first socket systemd passed (``LISTEN_PID`` names this process), or ``None``."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return None
    count = int(os.environ.get("LISTEN_FDS", "0") or 0)
    if count < 1:
        return None
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)  # not for the jobs this server starts
    if count > 1:
        log.warning("systemd passed %d sockets; lwr serves on the first", count)
    sock = socket.socket(fileno=SD_LISTEN_FDS_START)
    os.set_inheritable(SD_LISTEN_FDS_START, False)
    return sock


def bind(settings: ServerSettings) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            settings.host, settings.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as error:
        raise ConfigError(
            f"{settings.source}: [server:main] host = {settings.host!r}: {error}",
            file=settings.source,
            section="server:main",
            key="host",
        ) from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(settings.request_queue_size)
    except OSError as error:
        sock.close()
        raise ConfigError(
            f"{settings.source}: [server:main] cannot listen on {settings.host}:{settings.port}: "
            f"{error.strerror}",
            file=settings.source,
            section="server:main",
            key="port",
        ) from None
    return sock


def obtain_listener(settings: ServerSettings) -> Listener:
    """systemd's socket if it passed one, else a newly bound one."""
    from_systemd = systemd_socket()
    if from_systemd is not None:
        from_systemd.listen(settings.request_queue_size)
        return Listener(from_systemd, "socket from systemd")
    return Listener(bind(settings), "bound")
