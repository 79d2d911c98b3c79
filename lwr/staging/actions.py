"""What server-side staging must move, worked out from a job's ``remote_staging``: pure functions.

``remote_staging`` is what Galaxy's Pulsar client sends with a submit:

* ``setup``: inputs to fetch before launch, ``[{"name", "type", "action": {...}}]`` where the
  action is ``remote_transfer`` (``url``), ``remote_copy`` (``source.path``) or ``message``
  (``contents``);
* ``action_mapper``: the client's file action configuration (``default_action``,
  ``files_endpoint``, ``paths`` rules), from which the action for each *output* follows;
* ``client_outputs``: the outputs the client expects (``output_files``, ``work_dir_outputs``,
  ``version_file``, ``dynamic_outputs`` patterns, ``dataset_collector_descriptions`` (a tool's
  ``discover_datasets``), ``dynamic_file_sources``) and its
  directories, so lwr knows where on the client each produced file belongs.

Outputs whose action is local to the client (``transfer``, ``copy``, ``none``) are left for the
client to collect; lwr delivers only ``remote_transfer`` (POST to the files endpoint) and
``remote_copy`` ones.
"""

from __future__ import annotations

import fnmatch
import json
import posixpath
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from lwr.errors import StagingError
from lwr.protocol.file_actions import REMOTE_STAGING, choose_action, wire_rules

#: Files the client may want from the job's directories unless told otherwise (Pulsar's default).
DEFAULT_DYNAMIC_PATTERN = (
    r"primary_.*|galaxy.json|metadata_.*|dataset_\d+\.dat|__instrument_.*|dataset_\d+_files.+|"
    r"outputs_populated/.*|tool_stdout|tool_stderr"
)
VERSION_FILE = "COMMAND_VERSION"


@dataclass(frozen=True)
class InputAction:
    """Put ``name`` (of protocol ``type``) into the job directory, from ``url``/``path``/``contents``."""

    kind: str
    name: str
    type: str
    url: str | None = None
    path: str | None = None
    contents: str | None = None

    @property
    def key(self) -> str:
        return f"{self.type}:{self.name}"


@dataclass(frozen=True)
class OutputAction:
    """Deliver job file ``name`` (relative to its ``type``'s directory) to the client's ``client_path``."""

    kind: str
    type: str
    name: str
    client_path: str
    url: str | None = None

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.type}:{self.name}:{self.client_path}"


def input_actions(remote_staging: dict[str, Any]) -> list[InputAction]:
    """The ``setup`` entries as actions; an entry lwr cannot perform is a :class:`StagingError`."""
    actions = []
    for index, entry in enumerate(remote_staging.get("setup") or []):
        if not isinstance(entry, dict) or not isinstance(entry.get("action"), dict):
            raise StagingError(f"remote_staging.setup[{index}] is not an object with an action")
        name, file_type, action = entry.get("name"), entry.get("type"), entry["action"]
        kind = action.get("action_type")
        if not isinstance(name, str) or not name:
            raise StagingError(
                f"remote_staging.setup[{index}] ({kind}): whole-directory staging without a name is "
                "not supported"
            )
        if not isinstance(file_type, str):
            raise StagingError(f"remote_staging.setup[{index}] has no type")
        if kind == "remote_transfer":
            url = action.get("url")
            if not isinstance(url, str):
                raise StagingError(f"remote_staging.setup[{index}] remote_transfer has no url")
            actions.append(InputAction(kind, name, file_type, url=url))
        elif kind == "remote_copy":
            source = action.get("source") if isinstance(action.get("source"), dict) else {}
            path = source.get("path", action.get("path"))
            if not isinstance(path, str):
                raise StagingError(f"remote_staging.setup[{index}] remote_copy has no path")
            actions.append(InputAction(kind, name, file_type, path=path))
        elif kind == "message":
            contents = action.get("contents")
            if not isinstance(contents, str):
                raise StagingError(f"remote_staging.setup[{index}] message has no contents")
            actions.append(InputAction(kind, name, file_type, contents=contents))
        else:
            raise StagingError(
                f"remote_staging.setup[{index}]: staging action {kind!r} is not supported by lwr"
            )
    return actions


class ActionMapper:
    """The client's file action rules, deciding the action for one (path, type)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.default_action = str(config.get("default_action") or "transfer")
        self.files_endpoint = config.get("files_endpoint")
        self.rules = wire_rules(config)

    def action_type(self, path: str, path_type: str) -> str:
        return choose_action(self.rules, self.default_action, path, path_type)[0]

    def may_need_server(self) -> bool:
        """Could any output be the server's to deliver? (Cheap test before running anything.)"""
        outputs = ("output", "output_workdir", "output_metadata", "output_jobdir")
        if self.default_action in REMOTE_STAGING:
            return True
        return any(
            rule.action in REMOTE_STAGING and not rule.path_types.isdisjoint(outputs) for rule in self.rules
        )

    def url_for(self, path: str, path_type: str) -> str:
        if not self.files_endpoint:
            raise StagingError("remote_transfer requested but the client gave no files_endpoint")
        base = str(self.files_endpoint)
        separator = "&" if "?" in base else "?"
        return f"{base}{separator}{urlencode({'path': path, 'file_type': path_type})}"


