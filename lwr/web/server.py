"""``egg:lwr#http``: lwr's own HTTP/1.1 WSGI server, built so a client without the token cannot stop it.

Why not Paste's server: it gives each connection a worker thread from the first byte, reads
the request line without a bound and has no deadline, so 40 half-sent requests stopped all
service and a 32 MiB request line was held in memory. waitress reads heads safely but spools
every body to a temporary file; cheroot streams bodies but, like Paste, reads the head in a
worker with a per-read timeout that a client trickling one byte at a time never trips.

Here one event-loop thread accepts, does the TLS handshake and reads request heads, within
``header_timeout`` (a deadline, not a per-read timeout) and the size limits of
:class:`~lwr.web.http_request.Limits`, for up to ``max_connections`` connections at once
(beyond that the oldest connection that has no request being served is dropped). Only a
complete head reaches one of ``threadpool_workers`` threads, which runs the application with
the blocking socket: bodies stream straight from the socket to the application (a 4 GiB
upload in bounded memory), each read waiting at most ``body_timeout``. Kept-alive
connections go back to the loop, waiting at most ``idle_timeout`` for the next request; one
that ends with its response (Pulsar's client opens one per request) is closed by its worker,
which wakes nobody: the loop forgets it on its next turn.

:meth:`HttpServer.drain` stops accepting and lets every request already received finish: a
SIGTERM, ``--stop-daemon`` and a restart (:mod:`lwr.handover`) all stop this way.
"""

from __future__ import annotations

import collections
import http
import json
import logging
import queue
import selectors
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any, Callable

from lwr import __version__
from lwr.config import ServerSettings, load_server_settings
from lwr.errors import BadRequest, ConfigError, LwrError, RequestTimeout, ServiceUnavailable
from lwr.web.http_request import BodyReader, HeadError, Limits, RequestHead, check_partial, parse_head
from lwr.web.listener import Listener, obtain_listener

log = logging.getLogger(__name__)

_READ_SIZE = 65536
_LINGER_SECONDS = 2.0
_LINGER_BYTES = 4 << 20
_NO_BODY_STATUSES = (204, 304)
#: Files up to this size are read and sent with the response head rather than by ``sendfile``.
_SMALL_FILE = 16384
#: Request heads buffered by all connections together stay under this (each may be up to
#: max_request_line + max_header_size long); the total is counted only past _LARGE_HEAD.
_HEAD_MEMORY = 32 << 20
_LARGE_HEAD = 65536


def tls_context(ssl_pem: str, source: str = "<defaults>") -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(ssl_pem)
    except (OSError, ssl.SSLError) as error:
        raise ConfigError(
            f"{source}: [server:main] ssl_pem = {ssl_pem!r}: {error}; expected a PEM file with the "
            "certificate chain and the private key",
            file=source,
            section="server:main",
            key="ssl_pem",
        ) from None
    return context


class FileWrapper:
    """``wsgi.file_wrapper``: a file the worker sends with ``sendfile`` where it can."""

    def __init__(self, filelike: Any, block_size: int = 1 << 20) -> None:
        self.filelike = filelike
        self.block_size = block_size

    def __iter__(self) -> Any:
        while True:
            data = self.filelike.read(self.block_size)
            if not data:
                return
            yield data

    def close(self) -> None:
        self.filelike.close()


class _Connection:
    """One client connection and where it is in its life."""

    __slots__ = (
        "sock",
        "fileno",
        "address",
        "state",
        "buffer",
        "deadline",
        "since",
        "discarded",
        "body",
        "response",
    )

    def __init__(self, sock: socket.socket, address: Any, state: str, deadline: float) -> None:
        self.sock = sock
        #: The loop's key for it, kept: a worker may close the socket before the loop forgets it.
        self.fileno = sock.fileno()
        self.address = address
        #: handshake | head | idle | busy | linger
        self.state = state
        self.buffer = bytearray()
        self.deadline = deadline
        self.since = time.monotonic()
        self.discarded = 0
        #: The body of the request a worker serves (set by the worker; read to tell uploads apart).
        self.body: BodyReader | None = None
        #: Its response, once started (a response whose head went out only streams bytes).
        self.response: _Response | None = None


