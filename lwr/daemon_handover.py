"""Zero-downtime restart: a running server hands its listening socket, pid-file lock and jobs to its successor.

A server started with a pid file listens on a unix socket beside it (``lwr.pid.control``,
mode 0600, peers checked to be the same user or root). ``lwr serve --restart`` connects there
and the two go through these steps, each side able to give up before the jobs change hands::

    new -> old  handover {pid}            new has loaded its code and configuration
    old -> new  offer {pid} + [listening socket, pid file]   (descriptors, SCM_RIGHTS)
    new -> old  take                      new has built its application (jobs not started)
    old         stops accepting; waits until the only requests left are uploads or downloads
                streaming their bodies; stops consuming messages and stops its managers (jobs keep
                running); removes its control socket
    old -> new  released
    new         recovers and re-attaches every job, accepts on the same socket, writes its pid
    new -> old  serving
    old         lets the remaining transfers finish, then exits (leaving the pid file in place)

Before ``released`` the old server also passes the client connections no request is being
served on (kept-alive ones, heads arriving, with the bytes read so far): a client reusing its
kept-alive connection at that moment is served by the new server instead of finding it closed.

The listening socket is never closed, so no connection is refused: those arriving between the
old server's last accept and the new one's first wait in the kernel's backlog. The pid file's
open file (and with it its ``flock``) is shared by both processes, so the lock is never free.
If the new server dies before ``take``, the old one keeps serving as if nothing happened.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import struct
import threading
from pathlib import Path
from typing import Any, Protocol

from lwr.daemon import PidFile
from lwr.errors import LwrError

log = logging.getLogger(__name__)

CONTROL_SUFFIX = ".control"
#: Descriptors per message (the kernel's limit, SCM_MAX_FD, is 253).
_FDS_PER_MESSAGE = 200


class HandoverError(LwrError):
    """The restart could not go through (no running server to replace, or it gave up)."""


class Releasable(Protocol):
    def release(self) -> None: ...


class Drainable(Protocol):
    def quiesce(self, timeout: float | None = None, keep_waiting: bool = False) -> bool: ...

    def detach_waiting(self) -> list[tuple[socket.socket, bytes, Any]]: ...

    def resume(self) -> None: ...

    def request_stop(self) -> None: ...


def control_path(pid_path: Path) -> Path:
    return pid_path.absolute().with_name(pid_path.name + CONTROL_SUFFIX)


class _Channel:
    """JSON lines over a unix stream socket, with descriptors passed alongside."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = b""
        self._fds: list[int] = []

    def send(self, message: dict[str, Any], fds: list[int] | None = None) -> None:
        data = json.dumps(message).encode() + b"\n"
        if fds:
            socket.send_fds(self.sock, [data], fds)
        else:
            self.sock.sendall(data)

    def receive(self, timeout: float | None = None) -> tuple[dict[str, Any] | None, list[int]]:
        """The next message and the descriptors that came with it; ``None`` if the peer is gone."""
        self.sock.settimeout(timeout)
        while b"\n" not in self._buffer:
            try:
                data, fds, _, _ = socket.recv_fds(self.sock, 65536, 4)
            except (OSError, ValueError):
                return None, []
            for fd in fds:
                os.set_inheritable(fd, False)
            self._fds += fds
            if not data:
                return None, []
            self._buffer += data
        line, self._buffer = self._buffer.split(b"\n", 1)
        fds, self._fds = self._fds, []
        try:
            return json.loads(line), fds
        except ValueError:
            return None, fds

    def peer_alive(self) -> bool:
        """False once the peer has closed its end (checked without waiting)."""
        try:
            return self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
        except BlockingIOError:
            return True
        except OSError:
            return False

    def close(self) -> None:
        self.sock.close()


def _peer_allowed(sock: socket.socket) -> bool:
    credentials = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _, uid, _ = struct.unpack("3i", credentials)
    return uid in (os.getuid(), 0)


