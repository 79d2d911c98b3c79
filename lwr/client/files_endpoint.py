"""The client's files endpoint for message-queue mode: Galaxy's job files API in miniature.

In MQ mode nothing connects to lwr; lwr fetches a job's inputs itself (``remote_transfer``)
and posts its outputs back. ``lwr check --amqp-url`` and ``lwr submit --amqp-url`` therefore
serve their files over HTTP from the client process, the way Galaxy's job files API does:

* ``GET  /api/jobs/<id>/files?job_key=K&path=P&file_type=T`` sends the file ``P``
  (``Range: bytes=N-`` is honoured, so an interrupted download resumes);
* ``POST /api/jobs/<id>/files?job_key=K&path=P&file_type=T`` writes ``P`` from a
  ``multipart/form-data`` body (field ``file``) or a raw body, through a temporary file beside
  ``P`` renamed into place (:mod:`lwr.core.atomic`).

It serves nothing but what the job needs: every request must carry the endpoint's random
``job_key`` (compared in constant time); a GET only reads a file the job stages by
``remote_transfer``; a POST only writes one of the job's outputs or a file under its working or
metadata directories. Files are opened without following a symlink swapped in after the check
(``O_NOFOLLOW``, and the opened descriptor's path checked again). A refusal is lwr's JSON error
body with its stable code (``{"error": ..., "code": ...}``): 403 for a path the job may not
touch, 404 for a missing file, 405 for another method, 416 for a Range past the end, 400 for a
malformed request; each 403 is also counted in :attr:`FilesEndpoint.refused_count`, and the
first :data:`REFUSALS_KEPT` are kept in :attr:`FilesEndpoint.refused` (their paths shortened):
anyone who can reach the port can be refused, so what is kept of refusals is bounded.

The application is a small webob app: webob parses the query and frames the body;
:mod:`lwr.protocol.multipart` streams a form's file field to its file and drops any other field
unread into memory (a job holding the key cannot make this process hold more than a chunk), and
:mod:`lwr.protocol.ranges` reads the Range header, as it does for lwr's own download route. It
runs in lwr's own HTTP/1.1 server (:class:`lwr.web.server.HttpServer`) rather than
``wsgiref``: that server decodes chunked request bodies, keeps connections alive between the
many small GETs of a job's inputs, sends files with ``sendfile``, and bounds request heads and
silent clients by deadlines, none of which ``wsgiref.simple_server`` does.
"""

from __future__ import annotations

import errno
import hmac
import io
import json
import os
import secrets
import socket
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import IO, Any, Callable
from urllib.parse import urlencode

import webob
from webob.request import DisconnectionError

from lwr.config import ServerSettings
from lwr.core.atomic import atomic_file
from lwr.core.job_files import NotRegularFile, open_directory, open_regular
from lwr.errors import BadRequest, Forbidden, LwrError, MethodNotAllowed, NotFound
from lwr.protocol.multipart import copy_file_field
from lwr.protocol.ranges import RangeNotSatisfiable, content_range, parse_range, unsatisfiable_range
from lwr.web.decoding import decode_query
from lwr.web.server import HttpServer
from lwr.web.transfer import iter_file

CHUNK = 1024 * 1024
#: The methods Galaxy's job files API answers (it takes PUT like POST).
METHODS = ("GET", "POST", "PUT")
#: The server's limits: a job's transfers are few at a time, but a file may take minutes.
SETTINGS = ServerSettings(threadpool_workers=16, max_connections=128, body_timeout=300.0, drain_timeout=5.0)
#: Refusals kept for the report (every one is counted), and the longest path kept of each.
REFUSALS_KEPT = 100
PATH_KEPT = 1024


