"""The transport contract: what every transport does, and the capabilities it declares.

A transport carries the protocol's calls; :class:`lwr.client.client.LwrClient` is the one client on
top of any of them. What a transport cannot carry it says in :class:`Capabilities` (as kombu's
transports declare ``implements``), so the client refuses the call in one place and callers ask
``client.capabilities`` instead of the transport's type.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lwr.client.http import BodySource, Progress
from lwr.client.wire import JobConfig, LaunchRequest


@dataclass(frozen=True)
class Capabilities:
    """What a transport can carry; a call needing a missing one raises ``UnsupportedOperation``."""

    #: The client uploads input files itself (the ``transfer`` action); contents (bytes) always travel.
    uploads: bool
    #: The client downloads outputs itself (the ``transfer`` action for outputs).
    downloads: bool
    #: The server names a job file's path (``GET /jobs/{id}/files/path``), for the ``copy`` action.
    copy: bool
    #: The server's input cache (``/cache`` routes).
    input_cache: bool
    #: A job's status can be asked for; otherwise the transport only hears it pushed.
    status_polling: bool
    #: The server removes a job's directory on request.
    clean: bool
    #: The server fetches inputs and posts outputs itself (``remote_transfer`` from a files endpoint).
    server_side_staging: bool
    #: Calls wait on a broker until a server consumes them: probe before publishing, or a job waits unseen.
    queued: bool


class Transport(ABC):
    """The calls of the protocol. Implementations raise :mod:`lwr.errors` classes, never their own transport's."""

    capabilities: Capabilities
    #: Who this client is to the server (the input cache's key).
    client_address: str = ""

    @property
    @abstractmethod
    def description(self) -> str:
        """Where the transport goes, for messages (never a password)."""

    def close(self) -> None:
        """Release connections; the default holds none."""

    @abstractmethod
    def healthz(self, timeout: float | None = None) -> dict[str, Any]:
        """Whether a server answers (``/healthz`` or a status probe); raises if none does."""

    @abstractmethod
    def setup(self, job_id: str, *, tool_id: str | None, tool_version: str | None) -> JobConfig: ...

    @abstractmethod
    def upload(
        self, job_id: str, name: str, file_type: str, source: BodySource, *, progress: Progress | None
    ) -> str:
        """Place a file (path; only with ``capabilities.uploads``) or contents (bytes); its server path."""

    @abstractmethod
    def submit(self, job_id: str, request: LaunchRequest) -> None: ...

    @abstractmethod
    def wait(
        self,
        job_id: str,
        *,
        timeout: float,
        interval: float,
        max_interval: float,
        on_status: Callable[[str], None] | None,
    ) -> dict[str, Any]:
        """The final status reply; ``on_status`` sees each new status. Raises :class:`TimeoutError`."""

    @abstractmethod
    def cancel(self, job_id: str) -> None: ...

    # -- only with the matching capability (the client checks it first) -------------------------

    def upload_cached(self, job_id: str, name: str, file_type: str, cache_token: str) -> str:
        raise NotImplementedError

    def file_path(self, job_id: str, name: str, file_type: str) -> str:
        raise NotImplementedError

    def status(self, job_id: str) -> dict[str, Any]:
        raise NotImplementedError

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
        raise NotImplementedError

    def clean(self, job_id: str) -> None:
        raise NotImplementedError

    def cache_required(self, path: str) -> bool:
        raise NotImplementedError

    def cache_status(self, path: str) -> tuple[str, bool]:
        raise NotImplementedError

    def cache_insert(self, path: str, *, progress: Progress | None) -> None:
        raise NotImplementedError
