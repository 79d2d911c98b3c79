"""Server-side staging as the job service's staging hooks: inputs before launch, outputs after.

Both steps are resumable, because the job service re-runs them after a restart:

* an input is downloaded to ``<job>/lwr/partial/`` and renamed into place when complete, so
  an input that exists is whole and is not fetched again, and one that was being fetched is
  resumed (HTTP range request) where it stopped;
* an output delivered leaves a marker in ``<job>/lwr/delivered/``, so a restart during
  postprocessing delivers only the rest.

Every URL and path of the job is checked against the allow-list *before the first request*:
a refused one fails the job (with the reason in its status) without anything being fetched.
"""

from __future__ import annotations

import hashlib
import logging
import os
from typing import Any, Callable
from urllib.parse import urlsplit

from lwr.config import AppSettings
from lwr.core.atomic import write_bytes_atomically
from lwr.core.job_directory import JobDirectory
from lwr.core.job_files import open_directory
from lwr.core.states import JobState
from lwr.core.status import realized_dynamic_file_sources
from lwr.core.store import JobRecord
from lwr.errors import ConfigError, NotFound, StagingError
from lwr.staging.actions import ActionMapper, InputAction, OutputAction, input_actions, output_actions
from lwr.staging.allow_list import UrlPolicy
from lwr.staging.pool import StagingPool
from lwr.staging.transfer import PinnedHttp, Transfers

log = logging.getLogger(__name__)

DELIVERED_DIRECTORY = "delivered"
#: A delivery marker is created in the directory lwr opened, never through a link.
_MARKER_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
#: Inputs being downloaded, kept across restarts so a download resumes.
PARTIAL_DIRECTORY = "partial"


