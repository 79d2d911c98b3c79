"""The client side of the server's input cache (``/cache`` routes, Pulsar's semantics).

The server keys a cached file by the client's address and the file's path. For each input:

1. ``PUT /cache?path=P`` answers true to exactly one asker, who uploads the file with
   ``POST /cache?path=P``; everyone else gets false;
2. ``GET /cache/status?path=P`` gives the file's token and whether it is ready; askers poll it;
3. once ready, ``POST /jobs/{id}/files?cache_token=T`` (no body) places the cached copy in the job.

So an input staged by a client is uploaded once however many jobs, threads or processes ask for
it. If the uploader fails, or the server has no cache configured, jobs fall back to a plain
upload rather than wait forever. The cache trusts that a path's contents do not change (true of
Galaxy datasets); do not enable it for files rewritten in place.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field

from lwr.client.client import LwrClient
from lwr.client.http import Progress
from lwr.errors import LwrError

log = logging.getLogger(__name__)


@dataclass
class CacheStats:
    """What the cache did, for tests and reports."""

    inserted: int = 0
    reused: int = 0
    fallbacks: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, what: str) -> None:
        with self.lock:
            setattr(self, what, getattr(self, what) + 1)


class InputCache:
    """Stages inputs through the server's cache; one instance may serve many jobs and threads."""

    def __init__(
        self, *, wait_timeout: float = 600.0, poll_interval: float = 0.2, poll_cap: float = 2.0
    ) -> None:
        self.wait_timeout = wait_timeout
        self.poll_interval = poll_interval
        self.poll_cap = poll_cap
        self.stats = CacheStats()
        self._unavailable: set[str] = set()

    def stage(
        self,
        client: LwrClient,
        job_id: str,
        path: str,
        name: str,
        file_type: str,
        *,
        progress: Progress | None = None,
    ) -> str:
        """Put ``path`` into the job as ``name`` of ``file_type`` through the cache; return its server path."""
        key = os.path.abspath(path)
        if client.description in self._unavailable:
            return client.upload(job_id, name, file_type, path, progress=progress)
        try:
            if client.cache_required(key):
                try:
                    client.cache_insert(key, progress=progress)
                    self.stats.count("inserted")
                except LwrError as exc:
                    log.warning(
                        "inserting %s into the server's cache failed (%s); uploading it directly", key, exc
                    )
                    return self._fallback(client, job_id, path, name, file_type, progress)
            else:
                self.stats.count("reused")
            token = self._wait_ready(client, key)
        except LwrError as exc:
            log.warning("the server's input cache is not usable (%s); uploading directly", exc.message)
            self._unavailable.add(client.description)
            return self._fallback(client, job_id, path, name, file_type, progress)
        if token is None:
            log.warning("%s did not become ready in the server's cache; uploading it directly", key)
            return self._fallback(client, job_id, path, name, file_type, progress)
        return client.upload_cached(job_id, name, file_type, token)

    def _wait_ready(self, client: LwrClient, key: str) -> str | None:
        deadline = time.monotonic() + self.wait_timeout
        interval = self.poll_interval
        while True:
            token, ready = client.cache_status(key)
            if ready:
                return token
            if time.monotonic() >= deadline:
                return None
            time.sleep(interval)
            interval = min(self.poll_cap, interval * 1.5)

    def _fallback(
        self, client: LwrClient, job_id: str, path: str, name: str, file_type: str, progress: Progress | None
    ) -> str:
        self.stats.count("fallbacks")
        return client.upload(job_id, name, file_type, path, progress=progress)
