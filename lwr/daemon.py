"""The server process's pid file, held locked for the server's whole life, and detaching.

A pid alone cannot say whether lwr runs: after ``kill -9`` the dead server's pid may still
answer ``kill -0`` (a zombie not yet reaped, or a pid the kernel gave to another process), so
a start that trusted it refused forever. Here a start takes an exclusive ``flock`` on the pid
file and keeps the descriptor open until the process ends; the kernel drops the lock when the
process dies, however it dies. The pid written inside is only what ``--stop-daemon`` signals,
and it signals only while the lock is held. The descriptor is never inherited by job
processes (Python's descriptors are close-on-exec), so a job cannot keep a dead server's lock.
A restart hands the same open file (and with it the lock) to the new server.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Callable

from lwr.errors import AlreadyRunning

log = logging.getLogger(__name__)


class PidFile:
    """An exclusively locked pid file; the lock lives as long as this descriptor (or a copy of it)."""

    def __init__(self, path: Path, fd: int, owned: bool = True) -> None:
        self.path = path
        self.fd = fd
        #: Whether leaving removes the file: not while a restart's successor only shares the lock
        #: (until it serves), nor once it took over (the file is then the successor's).
        self.owned = owned

    @classmethod
    def acquire(cls, path: Path) -> PidFile:
        """Lock ``path`` (created if missing); :class:`AlreadyRunning` if another process holds it."""
        path = path.absolute()
        path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                pid = read_pid(path)
                raise AlreadyRunning(
                    f"lwr is already running (pid {pid if pid else '?'}, {path})", pid=pid, pid_file=str(path)
                ) from None
            # A server that stopped unlinks its file after we opened it: the lock we got is on a
            # name nobody else will see, so start again on the file now at that name.
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return cls(path, fd)
            os.close(fd)

    def write_pid(self, pid: int | None = None) -> None:
        """Write in place (a rename would leave the lock on the old file)."""
        data = f"{pid or os.getpid()}\n".encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)

    def release(self, unlink: bool = True) -> None:
        """Remove the file (while still locked, so no start can lock the doomed name) and unlock."""
        if self.fd < 0:
            return
        if unlink and self.owned:
            try:
                if os.stat(self.path).st_ino == os.fstat(self.fd).st_ino:
                    os.unlink(self.path)
            except FileNotFoundError:
                pass
        os.close(self.fd)
        self.fd = -1


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def is_locked(path: Path) -> bool:
    """Whether a live process holds ``path``'s lock (a missing file is not locked)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def running_pid(path: Path, timeout: float = 5.0) -> int | None:
    """The pid of the server holding ``path``, or ``None`` if nobody holds its lock.

    A server that has just taken the lock may not have written its pid yet; wait briefly.
    """
    deadline = time.monotonic() + timeout
    while is_locked(path):
        pid = read_pid(path)
        if pid:
            return pid
        if time.monotonic() > deadline:
            return None
        time.sleep(0.05)
    return None


def stop_daemon(
    path: Path, timeout: float = 900.0, waiting: Callable[[int], None] | None = None
) -> tuple[bool, str]:
    """SIGTERM the server holding ``path`` and wait until its lock is released (not until its pid
    vanishes: a zombie's pid lingers). ``waiting(pid)`` is called once if that takes more than
    two seconds (requests in progress draining), so the caller can say why it waits.
    Returns (stopped, message)."""
    pid = running_pid(path)
    if pid is None:
        stale = " (removed a stale pid file)" if path.exists() else ""
        if stale:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
        return False, f"lwr is not running (nothing holds {path}){stale}"
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    started = time.monotonic()
    deadline = started + timeout
    while is_locked(path) and time.monotonic() < deadline:
        if waiting is not None and time.monotonic() - started > 2:
            waiting(pid)
            waiting = None
        time.sleep(0.1)
    if is_locked(path):
        return False, f"lwr (pid {pid}) did not stop within {timeout:.0f} s"
    return True, f"lwr (pid {pid}) stopped"


def daemonize(log_file: Path) -> Callable[[bool], None]:
    """Detach (double fork, new session) with stdout/stderr appended to ``log_file``.

    The command that detached waits: it exits 0 once the server calls the returned function
    with ``True`` (it serves), 1 if it is called with ``False`` or the server dies first, so
    ``lwr serve --daemon`` and ``--restart --daemon`` fail visibly. Open descriptors, the pid
    file's among them, survive the forks; so does its lock.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    out = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    ready_r, ready_w = os.pipe()
    if os.fork():
        os.close(ready_w)
        answer = b""
        with os.fdopen(ready_r, "rb") as pipe:
            answer = pipe.read(1)
        if answer != b"1":
            print(f"lwr: the server did not start; see {log_file}", file=sys.stderr, flush=True)
        os._exit(0 if answer == b"1" else 1)
    os.close(ready_r)
    os.setsid()
    if os.fork():
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(devnull)
    os.close(out)

    def tell(serving: bool) -> None:
        nonlocal ready_w
        if ready_w < 0:
            return
        try:
            os.write(ready_w, b"1" if serving else b"0")
        except OSError:
            pass
        os.close(ready_w)
        ready_w = -1

    return tell


class SystemdNotifier:
    """``sd_notify``: datagrams to ``$NOTIFY_SOCKET`` (READY=1, MAINPID=, STOPPING=1); a no-op
    without systemd. The variable is taken out of the environment, so jobs never see it."""

    def __init__(self) -> None:
        self.address = os.environ.pop("NOTIFY_SOCKET", None)

    def notify(self, message: str) -> bool:
        if not self.address:
            return False
        address = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(message.encode(), address)
        except OSError as error:
            log.warning("sd_notify to %s failed: %s", self.address, error)
            return False
        return True
