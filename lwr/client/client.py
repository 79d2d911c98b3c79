"""The one client: the job lifecycle, call by call, over any transport (see protocol.md).

:class:`LwrClient` knows the calls and their arguments, nothing about staging; the staging
layer (:mod:`lwr.client.staging`, :mod:`lwr.client.collect`) decides which file goes where.
How the calls travel is the transport's business (:mod:`lwr.client.transports`): the client
checks the transport's :class:`~lwr.client.transports.base.Capabilities` before each call that
needs one, so a refusal is raised here and nowhere else. :func:`open_client` is the one way to
build a client from options. It talks to lwr and to Pulsar alike.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lwr.client.errors import UnsupportedOperation
from lwr.client.http import BodySource, Progress, RetryPolicy
from lwr.client.transports.base import Capabilities, Transport
from lwr.client.transports.rest import RestTransport
from lwr.client.wire import JobConfig, LaunchRequest
from lwr.protocol.names import FINAL_STATUSES

if TYPE_CHECKING:
    from lwr.client.files_endpoint import FilesEndpoint

FINAL_STATES = FINAL_STATUSES

__all__ = ["FINAL_STATES", "JobConfig", "LaunchRequest", "LwrClient", "open_client"]


class LwrClient:
    """Calls to one server (and manager) through ``transport``; thread-safe if the transport is."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    @property
    def capabilities(self) -> Capabilities:
        return self.transport.capabilities

    @property
    def description(self) -> str:
        """Where the client goes (a URL, or a broker and manager), without credentials."""
        return self.transport.description

    @property
    def client_address(self) -> str:
        return self.transport.client_address

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> LwrClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _require(self, capable: bool, what: str) -> None:
        if not capable:
            raise UnsupportedOperation(
                f"{what} needs lwr's HTTP API, not available over {self.description}", where=self.description
            )

    # -- server -------------------------------------------------------------------------------

    def healthz(self, timeout: float | None = None) -> dict[str, Any]:
        """``GET /healthz``, or a status probe over a queue (waiting at most ``timeout``)."""
        return self.transport.healthz(timeout)

    # -- one job ------------------------------------------------------------------------------

    def setup(self, job_id: str, *, tool_id: str | None = None, tool_version: str | None = None) -> JobConfig:
        """``POST /jobs``: create the job directory; the server may assign its own id."""
        return self.transport.setup(job_id, tool_id=tool_id, tool_version=tool_version)

    def upload(
        self, job_id: str, name: str, file_type: str, source: BodySource, *, progress: Progress | None = None
    ) -> str:
        """``POST /jobs/{id}/files``: a file (path) or contents (bytes); returns its server path."""
        return self.transport.upload(job_id, name, file_type, source, progress=progress)

    def upload_cached(self, job_id: str, name: str, file_type: str, cache_token: str) -> str:
        """``POST /jobs/{id}/files?cache_token=``: place a file already in the server's input cache."""
        self._require(self.capabilities.input_cache, "the input cache")
        return self.transport.upload_cached(job_id, name, file_type, cache_token)

    def file_path(self, job_id: str, name: str, file_type: str) -> str:
        """``GET /jobs/{id}/files/path``: where a file of the job is (for the ``copy`` action)."""
        self._require(self.capabilities.copy, "the 'copy' action")
        return self.transport.file_path(job_id, name, file_type)

    def copy_in(self, job_id: str, local_path: str, name: str, file_type: str) -> str:
        """The ``copy`` action for an input: copy through a mount both sides share."""
        self._require(self.capabilities.copy, f"the 'copy' action (for {local_path})")
        remote = self.transport.file_path(job_id, name, file_type)
        _copy_file(local_path, remote)
        return remote

    def submit(self, job_id: str, request: LaunchRequest) -> None:
        """``POST /jobs/{id}/submit`` or the setup message. Never retried: that could launch twice."""
        self.transport.submit(job_id, request)

    def status(self, job_id: str) -> dict[str, Any]:
        """``GET /jobs/{id}/status``: the status reply (``complete`` is the string "true"/"false")."""
        self._require(self.capabilities.status_polling, "asking a job's status")
        return self.transport.status(job_id)

    def wait(
        self,
        job_id: str,
        *,
        timeout: float = 3600.0,
        interval: float = 0.25,
        max_interval: float = 5.0,
        on_status: Callable[[str], None] | None = None,
    ) -> dict[str, Any]:
        """The final status reply, polled or pushed. ``on_status`` sees each new status. Raises TimeoutError."""
        return self.transport.wait(
            job_id, timeout=timeout, interval=interval, max_interval=max_interval, on_status=on_status
        )

    def cancel(self, job_id: str) -> None:
        self.transport.cancel(job_id)

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
        self._require(self.capabilities.downloads, f"the 'transfer' action (for output {destination})")
        return self.transport.download(
            job_id, name, file_type, destination, progress=progress, on_size=on_size
        )

    def copy_out(self, job_id: str, name: str, file_type: str, destination: str) -> None:
        """The ``copy`` action for an output."""
        self._require(self.capabilities.copy, f"the 'copy' action (for output {destination})")
        _copy_file(self.transport.file_path(job_id, name, file_type), destination)

    def clean(self, job_id: str) -> None:
        """``DELETE /jobs/{id}``: remove the job directory on the server."""
        self._require(self.capabilities.clean, "removing a job's directory")
        self.transport.clean(job_id)

    # -- input cache (Pulsar semantics: keyed by the client's address and the file's path) -------

    def cache_required(self, path: str) -> bool:
        """``PUT /cache``: true for exactly one asker, who must then insert the file."""
        self._require(self.capabilities.input_cache, "the input cache")
        return self.transport.cache_required(path)

    def cache_status(self, path: str) -> tuple[str, bool]:
        """``GET /cache/status``: the file's cache token and whether the file is ready."""
        self._require(self.capabilities.input_cache, "the input cache")
        return self.transport.cache_status(path)

    def cache_insert(self, path: str, *, progress: Progress | None = None) -> None:
        """``POST /cache``: upload the file into the server's cache."""
        self._require(self.capabilities.input_cache, "the input cache")
        self.transport.cache_insert(path, progress=progress)


