"""The client's files endpoint for message-queue mode: Galaxy's job files API in miniature.

In MQ mode nothing connects to lwr; lwr fetches a job's inputs itself (``remote_transfer``)
and posts its outputs back. ``lwr check --amqp-url`` and ``lwr submit --amqp-url`` therefore
serve their files over HTTP from the client process, the way Galaxy's job files API does:

* ``GET  /api/jobs/<id>/files?job_key=K&path=P&file_type=T`` sends the file ``P``
  (``Range: bytes=N-`` is honoured, so an interrupted download resumes);
* ``POST /api/jobs/<id>/files?job_key=K&path=P&file_type=T`` writes ``P`` from a
  ``multipart/form-data`` body (field ``file``) or a raw body, streamed to a temporary file
  beside ``P`` and renamed into place.

It serves nothing but what the job needs: every request must carry the endpoint's random
``job_key``; a GET only reads a file the job stages by ``remote_transfer``; a POST only writes
one of the job's outputs or a file under its working or metadata directories. Anything else
is answered 403 (404 for a missing file) and recorded in :attr:`FilesEndpoint.refused`.
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
import threading
from collections.abc import Iterable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, BinaryIO
from urllib.parse import parse_qs, urlencode, urlsplit

from lwr.core.atomic import atomic_file
from lwr.protocol.ranges import RangeNotSatisfiable, content_range, parse_range, unsatisfiable_range

CHUNK = 1024 * 1024
#: Headers of one multipart part may not exceed this.
MAX_PART_HEADERS = 64 * 1024


class FilesEndpoint:
    """A threaded HTTP server on ``host:port`` (0: any free port) serving one job's files."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, public_url: str | None = None) -> None:
        self.job_key = secrets.token_urlsafe(24)
        self.readable: set[str] = set()
        self.writable_files: set[str] = set()
        self.writable_directories: set[str] = set()
        #: ``(method, path)`` of every request served, and of every one refused.
        self.served: list[tuple[str, str]] = []
        self.refused: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer((host, port), _handler(self))
        self.server.daemon_threads = True
        bound_host, bound_port = self.server.server_address[:2]
        if public_url is None:
            shown = host if host not in ("", "0.0.0.0", "::") else str(bound_host)
            shown = f"[{shown}]" if ":" in shown else shown
            public_url = f"http://{shown}:{bound_port}/"
        self.base = public_url.rstrip("/") + "/"
        self.port = int(bound_port)
        self._thread = threading.Thread(
            target=self.server.serve_forever, args=(0.1,), daemon=True, name="lwr-files-endpoint"
        )

    def url(self, job_id: str) -> str:
        """The ``files_endpoint`` to give lwr for ``job_id``."""
        return f"{self.base}api/jobs/{job_id}/files?{urlencode({'job_key': self.job_key})}"

    def start(self) -> FilesEndpoint:
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread.is_alive():
            self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> FilesEndpoint:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what the job may read and write ----------------------------------------------------------

    def allow_read(self, paths: Iterable[str]) -> None:
        with self._lock:
            self.readable.update(os.path.realpath(path) for path in paths)

    def allow_write(self, files: Iterable[str] = (), directories: Iterable[str] = ()) -> None:
        with self._lock:
            self.writable_files.update(os.path.abspath(path) for path in files)
            self.writable_directories.update(os.path.abspath(path) for path in directories)

    def register(self, remote_staging: Mapping[str, Any]) -> None:
        """Allow what a submit's ``remote_staging`` says lwr will fetch and deliver."""
        reads = []
        for entry in remote_staging.get("setup") or []:
            action = entry.get("action") if isinstance(entry, dict) else None
            if isinstance(action, dict) and action.get("action_type") == "remote_transfer":
                source = action.get("source")
                path = source.get("path") if isinstance(source, dict) else None
                path = path or action.get("path")
                if isinstance(path, str):
                    reads.append(path)
        self.allow_read(reads)
        outputs = remote_staging.get("client_outputs") or {}
        files: list[str] = []
        directories: list[str] = []
        for output in outputs.get("output_files") or []:
            output = str(output)
            files.append(output)
            # lwr and Pulsar deliver a dataset's extra files beside it, as <dataset>_files/.
            directories.append(os.path.splitext(output)[0] + "_files")
            directories.append(
                os.path.join(os.path.dirname(output), os.path.basename(output)[: -len(".dat")] + "_files")
            )
        for pair in outputs.get("work_dir_outputs") or []:
            if isinstance(pair, (list, tuple)) and len(pair) == 2:
                files.append(str(pair[1]))
                directories.append(str(pair[1]))
        if outputs.get("version_file"):
            files.append(str(outputs["version_file"]))
        for key in ("working_directory", "metadata_directory", "job_directory"):
            if outputs.get(key):
                directories.append(str(outputs[key]))
        self.allow_write(files, directories)

    def may_read(self, path: str) -> bool:
        with self._lock:
            return os.path.realpath(path) in self.readable

    def may_write(self, path: str) -> bool:
        if not os.path.isabs(path) or ".." in path.split("/"):
            return False
        path = os.path.abspath(path)
        with self._lock:
            if path in self.writable_files:
                return True
            real = os.path.realpath(path)
            return any(
                _inside(path, directory) and _inside(real, os.path.realpath(directory))
                for directory in self.writable_directories
            )

    # -- bookkeeping ------------------------------------------------------------------------------

    def _served(self, method: str, path: str) -> None:
        with self._lock:
            self.served.append((method, path))

    def _refused(self, method: str, path: str, reason: str) -> None:
        with self._lock:
            self.refused.append((method, path, reason))

    def count(self, method: str) -> int:
        with self._lock:
            return sum(1 for served, _path in self.served if served == method)


