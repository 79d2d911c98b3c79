"""The HTTP transport: a WSGI application (webob) over the job service.

Routes follow the Pulsar protocol (``/jobs...``, ``/cache...``, ``/healthz``), with a named
manager addressed by the prefix ``/managers/NAME``. Errors are JSON bodies with the status
their :class:`~lwr.errors.LwrError` names; anything unexpected is logged with its traceback
and answered 500 with an id to find it in the log, never with the traceback itself.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from webob import Request, Response

from lwr import __version__
from lwr.config import DEFAULT_MANAGER_NAME
from lwr.core.file_cache import FileCache
from lwr.core.job_script import parse_env
from lwr.core.jobs import JobService, SubmitRequest
from lwr.digests import DigestCache
from lwr.errors import BadRequest, LwrError, MethodNotAllowed, NotFound, Unauthorized
from lwr.web import transfer

log = logging.getLogger(__name__)

Handler = Callable[["Call"], Any]

_MANAGER_PREFIX = re.compile(r"^/managers/(?P<manager>[^/]+)(?P<rest>/.*)$")


@dataclass
class Call:
    """One routed request: the webob request, the manager it addresses and the path variables."""

    request: Request
    manager: str
    path_args: dict[str, str]

    def arg(self, name: str, default: str | None = None, required: bool = True) -> str:
        value = self.request.GET.get(name)
        if value is None:
            if default is not None or not required:
                return default  # type: ignore[return-value]
            raise BadRequest(f"missing parameter '{name}'", parameter=name)
        return str(value)

    def json_arg(self, name: str, default: Any) -> Any:
        raw = self.request.GET.get(name)
        if raw is None or raw == "":
            return default
        try:
            return json.loads(raw)
        except ValueError:
            raise BadRequest(f"parameter '{name}' is not valid JSON", parameter=name) from None


def submit_user(submit_extras: dict[str, Any], params: dict[str, Any]) -> str | None:
    """The user a job runs as (queued_external_drmaa): Galaxy sends it as ``params["user"]``."""
    for value in (submit_extras.get("submit_user"), params.get("user"), params.get("submit_user")):
        if isinstance(value, str) and value:
            return value
    return None


def json_response(value: Any, status: int = 200) -> Response:
    body = json.dumps(value).encode("utf-8")
    return Response(body=body, status=status, content_type="application/json", charset=None)


class LwrWebApp:
    """WSGI callable: authenticate, route, call, and turn every outcome into a response."""

    def __init__(self, service: JobService, private_token: str | None, max_upload_size: int | None,
                 file_cache: FileCache | None) -> None:
        self.service = service
        self.private_token = private_token.encode() if private_token else None
        self.max_upload_size = max_upload_size
        self.file_cache = file_cache
        self.digests = DigestCache()
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._add_routes()

    # --- WSGI -------------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self._handle(request)
        except LwrError as error:
            if error.http_status >= 500:
                log.error("%s %s failed: %s", request.method, request.path, error.message)
            response = json_response(error.as_dict(), error.http_status)
        except Exception:  # noqa: BLE001 - the one place unexpected errors become a 500
            incident = uuid.uuid4().hex[:12]
            log.exception("unexpected error %s handling %s %s", incident, request.method, request.path)
            response = json_response({"error": "internal server error; see the server log", "incident": incident},
                                     500)
        return response(environ, start_response)

    def _handle(self, request: Request) -> Response:
        path = request.path_info or "/"
        manager = DEFAULT_MANAGER_NAME
        match = _MANAGER_PREFIX.match(path)
        if match:
            manager, path = match.group("manager"), match.group("rest")
        if path != "/healthz":
            self._authenticate(request)
        allowed: list[str] = []
        for method, pattern, handler in self.routes:
            found = pattern.match(path)
            if not found:
                continue
            if method != request.method:
                allowed.append(method)
                continue
            result = handler(Call(request, manager, found.groupdict()))
            if isinstance(result, Response):
                return result
            if result is None:
                return Response(status=200, body=b"", content_type="text/plain", charset=None)
            return json_response(result)
        if allowed:
            raise MethodNotAllowed(f"{request.method} is not allowed on {path}", allowed=sorted(set(allowed)))
        raise NotFound(f"no route for {path}", path=path)

    def _authenticate(self, request: Request) -> None:
        if self.private_token is None:
            return
        sent = request.GET.get("private_token") or request.headers.get("X-Lwr-Token")
        authorization = request.headers.get("Authorization", "")
        if not sent and authorization.lower().startswith("bearer "):
            sent = authorization[7:].strip()
        if not sent or not hmac.compare_digest(sent.encode(), self.private_token):
            raise Unauthorized("missing or wrong private token")

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
            ("GET", r"/managers", self.list_managers),
        ]
        for method, pattern, handler in table:
            self.routes.append((method, re.compile(f"^{pattern}/?$"), handler))

    def setup(self, call: Call) -> Any:
        return self.service.setup(call.manager, call.arg("job_id"), call.arg("tool_id", required=False),
                                  call.arg("tool_version", required=False))

    def submit(self, call: Call) -> None:
        submit_extras = call.json_arg("submit_extras", {})
        params = call.json_arg("params", {})
        if not isinstance(params, dict) or not isinstance(submit_extras, dict):
            raise BadRequest("params and submit_extras must be JSON objects")
        setup_params = call.json_arg("setup_params", {}) or {}
        remote_staging = call.json_arg("remote_staging", {}) or {}
        if not isinstance(setup_params, dict) or not isinstance(remote_staging, dict):
            raise BadRequest("setup_params and remote_staging must be JSON objects")
        request = SubmitRequest(
            command_line=call.arg("command_line"),
            env=parse_env(call.json_arg("env", [])),
            submit_params=params,
            setup_params=setup_params,
            remote_staging=remote_staging,
            dependencies_description=call.json_arg("dependencies_description", None),
            dynamic_file_sources=call.json_arg("dynamic_file_sources", None),
            submit_user=submit_user(submit_extras, params),
        )
        self.service.submit(call.manager, call.path_args["job_id"], request)

    def status(self, call: Call) -> Any:
        return self.service.status(call.manager, call.path_args["job_id"])

    def cancel(self, call: Call) -> None:
        self.service.cancel(call.manager, call.path_args["job_id"])

    def clean(self, call: Call) -> None:
        self.service.clean(call.manager, call.path_args["job_id"])

    def upload(self, call: Call) -> Any:
        job_id = call.path_args["job_id"]
        target = self.service.staging_path(call.manager, job_id, call.arg("name"), call.arg("type", "input"))
        cache_token = call.arg("cache_token", required=False)
        if cache_token:
            if self.file_cache is None:
                raise BadRequest("this server has no file cache (file_cache_dir is not set)")
            return self.file_cache.copy_to(cache_token, target)
        reply = transfer.receive_upload(call.request.environ, target, self.max_upload_size,
                                        call.request.headers.get(transfer.SHA256_HEADER))
        if "sha256" in reply:
            self.digests.remember(target, reply["sha256"])
        return reply

    def download(self, call: Call) -> Response:
        handle = self.service.open_output(call.manager, call.path_args["job_id"], call.arg("name"),
                                          call.arg("type", "output"))
        path = f"/proc/self/fd/{handle.fileno()}"  # the opened file itself, never its name again
        size = os.fstat(handle.fileno()).st_size
        try:
            byte_range = transfer.parse_range(call.request.headers.get("Range"), size)
        except LwrError:
            handle.close()
            raise
        response = Response(content_type="application/octet-stream", charset=None)
        response.headers["Accept-Ranges"] = "bytes"
        if call.request.headers.get(transfer.WANT_SHA256_HEADER):
            response.headers[transfer.SHA256_HEADER] = self.digests.sha256(path)
        if byte_range is None:
            wrapper = call.request.environ.get("wsgi.file_wrapper")
            response.app_iter = (wrapper(handle, transfer.CHUNK_SIZE) if wrapper
                                 else transfer.iter_file(handle, 0, size))
            response.content_length = size
        else:
            start, end = byte_range
            response.status = 206
            response.app_iter = transfer.iter_file(handle, start, end - start + 1)
            response.content_length = end - start + 1
            response.headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        return response

    def file_path(self, call: Call) -> Any:
        path = self.service.file_path(call.manager, call.path_args["job_id"], call.arg("name"),
                                      call.arg("type", "input"))
        return {"path": str(path)}

    def _cache(self) -> FileCache:
        if self.file_cache is None:
            raise NotFound("this server has no file cache (file_cache_dir is not set)")
        return self.file_cache

    @staticmethod
    def _client_ip(call: Call) -> str:
        """The cache key's client: ``ip`` if sent, else the connection's address (as Pulsar's client expects)."""
        return call.arg("ip", required=False) or call.request.remote_addr or "unknown"

    def cache_status(self, call: Call) -> Any:
        return self._cache().status(self._client_ip(call), call.arg("path"))

    def cache_required(self, call: Call) -> Any:
        return self._cache().claim(self._client_ip(call), call.arg("path"))

    def cache_insert(self, call: Call) -> Any:
        cache = self._cache()
        ip = self._client_ip(call)
        target = cache.insert_target(ip, call.arg("path"))
        reply = transfer.receive_upload(call.request.environ, target, self.max_upload_size,
                                        call.request.headers.get(transfer.SHA256_HEADER))
        cache.mark_ready(ip, call.arg("path"))
        return reply

    def healthz(self, call: Call) -> Any:
        return {"version": __version__, "status": "ok"}

    def list_managers(self, call: Call) -> Any:
        return {"managers": [manager.describe() for manager in self.service.managers.values()]}