def open_client(
    *,
    url: str | None = None,
    amqp_url: str | None = None,
    private_token: str | None = None,
    manager: str | None = None,
    timeout: tuple[float, float] = (10.0, 300.0),
    retry: RetryPolicy | None = None,
    files: FilesEndpoint | None = None,
    jobs_directory: str | None = None,
    ssl: dict[str, Any] | None = None,
    ca_certs: str | None = None,
) -> LwrClient:
    """The client the options ask for: over AMQP with ``amqp_url`` (``files`` required), else HTTP at ``url``.

    ``private_token``, ``timeout``, ``retry`` and ``ca_certs`` (TLS trust) are HTTP's; ``files``, ``jobs_directory`` and ``ssl`` AMQP's.
    """
    if amqp_url:
        if files is None:
            raise ValueError("a message-queue client needs a files endpoint (files=)")
        from lwr.client.transports.amqp import AmqpTransport  # kombu only when asked for

        return LwrClient(
            AmqpTransport(amqp_url, files, manager=manager, jobs_directory=jobs_directory, ssl=ssl)
        )
    if not url:
        raise ValueError("open_client needs url= or amqp_url=")
    return LwrClient(
        RestTransport(
            url, private_token=private_token, manager=manager, timeout=timeout, retry=retry, ca_certs=ca_certs
        )
    )


def _copy_file(source: str, destination: str) -> None:
    os.makedirs(os.path.dirname(destination), exist_ok=True)
    if os.path.abspath(source) != os.path.abspath(destination):
        shutil.copyfile(source, destination)
