"""The server's response framing for files: small ones go out with the head, large ones by sendfile."""

from __future__ import annotations

import socket

import pytest

from lwr.web.http_request import Limits, parse_head
from lwr.web.server import _SMALL_FILE, FileWrapper, _Response


class CountingSocket:
    """A real socket whose sends are counted (a socket's own methods cannot be wrapped)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.calls: list[str] = []

    def sendall(self, data: bytes) -> None:
        self.calls.append("sendall")
        self.sock.sendall(data)

    def sendfile(self, file, count: int) -> int:
        self.calls.append("sendfile")
        return self.sock.sendfile(file, count=count)


def _serve_file(tmp_path, size: int, method: str = "GET") -> tuple[bytes, bytes, list[str]]:
    content = bytes(index % 251 for index in range(size))
    path = tmp_path / "output"
    path.write_bytes(content)
    ours, peer = socket.socketpair()
    try:
        counting = CountingSocket(ours)
        head = parse_head(f"{method} /x HTTP/1.1\r\nHost: h".encode(), Limits())
        response = _Response(counting, head, closing=True)  # type: ignore[arg-type]
        response.start_response("200 OK", [("Content-Length", str(size))])
        with open(path, "rb") as handle:
            handle.read(7)  # a position left anywhere: the whole file is sent all the same
            response.send_file(FileWrapper(handle))
        response.finish()
        ours.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := peer.recv(1 << 20):
            received += chunk
    finally:
        ours.close()
        peer.close()
    return received, content, counting.calls


@pytest.mark.parametrize("size", [1, 100, _SMALL_FILE, _SMALL_FILE + 1, 3 * _SMALL_FILE])
def test_a_file_arrives_whole_after_its_head(tmp_path, size):
    received, content, calls = _serve_file(tmp_path, size)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and f"Content-Length: {size}".encode() in head
    assert body == content
    assert calls == (["sendall"] if size <= _SMALL_FILE else ["sendall", "sendfile"])


def test_a_head_request_gets_no_body(tmp_path):
    received, _, calls = _serve_file(tmp_path, 100, method="HEAD")
    assert received.endswith(b"\r\n\r\n") and b"Content-Length: 100" in received
    assert calls == ["sendall"]
