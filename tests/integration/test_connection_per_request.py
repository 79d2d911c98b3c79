"""Clients that open a connection per request (Pulsar's): the worker closes each connection itself
and the loop forgets it on its next turn, so closed connections neither pile up nor count against
the connection limit."""

from __future__ import annotations

import http.client
import socket
import threading
import time

import psutil
import pytest

from lwr.config import ServerSettings
from lwr.web.server import HttpServer


def _one_request(port: int, path: str = "/healthz") -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers={"Connection": "close"})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def _hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"hello"]


def test_the_loop_forgets_every_connection_a_worker_closed():
    listener = socket.create_server(("127.0.0.1", 0))
    server = HttpServer(_hello, ServerSettings(threadpool_workers=2, max_connections=3), listener)
    loop = threading.Thread(target=server.serve_forever, daemon=True)
    loop.start()
    port = listener.getsockname()[1]
    try:
        started = time.monotonic()
        for _ in range(200):
            assert _one_request(port) == 200
        # At the limit, a closed connection still on the books would hold the next one back.
        assert time.monotonic() - started < 20
        deadline = time.monotonic() + 5
        while server._connections and time.monotonic() < deadline:
            server._call(lambda: None)  # a loop turn
            time.sleep(0.05)
        assert server._connections == {}
    finally:
        server.stop()
        loop.join(10)
        server.close()
        listener.close()


def test_closed_connections_leak_no_descriptor(make_server):
    server = make_server(server_options={"max_connections": "3", "threadpool_workers": "2"})
    process = psutil.Process(server.process.pid)
    for _ in range(20):
        assert _one_request(server.port) == 200
    descriptors = process.num_fds()
    for _ in range(300):
        assert _one_request(server.port) == 200
    assert process.num_fds() <= descriptors + 3


@pytest.mark.parametrize("limit", [1, 2])
def test_a_small_connection_limit_serves_a_client_one_connection_at_a_time(limit: int):
    """The loop made room before each accept, even with nobody waiting: at max_connections = 1 the
    connection it had just accepted was dropped before its request was read (never answered)."""
    listener = socket.create_server(("127.0.0.1", 0))
    server = HttpServer(_hello, ServerSettings(threadpool_workers=2, max_connections=limit), listener)
    loop = threading.Thread(target=server.serve_forever, daemon=True)
    loop.start()
    port = listener.getsockname()[1]
    try:
        assert [_one_request(port) for _ in range(20)] == [200] * 20
    finally:
        server.stop()
