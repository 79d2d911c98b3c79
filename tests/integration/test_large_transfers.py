"""Uploads and downloads stream: a 4 GiB upload must not grow the server's memory by more than ~64 MiB."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time

import psutil

from http_helpers import Http

GIB = 1 << 30


def peak_rss_while(process: psutil.Process, action) -> tuple[int, int]:
    """(RSS before, peak RSS while ``action`` runs), sampled every 20 ms."""
    before = process.memory_info().rss
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        action()
    finally:
        done.set()
        sampler.join()
    return before, peak


def test_4gib_upload_in_bounded_memory_then_ranged_download(lwr_server):
    http = Http(lwr_server.url)
    config = http.setup("huge")
    size = 4 * GIB
    block = os.urandom(1 << 20)
    server_process = psutil.Process(lwr_server.process.pid)
    digest = hashlib.sha256()

    def upload() -> None:
        with socket.create_connection((http.host, http.port)) as sock:
            sock.sendall(
                f"POST /jobs/huge/files?name=huge.bin&type=input HTTP/1.1\r\nHost: x\r\n"
                f"Content-Length: {size}\r\n\r\n".encode()
            )
            for _ in range(size // len(block)):
                sock.sendall(block)
                digest.update(block)
            response = sock.makefile("rb").read()
        assert b" 200 " in response.split(b"\r\n", 1)[0], response[:500]

    before, peak = peak_rss_while(server_process, upload)
    assert peak - before < 64 * 1024 * 1024, f"server RSS grew by {(peak - before) >> 20} MiB"
    path = os.path.join(config["inputs_directory"], "huge.bin")
    assert os.path.getsize(path) == size

    http.submit("huge", "ln -s ../inputs/huge.bin ../outputs/huge.bin")
    http.wait_complete("huge")
    tail = http.request(
        "GET", "/jobs/huge/files", {"name": "huge.bin"}, headers={"Range": f"bytes={size - 10}-"}
    )
    assert tail.status == 206 and tail.body == block[-10:]

    received = hashlib.sha256()

    def download() -> None:
        with socket.create_connection((http.host, http.port)) as sock:
            sock.sendall(b"GET /jobs/huge/files?name=huge.bin&type=output HTTP/1.1\r\nHost: x\r\n\r\n")
            stream = sock.makefile("rb")
            header = b""
            while not header.endswith(b"\r\n\r\n"):
                header += stream.read(1)
            remaining = size
            while remaining:
                chunk = stream.read(min(remaining, 1 << 20))
                assert chunk
                received.update(chunk)
                remaining -= len(chunk)

    before, peak = peak_rss_while(server_process, download)
    assert peak - before < 64 * 1024 * 1024, f"server RSS grew by {(peak - before) >> 20} MiB on download"
    assert received.hexdigest() == digest.hexdigest()
    http.request("DELETE", "/jobs/huge")