def output_actions(
    remote_staging: dict[str, Any], contents: dict[str, list[str]], dynamic_sources: list[dict[str, Any]]
) -> list[OutputAction]:
    """The outputs lwr must deliver, given what the job produced.

    ``contents`` maps ``working``, ``outputs``, ``metadata`` and ``""`` (the job directory) to the
    relative paths of the files in them; ``dynamic_sources`` are the realized dynamic file
    sources (galaxy.json contents) of the status reply.
    """
    mapper = ActionMapper(remote_staging.get("action_mapper") or {})
    client = remote_staging.get("client_outputs") or {}
    working_contents, output_contents = contents.get("working", []), contents.get("outputs", [])
    wanted: list[tuple[str, str, str]] = []  # (type, name in the job directory, client path)
    seen: set[tuple[str, str]] = set()
    output_files = [str(f) for f in client.get("output_files") or []]
    working_directory = client.get("working_directory")

    for pair in client.get("work_dir_outputs") or []:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2 or not working_directory:
            continue
        source, destination = str(pair[0]), str(pair[1])
        name = posixpath.relpath(source, working_directory)
        inside = [f for f in working_contents if f.startswith(name + "/")]
        if inside:
            for remote in inside:
                target = posixpath.join(destination, posixpath.relpath(remote, name))
                wanted.append(("output_workdir", remote, target))
                seen.add((remote, target))
        else:
            if name not in working_contents:
                name = next(iter(fnmatch.filter(working_contents, name)), name)
            wanted.append(("output_workdir", name, destination))
            seen.add((name, destination))
        if destination in output_files:
            output_files.remove(destination)

    for output in output_files:
        base = posixpath.basename(output)
        if base in output_contents:
            wanted.append(("output", base, output))
        extras = f"{base[: -len('.dat')]}_files/"
        for name in output_contents:
            if name.startswith(extras):
                wanted.append(("output", name, posixpath.join(posixpath.dirname(output), name)))

    version_file = client.get("version_file")
    if version_file and VERSION_FILE in output_contents:
        wanted.append(("output", VERSION_FILE, str(version_file)))

    patterns = [re.compile(p) for p in client.get("dynamic_outputs") or [DEFAULT_DYNAMIC_PATTERN]]
    collectors = client.get("dataset_collector_descriptions") or []
    references = _referenced_files(dynamic_sources)
    for directory_key, directory, file_type in (
        ("working", working_directory, "output_workdir"),
        ("metadata", client.get("metadata_directory"), "output_metadata"),
        ("", client.get("job_directory"), "output_jobdir"),
    ):
        if not directory:
            continue
        for name in contents.get(directory_key, []):
            dynamic = (
                any(p.match(name) for p in patterns)
                or name in references["filename"]
                or any(name.startswith(r) for r in references["extra_files"])
                or (directory_key == "working" and any(_collected(name, c) for c in collectors))
            )
            target = posixpath.join(str(directory), name)
            if dynamic and (name, target) not in seen:
                wanted.append((file_type, name, target))
                seen.add((name, target))

    actions = []
    for file_type, name, client_path in wanted:
        kind = mapper.action_type(client_path, file_type)
        if kind == "remote_transfer":
            actions.append(
                OutputAction(kind, file_type, name, client_path, url=mapper.url_for(client_path, file_type))
            )
        elif kind == "remote_copy":
            actions.append(OutputAction(kind, file_type, name, client_path))
        elif kind not in ("transfer", "copy", "none", "rewrite"):
            raise StagingError(f"output {client_path}: staging action {kind!r} is not supported by lwr")
    return actions


def _collected(name: str, description: dict[str, Any]) -> bool:
    """Whether a tool's ``discover_datasets`` (a dataset collector description) matches ``name``.

    Galaxy sends these instead of raw ``dynamic_outputs`` patterns to servers of protocol 0.15.13
    or later: ``pattern`` (a regex, named patterns already expanded), optionally confined to a
    ``directory`` of the working directory, matched against the file's name there, or against its
    path below the directory for nested files and with ``match_relative_path``.
    """
    pattern = description.get("pattern")
    if not isinstance(pattern, str):
        return False
    directory = posixpath.normpath(str(description.get("directory") or "."))
    if directory != ".":
        prefix = directory.rstrip("/") + "/"
        if not name.startswith(prefix):
            return False
        name = name[len(prefix) :]
    try:
        return re.match(pattern, name) is not None
    except re.error:
        return False


def _referenced_files(sources: list[dict[str, Any]]) -> dict[str, list[str]]:
    """``filename`` and ``extra_files`` values anywhere in galaxy.json (modern or line-per-entry)."""
    found: dict[str, list[str]] = {"filename": [], "extra_files": []}

    def walk(value: Any) -> None:
        if isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for key, item in value.items():
                if key in found and isinstance(item, str):
                    found[key].append(item)
                walk(item)

    for source in sources or []:
        text = source.get("contents") or ""
        documents = text.splitlines() if source.get("type") == "legacy_galaxy" else [text]
        for document in documents:
            try:
                walk(json.loads(document))
            except ValueError:
                continue
    return found
