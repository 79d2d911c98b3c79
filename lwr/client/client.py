"""The job lifecycle, call by call: one method per route of the protocol (see protocol.md).

:class:`LwrClient` knows the routes and their arguments, nothing about staging; the staging
layer (:mod:`lwr.client.staging`, :mod:`lwr.client.collect`) decides which file goes where.
It talks to lwr and to Pulsar alike.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lwr.client.errors import RemoteError
from lwr.client.http import BodySource, HttpTransport, Progress, RetryPolicy
from lwr.protocol.layout import TYPE_DIRECTORY_KEYS
from lwr.protocol.names import FINAL_STATUSES

FINAL_STATES = FINAL_STATUSES


@dataclass(frozen=True)
class JobConfig:
    """The setup reply: where the job's files live on the server."""

    job_id: str
    raw: Mapping[str, Any]
    separator: str = "/"

    @classmethod
    def from_reply(cls, reply: Any, requested_job_id: str) -> JobConfig:
        if not isinstance(reply, dict) or "working_directory" not in reply:
            raise RemoteError("setup reply lacks working_directory", reply=str(reply)[:300])
        separator = (
            (reply.get("system_properties") or {}).get("separator") or reply.get("path_separator") or "/"
        )
        return cls(job_id=str(reply.get("job_id") or requested_job_id), raw=reply, separator=separator)

    @property
    def job_directory(self) -> str:
        return str(self.raw.get("job_directory") or "")

    def directory(self, file_type: str) -> str:
        """The server directory of a file ``type`` (``input``, ``config``, ``output_workdir``...)."""
        key = TYPE_DIRECTORY_KEYS.get(file_type)
        if key is None:
            raise ValueError(f"unknown file type {file_type!r}")
        value = self.raw.get(key)
        if not value and key == "tools_directory":
            value = self.join(self.job_directory, "tool_files")
        if not value:
            raise RemoteError(f"setup reply lacks {key}", key=key)
        return str(value)

    def remote_path(self, file_type: str, name: str) -> str:
        """The server path a file of ``type`` uploaded as ``name`` will have."""
        return self.join(self.directory(file_type), *name.split("/"))

    def join(self, *parts: str) -> str:
        return self.separator.join(
            part.rstrip(self.separator) if i == 0 else part for i, part in enumerate(parts)
        )


@dataclass
class SubmitRequest:
    """Everything ``POST /jobs/{id}/submit`` carries besides the job id."""

    command_line: str
    env: Sequence[Mapping[str, Any]] = ()
    remote_staging: Mapping[str, Any] | None = None
    dynamic_file_sources: Sequence[Mapping[str, Any]] | None = None
    submit_params: Mapping[str, Any] = field(default_factory=dict)
    submit_extras: Mapping[str, Any] = field(default_factory=dict)
    setup_params: Mapping[str, Any] | None = None
    dependencies_description: Mapping[str, Any] | None = None

    def params(self) -> dict[str, str]:
        params = {"command_line": self.command_line}
        if self.env:
            params["env"] = json.dumps(list(self.env))
        if self.remote_staging:
            params["remote_staging"] = json.dumps(self.remote_staging)
        if self.dynamic_file_sources is not None:
            params["dynamic_file_sources"] = json.dumps(list(self.dynamic_file_sources))
        if self.submit_params:
            params["params"] = json.dumps(self.submit_params)
        if self.submit_extras:
            params["submit_extras"] = json.dumps(self.submit_extras)
        if self.setup_params is not None:
            params["setup_params"] = json.dumps(self.setup_params)
        if self.dependencies_description is not None:
            params["dependencies_description"] = json.dumps(self.dependencies_description)
        return params


