"""The HTTP transport: a WSGI application (webob) over the job service.

Routes follow the Pulsar protocol (``/jobs...``, ``/cache...``, ``/healthz``), with a named
manager addressed by the prefix ``/managers/NAME``; docs/openapi.yaml describes every one.
Client input is decoded in one place (:mod:`lwr.web.decoding`) before any handler runs; each
request is authenticated to a tenant (:mod:`lwr.auth`) and a job or cache entry of another
tenant is answered exactly as one that does not exist. Errors are JSON bodies with the status
their :class:`~lwr.errors.LwrError` names, logged in one line; anything unexpected is logged
with its traceback and answered 500 with an id to find it in the log, never with the traceback
itself.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from webob import Request, Response

from lwr import __version__
from lwr.auth import DEFAULT_TENANT, Credentials
from lwr.config import DEFAULT_MANAGER_NAME
from lwr.core.file_cache import FileCache
from lwr.core.jobs import JobService
from lwr.digests import ALGORITHMS, DigestCache
from lwr.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    InsufficientStorage,
    LwrError,
    MethodNotAllowed,
    NotFound,
    Unauthorized,
)
from lwr.protocol.digest import SHA256, download_algorithm, expected_upload_digest, format_digest
from lwr.protocol.failure import FailureClass, is_disk_full
from lwr.protocol.names import (
    ACCEPT_DIGEST_HEADER,
    DIGEST_HEADER,
    SHA256_HEADER,
    TOKEN_ARGUMENT,
    TOKEN_HEADER,
)
from lwr.protocol.submit import JSON_SUBMIT_FIELDS, decode_submit
from lwr.web import decoding, transfer

log = logging.getLogger(__name__)

Handler = Callable[["Call"], Any]

_MANAGER_PREFIX = re.compile(r"^/managers/(?P<manager>[^/]+)(?P<rest>/.*)$")
#: Routes anyone may call: they tell nothing about jobs.
_PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/openapi.yaml"})
#: File-system errors a client's names cause (a file where a directory is, a name too long, a
#: link loop): the client's fault, answered 4xx; every other OSError is the server's.
_CLIENT_ERRNOS = {
    errno.EISDIR: 409,
    errno.ENOTDIR: 409,
    errno.EEXIST: 409,
    errno.ENAMETOOLONG: 400,
    errno.ELOOP: 400,
}
#: Sent on every reply, so lwr's client learns before its first upload that it may use BLAKE3.
_ACCEPTED_DIGESTS = ", ".join(ALGORITHMS)
OPENAPI_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"


@dataclass
class Call:
    """One routed request: the webob request, its decoded query, tenant, manager and path variables."""

    request: Request
    manager: str
    path_args: dict[str, str]
    query: dict[str, str]
    tenant: str = DEFAULT_TENANT

    def arg(self, name: str, default: str | None = None, required: bool = True) -> str:
        value = self.query.get(name)
        if value is None:
            if default is not None or not required:
                return default  # type: ignore[return-value]
            raise BadRequest(f"missing parameter '{name}'", parameter=name)
        return value

    def json_arg(self, name: str, default: Any) -> Any:
        raw = self.query.get(name)
        if raw is None or raw == "":
            return default
        return decoding.decode_json(raw, name)


class RouteProvider(Protocol):
    """More routes for the web app (the admin API, the status page): (method, pattern, handler, admin)."""

    def routes(self) -> list[tuple[str, str, Handler, bool]]: ...


def json_response(value: Any, status: int = 200) -> Response:
    body = json.dumps(value).encode("utf-8")
    return Response(body=body, status=status, content_type="application/json", charset=None)


def client_fault(error: OSError) -> LwrError | None:
    """The 4xx error a client-caused file-system error stands for, or None if it is the server's."""
    status = _CLIENT_ERRNOS.get(error.errno or 0)
    if status is None:
        return None
    message = f"the name conflicts with the job's files: {os.strerror(error.errno or 0)}"
    return Conflict(message) if status == 409 else BadRequest(message)


_JOB_PATH = re.compile(
    r"^(?:/managers/(?P<manager>[^/]+))?/(?:status/)?jobs/(?:(?P<job_manager>[^/]+)/)?"
    r"(?P<job_id>[^/]+)"
)