class ServerStaging:
    """Implements the job service's ``StagingHooks`` for ``remote_transfer``/``remote_copy``/``message``."""

    def __init__(
        self, settings: AppSettings, transfers: Transfers | None = None, pool: StagingPool | None = None
    ) -> None:
        try:
            self.policy = UrlPolicy(settings.remote_staging_allowed_urls)
        except ValueError as error:
            raise ConfigError(
                f"{settings.source}: [app:main] {error}",
                file=settings.source,
                section="app:main",
                key="remote_staging_allowed_urls",
                expected="comma-separated http(s):// or file:// URL prefixes",
            ) from None
        self.transfers = transfers or Transfers(
            self.policy, http=PinnedHttp(connections=settings.staging_threads)
        )
        self.pool = pool or StagingPool(settings.staging_threads, settings.staging_threads_per_host)

    # --- scheduling --------------------------------------------------------------------------------
    def schedule(self, record: JobRecord, name: str, work: Callable[[], None]) -> None:
        """Run one job's staging step in the bounded pool, counted against the host it talks to."""
        self.pool.submit(self.remote_host(record), name, work)

    def backlog(self) -> dict[str, Any]:
        """Staging tasks waiting and running, in total and per remote host (export as a metric)."""
        return self.pool.backlog()

    def remote_host(self, record: JobRecord) -> str:
        """``host:port`` of the Galaxy a job's staging talks to (its files endpoint, else its
        first input URL); ``local`` when it only copies files or writes message contents."""
        staging = self._remote_staging(record)
        mapper = staging.get("action_mapper") or {}
        candidates: list[Any] = [mapper.get("files_endpoint") if isinstance(mapper, dict) else None]
        for entry in staging.get("setup") or []:
            if isinstance(entry, dict):
                action = entry.get("action")
                candidates.append(action.get("url") if isinstance(action, dict) else None)
        for url in candidates:
            if isinstance(url, str) and "://" in url:
                parts = urlsplit(url)
                if parts.scheme in ("http", "https") and parts.hostname:
                    return f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
        return "local"

    @staticmethod
    def _remote_staging(record: JobRecord) -> dict:
        value = record.launch.get("remote_staging")
        return value if isinstance(value, dict) else {}

    def wants(self, record: JobRecord) -> bool:
        """At submit (state SETUP): are there inputs to fetch? At the end: may outputs be ours to deliver?"""
        staging = self._remote_staging(record)
        if record.state is JobState.SETUP:
            return bool(staging.get("setup"))
        return ActionMapper(staging.get("action_mapper") or {}).may_need_server()

    # --- inputs ----------------------------------------------------------------------------------
    def before_launch(self, record: JobRecord, directory: JobDirectory) -> int:
        """Fetch every input not yet here; return the bytes fetched."""
        staging = self._remote_staging(record)
        actions = input_actions(staging)
        self._check_all(actions, staging)
        fetched = 0
        size = 0
        for action in actions:
            if record.state is not JobState.PREPROCESSING:
                log.info("job %s left preprocessing (%s); staging stopped", record.job_id, record.state.value)
                return size
            destination = directory.path_for(action.name, action.type)
            if destination.exists():
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            if action.kind == "message":
                write_bytes_atomically(destination, (action.contents or "").encode("utf-8"))
            elif action.kind == "remote_transfer":
                assert action.url is not None
                partial = (
                    directory.internal / PARTIAL_DIRECTORY / hashlib.sha256(action.key.encode()).hexdigest()
                )
                self.transfers.download(action.url, destination, partial)
            else:
                assert action.path is not None
                self.transfers.copy_in(action.path, destination)
            fetched += 1
            size += destination.stat().st_size
        log.info("job %s: %d of %d inputs staged by lwr", record.job_id, fetched, len(actions))
        return size

    def _check_all(self, actions: list[InputAction], staging: dict) -> None:
        """Refuse the job before any request if one of its URLs or paths is not allowed: inputs,
        the files endpoint outputs would be posted to, and known ``remote_copy`` output paths."""
        for action in actions:
            if action.kind == "remote_transfer":
                assert action.url is not None
                self.policy.check_url(action.url)
            elif action.kind == "remote_copy":
                assert action.path is not None
                self.policy.check_path(action.path)
        mapper = ActionMapper(staging.get("action_mapper") or {})
        if not mapper.may_need_server():
            return
        if mapper.files_endpoint:
            self.policy.check_url(str(mapper.files_endpoint))
        client = staging.get("client_outputs") or {}
        known = [("output", str(path)) for path in client.get("output_files") or []]
        known += [
            ("output_workdir", str(pair[1]))
            for pair in client.get("work_dir_outputs") or []
            if isinstance(pair, (list, tuple)) and len(pair) == 2
        ]
        for path_type, path in known:
            if mapper.action_type(path, path_type) == "remote_copy":
                self.policy.check_path(path)

    # --- outputs ---------------------------------------------------------------------------------
    def after_finish(self, record: JobRecord, directory: JobDirectory) -> int:
        """Deliver every output not yet delivered; return the bytes delivered."""
        staging = self._remote_staging(record)
        contents = {key: directory.contents(key) for key in ("working", "outputs", "metadata", "")}
        actions = output_actions(staging, contents, realized_dynamic_file_sources(record, directory))
        done = _open_markers(directory)
        delivered = 0
        size = 0
        try:
            for action in actions:
                marker = hashlib.sha256(action.key.encode()).hexdigest()
                if _has_marker(marker, done):
                    continue
                sent = self._deliver(action, directory)
                if sent is not None:
                    delivered += 1
                    size += sent
                _mark(marker, done)
        finally:
            os.close(done)
        log.info("job %s: %d outputs delivered by lwr", record.job_id, delivered)
        return size

    def _deliver(self, action: OutputAction, directory: JobDirectory) -> int | None:
        """Send one output; its size, or None if it was skipped."""
        try:
            local = directory.open_output(
                action.name, action.type
            )  # once, safely: the job may plant symlinks
        except NotFound:
            if action.type == "output_workdir":
                log.info("working directory output %s was not produced; skipped", action.name)
                return None
            raise StagingError(
                f"output {action.name} ({action.type}) was not produced", name=action.name
            ) from None
        try:
            with local:
                sent = os.fstat(local.fileno()).st_size
                if action.kind == "remote_transfer":
                    assert action.url is not None
                    self.transfers.upload(action.url, local, action.name.rsplit("/", 1)[-1])
                else:
                    self.transfers.copy_out(local, action.client_path)
        except StagingError as error:
            if error.details.get("status") == 403:
                # Galaxy refuses outputs of datasets deleted meanwhile; the job itself is fine.
                log.warning(
                    "the client refused output %s (HTTP 403); not failing the job", action.client_path
                )
                return None
            raise
        return sent


def _open_markers(directory: JobDirectory) -> int:
    """A descriptor of ``lwr/delivered/``, reached without following a link the job planted.

    Every marker is then checked and created relative to it, so swapping a link in after this
    check has no effect (lwr would otherwise create its markers wherever the link points).
    """
    try:
        internal = open_directory(directory.internal)
        try:
            try:
                os.mkdir(DELIVERED_DIRECTORY, 0o700, dir_fd=internal)
            except FileExistsError:
                pass
            return open_directory(DELIVERED_DIRECTORY, dir_fd=internal)
        finally:
            os.close(internal)
    except OSError as error:
        done = directory.internal / DELIVERED_DIRECTORY
        raise StagingError(
            f"{done} is not a directory lwr can use ({error.strerror}); not delivering outputs through it",
            path=str(done),
        ) from None


def _has_marker(name: str, done: int) -> bool:
    try:
        os.stat(name, dir_fd=done, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _mark(name: str, done: int) -> None:
    os.close(os.open(name, _MARKER_FLAGS, 0o600, dir_fd=done))