class FilesEndpoint:
    """An HTTP server on ``host:port`` (0: any free port) serving one job's files."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, public_url: str | None = None) -> None:
        self.job_key = secrets.token_urlsafe(24)
        self.readable: set[str] = set()
        self.writable_files: set[str] = set()
        self.writable_directories: set[str] = set()
        #: Requests served, by method; ``(method, path, reason)`` of the first refusals, and how many.
        self.served: Counter[str] = Counter()
        self.refused: list[tuple[str, str, str]] = []
        self.refused_count = 0
        self._lock = threading.Lock()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.create_server((host, port), family=family, backlog=128)
        self.server = HttpServer(FilesApp(self), SETTINGS, self._listener)
        bound_host, bound_port = self._listener.getsockname()[:2]
        if public_url is None:
            shown = host if host not in ("", "0.0.0.0", "::") else str(bound_host)
            shown = f"[{shown}]" if ":" in shown else shown
            public_url = f"http://{shown}:{bound_port}/"
        self.base = public_url.rstrip("/") + "/"
        self.port = int(bound_port)
        self._thread = threading.Thread(
            target=self.server.serve_forever, daemon=True, name="lwr-files-endpoint"
        )

    def url(self, job_id: str) -> str:
        """The ``files_endpoint`` to give lwr for ``job_id``."""
        return f"{self.base}api/jobs/{job_id}/files?{urlencode({'job_key': self.job_key})}"

    def start(self) -> FilesEndpoint:
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread.is_alive():
            self.server.stop()
            self._thread.join(10)
        self.server.close()
        self._listener.close()

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
        return self.readable_path(path) is not None

    def readable_path(self, path: str) -> str | None:
        """Where ``path`` really is, if that is a file the job may read: the one name to open."""
        real = os.path.realpath(path)
        with self._lock:
            return real if real in self.readable else None

    def may_write(self, path: str, real: str | None = None) -> bool:
        """Whether ``path`` is an output, or lies under an output directory both as named and as
        ``real`` (where it really is: its realpath unless given, e.g. from an opened directory)."""
        if not os.path.isabs(path) or ".." in path.split("/"):
            return False
        path = os.path.abspath(path)
        with self._lock:
            if path in self.writable_files:
                return True
            real = os.path.realpath(path) if real is None else real
            return any(
                _inside(path, directory) and _inside(real, os.path.realpath(directory))
                for directory in self.writable_directories
            )

    # -- bookkeeping ------------------------------------------------------------------------------

    def _served(self, method: str, path: str) -> None:
        with self._lock:
            self.served[method] += 1

    def _refused(self, method: str, path: str, reason: str) -> Forbidden:
        """Count a refusal (keeping the first few); the error to answer it with."""
        shown = path if len(path) <= PATH_KEPT else path[:PATH_KEPT] + "..."
        with self._lock:
            self.refused_count += 1
            if len(self.refused) < REFUSALS_KEPT:
                self.refused.append((method, shown, reason))
        return Forbidden(reason, path=shown)

    def count(self, method: str) -> int:
        with self._lock:
            return self.served[method]


def _inside(path: str, directory: str) -> bool:
    directory = directory.rstrip(os.sep)
    return path.startswith(directory + os.sep)


class FilesApp:
    """The WSGI application of one :class:`FilesEndpoint`: every answer a JSON error or a file."""

    def __init__(self, endpoint: FilesEndpoint) -> None:
        self.endpoint = endpoint

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if isinstance(environ.get("wsgi.input"), io.RawIOBase):
            # webob takes a short read for a disconnection: give it reads that fill what they ask.
            environ["wsgi.input"] = io.BufferedReader(environ["wsgi.input"], CHUNK)
        request = webob.Request(environ)
        try:
            response = self._handle(request)
        except LwrError as error:
            response = _error_response(error)
        return response(environ, start_response)  # type: ignore[no-any-return]

    def _handle(self, request: webob.Request) -> webob.Response:
        query = decode_query(request.environ)
        path = query.get("path", "")
        key = query.get("job_key", "").encode("utf-8")
        if not request.path_info.startswith("/api/jobs/") or not hmac.compare_digest(
            key, self.endpoint.job_key.encode("utf-8")
        ):
            raise self.endpoint._refused(request.method, path, "wrong URL or job_key")
        if request.method not in METHODS:
            raise MethodNotAllowed(f"{request.method} is not allowed here", allowed=list(METHODS))
        if not path:
            raise BadRequest("no path")
        if request.method == "GET":
            return self._send(request, path)
        return self._receive(request, path)

    # -- GET: an input -----------------------------------------------------------------------------

    def _send(self, request: webob.Request, path: str) -> webob.Response:
        real = self.endpoint.readable_path(path)
        if real is None:
            raise self.endpoint._refused("GET", path, "not an input of this job")
        handle = self._open_input(path, real)
        try:
            size = os.fstat(handle.fileno()).st_size
            byte_range = parse_range(request.headers.get("Range"), size) if size else None
        except RangeNotSatisfiable as error:
            handle.close()
            response = _error_response(error)
            response.headers["Content-Range"] = unsatisfiable_range(size)
            return response
        response = webob.Response(content_type="application/octet-stream", charset=None)
        response.headers["Accept-Ranges"] = "bytes"
        if byte_range is None:
            wrapper = request.environ.get("wsgi.file_wrapper")
            response.app_iter = wrapper(handle, CHUNK) if wrapper else iter_file(handle, 0, size)
            response.content_length = size
        else:
            start, end = byte_range
            response.status = 206
            response.app_iter = iter_file(handle, start, end - start + 1)
            response.content_length = end - start + 1
            response.headers["Content-Range"] = content_range(start, end, size)
        self.endpoint._served("GET", path)
        return response

    def _open_input(self, path: str, real: str) -> IO[bytes]:
        """The checked file itself: opened at the ``real`` path that was checked, without following
        a symlink there, and refused if the descriptor is not that path (a directory on the way
        swapped meanwhile)."""
        try:
            directory = open_directory(os.path.dirname(real))
            try:
                fd = open_regular(os.path.basename(real), directory)
            finally:
                os.close(directory)
        except NotRegularFile:
            raise self.endpoint._refused("GET", path, "not a regular file (a symlink?)") from None
        except OSError as error:
            if error.errno == errno.ENOENT:
                raise NotFound("no such file", path=path) from None
            raise self.endpoint._refused("GET", path, f"cannot open it: {error.strerror}") from None
        if os.readlink(f"/proc/self/fd/{fd}") != real:
            os.close(fd)
            raise self.endpoint._refused("GET", path, "the file moved while it was checked")
        return os.fdopen(fd, "rb")

    # -- POST/PUT: an output -----------------------------------------------------------------------

    def _receive(self, request: webob.Request, path: str) -> webob.Response:
        if not self.endpoint.may_write(path):
            raise self.endpoint._refused("POST", path, "not an output of this job")
        directory = self._open_output_directory(path)
        try:
            # The directory as opened, never its name again: what was checked is where it goes.
            here = f"/proc/self/fd/{directory}"
            target = os.path.join(here, os.path.basename(path))
            if request.content_type == "multipart/form-data":
                _write_form_file(request, target)
            else:
                _write_body(request, target)
        except DisconnectionError as error:
            raise BadRequest(f"truncated body: {error}") from None
        except OSError as error:
            raise LwrError(f"cannot write {path}: {error.strerror or error}", path=path) from None
        finally:
            os.close(directory)
        self.endpoint._served("POST", path)
        return webob.Response(body=b"{}", content_type="application/json", charset=None)

    def _open_output_directory(self, path: str) -> int:
        """The directory ``path`` is written into (created if need be), opened without following
        a symlink, and checked again against the write rules as opened."""
        parent = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(parent, exist_ok=True)
            real = os.path.realpath(parent)
            fd = os.open(real, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as error:
            raise self.endpoint._refused(
                "POST", path, f"cannot open its directory: {error.strerror}"
            ) from None
        opened = os.readlink(f"/proc/self/fd/{fd}")
        if opened != real or not self.endpoint.may_write(path, os.path.join(opened, os.path.basename(path))):
            os.close(fd)
            raise self.endpoint._refused("POST", path, "its directory moved while it was checked")
        return fd


def _write_form_file(request: webob.Request, target: str) -> None:
    """The form's ``file`` field (the first with a filename) to ``target``, streamed."""
    # Not fsynced, like the HTTP client's downloads: the client's own copy of an output.
    with atomic_file(target, durable=False, suffix=".part") as out:
        copy_file_field(request.body_file, request.headers.get("Content-Type", ""), out)


def _write_body(request: webob.Request, target: str) -> None:
    """A raw body to ``target``, read a bounded chunk at a time."""
    expected = request.content_length
    received = 0
    stream = request.body_file
    with atomic_file(target, durable=False, suffix=".part") as out:
        while chunk := stream.read(CHUNK):
            out.write(chunk)
            received += len(chunk)
        if expected is not None and received != expected:
            raise BadRequest(f"truncated body: {received} of {expected} bytes")


def _error_response(error: LwrError) -> webob.Response:
    """lwr's error body, ``{"error": ..., "code": ...}``, with the error's status."""
    body = json.dumps(error.as_dict()).encode("utf-8")
    return webob.Response(body=body, status=error.http_status, content_type="application/json", charset=None)
