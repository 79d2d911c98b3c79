"""Options of message-queue mode (``--amqp-url``, ``--files-listen``...): parsing and checks.

The transport itself is :class:`lwr.client.transports.amqp.AmqpTransport`.
"""

from __future__ import annotations

from typing import Any

from lwr.client.files_endpoint import FilesEndpoint
from lwr.client.transports.amqp import PROBE_TIMEOUT, BrokerError, NoAnswer, job_layout
from lwr.errors import ConfigError

#: File actions possible without lwr's HTTP API: lwr moves the bytes itself, or nothing moves.
MQ_ACTIONS = ("remote_transfer", "remote_copy")


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
        raise ConfigError(
            f"--files-listen {listen}: cannot listen there for the files endpoint: {error}", listen=listen
        ) from None


def check_default_action(action: str) -> None:
    if action not in MQ_ACTIONS:
        raise ValueError(
            f"default file action {action!r} needs lwr's HTTP API; with --amqp-url use one of {', '.join(MQ_ACTIONS)}"
        )


def env_ssl(args: Any) -> dict[str, Any] | None:
    """The ``--amqp-ssl-*`` options as MessageQueueClient's ``ssl`` argument."""
    ssl = {
        key: getattr(args, f"amqp_ssl_{key}", None)
        for key in ("ca_certs", "certfile", "keyfile", "cert_reqs")
    }
    ssl = {key: value for key, value in ssl.items() if value}
    return ssl or None


__all__ = [
    "MQ_ACTIONS",
    "PROBE_TIMEOUT",
    "BrokerError",
    "FilesEndpoint",
    "NoAnswer",
    "action_config_dict",
    "job_layout",
]
