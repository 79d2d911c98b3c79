"""Bringing a finished job's outputs back, by what the final status says the server holds.

The status reply lists the outputs, working and metadata directories' contents; the client
fetches from them what the job description asks for (output datasets and their ``_files``
extras, outputs written in the working directory, the version file) plus what Galaxy would
collect dynamically (``galaxy.json``, ``primary_*``, ``tool_stdout``, files a ``galaxy.json``
names...). Each fetch follows the file's action: ``transfer`` downloads, ``copy`` copies through
the shared mount, remote actions and ``none`` leave it to the server or the shared file system.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lwr.client import actions
from lwr.client.action_config import ActionConfig
from lwr.client.client import LwrClient
from lwr.client.errors import UnsafeName
from lwr.client.staging import COMMAND_VERSION_FILENAME, JobDescription, StagingObserver
from lwr.errors import LwrError

log = logging.getLogger(__name__)

#: Files of the working and metadata directories Galaxy collects without being told (its default).
DYNAMIC_OUTPUT_PATTERN = re.compile(
    r"primary_.*|galaxy\.json|metadata_.*|dataset_\d+\.dat|__instrument_.*|dataset_\d+_files.+"
    r"|outputs_populated/.*|tool_stdout|tool_stderr"
)


@dataclass
class Collected:
    """What collection did: files fetched (client path → server name) and what failed."""

    fetched: dict[str, str] = field(default_factory=dict)
    failures: list[tuple[str, LwrError | OSError]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def collect_outputs(
    client: LwrClient,
    job_id: str,
    description: JobDescription,
    action_config: ActionConfig,
    status: Mapping[str, Any],
    *,
    observer: StagingObserver | None = None,
) -> Collected:
    """Fetch the outputs of a finished job; failures are gathered, not raised, so the rest still arrive."""
    collector = _Collector(client, job_id, action_config, observer or StagingObserver())
    outputs_contents = list(status.get("outputs_directory_contents") or [])
    working_contents = list(status.get("working_directory_contents") or [])
    metadata_contents = list(status.get("metadata_directory_contents") or [])

    handled_outputs: set[str] = set()
    for name, destination in description.working_directory_outputs:
        below = [entry for entry in working_contents if entry.startswith(name.rstrip("/") + "/")]
        if below:
            for entry in below:
                collector.fetch(
                    entry,
                    "output_workdir",
                    os.path.join(destination, os.path.relpath(entry, name)),
                    within=destination,
                )
        elif name in working_contents:
            collector.fetch(name, "output_workdir", destination)
        handled_outputs.add(os.path.abspath(destination))

    for output in description.outputs:
        if os.path.abspath(output) in handled_outputs:
            continue
        base = os.path.basename(output)
        if base in outputs_contents:
            collector.fetch(base, "output", output)
        extras = os.path.splitext(base)[0] + "_files/"
        for entry in outputs_contents:
            if entry.startswith(extras):
                extras_directory = os.path.join(os.path.dirname(output), extras)
                collector.fetch(
                    entry, "output", os.path.join(os.path.dirname(output), entry), within=extras_directory
                )

    if description.version_file and COMMAND_VERSION_FILENAME in outputs_contents:
        collector.fetch(COMMAND_VERSION_FILENAME, "output", description.version_file)

    wanted = _named_by_dynamic_sources(status.get("realized_dynamic_file_sources"))
    for directory, contents, output_type in (
        (description.working_directory, working_contents, "output_workdir"),
        (description.metadata_directory, metadata_contents, "output_metadata"),
    ):
        if not directory:
            continue
        for entry in contents:
            if (
                DYNAMIC_OUTPUT_PATTERN.fullmatch(entry)
                or entry in wanted
                or any(entry.startswith(prefix) for prefix in wanted if prefix.endswith("/"))
            ):
                collector.fetch(
                    entry, output_type, os.path.join(directory, *entry.split("/")), within=directory
                )
    return collector.result


class _Collector:
    def __init__(
        self, client: LwrClient, job_id: str, action_config: ActionConfig, observer: StagingObserver
    ) -> None:
        self.client = client
        self.job_id = job_id
        self.action_config = action_config
        self.observer = observer
        self.result = Collected()

    def fetch(self, name: str, output_type: str, destination: str, *, within: str | None = None) -> None:
        """Fetch ``name`` to ``destination``, which must stay inside ``within`` when given.

        Names come from the server's status reply; a name that climbs out of its directory
        (``../../.bashrc``) is refused, not written.
        """
        destination = os.path.abspath(destination)
        if within is not None and not _inside(destination, within):
            self.result.failures.append((name, UnsafeName(f"refusing {name!r}: it leads out of {within}")))
            return
        if destination in self.result.fetched:
            return
        action = actions.resolve(self.action_config, destination, output_type).action
        try:
            if action == "copy":
                self.client.copy_out(self.job_id, name, output_type, destination)
            elif action in actions.LOCAL_STAGING:
                try:
                    self.client.download(
                        self.job_id,
                        name,
                        output_type,
                        destination,
                        on_size=lambda size: self.observer.transfer_started("down", destination, size),
                    )
                finally:
                    self.observer.transfer_finished("down", destination)
            else:
                return
        except (LwrError, OSError) as exc:
            log.warning("collecting %s (%s) failed: %s", name, output_type, exc)
            self.result.failures.append((name, exc))
            return
        self.result.fetched[destination] = name
        self.observer.staged(destination, output_type, action, name)


def _inside(path: str, directory: str) -> bool:
    directory = os.path.abspath(directory)
    return os.path.normpath(path).startswith(directory.rstrip(os.sep) + os.sep)


def _named_by_dynamic_sources(sources: Any) -> set[str]:
    """File names a realized ``galaxy.json`` mentions (``filename``), and ``extra_files`` prefixes."""
    wanted: set[str] = set()
    if not isinstance(sources, list):
        return wanted

    def visit(value: Any) -> None:
        if isinstance(value, list):
            for item in value:
                visit(item)
        elif isinstance(value, dict):
            for key, item in value.items():
                if key == "filename" and isinstance(item, str):
                    wanted.add(item)
                elif key == "extra_files" and isinstance(item, str):
                    wanted.add(item.rstrip("/") + "/")
                else:
                    visit(item)

    for source in sources:
        if not isinstance(source, dict) or not isinstance(source.get("contents"), str):
            continue
        for document in _json_documents(source["contents"], source.get("type")):
            visit(document)
    return wanted


def _json_documents(contents: str, source_type: Any) -> Iterable[Any]:
    lines = contents.splitlines() if source_type == "legacy_galaxy" else [contents]
    for line in lines:
        try:
            yield json.loads(line)
        except ValueError:
            continue
