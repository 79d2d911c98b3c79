"""The message-queue transport (``lwr check --amqp-url``, ``lwr submit --amqp-url``).

It speaks the Pulsar AMQP protocol through :class:`lwr.messaging.client.MessageQueueClient`:
nothing connects to the server. So that the server can stage the files itself
(``capabilities.server_side_staging``), the client serves them with a
:class:`~lwr.client.files_endpoint.FilesEndpoint` of its own:

* ``setup`` is not a round trip: the job's directories on the server follow from the layout
  (``<jobs_directory>/<job_id>/inputs`` ...), or, without a jobs directory, are given
  relative to the job's working directory (where lwr and Pulsar run the command);
* inputs get ``remote_transfer`` actions with URLs of the files endpoint; contents uploaded
  as bytes (rewritten config files) travel in the setup message (``message`` actions);
* ``submit`` publishes the setup message, after allowing the endpoint to serve exactly the
  job's inputs and to receive exactly its outputs;
* ``wait`` follows the job's ``status_update`` messages; ``cancel`` publishes ``kill``;
  ``healthz`` asks the status of a job that does not exist and waits for lwr's ``lost``.

Moving bytes the client's own way (``transfer``, ``copy``, the input cache), asking a status and
``clean`` need the HTTP API: the capabilities say so and the client refuses them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from amqp.exceptions import AMQPError

from lwr.client.errors import UnsupportedOperation
from lwr.client.files_endpoint import FilesEndpoint
from lwr.client.http import BodySource, Progress
from lwr.client.transports.base import Capabilities, Transport
from lwr.client.wire import JobConfig, LaunchRequest
from lwr.errors import LwrError
from lwr.messaging import connection as amqp
from lwr.messaging import naming
from lwr.messaging.client import MessageQueueClient
from lwr.protocol.layout import setup_layout

#: Default wait for lwr's answer to the probe of :meth:`AmqpTransport.healthz`.
PROBE_TIMEOUT = 30.0


class NoAnswer(LwrError):
    """lwr did not answer on the queue in time: nothing consumes the manager, or it is down."""


class BrokerError(LwrError):
    """The broker could not be reached, refused the login or the vhost, or dropped the connection."""


@contextmanager
def _broker(description: str, doing: str) -> Iterator[None]:
    """Turn kombu's and amqp's connection errors into a :class:`BrokerError` naming the broker."""
    try:
        yield
    except TimeoutError:
        raise  # no answer in time (an OSError too, but not the broker's fault)
    except (*amqp.CONNECTION_ERRORS, AMQPError) as error:
        raise BrokerError(f"{doing} at {description}: {type(error).__name__}: {error}") from None


def job_layout(job_directory: str) -> dict[str, str]:
    """The setup reply of a job in ``job_directory`` (lwr's and Pulsar's layout)."""
    layout = setup_layout(job_directory)
    if job_directory == "..":
        layout["working_directory"] = "."
    return layout


class AmqpTransport(Transport):
    """The protocol's calls over a message queue, with the client's files endpoint serving the files."""

    capabilities = Capabilities(
        uploads=False,
        downloads=False,
        copy=False,
        input_cache=False,
        status_polling=False,
        clean=False,
        server_side_staging=True,
        queued=True,
    )

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

    def healthz(self, timeout: float | None = None) -> dict[str, Any]:
        """Ask the status of a job that does not exist; lwr answers ``lost``. Raises :class:`NoAnswer`."""
        timeout = PROBE_TIMEOUT if timeout is None else timeout
        probe = f"lwr-probe-{uuid.uuid4().hex[:12]}"
        manager = self.queue.manager
        started = time.monotonic()
        try:
            with _broker(self.description, "asking lwr for a status"):
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

    def setup(self, job_id: str, *, tool_id: str | None, tool_version: str | None) -> JobConfig:
        """No message: the job's directories follow from the layout."""
        self._setup_params[job_id] = {"job_id": job_id, "tool_id": tool_id, "tool_version": tool_version}
        self._messages[job_id] = []
        return self._config(job_id)

    def upload(
        self, job_id: str, name: str, file_type: str, source: BodySource, *, progress: Progress | None
    ) -> str:
        """Contents (bytes) go into the setup message; a file would need the HTTP API."""
        if not isinstance(source, (bytes, bytearray)):
            raise UnsupportedOperation(
                f"{source}: the 'transfer' action needs lwr's HTTP API; in message-queue mode use "
                f"remote_transfer or remote_copy",
                path=str(source),
            )
        self._messages.setdefault(job_id, []).append(
            {
                "name": name,
                "type": file_type,
                "action": {"action_type": "message", "contents": bytes(source).decode("utf-8")},
            }
        )
        return self._config(job_id).remote_path(file_type, name)

    def _config(self, job_id: str) -> JobConfig:
        directory = f"{self.jobs_directory.rstrip('/')}/{job_id}" if self.jobs_directory else ".."
        return JobConfig(job_id=job_id, raw={"job_id": job_id, **job_layout(directory)})

    def submit(self, job_id: str, request: LaunchRequest) -> None:
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
        with _broker(self.description, "publishing the setup"):
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
        timeout: float,
        interval: float,
        max_interval: float,
        on_status: Callable[[str], None] | None,
    ) -> dict[str, Any]:
        """The job's final ``status_update`` (``interval`` does not apply: statuses are pushed)."""
        last: list[str] = []

        def on_update(body: dict[str, Any]) -> None:
            state = str(body.get("status"))
            if on_status is not None and (not last or last[-1] != state):
                on_status(state)
            last.append(state)

        with _broker(self.description, f"waiting for the status of job {job_id}"):
            return self.queue.wait_for_final(
                job_id, timeout=timeout, poll=self.poll, on_update=on_update, lost_only_after_seen=True
            )

    def cancel(self, job_id: str) -> None:
        with _broker(self.description, f"publishing a kill of job {job_id}"):
            self.queue.kill(job_id)
