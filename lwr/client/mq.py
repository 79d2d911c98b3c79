"""Message-queue mode of lwr's client (``lwr check --amqp-url``, ``lwr submit --amqp-url``).

:class:`MessageQueueLwrClient` stands in for :class:`~lwr.client.client.LwrClient` where the
staging layer needs one, but speaks the Pulsar AMQP protocol through
:class:`lwr.messaging.client.MessageQueueClient`: nothing connects to lwr. So that lwr can
stage the files itself, the client serves them with a :class:`FilesEndpoint` of its own:

* ``setup`` is not a round trip: the job's directories on the server follow from the layout
  (``<jobs_directory>/<job_id>/inputs`` ...), or, without a jobs directory, are given
  relative to the job's working directory (where lwr and Pulsar run the command);
* inputs get ``remote_transfer`` actions with URLs of the files endpoint; contents uploaded
  as bytes (rewritten config files) travel in the setup message (``message`` actions);
* ``submit`` publishes the setup message, after allowing the endpoint to serve exactly the
  job's inputs and to receive exactly its outputs;
* ``wait`` follows the job's ``status_update`` messages; ``cancel`` publishes ``kill``;
  ``healthz`` asks the status of a job that does not exist and waits for lwr's ``lost``.

Moving bytes the client's own way (``transfer``, ``copy``, the input cache) and ``clean``
need lwr's HTTP API and raise :class:`NotInMessageQueueMode`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from amqp.exceptions import AMQPError

from lwr.client.client import JobConfig, LwrClient, SubmitRequest
from lwr.client.files_endpoint import FilesEndpoint
from lwr.client.http import BodySource, Progress
from lwr.errors import ConfigError, LwrError
from lwr.messaging import connection as amqp
from lwr.messaging import naming
from lwr.messaging.client import MessageQueueClient
from lwr.protocol.layout import setup_layout

#: File actions possible without lwr's HTTP API: lwr moves the bytes itself, or nothing moves.
MQ_ACTIONS = ("remote_transfer", "remote_copy")
#: Default wait for lwr's answer to the probe of :meth:`MessageQueueLwrClient.healthz`.
PROBE_TIMEOUT = 30.0


class NotInMessageQueueMode(LwrError):
    """An operation that needs lwr's HTTP API (upload, download, copy, cache, clean)."""


class NoAnswer(LwrError):
    """lwr did not answer on the queue in time: nothing consumes the manager, or it is down."""


class BrokerError(LwrError):
    """The broker could not be reached, refused the login or the vhost, or dropped the connection."""


@contextmanager
def _broker(client: MessageQueueLwrClient, doing: str) -> Iterator[None]:
    """Turn kombu's and amqp's connection errors into a :class:`BrokerError` naming the broker."""
    try:
        yield
    except TimeoutError:
        raise  # no answer in time (an OSError too, but not the broker's fault)
    except (*amqp.CONNECTION_ERRORS, AMQPError) as error:
        raise BrokerError(f"{doing} at {client.description}: {type(error).__name__}: {error}") from None


def job_layout(job_directory: str) -> dict[str, str]:
    """The setup reply of a job in ``job_directory`` (lwr's and Pulsar's layout)."""
    layout = setup_layout(job_directory)
    if job_directory == "..":
        layout["working_directory"] = "."
    return layout


