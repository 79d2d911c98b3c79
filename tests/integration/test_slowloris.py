"""An HTTP client without the token cannot stop the default server (egg:lwr#http): slowloris, huge heads,
stalled bodies and idle connections are all bounded, and normal requests keep being served."""

from __future__ import annotations

import json
import socket
import threading
import time

import psutil
import pytest

from http_helpers import Http

LIMITS = {"header_timeout": "3", "idle_timeout": "3", "body_timeout": "3", "threadpool_workers": "4"}


def open_connections(port: int, count: int) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sockets.append(sock)
    return sockets


class Trickler:
    """Half-sent requests, one more header byte every 0.2 s each, for at most ``seconds``."""

    def __init__(self, sockets: list[socket.socket], seconds: float) -> None:
        self.sockets = sockets
        self.closed_by_server = 0
        self.stop = threading.Event()
        for sock in sockets:
            sock.setblocking(False)
            try:
                sock.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            except OSError:
                pass
        self.thread = threading.Thread(target=self.run, args=(seconds,))
        self.thread.start()

    def run(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        alive = list(self.sockets)
        while alive and not self.stop.is_set() and time.monotonic() < deadline:
            for sock in list(alive):
                try:
                    sock.send(b"a")
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    alive.remove(sock)
                    self.closed_by_server += 1
            time.sleep(0.2)

    def finish(self) -> None:
        self.stop.set()
        self.thread.join()
        for sock in self.sockets:
            sock.close()


def test_slowloris_does_not_stop_service(make_server):
    server = make_server(server_options=LIMITS)
    http = Http(server.url)
    idle = open_connections(server.port, 150)  # connected, never send a byte
    trickler = Trickler(open_connections(server.port, 150), seconds=12)
    try:
        served = 0
        for index in range(40):
            reply = http.request("GET", "/healthz")
            assert reply.status == 200
            served += 1
            if index % 10 == 0:
                http.setup(f"job{index}")
                assert http.submit(f"job{index}", "echo hi").status == 200
                assert http.wait_complete(f"job{index}")["stdout"].strip() == "hi"
            time.sleep(0.1)
        assert served == 40
        # Nobody trickles past the header deadline (3 s): every trickler was cut off.
        trickler.thread.join()
        assert trickler.closed_by_server == 150
        for sock in idle:
            sock.settimeout(10)
            assert sock.recv(1) == b"", "an idle connection was kept past header_timeout"
    finally:
        trickler.finish()
        for sock in idle:
            sock.close()


def test_more_connections_than_the_limit_still_serves(make_server):
    server = make_server(server_options={**LIMITS, "max_connections": "50", "header_timeout": "30"})
    http = Http(server.url)
    hogs = open_connections(server.port, 200)
    try:
        for _ in range(20):
            assert http.request("GET", "/healthz").status == 200
    finally:
        for sock in hogs:
            sock.close()


def read_status_line(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0]


def rss_peak_during(pid: int, action) -> int:
    process = psutil.Process(pid)
    before = peak = process.memory_info().rss
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        action()
    finally:
        done.set()
        sampler.join()
    return peak - before


def test_32mib_request_line_is_refused_in_bounded_memory(lwr_server):
    replies = []

    def attack() -> None:
        sock = socket.create_connection(("127.0.0.1", lwr_server.port), timeout=30)

        def send() -> None:
            try:
                sock.sendall(b"GET /" + b"a" * (32 << 20) + b" HTTP/1.1\r\n\r\n")
            except OSError:
                pass  # the server hung up: expected

        sender = threading.Thread(target=send)
        sender.start()
        replies.append(read_status_line(sock))
        sock.close()
        sender.join()

    growth = rss_peak_during(lwr_server.process.pid, attack)
    assert replies[0].startswith(b"HTTP/1.1 414"), replies
    assert growth < 16 << 20, f"server RSS grew by {growth >> 20} MiB"
    assert Http(lwr_server.url).request("GET", "/healthz").status == 200


@pytest.mark.parametrize(
    "head, status, code",
    [
        (
            b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(101)) + b"\r\n",
            b"431",
            "headers_too_large",
        ),
        (b"GET /healthz HTTP/1.1\r\nX-Big: " + b"y" * 70000 + b"\r\n\r\n", b"431", "headers_too_large"),
        (b"GET /healthz HTTP/2.0\r\n\r\n", b"505", "http_version_not_supported"),
        (b"GET /healthz\r\n\r\n", b"400", "bad_request"),
        (
            b"POST /healthz HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"400",
            "bad_request",
        ),
        (b"POST /healthz HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", b"501", "not_implemented"),
        (b"GET /" + b"x" * (300 * 1024) + b" HTTP/1.1\r\n\r\n", b"414", "uri_too_long"),
    ],
)
def test_bad_heads_get_a_4xx_json_reply(lwr_server, head, status, code):
    with socket.create_connection(("127.0.0.1", lwr_server.port), timeout=10) as sock:
        sock.sendall(head)
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data.split(b"\r\n", 1)[0].split(b" ")[1] == status, data[:200]
    body = json.loads(data.split(b"\r\n\r\n", 1)[1])
    assert body["code"] == code and body["error"], body