class HandoverServer:
    """The running server's side: waits for a successor and hands everything over to it."""

    def __init__(
        self, pid_file: PidFile, listener: socket.socket, http: Drainable, application: Releasable
    ) -> None:
        self.pid_file = pid_file
        self.listener = listener
        self.http = http
        self.application = application
        self.path = control_path(pid_file.path)
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        if len(os.fsencode(self.path)) > 107:
            log.warning(
                "restart control socket path %s is too long for a unix socket; --restart will not work",
                self.path,
            )
            return
        try:
            self.path.unlink()  # a crashed server's; we hold the pid file's lock, so no live server's
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        previous = os.umask(0o177)
        try:
            sock.bind(str(self.path))
        finally:
            os.umask(previous)
        sock.listen(2)
        self._sock = sock
        threading.Thread(target=self._accept_loop, name="handover", daemon=True).start()

    def close(self) -> None:
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is None:
            return
        sock.close()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    def _accept_loop(self) -> None:
        while True:
            sock = self._sock
            if sock is None:
                return
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            try:
                if not _peer_allowed(conn):
                    log.warning("restart request from another user refused")
                    continue
                if self._hand_over(_Channel(conn)):
                    return
            except Exception:  # noqa: BLE001 - a failed restart must leave this server serving
                log.exception("restart failed; this server goes on serving")
            finally:
                conn.close()

    def _hand_over(self, channel: _Channel) -> bool:
        """True once the jobs were released (this server then only finishes its transfers)."""
        message, _ = channel.receive(timeout=30)
        if not message or message.get("op") != "handover":
            return False
        successor = message.get("pid")
        channel.send({"op": "offer", "pid": os.getpid()}, [self.listener.fileno(), self.pid_file.fd])
        message, _ = channel.receive()
        if not message or message.get("op") != "take":
            log.warning("restart abandoned by pid %s before it took over; still serving", successor)
            return False
        log.info("handing over to pid %s: no longer accepting; finishing requests in progress", successor)
        if not self.http.quiesce(keep_waiting=True):
            log.warning("requests still in progress at drain_timeout; handing over anyway")
        if not channel.peer_alive():
            log.warning("pid %s died while this server stopped accepting; accepting again", successor)
            self.http.resume()
            return False
        # quiesce took them out of this server: no request can reach the released application.
        waiting = self.http.detach_waiting()
        self.application.release()
        self.close()
        self.pid_file.owned = False
        try:
            self._pass_connections(channel, waiting)
            channel.send({"op": "released"})
        except OSError:
            message = None
        else:
            log.info("jobs released to pid %s", successor)
            message, _ = channel.receive()
        if message and message.get("op") == "serving":
            log.info("pid %s serves; finishing the transfers in progress, then exiting", successor)
        else:
            log.error("pid %s died after the jobs were released; exiting (start lwr again)", successor)
        self.http.request_stop()
        return True

    def _pass_connections(self, channel: _Channel, waiting: list[tuple[socket.socket, bytes, Any]]) -> None:
        """The kept-alive connections go on in the successor: a client reusing one is never cut off."""
        try:
            self._send_connections(channel, waiting)
        finally:
            for sock, _, _ in waiting:
                sock.close()
        if waiting:
            log.info("passed %d waiting connection(s) on", len(waiting))

    def _send_connections(self, channel: _Channel, waiting: list[tuple[socket.socket, bytes, Any]]) -> None:
        for start in range(0, len(waiting), _FDS_PER_MESSAGE):
            batch = waiting[start : start + _FDS_PER_MESSAGE]
            items = [
                {
                    "address": list(address) if isinstance(address, tuple) else None,
                    "buffer": base64.b64encode(buffer).decode(),
                }
                for _, buffer, address in batch
            ]
            channel.send({"op": "connections", "items": items}, [sock.fileno() for sock, _, _ in batch])


class Successor:
    """The new server's side of a restart."""

    def __init__(self, channel: _Channel, pid_path: Path) -> None:
        self.channel = channel
        self.pid_path = pid_path.absolute()
        self.old_pid: int | None = None

    @classmethod
    def connect(cls, pid_path: Path) -> Successor | None:
        """Connect to the server holding ``pid_path``; ``None`` if no server listens there."""
        path = control_path(pid_path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            return None
        return cls(_Channel(sock), pid_path)

    def offer(self) -> tuple[socket.socket, PidFile]:
        """Ask for the listening socket and the pid file (the old server keeps serving meanwhile)."""
        self.channel.send({"op": "handover", "pid": os.getpid()})
        message, fds = self.channel.receive(timeout=30)
        if not message or message.get("op") != "offer" or len(fds) != 2:
            for fd in fds:
                os.close(fd)
            raise HandoverError(
                "the running server did not offer its socket; is it an lwr with --restart support?"
            )
        self.old_pid = message.get("pid")
        return socket.socket(fileno=fds[0]), PidFile(self.pid_path, fds[1], owned=False)

    def take(self) -> list[tuple[socket.socket, bytes, Any]]:
        """Tell the old server to release the jobs; return once it has, with the client connections
        it passed on (socket, bytes already read, client address)."""
        self.channel.send({"op": "take"})
        adopted: list[tuple[socket.socket, bytes, Any]] = []
        while True:
            message, fds = self.channel.receive()
            if message and message.get("op") == "connections" and len(fds) == len(message.get("items", ())):
                for fd, item in zip(fds, message["items"]):
                    address = tuple(item["address"]) if item.get("address") else None
                    adopted.append((socket.socket(fileno=fd), base64.b64decode(item["buffer"]), address))
                continue
            for fd in fds:
                os.close(fd)
            if not message or message.get("op") != "released":
                for sock, _, _ in adopted:
                    sock.close()
                raise HandoverError(
                    f"the running server (pid {self.old_pid}) did not release its jobs; it goes on serving"
                )
            return adopted

    def serving(self) -> None:
        try:
            self.channel.send({"op": "serving"})
        except OSError:
            pass
        self.channel.close()
