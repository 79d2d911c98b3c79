"""The HTTP transport: one method per route of lwr's (and Pulsar's) API (see protocol.md)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

from lwr.client.errors import RemoteError
from lwr.client.http import BodySource, HttpTransport, Progress, RetryPolicy
from lwr.client.transports.base import Capabilities, Transport
from lwr.client.wire import JobConfig, LaunchRequest
from lwr.protocol.names import FINAL_STATUSES


class RestTransport(Transport):
    """Calls to one server (and manager) over HTTP. Thread-safe: the session pools connections."""

    capabilities = Capabilities(
        uploads=True,
        downloads=True,
        copy=True,
        input_cache=True,
        status_polling=True,
        clean=True,
        server_side_staging=False,
        queued=False,
    )

    def __init__(
        self,
        url: str,
        *,
        private_token: str | None = None,
        manager: str | None = None,
        timeout: tuple[float, float] = (10.0, 300.0),
        retry: RetryPolicy | None = None,
        ca_certs: str | None = None,
    ) -> None:
        self.client_address = socket.gethostname()
        # /healthz and /cache are server-wide in Pulsar and lwr; only job routes take the manager prefix,
        # but both servers also accept them under it, so one session serves all.
        self.http = HttpTransport(
            url, private_token=private_token, manager=manager, timeout=timeout, retry=retry, ca_certs=ca_certs
        )

    @property
    def description(self) -> str:
        return self.http.base_url

    def close(self) -> None:
        self.http.close()

    def healthz(self, timeout: float | None = None) -> dict[str, Any]:
        reply = self.http.json("GET", "healthz", idempotent=True)
        return reply if isinstance(reply, dict) else {"reply": reply}

    def setup(self, job_id: str, *, tool_id: str | None, tool_version: str | None) -> JobConfig:
        params = {"job_id": job_id, "tool_id": tool_id, "tool_version": tool_version}
        return JobConfig.from_reply(self.http.json("POST", "jobs", params), job_id)

    def upload(
        self, job_id: str, name: str, file_type: str, source: BodySource, *, progress: Progress | None
    ) -> str:
        reply = self.http.upload(
            f"jobs/{job_id}/files", {"name": name, "type": file_type}, source, progress=progress
        )
        return _reply_path(reply)

    def upload_cached(self, job_id: str, name: str, file_type: str, cache_token: str) -> str:
        params = {"name": name, "type": file_type, "cache_token": cache_token}
        return _reply_path(self.http.json("POST", f"jobs/{job_id}/files", params, idempotent=True))

    def file_path(self, job_id: str, name: str, file_type: str) -> str:
        params = {"name": name, "type": file_type}
        return _reply_path(self.http.json("GET", f"jobs/{job_id}/files/path", params, idempotent=True))

    def submit(self, job_id: str, request: LaunchRequest) -> None:
        """Not retried: a lost reply must not risk a second submit."""
        self.http.request("POST", f"jobs/{job_id}/submit", request.params())

    def status(self, job_id: str) -> dict[str, Any]:
        reply = self.http.json("GET", f"jobs/{job_id}/status", idempotent=True)
        if not isinstance(reply, dict):
            raise RemoteError("status reply is not an object", reply=str(reply)[:300])
        return reply

    def wait(
        self,
        job_id: str,
        *,
        timeout: float,
        interval: float,
        max_interval: float,
        on_status: Callable[[str], None] | None,
    ) -> dict[str, Any]:
        """Poll the status, backing off from ``interval`` to ``max_interval``."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            reply = self.status(job_id)
            state = str(reply.get("status"))
            if state != last and on_status is not None:
                on_status(state)
            last = state
            if str(reply.get("complete")).lower() == "true" or state in FINAL_STATUSES:
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
        progress: Progress | None,
        on_size: Callable[[int], Progress | None] | None,
    ) -> str:
        return self.http.download(
            f"jobs/{job_id}/files",
            {"name": name, "type": file_type},
            destination,
            progress=progress,
            on_size=on_size,
        )

    def clean(self, job_id: str) -> None:
        self.http.request("DELETE", f"jobs/{job_id}", idempotent=True)

    # Pulsar takes the cache's client address from the connection and ignores ``ip``; lwr reads ``ip``.

    def cache_required(self, path: str) -> bool:
        return bool(self.http.json("PUT", "cache", {"ip": self.client_address, "path": path}))

    def cache_status(self, path: str) -> tuple[str, bool]:
        reply = self.http.json(
            "GET", "cache/status", {"ip": self.client_address, "path": path}, idempotent=True
        )
        if not isinstance(reply, dict) or "token" not in reply:
            raise RemoteError("cache status reply lacks a token", reply=str(reply)[:300])
        return str(reply["token"]), bool(reply.get("ready"))

    def cache_insert(self, path: str, *, progress: Progress | None) -> None:
        self.http.upload("cache", {"ip": self.client_address, "path": path}, path, progress=progress)


def _reply_path(reply: Any) -> str:
    if not isinstance(reply, dict) or not reply.get("path"):
        raise RemoteError("reply lacks the file's path", reply=str(reply)[:300])
    return str(reply["path"])