def test_stalled_upload_body_times_out_with_408(make_server):
    server = make_server(server_options=LIMITS)
    Http(server.url).setup("slow")
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(
            b"POST /jobs/slow/files?name=in.txt&type=input HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: 1000\r\n\r\n" + b"x" * 10
        )
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
        assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["code"] == "request_timeout", reply


def test_idle_keepalive_connection_is_closed_after_idle_timeout(make_server):
    server = make_server(server_options=LIMITS)
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_status_line(sock).startswith(b"HTTP/1.1 200")
        while sock.recv(65536):
            pass  # returns b"" once the server closes the idle connection (a timeout here fails)


def test_keepalive_pipelined_and_chunked_requests(lwr_server):
    http = Http(lwr_server.url)
    config = http.setup("chunky")
    with socket.create_connection(("127.0.0.1", lwr_server.port), timeout=30) as sock:
        body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        sock.sendall(
            b"POST /jobs/chunky/files?name=in.txt&type=input HTTP/1.1\r\nHost: x\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
            + body
            + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n"
            b"Connection: close\r\n\r\n"
        )
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data.count(b"HTTP/1.1 200") == 3, data
    with open(f"{config['inputs_directory']}/in.txt", "rb") as handle:
        assert handle.read() == b"hello world"


def self_signed(tmp_path) -> tuple[str, str]:
    import subprocess

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    pem = tmp_path / "server.pem"
    pem.write_bytes(cert.read_bytes() + key.read_bytes())
    return str(pem), str(cert)


def test_tls_handshakes_that_never_finish_do_not_stop_service(make_server, tmp_path):
    import http.client
    import ssl

    pem, cert = self_signed(tmp_path)
    server = make_server("tls", server_options={**LIMITS, "ssl_pem": pem}, wait=False)
    context = ssl.create_default_context(cafile=cert)
    deadline = time.monotonic() + 30

    def get() -> int:
        connection = http.client.HTTPSConnection("127.0.0.1", server.port, context=context, timeout=10)
        try:
            connection.request("GET", "/healthz")
            return connection.getresponse().status
        finally:
            connection.close()

    while True:
        try:
            assert get() == 200
            break
        except OSError:
            assert time.monotonic() < deadline, server.log_text()
            time.sleep(0.1)
    silent = open_connections(server.port, 100)  # TCP only, no ClientHello
    partial = open_connections(server.port, 50)
    for sock in partial:
        sock.sendall(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello, then nothing
    try:
        for _ in range(20):
            assert get() == 200
        for sock in silent + partial:
            sock.settimeout(10)
            assert sock.recv(1) == b"", "a stalled handshake was kept past header_timeout"
    finally:
        for sock in silent + partial:
            sock.close()


def test_many_long_request_lines_at_once_stay_in_bounded_memory(make_server):
    """Each head may be up to max_request_line (256K, for Pulsar's submits); 400 at once must not add up."""
    server = make_server(server_options={**LIMITS, "header_timeout": "30"})
    http = Http(server.url)
    sockets = open_connections(server.port, 600)

    def attack() -> None:
        for sock in sockets:
            try:
                sock.sendall(b"GET /" + b"a" * (250 << 10))
            except OSError:
                pass  # refused with 503 and closed: expected once the heads add up
        for _ in range(10):
            assert http.request("GET", "/healthz").status == 200

    try:
        growth = rss_peak_during(server.process.pid, attack)
    finally:
        for sock in sockets:
            sock.close()
    assert growth < 100 << 20, f"server RSS grew by {growth >> 20} MiB"