class MessageQueueLwrClient(LwrClient):
    """The calls of :class:`LwrClient` the staging layer makes, over a message queue."""

    def __init__(
        self,
        amqp_url: str,
        files: FilesEndpoint,
        *,
        manager: str | None = None,
        jobs_directory: str | None = None,
        ssl: dict[str, Any] | None = None,
        poll: float = 30.0,
    ) -> None:
        # No HTTP transport: every route this client serves is overridden below.
        self.url = amqp_url
        self.manager = manager or naming.DEFAULT_MANAGER
        self.files = files
        self.jobs_directory = jobs_directory
        self.poll = poll
        self.queue = MessageQueueClient(amqp_url, manager=self.manager, ssl=ssl)
        self._setup_params: dict[str, dict[str, Any]] = {}
        self._messages: dict[str, list[dict[str, Any]]] = {}

    @property
    def description(self) -> str:
        """Where the client publishes, for the first line of ``lwr check`` (no password)."""
        parts = urlsplit(self.url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path or '/'} manager {self.manager}"

    def close(self) -> None:
        pass

    # -- server -------------------------------------------------------------------------------

    def healthz(self, timeout: float = PROBE_TIMEOUT) -> dict[str, Any]:
        """Ask the status of a job that does not exist; lwr answers ``lost``. Raises :class:`NoAnswer`."""
        probe = f"lwr-probe-{uuid.uuid4().hex[:12]}"
        manager = self.queue.manager
        started = time.monotonic()
        try:
            with _broker(self, "asking lwr for a status"):
                self.queue.declare_status_queue()
                self.queue.request_status(probe)
                reply = self.queue.wait_for_final(probe, timeout=timeout, poll=max(timeout, 1.0))
        except TimeoutError:
            raise NoAnswer(
                f"no answer on {naming.queue_name(manager, naming.STATUS_UPDATE)} within {timeout:.0f} s to a "
                f"status request on {naming.queue_name(manager, naming.STATUS)}: is an lwr (or Pulsar) "
                f"consuming manager '{manager}' on this broker and vhost?",
                manager=manager,
            ) from None
        return {"status": reply.get("status"), "seconds": round(time.monotonic() - started, 2)}

    # -- one job ------------------------------------------------------------------------------

    def setup(self, job_id: str, *, tool_id: str | None = None, tool_version: str | None = None) -> JobConfig:
        """No message: the job's directories follow from the layout."""
        self._setup_params[job_id] = {"job_id": job_id, "tool_id": tool_id, "tool_version": tool_version}
        self._messages[job_id] = []
        return self._config(job_id)

    def upload(
        self,
        job_id: str,
        name: str,
        file_type: str,
        source: BodySource,
        *,
        progress: Progress | None = None,
    ) -> str:
        """Contents (bytes) go into the setup message; a file would need lwr's HTTP API."""
        if not isinstance(source, (bytes, bytearray)):
            raise NotInMessageQueueMode(
                f"{source}: the 'transfer' action needs lwr's HTTP API; in message-queue mode use "
                f"remote_transfer or remote_copy", path=str(source))
        self._messages.setdefault(job_id, []).append({
            "name": name,
            "type": file_type,
            "action": {"action_type": "message", "contents": bytes(source).decode("utf-8")},
        })
        return self._config(job_id).remote_path(file_type, name)

    def _config(self, job_id: str) -> JobConfig:
        directory = f"{self.jobs_directory.rstrip('/')}/{job_id}" if self.jobs_directory else ".."
        return JobConfig(job_id=job_id, raw={"job_id": job_id, **job_layout(directory)})

    def submit(self, job_id: str, request: SubmitRequest) -> None:
        """Publish the setup message (after opening the files endpoint to the job's files)."""
        remote_staging = dict(request.remote_staging or {})
        remote_staging["setup"] = list(remote_staging.get("setup") or []) + self._messages.pop(job_id, [])
        self.files.register(remote_staging)
        params = self._setup_params.pop(job_id, {"job_id": job_id})
        extra: dict[str, Any] = {}
        if request.dynamic_file_sources is not None:
            extra["dynamic_file_sources"] = list(request.dynamic_file_sources)
        if request.submit_params:
            extra["submit_params"] = dict(request.submit_params)
        if request.dependencies_description is not None:
            extra["dependencies_description"] = request.dependencies_description
        with _broker(self, "publishing the setup"):
            self.queue.submit(
                job_id,
                request.command_line,
                env=[dict(item) for item in request.env],
                tool_id=params.get("tool_id"),
                tool_version=params.get("tool_version"),
                remote_staging=remote_staging,
                **extra,
            )

    def wait(
        self,
        job_id: str,
        *,
        timeout: float = 3600.0,
        interval: float = 0.25,
        max_interval: float = 5.0,
        on_status: Callable[[str], None] | None = None,
    ) -> dict[str, Any]:
        """The job's final ``status_update``; ``on_status`` sees each new status. Raises TimeoutError."""
        last: list[str] = []

        def on_update(body: dict[str, Any]) -> None:
            state = str(body.get("status"))
            if on_status is not None and (not last or last[-1] != state):
                on_status(state)
            last.append(state)

        with _broker(self, f"waiting for the status of job {job_id}"):
            return self.queue.wait_for_final(job_id, timeout=timeout, poll=self.poll, on_update=on_update,
                                             lost_only_after_seen=True)

    def status(self, job_id: str) -> dict[str, Any]:
        raise NotInMessageQueueMode("a job's status is only published, never asked for, in message-queue mode")

    def cancel(self, job_id: str) -> None:
        with _broker(self, f"publishing a kill of job {job_id}"):
            self.queue.kill(job_id)

    def clean(self, job_id: str) -> None:
        raise NotInMessageQueueMode(
            "the message-queue protocol cannot remove a job's directory; lwr keeps it until cleaned over "
            "HTTP (DELETE /jobs/{id}) or by the admin", job_id=job_id)

    # -- what needs lwr's HTTP API --------------------------------------------------------------

    def _http_only(self, what: str) -> NotInMessageQueueMode:
        return NotInMessageQueueMode(f"{what} needs lwr's HTTP API, not available in message-queue mode")

    def upload_cached(self, job_id: str, name: str, file_type: str, cache_token: str) -> str:
        raise self._http_only("the input cache")

    def file_path(self, job_id: str, name: str, file_type: str) -> str:
        raise self._http_only("the 'copy' action")

    def copy_in(self, job_id: str, local_path: str, name: str, file_type: str) -> str:
        raise self._http_only(f"the 'copy' action (for {local_path})")

    def download(self, job_id: str, name: str, file_type: str, destination: str, *,
                 progress: Progress | None = None, on_size: Callable[[int], Progress | None] | None = None) -> str:
        raise self._http_only(f"the 'transfer' action (for output {destination})")

    def copy_out(self, job_id: str, name: str, file_type: str, destination: str) -> None:
        raise self._http_only(f"the 'copy' action (for output {destination})")

    def cache_required(self, path: str) -> bool:
        raise self._http_only("the input cache")

    def cache_status(self, path: str) -> tuple[str, bool]:
        raise self._http_only("the input cache")

    def cache_insert(self, path: str, *, progress: Progress | None = None) -> None:
        raise self._http_only("the input cache")


