"""Staging a job in: set it up, move its files to the server, rewrite its paths, submit it.

A :class:`JobDescription` is the client's view of a job (its command line and files, with
client paths). :func:`stage_and_submit` asks the server for the job's directories, stages each
file by the action the file action config gives it, rewrites the command line and config files
to server paths, and submits. :mod:`lwr.client.collect` brings the outputs back afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from lwr.client import actions
from lwr.client.action_config import ActionConfig, PathRule
from lwr.client.cache import InputCache
from lwr.client.client import JobConfig, LaunchRequest, LwrClient
from lwr.client.errors import InvalidJob, MissingInput
from lwr.client.http import Progress
from lwr.errors import ConfigError, LwrError

#: Name of the version file in the server's outputs directory (Galaxy's ``COMMAND_VERSION``).
COMMAND_VERSION_FILENAME = "COMMAND_VERSION"


@dataclass
class JobDescription:
    """A job as the client sees it; every path is a client path."""

    command_line: str
    job_id: str
    tool_id: str | None = None
    tool_version: str | None = None
    #: Input datasets.
    inputs: Sequence[str] = ()
    #: A dataset's extra files: ``<dataset>_files`` directories, staged whole beside the inputs.
    input_extra_directories: Sequence[str] = ()
    #: Files the command reads its parameters from; rewritten like the command line.
    config_files: Sequence[str] = ()
    #: The tool's directory; files under it the command mentions are staged as tool files.
    tool_directory: str | None = None
    #: Further tool files (relative to ``tool_directory``) staged whether mentioned or not.
    tool_files: Sequence[str] = ()
    #: Directories whose files are staged into the job's working and metadata directories.
    working_directory: str | None = None
    metadata_directory: str | None = None
    #: Output datasets: written by the job into the outputs directory, fetched back to these paths.
    outputs: Sequence[str] = ()
    #: ``(name in the server's working directory, client path)``: outputs the tool writes in place.
    working_directory_outputs: Sequence[tuple[str, str]] = ()
    version_file: str | None = None
    #: Environment of the job: ``{name: value}`` or the protocol's ``[{"name":, "value":}]``.
    env: Mapping[str, str] | Sequence[Mapping[str, Any]] = ()
    #: Galaxy's ``galaxy.json``-like files naming further outputs (``[{"type": "galaxy", "path": ...}]``).
    dynamic_file_sources: Sequence[Mapping[str, Any]] | None = None
    #: Whether paths are rewritten at all (off: every file is assumed to exist at the same path).
    rewrite_paths: bool = True

    def env_items(self) -> list[dict[str, Any]]:
        if isinstance(self.env, Mapping):
            return [{"name": name, "value": value} for name, value in self.env.items()]
        return [dict(item) for item in self.env]


class StagingObserver:
    """Hooks the staging and collection steps call; each does nothing unless overridden."""

    def transfer_started(self, direction: str, path: str, size: int) -> Progress | None:
        """A file starts moving (``direction`` ``up`` or ``down``); may return a byte counter."""
        return None

    def transfer_finished(self, direction: str, path: str) -> None:
        """The file of the last ``transfer_started`` with this ``path`` has moved."""

    def staged(self, path: str, file_type: str, action: str, remote_path: str | None) -> None:
        """A file was dealt with (uploaded, copied, left for the server, or left alone)."""


@dataclass
class StagedFile:
    path: str
    file_type: str
    name: str
    action: str
    remote_path: str | None


@dataclass
class StagedJob:
    """What staging produced; :mod:`lwr.client.collect` needs it to bring outputs back."""

    job_id: str
    config: JobConfig
    command_line: str
    submit: LaunchRequest
    files: list[StagedFile] = field(default_factory=list)
    renames: dict[str, str] = field(default_factory=dict)


class _Stager:
    def __init__(
        self,
        client: LwrClient,
        description: JobDescription,
        action_config: ActionConfig,
        job_config: JobConfig,
        cache: InputCache | None,
        observer: StagingObserver,
    ) -> None:
        self.client = client
        self.description = description
        self.action_config = action_config
        self.job = job_config
        self.cache = cache
        self.observer = observer
        self.renames: dict[str, str] = {}
        self.files: list[StagedFile] = []
        self.remote_setup: list[dict[str, Any]] = []
        self.config_contents = {path: _read_text(path) for path in description.config_files}
        self.texts = [description.command_line, *self.config_contents.values()]

    def run(self) -> None:
        description = self.description
        tool_files = self._tool_files()
        for path, name in tool_files.items():
            self.stage(path, "tool", name, force_rename=True)
        for path in description.inputs:
            self.stage(path, "input", os.path.basename(path))
        for directory in description.input_extra_directories:
            base = os.path.basename(directory.rstrip("/"))
            for name in _listing(directory):
                self.stage(os.path.join(directory, name), "input", f"{base}/{name}")
            self._rename(directory, self.job.remote_path("input", base), "input")
        for job_directory, file_type in (
            (description.working_directory, "workdir"),
            (description.metadata_directory, "metadata"),
        ):
            if job_directory and os.path.isdir(job_directory):
                for name in _listing(job_directory):
                    self.stage(os.path.join(job_directory, name), file_type, name)
                self._rename(job_directory, self.job.directory(file_type), file_type)
        if description.rewrite_paths:
            self._stage_unstructured()
            self._register_output_renames()

    def stage(
        self,
        path: str,
        file_type: str,
        name: str,
        *,
        force_rename: bool = False,
        rule: PathRule | None = None,
    ) -> None:
        """Stage one file by its action (``rule``'s if given); remember the rename its references need."""
        if rule is None:
            resolved = actions.resolve(self.action_config, path, file_type)
            rule, action = resolved.rule, resolved.action
        else:
            action = rule.action
        remote: str | None = None
        if action in actions.LOCAL_STAGING:
            if not os.path.isfile(path):
                raise MissingInput(f"{file_type} file {path} does not exist", path=path, type=file_type)
            if action == "copy":
                remote = self.client.copy_in(self.job.job_id, path, name, file_type)
            else:
                remote = self._upload(path, file_type, name)
        elif action in actions.REMOTE_STAGING:
            self.remote_setup.append(self._remote_action(path, file_type, name, action))
            remote = self.job.remote_path(file_type, name)
        elif action == "rewrite":
            if rule is not None and rule.source_directory and rule.destination_directory:
                remote = actions.rewrite_path(path, rule.source_directory, rule.destination_directory)
        self.files.append(StagedFile(path, file_type, name, action, remote))
        self.observer.staged(path, file_type, action, remote)
        if remote is not None and (self.description.rewrite_paths or force_rename):
            self.renames[path] = remote

    def _upload(self, path: str, file_type: str, name: str) -> str:
        size = os.path.getsize(path)
        progress = self.observer.transfer_started("up", path, size)
        try:
            if self.cache is not None and file_type == "input":
                return self.cache.stage(
                    self.client, self.job.job_id, path, name, file_type, progress=progress
                )
            return self.client.upload(self.job.job_id, name, file_type, path, progress=progress)
        finally:
            self.observer.transfer_finished("up", path)

    def _remote_action(self, path: str, file_type: str, name: str, action: str) -> dict[str, Any]:
        entry: dict[str, Any] = {"action_type": action, "source": {"path": path}, "path": path}
        if action == "remote_transfer":
            endpoint = self.action_config.files_endpoint
            if not endpoint:
                raise ConfigError(
                    f"file_action_config: remote_transfer (for {path}) needs files_endpoint", path=path
                )
            separator = "&" if "?" in endpoint else "?"
            entry["url"] = f"{endpoint}{separator}{urlencode({'path': path, 'file_type': file_type})}"
        return {"name": name, "type": file_type, "action": entry}

    def _tool_files(self) -> dict[str, str]:
        directory = self.description.tool_directory
        if not directory:
            return {}
        directory = os.path.abspath(directory)
        found: dict[str, str] = {}
        for relative in self.description.tool_files:
            found[os.path.join(directory, relative)] = relative.replace(os.sep, "/")
        for path in actions.referenced_under(self.texts, directory):
            if os.path.isfile(path):
                found.setdefault(path, os.path.relpath(path, directory).replace(os.sep, "/"))
        return found

    def _stage_unstructured(self) -> None:
        seen: set[str] = set()
        for rule in self.action_config.unstructured_rules():
            pattern = rule.reference_pattern()
            if pattern is None:
                continue
            for reference in actions.find_references(self.texts, pattern):
                if reference in seen or not rule.matches(os.path.abspath(reference), "unstructured"):
                    continue
                seen.add(reference)
                if rule.action == "rewrite":
                    self.stage(reference, "unstructured", os.path.basename(reference), rule=rule)
                elif rule.action in actions.LOCAL_STAGING or rule.action in actions.REMOTE_STAGING:
                    if not os.path.exists(reference) and rule.depth == 0:
                        continue
                    for path, name in actions.files_to_stage(reference, rule.depth).items():
                        if path not in self.renames:
                            self.stage(path, "unstructured", name, rule=rule)
                    if os.path.isdir(reference) and rule.depth == 0:
                        prefix = actions.unique_prefix(reference)
                        self._rename(
                            reference,
                            self.job.remote_path(
                                "unstructured", f"{prefix}/{os.path.basename(reference.rstrip('/'))}"
                            ),
                            "unstructured",
                        )

    def _register_output_renames(self) -> None:
        job = self.job
        description = self.description
        for output in description.outputs:
            self._rename(output, job.remote_path("output", os.path.basename(output)), "output")
            if description.working_directory:
                self._rename(
                    os.path.join(description.working_directory, os.path.basename(output)),
                    job.remote_path("output_workdir", os.path.basename(output)),
                    "output_workdir",
                )
        if description.version_file:
            self._rename(
                description.version_file, job.remote_path("output", COMMAND_VERSION_FILENAME), "output"
            )
        for config_file in description.config_files:
            self.renames[config_file] = job.remote_path("config", os.path.basename(config_file))

    def _rename(self, local: str, remote: str, file_type: str) -> None:
        action = actions.resolve(self.action_config, local, file_type).action
        if action in actions.LOCAL_STAGING or action in actions.REMOTE_STAGING:
            self.renames.setdefault(local, remote)


def stage_and_submit(
    client: LwrClient,
    description: JobDescription,
    action_config: ActionConfig,
    *,
    cache: InputCache | None = None,
    observer: StagingObserver | None = None,
    submit: bool = True,
) -> StagedJob:
    """Set the job up, stage its files, rewrite its paths and (unless ``submit`` is false) submit it."""
    observer = observer or StagingObserver()
    _validate(description, action_config)
    job_config = client.setup(
        description.job_id, tool_id=description.tool_id, tool_version=description.tool_version
    )
    try:
        return _stage_and_submit(client, description, action_config, job_config, cache, observer, submit)
    except BaseException:
        # Leave nothing behind on the server for a job that never ran (a failed upload, Ctrl-C).
        try:
            client.clean(job_config.job_id)
        except LwrError:
            pass
        raise


def _stage_and_submit(
    client: LwrClient,
    description: JobDescription,
    action_config: ActionConfig,
    job_config: JobConfig,
    cache: InputCache | None,
    observer: StagingObserver,
    submit: bool,
) -> StagedJob:
    stager = _Stager(client, description, action_config, job_config, cache, observer)
    stager.run()
    command_line = actions.rewrite_text(description.command_line, stager.renames)
    for path, contents in stager.config_contents.items():
        rewritten = actions.rewrite_text(contents, stager.renames) if description.rewrite_paths else contents
        remote = client.upload(job_config.job_id, os.path.basename(path), "config", rewritten.encode("utf-8"))
        stager.files.append(StagedFile(path, "config", os.path.basename(path), "message", remote))
        observer.staged(path, "config", "message", remote)
    remote_staging: dict[str, Any] = {
        "action_mapper": action_config.to_dict(),
        "client_outputs": _client_outputs(description),
    }
    if stager.remote_setup:
        remote_staging["setup"] = stager.remote_setup
    request = LaunchRequest(
        command_line=command_line,
        env=description.env_items(),
        remote_staging=remote_staging,
        dynamic_file_sources=description.dynamic_file_sources,
    )
    staged = StagedJob(job_config.job_id, job_config, command_line, request, stager.files, stager.renames)
    if submit:
        client.submit(job_config.job_id, request)
    return staged


def _client_outputs(description: JobDescription) -> dict[str, Any]:
    """The job's outputs in the form Pulsar's server reads (it pushes ``remote_*`` outputs itself)."""
    return {
        "working_directory": description.working_directory,
        "metadata_directory": description.metadata_directory,
        "job_directory": None,
        "work_dir_outputs": [
            [os.path.join(description.working_directory or "", name), destination]
            for name, destination in description.working_directory_outputs
        ],
        "output_files": list(description.outputs),
        "version_file": description.version_file,
        "dynamic_outputs": None,
        "dynamic_file_sources": description.dynamic_file_sources,
        "dataset_collector_descriptions": [],
    }


def _validate(description: JobDescription, action_config: ActionConfig) -> None:
    """Refuse what cannot be staged before the server is asked for anything."""
    _require_distinct_names("input", [*description.inputs, *description.input_extra_directories])
    _require_distinct_names("output", description.outputs)
    for path in description.config_files:
        if not os.path.isfile(path):
            raise MissingInput(f"config file {path} does not exist", path=path, type="config")
    for path in description.inputs:
        if actions.resolve(action_config, path, "input").staged_locally and not os.path.isfile(path):
            raise MissingInput(f"input {path} does not exist", path=path, type="input")
    for path in description.input_extra_directories:
        if not os.path.isdir(path):
            raise MissingInput(f"input directory {path} does not exist", path=path, type="input")
    if description.tool_directory:
        for relative in description.tool_files:
            path = os.path.join(description.tool_directory, relative)
            if not os.path.isfile(path):
                raise MissingInput(f"tool file {path} does not exist", path=path, type="tool")


def _require_distinct_names(kind: str, paths: Sequence[str]) -> None:
    """Inputs (and outputs) share one directory on the server, under their base names."""
    seen: dict[str, str] = {}
    for path in paths:
        name = os.path.basename(path.rstrip("/"))
        if name in seen and os.path.abspath(seen[name]) != os.path.abspath(path):
            raise InvalidJob(
                f"{kind}s {seen[name]} and {path} would both be {name!r} on the server; rename one",
                name=name,
            )
        seen[name] = path


def _listing(directory: str) -> list[str]:
    return actions.directory_files(directory)


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError as exc:
        raise MissingInput(f"config file {path} does not exist", path=path, type="config") from exc
