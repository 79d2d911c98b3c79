"""A tiny HTTP client for tests that need to see raw statuses, headers and bodies."""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Http:
    def __init__(self, base_url: str, token: str | None = None) -> None:
        parsed = urllib.parse.urlparse(base_url)
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 80
        self.prefix = parsed.path.rstrip("/")
        self.token = token

    def request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        query = dict(params or {})
        if self.token:
            query.setdefault("private_token", self.token)
        url = self.prefix + path + ("?" + urllib.parse.urlencode(query) if query else "")
        connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            connection.request(method, url, body=body, headers=headers or {})
            response = connection.getresponse()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            connection.close()

    def setup(self, job_id: str, **params: Any) -> dict[str, Any]:
        reply = self.request("POST", "/jobs", {"job_id": job_id, **params})
        assert reply.status == 200, reply
        return reply.json()

    def upload(self, job_id: str, name: str, data: bytes, file_type: str = "input") -> Reply:
        return self.request("POST", f"/jobs/{job_id}/files", {"name": name, "type": file_type}, body=data)

    def submit(self, job_id: str, command_line: str, **params: Any) -> Reply:
        return self.request("POST", f"/jobs/{job_id}/submit", {"command_line": command_line, **params})

    def status(self, job_id: str) -> dict[str, Any]:
        reply = self.request("GET", f"/jobs/{job_id}/status")
        assert reply.status == 200, reply
        return reply.json()

    def wait_status(self, job_id: str, wanted: set[str], timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(job_id)
            if status["status"] in wanted:
                return status
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"job {job_id} still {status['status']} after {timeout} s, wanted {wanted}"
                )
            time.sleep(0.05)

    def wait_complete(self, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
        return self.wait_status(job_id, {"complete", "failed", "cancelled", "lost"}, timeout)