def action_config_dict(default_action: str, files: FilesEndpoint, job_id: str) -> dict[str, Any]:
    """The file action config of an MQ job with ``default_action`` for every path: lwr moves the files."""
    return {"default_action": default_action, "files_endpoint": files.url(job_id), "paths": []}


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` or ``PORT`` (host 127.0.0.1) for ``--files-listen``."""
    host, separator, port = value.rpartition(":")
    if not separator:
        host, port = "", value
    host = host.strip("[]") or "127.0.0.1"
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"--files-listen {value!r}: expected HOST:PORT") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"--files-listen {value!r}: port out of range")
    return host, number


def start_files_endpoint(listen: str, public_url: str | None = None) -> FilesEndpoint:
    """The files endpoint on ``--files-listen``; a :class:`~lwr.errors.ConfigError` if it cannot listen there."""
    host, port = parse_listen(listen)
    try:
        return FilesEndpoint(host, port, public_url=public_url).start()
    except OSError as error:
        raise ConfigError(f"--files-listen {listen}: cannot listen there for the files endpoint: {error}",
                          listen=listen) from None


def check_default_action(action: str) -> None:
    if action not in MQ_ACTIONS:
        raise ValueError(
            f"default file action {action!r} needs lwr's HTTP API; with --amqp-url use one of {', '.join(MQ_ACTIONS)}")


def env_ssl(args: Any) -> dict[str, Any] | None:
    """The ``--amqp-ssl-*`` options as MessageQueueClient's ``ssl`` argument."""
    ssl = {key: getattr(args, f"amqp_ssl_{key}", None) for key in ("ca_certs", "certfile", "keyfile", "cert_reqs")}
    ssl = {key: value for key, value in ssl.items() if value}
    return ssl or None


__all__ = ["MQ_ACTIONS", "FilesEndpoint", "MessageQueueLwrClient", "NoAnswer", "NotInMessageQueueMode",
           "action_config_dict", "job_layout"]