def _inside(path: str, directory: str) -> bool:
    directory = directory.rstrip(os.sep)
    return path.startswith(directory + os.sep)


def _handler(endpoint: FilesEndpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _query(self) -> tuple[str, str] | None:
            """The request's ``path`` parameter, or None after answering a refusal."""
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            key = (query.get("job_key") or [""])[0]
            path = (query.get("path") or [""])[0]
            if not parts.path.startswith("/api/jobs/") or not hmac.compare_digest(key, endpoint.job_key):
                endpoint._refused(self.command, path, "wrong URL or job_key")
                self._reply(403, b"wrong URL or job_key")
                return None
            if not path:
                self._reply(400, b"no path")
                return None
            return path, (query.get("file_type") or [""])[0]

        def _reply(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - stdlib naming
            query = self._query()
            if query is None:
                return
            path = query[0]
            if not endpoint.may_read(path):
                endpoint._refused("GET", path, "not an input of the job")
                self._reply(403, b"not an input of this job")
                return
            try:
                handle = open(path, "rb")
            except OSError:
                self._reply(404, b"no such file")
                return
            with handle:
                size = os.fstat(handle.fileno()).st_size
                try:
                    byte_range = parse_range(self.headers.get("Range"), size) if size else None
                except RangeNotSatisfiable:
                    self._reply(416, b"", {"Content-Range": unsatisfiable_range(size)})
                    return
                start, end = byte_range or (0, size - 1)
                if byte_range is not None:
                    self.send_response(206)
                    self.send_header("Content-Range", content_range(start, end, size))
                    handle.seek(start)
                else:
                    self.send_response(200)
                remaining = end - start + 1
                self.send_header("Content-Length", str(remaining))
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                while remaining > 0 and (chunk := handle.read(min(CHUNK, remaining))):
                    self.wfile.write(chunk)
                    remaining -= len(chunk)
            endpoint._served("GET", path)

        def do_POST(self) -> None:  # noqa: N802
            query = self._query()
            if query is None:
                return
            path = query[0]
            if not endpoint.may_write(path):
                endpoint._refused("POST", path, "not an output of the job")
                self._reply(403, b"not an output of this job")
                self.close_connection = True
                return
            try:
                _receive(path, _body_chunks(self.rfile, self.headers), self.headers.get("Content-Type", ""))
            except ValueError as error:
                self._reply(400, str(error).encode())
                self.close_connection = True
                return
            except OSError as error:
                self._reply(500, f"cannot write {path}: {error}".encode())
                return
            endpoint._served("POST", path)
            self._reply(200, b"{}", {"Content-Type": "application/json"})

        do_PUT = do_POST  # noqa: N815 - Galaxy's API takes both

    return Handler


def _body_chunks(rfile: Any, headers: Any) -> Iterator[bytes]:
    """The request body, by Content-Length or else chunked transfer encoding.

    Content-Length wins when both are sent: lwr's uploader (requests with a generator body and
    an explicit length) sends ``Transfer-Encoding: chunked`` beside it but a body that is not.
    """
    if (
        headers.get("Content-Length") is None
        and "chunked" in str(headers.get("Transfer-Encoding", "")).lower()
    ):
        while True:
            line = rfile.readline(1024)
            if not line:
                raise ValueError("truncated chunked body")
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return
            remaining = size
            while remaining:
                data = rfile.read(min(CHUNK, remaining))
                if not data:
                    raise ValueError("truncated chunked body")
                remaining -= len(data)
                yield data
            rfile.readline(1024)
        return
    remaining = int(headers.get("Content-Length") or 0)
    while remaining > 0:
        data = rfile.read(min(CHUNK, remaining))
        if not data:
            raise ValueError("truncated body")
        remaining -= len(data)
        yield data


def _receive(path: str, chunks: Iterator[bytes], content_type: str) -> None:
    """Write the file in the body to ``path`` atomically (a temporary file renamed into place)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # Not fsynced, like the HTTP client's downloads: the client's own copy of an output.
    with atomic_file(path, durable=False, suffix=".part") as handle:
        boundary = re.search(r'boundary="?([^";]+)"?', content_type)
        if content_type.lower().startswith("multipart/") and boundary:
            if not _write_multipart_file(chunks, boundary.group(1).encode(), handle):
                raise ValueError("no file field in the form")
        else:
            for chunk in chunks:
                handle.write(chunk)


def _write_multipart_file(chunks: Iterator[bytes], boundary: bytes, out: BinaryIO) -> bool:
    """Stream the ``file`` field of a multipart body into ``out``; other fields are skipped."""
    buffer = b""

    def fill() -> bool:
        nonlocal buffer
        chunk = next(chunks, b"")
        buffer += chunk
        return bool(chunk)

    delimiter = b"--" + boundary
    while (start := buffer.find(delimiter)) < 0:
        if len(buffer) > MAX_PART_HEADERS:
            buffer = buffer[-len(delimiter) :]
        if not fill():
            raise ValueError("no multipart boundary in the body")
    buffer = buffer[start + len(delimiter) :]
    found = False
    end = b"\r\n" + delimiter
    while True:
        while len(buffer) < 2:
            if not fill():
                raise ValueError("truncated multipart body")
        if buffer.startswith(b"--"):
            return found
        while (head_end := buffer.find(b"\r\n\r\n")) < 0:
            if len(buffer) > MAX_PART_HEADERS:
                raise ValueError("multipart part headers too long")
            if not fill():
                raise ValueError("truncated multipart body")
        head, buffer = buffer[:head_end], buffer[head_end + 4 :]
        is_file = (
            re.search(rb'(?:^|[;\s])name="?file"?(?:;|\s|$)', head, re.IGNORECASE | re.MULTILINE) is not None
            and not found
        )
        while True:
            position = buffer.find(end)
            if position >= 0:
                if is_file:
                    out.write(buffer[:position])
                buffer = buffer[position + len(end) :]
                break
            keep = len(end) - 1
            if len(buffer) > keep:
                if is_file:
                    out.write(buffer[:-keep])
                buffer = buffer[-keep:]
            if not fill():
                raise ValueError("truncated multipart body")
        found = found or is_file
