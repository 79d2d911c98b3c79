"""The status reply of the Pulsar protocol, shared by the HTTP and MQ transports."""

from __future__ import annotations

import logging
import os
from typing import Any

from lwr.core import job_directory as layout
from lwr.core.job_directory import JobDirectory, checked_parts
from lwr.core.job_files import open_confined
from lwr.core.store import JobRecord
from lwr.errors import LwrError
from lwr.protocol.failure import FailureClass, failure_fields, parse
from lwr.protocol.version import version_fields

#: Largest tool stdout/stderr returned in a status reply (start and end kept).
MAXIMUM_STREAM_SIZE = 64 * 1024

#: Dynamic file sources (galaxy.json) read into a status reply: at most this many entries ...
MAXIMUM_DYNAMIC_SOURCES = 16
#: ... and this many bytes of contents in all (the final reply is kept in memory for every job).
MAXIMUM_DYNAMIC_SOURCE_BYTES = 1024 * 1024

SYSTEM_PROPERTIES = {"separator": "/"}

log = logging.getLogger(__name__)


def status_reply(record: JobRecord, directory: JobDirectory) -> dict[str, Any]:
    """``{"complete": "false", ...}`` while active; the full final description once finished."""
    if not record.state.is_final:
        return active_reply(record)
    exists = directory.exists()
    return {
        "job_id": record.job_id,
        "complete": "true",
        "status": record.state.value,
        "returncode": directory.exit_code() if exists else None,
        "stdout": directory.tool_stream(layout.TOOL_STDOUT, MAXIMUM_STREAM_SIZE) if exists else "",
        "stderr": directory.tool_stream(layout.TOOL_STDERR, MAXIMUM_STREAM_SIZE) if exists else "",
        "job_stdout": directory.read_stream(layout.JOB_STDOUT, MAXIMUM_STREAM_SIZE) if exists else "",
        "job_stderr": _job_stderr(record, directory) if exists else (record.reason or ""),
        "working_directory": str(directory.working),
        "metadata_directory": str(directory.metadata),
        "job_directory": str(directory.path),
        "working_directory_contents": directory.contents("working") if exists else [],
        "metadata_directory_contents": directory.contents("metadata") if exists else [],
        "outputs_directory_contents": directory.contents("outputs") if exists else [],
        "job_directory_contents": directory.contents("") if exists else [],
        "system_properties": dict(SYSTEM_PROPERTIES),
        **version_fields(),
        "realized_dynamic_file_sources": realized_dynamic_file_sources(record, directory) if exists else None,
        "reason": record.reason,
        # failure_class and runner_state (Galaxy's resubmission conditions); see lwr.protocol.failure
        **failure_fields(parse(record.failure_class)),
    }


def active_reply(record: JobRecord) -> dict[str, Any]:
    """The status of a job that has not ended: only its wire state."""
    return {
        "complete": "false",
        "status": record.state.wire_name,
        "job_id": record.job_id,
        **version_fields(),
    }


def realized_dynamic_file_sources(record: JobRecord, directory: JobDirectory) -> list[dict[str, Any]]:
    """The files (galaxy.json) the client asked to see the contents of, read from the working directory.

    Bounded, since a short request could otherwise name one big file many times: the first
    :data:`MAXIMUM_DYNAMIC_SOURCES` entries, and only whole files while their contents fit in
    :data:`MAXIMUM_DYNAMIC_SOURCE_BYTES` together; a file that does not fit is left out (a
    truncated galaxy.json would only mislead) and logged.
    """
    realized = []
    budget = MAXIMUM_DYNAMIC_SOURCE_BYTES
    for source in (record.launch.get("dynamic_file_sources") or [])[:MAXIMUM_DYNAMIC_SOURCES]:
        if not isinstance(source, dict) or not isinstance(source.get("path"), str):
            continue
        try:
            name = "/".join(checked_parts(source["path"]))
            with os.fdopen(open_confined(directory.working, name), "rb") as handle:
                contents = handle.read(budget + 1)
        except (LwrError, OSError):
            continue
        if len(contents) > budget:
            log.warning(
                "job %s: dynamic file source %s left out of the status reply: over the %d bytes all "
                "sources may take",
                record.job_id,
                source["path"][:200],
                MAXIMUM_DYNAMIC_SOURCE_BYTES,
            )
            continue
        budget -= len(contents)
        realized.append({**source, "contents": contents.decode("utf-8", errors="replace")})
    return realized


def _job_stderr(record: JobRecord, directory: JobDirectory) -> str:
    text = directory.read_stream(layout.JOB_STDERR, MAXIMUM_STREAM_SIZE)
    if record.reason and record.state.value != "complete":
        text = f"{text}lwr: {record.reason}\n" if text else f"lwr: {record.reason}\n"
    return text


def lost_reply(job_id: str, reason: str) -> dict[str, Any]:
    """The reply for a job lwr does not know (MQ status requests): final, status ``lost``."""
    return {
        "job_id": job_id,
        "complete": "true",
        "status": "lost",
        "returncode": None,
        "stdout": "",
        "stderr": "",
        "job_stdout": "",
        "job_stderr": f"lwr: {reason}\n",
        "reason": reason,
        **failure_fields(FailureClass.JOB_LOST),
        **version_fields(),
    }
