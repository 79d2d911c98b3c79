"""What the client sends and receives per job, whatever the transport: the launch and the setup reply."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lwr.client.errors import RemoteError
from lwr.protocol.layout import TYPE_DIRECTORY_KEYS


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
class LaunchRequest:
    """What a client launches a job with besides its id: ``POST /jobs/{id}/submit`` or the AMQP setup.

    Not to be confused with :class:`lwr.protocol.submit.SubmitRequest`, the server's decoded submit.
    """

    command_line: str
    env: Sequence[Mapping[str, Any]] = ()
    remote_staging: Mapping[str, Any] | None = None
    dynamic_file_sources: Sequence[Mapping[str, Any]] | None = None
    submit_params: Mapping[str, Any] = field(default_factory=dict)
    submit_extras: Mapping[str, Any] = field(default_factory=dict)
    setup_params: Mapping[str, Any] | None = None
    dependencies_description: Mapping[str, Any] | None = None

    def params(self) -> dict[str, str]:
        """The HTTP form of the launch (JSON-encoded values, Pulsar's parameter names)."""
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
