"""A TCP proxy on loopback that flips one byte of a marker passing through: corruption in transit.

Files under test contain :data:`MARKER`; the proxy flips the marker's last byte in the direction
and the number of times asked (``up``: client to server, ``down``: server to client). The last
byte always arrives in the chunk that completes the marker, so nothing needs to be held back.
"""

from __future__ import annotations

import socket
import threading

MARKER = b"<<lwr-flip-me-7f3a>>"


class CorruptingProxy:
    def __init__(self, upstream_port: int, *, up: int = 0, down: int = 0, cut: bool = False) -> None:
        """Flip (or with ``cut``, drop the connection at) the marker ``up``/``down`` times."""
        self.upstream = ("127.0.0.1", upstream_port)
        self.cut = cut
        #: Everything the client sent, to see which requests reached the server.
        self.sent = bytearray()
        self.remaining = {"up": up, "down": down}
        self.flipped = {"up": 0, "down": 0}
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/"

    def __enter__(self) -> CorruptingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            for source, target, direction in ((client, server, "up"), (server, client, "down")):
                threading.Thread(target=self._pump, args=(source, target, direction), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, direction: str) -> None:
        history = b""
        try:
            while True:
                chunk = source.recv(1 << 16)
                if not chunk:
                    break
                if direction == "up":
                    with self._lock:
                        self.sent += chunk
                chunk, hang_up = self._corrupt(history, bytearray(chunk), direction)
                target.sendall(chunk)
                if hang_up:
                    break
                history = (history + bytes(chunk))[-(len(MARKER) - 1) :]
        except OSError:
            pass
        finally:
            for sock in (source, target):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def _corrupt(self, history: bytes, chunk: bytearray, direction: str) -> tuple[bytearray, bool]:
        """The chunk to forward, and whether to hang up after it."""
        window = history + bytes(chunk)
        start = 0
        while (found := window.find(MARKER, start)) >= 0:
            start = found + 1
            last = found + len(MARKER) - 1 - len(history)
            if last < 0:
                continue
            with self._lock:
                if self.remaining[direction] == 0:
                    return chunk, False
                self.remaining[direction] -= 1
                self.flipped[direction] += 1
            if self.cut:
                return chunk[:last], True
            chunk[last] ^= 0x01
        return chunk, False