class LwrClient:
    """Calls to one server (and manager). Thread-safe: the session pools connections."""

    def __init__(
        self,
        url: str,
        *,
        private_token: str | None = None,
        manager: str | None = None,
        timeout: tuple[float, float] = (10.0, 300.0),
        retry: RetryPolicy | None = None,
    ) -> None:
        self.url = url
        self.manager = manager
        #: Who this client is to the server's input cache.
        self.client_address = socket.gethostname()
        self.http = HttpTransport(
            url, private_token=private_token, manager=manager, timeout=timeout, retry=retry
        )
        # /healthz and /cache are server-wide in Pulsar and lwr; only job routes take the manager prefix,
        # but both servers also accept them under it, so one transport serves all.

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> LwrClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- server -------------------------------------------------------------------------------

    def healthz(self) -> dict[str, Any]:
        reply = self.http.json("GET", "healthz", idempotent=True)
        return reply if isinstance(reply, dict) else {"reply": reply}

    # -- one job ------------------------------------------------------------------------------

    def setup(self, job_id: str, *, tool_id: str | None = None, tool_version: str | None = None) -> JobConfig:
        """``POST /jobs``: create the job directory; the server may assign its own id."""
        params = {"job_id": job_id, "tool_id": tool_id, "tool_version": tool_version}
        return JobConfig.from_reply(self.http.json("POST", "jobs", params), job_id)

    def upload(
        self,
        job_id: str,
        name: str,
        file_type: str,
        source: BodySource,
        *,
        progress: Progress | None = None,
    ) -> str:
        """``POST /jobs/{id}/files``: a file (path) or contents (bytes); returns its server path."""
        reply = self.http.upload(
            f"jobs/{job_id}/files", {"name": name, "type": file_type}, source, progress=progress
        )
        return _reply_path(reply)

    def upload_cached(self, job_id: str, name: str, file_type: str, cache_token: str) -> str:
        """``POST /jobs/{id}/files?cache_token=``: place a file already in the server's input cache."""
        params = {"name": name, "type": file_type, "cache_token": cache_token}
        return _reply_path(self.http.json("POST", f"jobs/{job_id}/files", params, idempotent=True))

    def file_path(self, job_id: str, name: str, file_type: str) -> str:
        """``GET /jobs/{id}/files/path``: where a file of the job is (for the ``copy`` action)."""
        return _reply_path(
            self.http.json(
                "GET", f"jobs/{job_id}/files/path", {"name": name, "type": file_type}, idempotent=True
            )
        )

    def copy_in(self, job_id: str, local_path: str, name: str, file_type: str) -> str:
        """The ``copy`` action for an input: copy through a mount both sides share."""
        remote = self.file_path(job_id, name, file_type)
        _copy_file(local_path, remote)
        return remote

    def submit(self, job_id: str, request: SubmitRequest) -> None:
        """``POST /jobs/{id}/submit``. Not retried: a lost reply must not risk a second submit."""
        self.http.request("POST", f"jobs/{job_id}/submit", request.params())

    def status(self, job_id: str) -> dict[str, Any]:
        """``GET /jobs/{id}/status``: the status reply (``complete`` is the string "true"/"false")."""
        reply = self.http.json("GET", f"jobs/{job_id}/status", idempotent=True)
        if not isinstance(reply, dict):
            raise RemoteError("status reply is not an object", reply=str(reply)[:300])
        return reply

    def wait(
        self,
        job_id: str,
        *,
        timeout: float = 3600.0,
        interval: float = 0.25,
        max_interval: float = 5.0,
        on_status: Callable[[str], None] | None = None,
    ) -> dict[str, Any]:
        """Poll the status until the job is finished; return the final status reply.

        ``on_status`` is called with each new status string. Raises :class:`TimeoutError`.
        """
        deadline = time.monotonic() + timeout
        last = None
        while True:
            reply = self.status(job_id)
            state = str(reply.get("status"))
            if state != last and on_status is not None:
                on_status(state)
            last = state
            if str(reply.get("complete")).lower() == "true" or state in FINAL_STATES:
                return reply
            if time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} still {state} after {timeout:.0f}s")
            time.sleep(interval)
            interval = min(max_interval, interval * 1.5)

    def cancel(self, job_id: str) -> None:
        self.http.request("PUT", f"jobs/{job_id}/cancel", idempotent=True)

    def download(
        self,
        job_id: str,
        name: str,
        file_type: str,
        destination: str,
        *,
        progress: Progress | None = None,
        on_size: Callable[[int], Progress | None] | None = None,
    ) -> str:
        """``GET /jobs/{id}/files``: an output (``output``, ``output_workdir``, ``output_metadata``)."""
        return self.http.download(
            f"jobs/{job_id}/files",
            {"name": name, "type": file_type},
            destination,
            progress=progress,
            on_size=on_size,
        )

    def copy_out(self, job_id: str, name: str, file_type: str, destination: str) -> None:
        """The ``copy`` action for an output."""
        _copy_file(self.file_path(job_id, name, file_type), destination)

    def clean(self, job_id: str) -> None:
        """``DELETE /jobs/{id}``: remove the job directory on the server."""
        self.http.request("DELETE", f"jobs/{job_id}", idempotent=True)

    # -- input cache (Pulsar semantics: keyed by the client's address and the file's path) -------
    # Pulsar takes the address from the connection and ignores ``ip``; lwr reads the ``ip`` argument.

    def cache_required(self, path: str) -> bool:
        """``PUT /cache``: true for exactly one asker, who must then insert the file."""
        return bool(self.http.json("PUT", "cache", {"ip": self.client_address, "path": path}))

    def cache_status(self, path: str) -> tuple[str, bool]:
        """``GET /cache/status``: the file's cache token and whether the file is ready."""
        reply = self.http.json(
            "GET", "cache/status", {"ip": self.client_address, "path": path}, idempotent=True
        )
        if not isinstance(reply, dict) or "token" not in reply:
            raise RemoteError("cache status reply lacks a token", reply=str(reply)[:300])
        return str(reply["token"]), bool(reply.get("ready"))

    def cache_insert(self, path: str, *, progress: Progress | None = None) -> None:
        """``POST /cache``: upload the file into the server's cache."""
        self.http.upload("cache", {"ip": self.client_address, "path": path}, path, progress=progress)


def _reply_path(reply: Any) -> str:
    if not isinstance(reply, dict) or not reply.get("path"):
        raise RemoteError("reply lacks the file's path", reply=str(reply)[:300])
    return str(reply["path"])


def _copy_file(source: str, destination: str) -> None:
    os.makedirs(os.path.dirname(destination), exist_ok=True)
    if os.path.abspath(source) != os.path.abspath(destination):
        shutil.copyfile(source, destination)