def _error_context(environ: dict[str, Any], incident: str) -> dict[str, str]:
    """What an unexpected error's log record carries for error reports: incident, job id, manager."""
    context = {"incident": incident}
    match = _JOB_PATH.match(environ.get("PATH_INFO") or "")
    if match:
        context["job_id"] = match.group("job_id")
        context["manager"] = match.group("manager") or match.group("job_manager") or DEFAULT_MANAGER_NAME
    return context


class LwrWebApp:
    """WSGI callable: authenticate, route, call, and turn every outcome into a response."""

    def __init__(
        self,
        service: JobService,
        credentials: Credentials,
        max_upload_size: int | None,
        file_cache: FileCache | None,
        extensions: Sequence[RouteProvider] = (),
        job_api: bool = True,
    ) -> None:
        self.service = service
        self.credentials = credentials
        self.max_upload_size = max_upload_size
        self.file_cache = file_cache
        self.digests = DigestCache()
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        #: Handlers only an admin may call (the admin token; today that is the private token).
        self.admin_handlers: set[Handler] = set()
        if job_api:
            self._add_routes()
        for extension in extensions:
            for method, pattern, handler, admin in extension.routes():
                self.routes.append((method, re.compile(f"^{pattern}/?$"), handler))
                if admin:
                    self.admin_handlers.add(handler)

    def serves(self, method: str, path: str) -> bool:
        """True if a route answers ``method`` on ``path``."""
        match = _MANAGER_PREFIX.match(path)
        path = match.group("rest") if match else path
        return any(
            method == route_method and pattern.match(path) for route_method, pattern, _handler in self.routes
        )

    # --- WSGI -------------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        try:
            try:
                response = self._handle(request)
            except OSError as error:
                fault = client_fault(error)
                if fault is None:
                    raise
                raise fault from None
        except LwrError as error:
            where = decoding.printable_path(environ)
            if error.http_status >= 500:
                log.error("%s %s failed: %s", request.method, where, error.message)
            else:
                log.info("%s %s refused (%d): %s", request.method, where, error.http_status, error.message)
            response = json_response(error.as_dict(), error.http_status)
        except Exception as error:  # noqa: BLE001 - the one place unexpected errors become a 500
            if is_disk_full(error):
                # Not a bug but a full disk: say so (507), so the client refuses the job cleanly.
                log.error("%s %s refused: %s", request.method, decoding.printable_path(environ), error)
                response = json_response(
                    {
                        "error": "no space left on lwr's disk; try again later",
                        "failure_class": FailureClass.DISK_FULL.value,
                        "code": InsufficientStorage.code,
                    },
                    507,
                )
            else:
                incident = uuid.uuid4().hex[:12]
                log.exception(
                    "unexpected error %s handling %s %s",
                    incident,
                    request.method,
                    decoding.printable_path(environ),
                    extra=_error_context(environ, incident),
                )
                response = json_response(
                    {
                        "error": "internal server error; see the server log",
                        "incident": incident,
                        "code": LwrError.code,
                    },
                    500,
                )
        response.headers[ACCEPT_DIGEST_HEADER] = _ACCEPTED_DIGESTS
        return response(environ, start_response)

    def _handle(self, request: Request) -> Response:
        path = decoding.decode_path(request.environ)
        query = decoding.decode_query(request.environ)
        manager = DEFAULT_MANAGER_NAME
        match = _MANAGER_PREFIX.match(path)
        if match:
            manager, path = match.group("manager"), match.group("rest")
        try:
            tenant = DEFAULT_TENANT if path in _PUBLIC_PATHS else self._authenticate(request, query)
        except Unauthorized:
            # Refused before routing (which would tell a stranger what exists): counted as such,
            # not among requests for paths lwr does not serve.
            request.environ["lwr.route"] = "unauthorized"
            raise
        allowed: list[str] = []
        for method, pattern, handler in self.routes:
            found = pattern.match(path)
            if not found:
                continue
            if method != request.method:
                allowed.append(method)
                continue
            request.environ["lwr.route"] = getattr(handler, "__name__", "unknown")
            if handler in self.admin_handlers:
                self._authorize_admin(tenant)
            result = handler(Call(request, manager, found.groupdict(), query, tenant))
            if isinstance(result, Response):
                return result
            if result is None:
                return Response(status=200, body=b"", content_type="text/plain", charset=None)
            return json_response(result)
        if allowed:
            raise MethodNotAllowed(f"{request.method} is not allowed on {path}", allowed=sorted(set(allowed)))
        raise NotFound(f"no route for {path}", path=path)

    def _authenticate(self, request: Request, query: dict[str, str]) -> str:
        """The tenant of the request's token (query ``private_token``, ``X-Lwr-Token`` or Bearer)."""
        sent = query.get(TOKEN_ARGUMENT) or request.headers.get(TOKEN_HEADER)
        authorization = request.headers.get("Authorization", "")
        if not sent and authorization.lower().startswith("bearer "):
            sent = authorization[7:].strip()
        return self.credentials.identify(sent)

    def _job(self, call: Call, may_be_new: bool = False) -> str:
        """The path's job id, if the caller's tenant owns that job; another tenant's job is not found."""
        job_id = call.path_args["job_id"]
        self.service.manager(call.manager)
        record = self.service.find_or_none(call.manager, job_id)
        if record is None and may_be_new:
            return job_id
        if record is None or (record.owner or DEFAULT_TENANT) != call.tenant:
            raise NotFound(
                f"no job '{job_id}' on manager '{call.manager}'", job_id=job_id, manager=call.manager
            )
        return job_id

    def _authorize_admin(self, tenant: str) -> None:
        """Admin routes see every tenant's jobs: only the admin token (``private_token``, tenant
        ``default``) opens them, and an open lwr shared by several clients (assign_ids = uuid) has none."""
        if tenant != DEFAULT_TENANT:
            raise Forbidden("admin routes need the admin token (private_token), not a tenant's token")
        if self.credentials.open and self.service.settings.assign_ids == "uuid":
            raise Forbidden(
                "admin routes need a private_token when assign_ids = uuid (several clients share this lwr)"
            )

    # --- routes -----------------------------------------------------------------------------------
    def _add_routes(self) -> None:
        job = r"/jobs/(?P<job_id>[^/]+)"
        table: list[tuple[str, str, Handler]] = [
            ("POST", r"/jobs", self.setup),
            ("POST", job + r"/submit", self.submit),
            ("GET", job + r"/status", self.status),
            ("PUT", job + r"/cancel", self.cancel),
            ("POST", job + r"/files", self.upload),
            ("GET", job + r"/files", self.download),
            ("GET", job + r"/files/path", self.file_path),
            ("DELETE", job, self.clean),
            ("GET", r"/cache/status", self.cache_status),
            ("PUT", r"/cache", self.cache_required),
            ("POST", r"/cache", self.cache_insert),
            ("GET", r"/healthz", self.healthz),
            ("GET", r"/openapi.yaml", self.openapi),
            ("GET", r"/managers", self.list_managers),
        ]
        for method, pattern, handler in table:
            self.routes.append((method, re.compile(f"^{pattern}/?$"), handler))

    def setup(self, call: Call) -> Any:
        return self.service.setup(
            call.manager,
            call.arg("job_id"),
            call.arg("tool_id", required=False),
            call.arg("tool_version", required=False),
            owner=call.tenant,
            preserve_galaxy_python_environment=call.arg("preserve_galaxy_python_environment", required=False),
        )

    def submit(self, call: Call) -> None:
        # Only with client-chosen ids may a submit set its job up itself: in uuid mode an id
        # comes from a setup reply, and an unknown one is refused, never made.
        job_id = self._job(call, may_be_new=self.service.settings.assign_ids != "uuid")
        fields = {name: call.json_arg(name, None) for name in JSON_SUBMIT_FIELDS}
        request = decode_submit({**fields, "command_line": call.arg("command_line")}, job_id)
        self.service.submit(call.manager, job_id, request, owner=call.tenant)

    def status(self, call: Call) -> Any:
        return self.service.status(call.manager, self._job(call))

    def cancel(self, call: Call) -> None:
        self.service.cancel(call.manager, self._job(call))

    def clean(self, call: Call) -> None:
        self.service.clean(call.manager, self._job(call))

    def upload(self, call: Call) -> Any:
        job_id = self._job(call)
        staging = self.service.staging_target(
            call.manager, job_id, call.arg("name"), call.arg("type", "input")
        )
        target = staging.path
        cache_token = call.arg("cache_token", required=False)
        if cache_token:
            if self.file_cache is None:
                raise BadRequest("this server has no file cache (file_cache_dir is not set)")
            return self.file_cache.copy_to(call.tenant, cache_token, target, staging.guard)
        expected = expected_upload_digest(call.request.headers, ALGORITHMS)
        decoding.require_body_length(call.request.environ)
        reply = transfer.receive_upload(
            call.request.environ, target, self.max_upload_size, expected, staging.guard
        )
        if expected is not None and "digest" in reply:
            self.digests.remember(target, reply["digest"].partition("=")[2], expected[0])
        return reply

    def download(self, call: Call) -> Response:
        handle = self.service.open_output(
            call.manager, self._job(call), call.arg("name"), call.arg("type", "output")
        )
        path = f"/proc/self/fd/{handle.fileno()}"  # the opened file itself, never its name again
        size = os.fstat(handle.fileno()).st_size
        try:
            byte_range = transfer.parse_range(call.request.headers.get("Range"), size)
        except LwrError:
            handle.close()
            raise
        response = Response(content_type="application/octet-stream", charset=None)
        response.headers["Accept-Ranges"] = "bytes"
        algorithm = download_algorithm(call.request.headers, ALGORITHMS)
        if algorithm is not None:
            hexdigest = self.digests.digest(path, algorithm)
            response.headers[DIGEST_HEADER] = format_digest(algorithm, hexdigest)
            if algorithm == SHA256:
                response.headers[SHA256_HEADER] = hexdigest
        if byte_range is None:
            wrapper = call.request.environ.get("wsgi.file_wrapper")
            response.app_iter = (
                wrapper(handle, transfer.CHUNK_SIZE) if wrapper else transfer.iter_file(handle, 0, size)
            )
            response.content_length = size
        else:
            start, end = byte_range
            response.status = 206
            response.app_iter = transfer.iter_file(handle, start, end - start + 1)
            response.content_length = end - start + 1
            response.headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        return response

    def file_path(self, call: Call) -> Any:
        path = self.service.file_path(
            call.manager, self._job(call), call.arg("name"), call.arg("type", "input")
        )
        return {"path": str(path)}

    def _cache(self) -> FileCache:
        if self.file_cache is None:
            raise NotFound("this server has no file cache (file_cache_dir is not set)")
        return self.file_cache

    @staticmethod
    def _client_ip(call: Call) -> str:
        """The cache name's address: ``ip`` if sent, else the connection's (as Pulsar's client expects).

        It only names an entry within the caller's tenant, so a client choosing it freely is harmless.
        """
        return call.arg("ip", required=False) or call.request.remote_addr or "unknown"

    def cache_status(self, call: Call) -> Any:
        return self._cache().status(call.tenant, self._client_ip(call), call.arg("path"))

    def cache_required(self, call: Call) -> Any:
        return self._cache().claim(call.tenant, self._client_ip(call), call.arg("path"))

    def cache_insert(self, call: Call) -> Any:
        expected = expected_upload_digest(call.request.headers, ALGORITHMS)
        decoding.require_body_length(call.request.environ)
        environ, limit = call.request.environ, self.max_upload_size
        return self._cache().insert(
            call.tenant,
            self._client_ip(call),
            call.arg("path"),
            lambda target: transfer.receive_upload(environ, target, limit, expected),
        )

    def healthz(self, call: Call) -> Any:
        return {"version": __version__, "status": "ok"}

    def openapi(self, call: Call) -> Response:
        """docs/openapi.yaml, the description of these routes, when lwr runs from its source tree."""
        try:
            body = OPENAPI_PATH.read_bytes()
        except FileNotFoundError:
            raise NotFound("docs/openapi.yaml is not installed with this lwr") from None
        return Response(body=body, content_type="application/yaml", charset=None)

    def list_managers(self, call: Call) -> Any:
        """Every manager's name and type; the admin token also sees the details (batch hosts, the
        staging backlog per Galaxy host), which would tell a tenant about the site and other tenants."""
        if call.tenant != DEFAULT_TENANT:
            return {
                "managers": [
                    {"name": manager.name, "type": manager.type_name}
                    for manager in self.service.managers.values()
                ]
            }
        reply: dict[str, Any] = {
            "managers": [manager.describe() for manager in self.service.managers.values()]
        }
        backlog = getattr(self.service.staging_hooks, "backlog", None)
        if backlog is not None:
            reply["staging"] = backlog()  # server-side staging pool: waiting/running, per host
        return reply