class HttpServer:
    """The event loop and the worker pool around one listening socket."""

    def __init__(
        self,
        app: Callable[..., Iterable[bytes]],
        settings: ServerSettings,
        listener: socket.socket,
        tls: ssl.SSLContext | None = None,
        adopted: Iterable[tuple[socket.socket, bytes, Any]] = (),
    ) -> None:
        self.app = app
        self.settings = settings
        self.listener = listener
        self.tls = tls
        self.limits = Limits(settings.max_request_line, settings.max_headers, settings.max_header_size)
        self.selector = selectors.DefaultSelector()
        self._connections: dict[int, _Connection] = {}
        self._returned: collections.deque[tuple[_Connection, str, bytes]] = collections.deque()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._work: queue.Queue[tuple[_Connection, RequestHead, bytes] | None] = queue.Queue()
        self._listening = False
        self._draining = False
        self._keep_waiting = False
        self._detached: list[tuple[socket.socket, bytes, Any]] = []
        self._adopted = list(adopted)
        self._drain_deadline = 0.0
        self._stopped = threading.Event()
        self._drained = threading.Event()
        self._calls: collections.deque[Callable[[], None]] = collections.deque()
        host, port = listener.getsockname()[:2]
        self.server_name, self.server_port = str(host), str(port)
        self._workers = [
            threading.Thread(target=self._work_loop, name=f"http-worker-{index}", daemon=True)
            for index in range(settings.threadpool_workers)
        ]

    # --- control, from any thread -------------------------------------------------------------------
    def drain(self, timeout: float | None = None) -> bool:
        """Stop accepting; finish every request already received; True if all ended in time."""
        self._call(self._begin_drain)
        return self._drained.wait(self.settings.drain_timeout if timeout is None else timeout)

    def quiesce(self, timeout: float | None = None, keep_waiting: bool = False) -> bool:
        """Stop accepting and wait until the only requests left are uploads streaming their body
        or responses streaming theirs (downloads).

        Every other request (a status poll, a submit) has then ended, and nothing more can
        arrive: what is left only moves file bytes. A restart releases the jobs at this point.
        ``keep_waiting``: connections waiting for (or sending) their next request are kept, to
        be passed to the successor with :meth:`detach_waiting` (plain HTTP only: a TLS session
        cannot leave its process), instead of being closed under a client about to reuse them.
        """

        def begin() -> None:
            self._keep_waiting = keep_waiting and self.tls is None
            self._begin_drain()

        self._call(begin)
        deadline = time.monotonic() + (self.settings.drain_timeout if timeout is None else timeout)
        while time.monotonic() < deadline:
            answered = threading.Event()
            verdict: list[bool] = []

            def check(verdict: list[bool] = verdict, answered: threading.Event = answered) -> None:
                quiet = self._only_transfers_left()
                if quiet and self._keep_waiting:
                    # In the same loop turn: no request can slip in between the check and this.
                    self._detached = self._detach_now()
                verdict.append(quiet)
                answered.set()

            self._call(check)
            if (answered.wait(5) and verdict[0]) or self._drained.is_set():
                return True
            time.sleep(0.01)
        if keep_waiting:
            detached = threading.Event()

            def detach() -> None:
                self._detached = self._detach_now()
                detached.set()

            self._call(detach)
            detached.wait(5)
        return False

    def resume(self) -> None:
        """Undo :meth:`quiesce`: accept again (a restart whose successor died before taking over)."""

        def undo() -> None:
            self._draining = False
            self._keep_waiting = False
            for sock, buffer, address in self._detached:
                self._adopt(sock, buffer, address)
            self._detached = []
            self._drained.clear()
            self._listen(True)

        self._call(undo)

    def detach_waiting(self) -> list[tuple[socket.socket, bytes, Any]]:
        """The connections :meth:`quiesce` took out, no request being served on them (idle, or a
        head arriving): (socket, bytes read so far, client address), for the successor."""
        taken, self._detached = self._detached, []
        return taken

    def _detach_now(self) -> list[tuple[socket.socket, bytes, Any]]:
        taken = []
        for connection in list(self._connections.values()):
            if connection.state in ("idle", "head") and self.tls is None:
                self.selector.unregister(connection.sock)
                del self._connections[connection.sock.fileno()]
                taken.append((connection.sock, bytes(connection.buffer), connection.address))
        self._check_drained()
        return taken

    def _adopt(self, sock: socket.socket, buffer: bytes, address: Any) -> None:
        """A waiting connection handed over by the server this one replaces."""
        sock.setblocking(False)
        now = time.monotonic()
        connection = _Connection(
            sock,
            address,
            "head" if buffer else "idle",
            now + (self.settings.header_timeout if buffer else self.settings.idle_timeout),
        )
        connection.buffer = bytearray(buffer)
        self._connections[sock.fileno()] = connection
        self.selector.register(sock, selectors.EVENT_READ, connection)
        if buffer:
            self._dispatch(connection)

    def _only_transfers_left(self) -> bool:
        for connection in self._connections.values():
            if connection.state == "linger" or (self._keep_waiting and connection.state in ("idle", "head")):
                continue
            if connection.state != "busy":
                return False
            body, response = connection.body, connection.response
            uploading = body is not None and body.received and not body.complete
            # The application has answered: what is left is sending bytes (a download).
            downloading = response is not None and response.head_sent
            if not (uploading or downloading):
                return False
        return True

    def request_stop(self) -> None:
        """Drain (in the loop) and then return from :meth:`serve_forever`; safe in a signal handler."""
        self._calls.append(self._begin_drain_then_stop)
        self._wake()

    def stop(self) -> None:
        self._stopped.set()
        self._wake()

    def close(self) -> None:
        """Release the loop's own sockets once :meth:`serve_forever` returned (or never ran); the
        listener is the caller's. For a server embedded in a longer-lived process."""
        self._wake_r.close()
        self._wake_w.close()

    # --- the loop -----------------------------------------------------------------------------------
    def serve_forever(self) -> None:
        self.listener.setblocking(False)
        self.selector.register(self._wake_r, selectors.EVENT_READ, None)
        for worker in self._workers:
            worker.start()
        for sock, buffer, address in self._adopted:
            self._adopt(sock, buffer, address)
        self._adopted.clear()
        self._listen(True)
        try:
            while not self._stopped.is_set():
                events = self.selector.select(self._timeout())
                self._take_returned()  # before any accept: a closed connection counts no more
                for key, mask in events:
                    if key.fileobj is self._wake_r:
                        self._on_wake()
                    elif key.fileobj is self.listener:
                        self._accept()
                    else:
                        self._on_event(key.data, mask)
                self._expire(time.monotonic())
        finally:
            for _ in self._workers:
                self._work.put(None)
            for connection in list(self._connections.values()):
                self._close(connection)
            self.selector.close()

    def _timeout(self) -> float:
        now = time.monotonic()
        deadlines = [
            connection.deadline for connection in self._connections.values() if connection.state != "busy"
        ]
        if self._draining:
            deadlines.append(self._drain_deadline)
        if not deadlines:
            return 1.0
        return max(0.0, min(1.0, min(deadlines) - now))

    def _listen(self, on: bool) -> None:
        if on and not self._listening and not self._draining:
            self.selector.register(self.listener, selectors.EVENT_READ, None)
            self._listening = True
        elif not on and self._listening:
            self.selector.unregister(self.listener)
            self._listening = False

    def _call(self, function: Callable[[], None]) -> None:
        self._calls.append(function)
        self._wake()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except (BlockingIOError, OSError):
            pass

    def _on_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass
        while self._calls:
            self._calls.popleft()()
        self._take_returned()
        self._check_drained()

    def _take_returned(self) -> None:
        """Take back the connections workers are done with (every loop turn: a worker that closed
        its connection does not wake the loop for it)."""
        while self._returned:
            self._resume(*self._returned.popleft())

    def _accept(self) -> None:
        for attempt in range(64):
            if len(self._connections) >= self.settings.max_connections:
                # Room is made only for a connection known to wait: the listener was readable at
                # this turn's start. Later in the burst nobody may be waiting, and making room
                # then dropped a connection (one just accepted, at a limit of 1) for nobody.
                if attempt > 0:
                    return
                if not self._evict():
                    self._listen(False)
                    return
            try:
                sock, address = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # out of descriptors, for one: wait for a connection to end
                log.warning("accept failed: %s", error)
                self._listen(False)
                return
            sock.setblocking(False)
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            state = "head"
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
                state = "handshake"
            connection = _Connection(sock, address, state, time.monotonic() + self.settings.header_timeout)
            self._connections[sock.fileno()] = connection
            self.selector.register(sock, selectors.EVENT_READ, connection)

    def _evict(self) -> bool:
        """Drop the oldest connection no worker serves, to make room; False if all are busy."""
        waiting = [connection for connection in self._connections.values() if connection.state != "busy"]
        if not waiting:
            return False
        self._close(min(waiting, key=lambda connection: (connection.state != "idle", connection.since)))
        return True

    def _on_event(self, connection: _Connection, mask: int) -> None:
        if connection.state == "handshake":
            try:
                connection.sock.do_handshake()  # type: ignore[attr-defined]
            except ssl.SSLWantReadError:
                self.selector.modify(connection.sock, selectors.EVENT_READ, connection)
                return
            except ssl.SSLWantWriteError:
                self.selector.modify(connection.sock, selectors.EVENT_WRITE, connection)
                return
            except (ssl.SSLError, OSError):
                self._close(connection)
                return
            connection.state = "head"
            if mask & selectors.EVENT_WRITE:
                self.selector.modify(connection.sock, selectors.EVENT_READ, connection)
        self._read(connection)

    def _read(self, connection: _Connection) -> None:
        try:
            data = connection.sock.recv(_READ_SIZE)
            pending = getattr(connection.sock, "pending", None)
            while pending is not None and pending() and len(data) < self.limits.max_head:
                data += connection.sock.recv(pending())
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        except OSError:
            self._close(connection)
            return
        if not data:
            self._close(connection)
            return
        if connection.state == "linger":
            connection.discarded += len(data)
            if connection.discarded > _LINGER_BYTES:
                self._close(connection)
            return
        if connection.state == "idle":
            connection.state = "head"
            connection.deadline = time.monotonic() + self.settings.header_timeout
        connection.buffer += data
        if len(connection.buffer) > _LARGE_HEAD and self._head_bytes() > _HEAD_MEMORY:
            # Many large heads arriving at once (an attack: each may be max_request_line long).
            self._refuse(connection, ServiceUnavailable("too many large requests arriving at once; retry"))
            return
        self._dispatch(connection)

    def _head_bytes(self) -> int:
        return sum(len(connection.buffer) for connection in self._connections.values())

    def _dispatch(self, connection: _Connection) -> None:
        buffer = connection.buffer
        while buffer.startswith(b"\r\n"):  # RFC 9112: ignore empty lines before a request line
            del buffer[:2]
        end = buffer.find(b"\r\n\r\n", 0, self.limits.max_head)
        try:
            if end < 0:
                check_partial(buffer, self.limits)
                return
            head = parse_head(bytes(buffer[:end]), self.limits)
        except HeadError as error:
            self._refuse(connection, error.error())
            return
        except Exception:  # noqa: BLE001 - the loop serves every connection: one head must not end it
            log.exception("unexpected error parsing a request head from %s", connection.address)
            self._refuse(connection, BadRequest("malformed request head"))
            return
        leftover = bytes(buffer[end + 4 :])
        buffer.clear()
        self.selector.unregister(connection.sock)
        connection.state = "busy"
        self._work.put((connection, head, leftover))

    def _refuse(self, connection: _Connection, error: LwrError) -> None:
        """Answer a bad head from the loop (a small reply fits the socket buffer), then linger."""
        try:
            connection.sock.send(_simple_response(error))
        except OSError:
            pass
        self._linger(connection)

    def _linger(self, connection: _Connection) -> None:
        """Half-close and discard what the client still sends for a moment, so our reply reaches it
        instead of being wiped by the reset that closing with unread data provokes."""
        connection.buffer.clear()
        connection.state = "linger"
        connection.deadline = time.monotonic() + _LINGER_SECONDS
        try:
            if isinstance(connection.sock, ssl.SSLSocket):
                raise OSError("no half-close under TLS")
            connection.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(connection)

    def _resume(self, connection: _Connection, verdict: str, leftover: bytes) -> None:
        """A worker is done with a connection: wait for its next request, linger, or close."""
        if verdict == "closed":  # by the worker
            if self._connections.get(connection.fileno) is connection:
                del self._connections[connection.fileno]
            self._listen(True)
            return
        if verdict == "close" or self._stopped.is_set():
            self._close(connection, registered=False)
            return
        connection.sock.setblocking(False)
        self.selector.register(connection.sock, selectors.EVENT_READ, connection)
        if verdict == "linger":
            self._linger(connection)
            return
        connection.state = "idle"
        connection.buffer = bytearray(leftover)
        connection.since = time.monotonic()
        connection.deadline = connection.since + self.settings.idle_timeout
        if connection.buffer:
            connection.state = "head"
            connection.deadline = connection.since + self.settings.header_timeout
            self._dispatch(connection)
        elif getattr(connection.sock, "pending", lambda: 0)():
            self._read(connection)
        elif self._draining and not self._keep_waiting:
            self._close_if_quiet(connection)

    def _expire(self, now: float) -> None:
        for connection in [c for c in self._connections.values() if c.state != "busy" and c.deadline <= now]:
            if connection.state == "head" and connection.buffer:
                self._refuse(connection, RequestTimeout("request head not received in time"))
            else:
                self._close(connection)
        if self._draining and now >= self._drain_deadline:
            log.warning(
                "drain: %d connection(s) still open after %.0f s; closing them",
                len(self._connections),
                self.settings.drain_timeout,
            )
            self._drained.set()
        self._check_drained()

    def _close(self, connection: _Connection, registered: bool = True) -> None:
        fileno = connection.sock.fileno()
        if fileno < 0:
            return
        if self._connections.get(fileno) is connection:
            del self._connections[fileno]
            if registered and connection.state != "busy":
                try:
                    self.selector.unregister(connection.sock)
                except (KeyError, ValueError):
                    pass
        connection.sock.close()
        self._listen(True)

    # --- draining -----------------------------------------------------------------------------------
    def _begin_drain(self) -> None:
        if self._draining:
            return
        self._draining = True
        self._drain_deadline = time.monotonic() + self.settings.drain_timeout
        self._listen(False)
        # Connections still in their TLS handshake or head were accepted: they are served (and
        # then closed), never cut off; header_timeout bounds how long they can hold the drain.
        for connection in list(self._connections.values()):
            if connection.state == "idle" and not self._keep_waiting:
                self._close_if_quiet(connection)
        self._check_drained()

    def _begin_drain_then_stop(self) -> None:
        busy = sum(1 for connection in self._connections.values() if connection.state != "idle")
        log.info(
            "stopping: no new connections; %d in progress may finish within %.0f s (drain_timeout)",
            busy,
            self.settings.drain_timeout,
        )
        self._begin_drain()
        threading.Thread(target=self._stop_when_drained, name="http-drain", daemon=True).start()

    def _stop_when_drained(self) -> None:
        self._drained.wait()
        self.stop()

    def _close_if_quiet(self, connection: _Connection) -> None:
        """An idle connection is closed, unless its next request already arrived (then it is served)."""
        self._read(connection)
        if connection.state == "idle":
            self._close(connection)

    def _check_drained(self) -> None:
        if self._draining and not any(c.state != "linger" for c in self._connections.values()):
            self._drained.set()

    # --- workers ------------------------------------------------------------------------------------
    def _work_loop(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                return
            connection, head, leftover = item
            try:
                keep, leftover = self._serve(connection, head, leftover)
            except Exception:  # noqa: BLE001 - a broken connection must never take a worker down
                log.exception("serving %s %s failed", head.method, head.path)
                keep, leftover = False, b""
            # The loop thread owns connection state: hand it the verdict, never set it here.
            verdict = "idle" if keep else ("linger" if keep is None else "close")
            if verdict == "close" and not self._stopped.is_set():
                # Closed here; the loop only has to forget it, which can wait for its next turn
                # (it is woken for it only when it waits for connections to end).
                connection.sock.close()
                self._returned.append((connection, "closed", b""))
                if self._draining or not self._listening:
                    self._wake()
                continue
            self._returned.append((connection, verdict, leftover))
            self._wake()

    def _serve(
        self, connection: _Connection, head: RequestHead, leftover: bytes
    ) -> tuple[bool | None, bytes]:
        """Run the application for one request; (keep the connection?, bytes of the next request).

        ``None`` for keep means: answered, but the body was not read, so linger before closing.
        """
        sock = connection.sock
        sock.setblocking(True)
        sock.settimeout(self.settings.body_timeout)
        body = BodyReader(
            sock,
            head,
            leftover,
            on_first_read=(lambda: sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n"))
            if head.expects_continue
            else None,
        )
        connection.body = body
        environ = self._environ(connection, head, body)
        response = _Response(
            sock, head, closing=not head.keep_alive, draining=lambda: self._draining, body=body
        )
        connection.response = response
        result: Iterable[bytes] | None = None
        try:
            result = self.app(environ, response.start_response)
            if isinstance(result, FileWrapper) and response.content_length is not None:
                response.send_file(result)
            else:
                for data in result:
                    if data:
                        response.write(data)
            response.finish()
        except OSError:  # the client went away (or stopped reading for body_timeout)
            return False, b""
        except Exception:  # noqa: BLE001
            log.exception("unexpected error in the application for %s %s", head.method, head.path)
            if response.head_sent:
                return False, b""
            response.fail(LwrError("internal server error; see the server log"))
        finally:
            connection.body = None
            connection.response = None
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if not body.complete:
            return None, b""
        if response.closing:
            return False, b""
        return True, body.leftover()

    def _environ(self, connection: _Connection, head: RequestHead, body: BodyReader) -> dict[str, Any]:
        address = connection.address if isinstance(connection.address, tuple) else ("", 0)
        environ: dict[str, Any] = {
            "REQUEST_METHOD": head.method,
            "SCRIPT_NAME": "",
            "PATH_INFO": head.path,
            "QUERY_STRING": head.query,
            "RAW_URI": head.target,
            "SERVER_NAME": self.server_name,
            "SERVER_PORT": self.server_port,
            "SERVER_PROTOCOL": f"HTTP/{head.version[0]}.{head.version[1]}",
            "REMOTE_ADDR": str(address[0]),
            "REMOTE_PORT": str(address[1]),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "https" if self.tls else "http",
            "wsgi.input": body,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
            "wsgi.file_wrapper": FileWrapper,
        }
        for name, value in head.headers:
            if "_" in name:  # X-Foo_Bar would pass for X-Foo-Bar in the environ: drop it
                continue
            key = name.upper().replace("-", "_")
            if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                key = "HTTP_" + key
            if key == "CONTENT_LENGTH" and head.chunked:
                continue
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ


class _Response:
    """Status, headers and body of one response, framed for the connection's next request."""

    def __init__(
        self,
        sock: socket.socket,
        head: RequestHead,
        closing: bool,
        draining: Callable[[], bool] = lambda: False,
        body: BodyReader | None = None,
    ) -> None:
        self.sock = sock
        self.head = head
        self.closing = closing
        #: Asked when the head goes out: a server draining by then tells the client to close.
        self.draining = draining
        self.body = body
        self.status = ""
        self.headers: list[tuple[str, str]] = []
        self.head_sent = False
        self.chunked = False
        self.content_length: int | None = None
        self.sent = 0

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        if exc_info is not None and self.head_sent:
            raise exc_info[1].with_traceback(exc_info[2])
        self.status = status
        self.headers = list(headers)
        self.content_length = None
        for name, value in self.headers:
            lowered = name.lower()
            if lowered == "content-length":
                self.content_length = int(value)
            elif lowered == "connection" and "close" in value.lower():
                self.closing = True
        return self.write

    @property
    def _has_body(self) -> bool:
        code = int(self.status.split(" ", 1)[0])
        return self.head.method != "HEAD" and code not in _NO_BODY_STATUSES and code >= 200

    def _head_bytes(self) -> bytes:
        headers = [
            (name, value)
            for name, value in self.headers
            if name.lower() not in ("connection", "transfer-encoding", "keep-alive")
        ]
        if self.content_length is None and self._has_body:
            if self.head.version >= (1, 1):
                self.chunked = True
                headers.append(("Transfer-Encoding", "chunked"))
            else:
                self.closing = True
        if self.body is not None and not self.body.complete:
            # Answered before the body was read (a refusal): this connection will not carry another
            # request, and the client must know it before reusing it.
            self.closing = True
        if self.closing or self.draining():
            self.closing = True
            headers.append(("Connection", "close"))
        lines = [f"HTTP/1.1 {self.status}"] + [f"{name}: {value}" for name, value in headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def write(self, data: bytes) -> None:
        if not self.status:
            raise AssertionError("write() before start_response()")
        prefix = b""
        if not self.head_sent:
            prefix = self._head_bytes()
            self.head_sent = True
        if not self._has_body:
            if prefix:
                self.sock.sendall(prefix)
            return
        self.sent += len(data)
        if self.chunked:
            self.sock.sendall(b"".join((prefix, b"%x\r\n" % len(data), data, b"\r\n")))
        elif prefix:
            self.sock.sendall(prefix + data if len(data) < 65536 else prefix)
            if len(data) >= 65536:
                self.sock.sendall(data)
        else:
            self.sock.sendall(data)

    def send_file(self, wrapper: FileWrapper) -> None:
        if self._has_body and self.content_length and self.content_length <= _SMALL_FILE:
            # A small file (a job's metadata, a short output) goes out with the head, in one send.
            wrapper.filelike.seek(0)
            self.write(wrapper.filelike.read(self.content_length))
            return
        self.write(b"")
        if self._has_body and self.content_length:
            self.sent += self.sock.sendfile(wrapper.filelike, count=self.content_length)

    def finish(self) -> None:
        if not self.head_sent:
            self.write(b"")
        if self.chunked:
            self.sock.sendall(b"0\r\n\r\n")
        elif self._has_body and self.content_length is not None and self.sent != self.content_length:
            self.closing = True  # the application lied about the length: the framing is lost

    def fail(self, error: LwrError) -> None:
        self.closing = True
        self.sock.sendall(_simple_response(error))


def _simple_response(error: LwrError) -> bytes:
    """A reply the server writes itself (a bad head, a timeout, a crashed application): the same
    ``{"error": ..., "code": ...}`` body as the application's errors, and the connection closes."""
    body = json.dumps(error.as_dict()).encode()
    status = error.http_status
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return (
        f"HTTP/1.1 {status} {phrase}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


def run(wsgi_app: Any, settings: ServerSettings, listener: Listener | None = None) -> None:
    """Serve until SIGTERM/SIGINT, then drain. ``listener``: a socket handed over by the server this
    process replaces; else systemd's or a new one (:func:`lwr.web.listener.obtain_listener`)."""
    tls = tls_context(settings.ssl_pem, settings.source) if settings.ssl_pem else None
    listener = listener or obtain_listener(settings)
    server = HttpServer(wsgi_app, settings, listener.sock, tls, listener.adopted)
    host, port = listener.sock.getsockname()[:2]
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: server.request_stop())
    # Logged, not printed: the line an admin looks for belongs in the log server.ini configures.
    log.info(
        "serving on %s://%s:%d (lwr %s, %s)",
        "https" if tls else "http",
        host,
        port,
        __version__,
        listener.origin,
    )
    listener.ready(server)
    try:
        server.serve_forever()
    finally:
        listener.close()


def server_runner(wsgi_app: Any, global_conf: dict[str, Any] | None = None, **kwargs: Any) -> None:
    """PasteDeploy server runner (``use = egg:lwr#http``)."""
    run(wsgi_app, load_server_settings(kwargs, (global_conf or {}).get("__file__", "<defaults>")))
