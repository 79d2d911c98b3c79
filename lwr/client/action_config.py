"""The client's ``file_action_config``: which staging action applies to which path.

The format is the original LWR's ``lwr_actions.yaml`` (also Pulsar's ``file_action_config``),
YAML or JSON::

    default_action: transfer          # or default_file_action
    paths:
      - path: /galaxy/tools           # a prefix (match_type: prefix is the default)
        action: none
      - glob: /data/**/*.bam          # or path: ... with match_type: glob
        action: copy
      - regex: .*/dataset_\\d+\\.dat   # or path: ... with match_type: regex
        action: remote_copy
        path_types: input,output      # comma-separated; *defaults* (the default) or *any*
      - path: /galaxy/indices
        path_types: unstructured
        depth: 2                       # stage the directory two levels up from each reference
        action: transfer
      - path: /shared/refs
        path_types: unstructured
        action: rewrite
        source_directory: /shared/refs
        destination_directory: /mnt/refs

It is validated against :data:`SCHEMA` when loaded; an error names the entry's index, the key
and what was expected (``paths[2].match_type: expected one of prefix, glob, regex; got 'globb'``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Union

import jsonschema
import yaml

from lwr.errors import ConfigError
from lwr.protocol.file_actions import (
    ACTIONS,
    ALL_PATH_TYPES,
    DEFAULT_PATH_TYPES,
    MATCH_TYPES,
    parse_path_types,
    rule_matches,
)

__all__ = [
    "ACTIONS",
    "DEFAULT_PATH_TYPES",
    "SCHEMA",
    "ActionConfig",
    "PathRule",
    "load_action_config",
    "parse_action_config",
]

_PATH_TYPE_WORDS = "|".join(re.escape(word) for word in (*ALL_PATH_TYPES, "*defaults*", "*any*"))
_PATH_TYPES_PATTERN = rf"^\s*({_PATH_TYPE_WORDS})\s*(,\s*({_PATH_TYPE_WORDS})\s*)*$"
_SSH_KEYS = ("ssh_key", "ssh_user", "ssh_host", "ssh_port")

_ENTRY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "path": {"type": "string", "minLength": 1, "x-expected": "a non-empty path or pattern"},
        "glob": {"type": "string", "minLength": 1, "x-expected": "a non-empty glob pattern"},
        "regex": {"type": "string", "minLength": 1, "x-expected": "a non-empty regular expression"},
        "match_type": {"enum": list(MATCH_TYPES)},
        "action": {"enum": list(ACTIONS)},
        "path_types": {
            "anyOf": [
                {"type": "string", "pattern": _PATH_TYPES_PATTERN},
                {"type": "array", "items": {"enum": [*ALL_PATH_TYPES, "*defaults*", "*any*"]}, "minItems": 1},
            ],
            "x-expected": "comma-separated path types among "
            + ", ".join((*ALL_PATH_TYPES, "*defaults*", "*any*")),
        },
        "depth": {
            "anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": r"^\d+$"}],
            "x-expected": "a whole number >= 0",
        },
        "source_directory": {"type": "string", "minLength": 1, "x-expected": "an absolute directory"},
        "destination_directory": {"type": "string", "minLength": 1, "x-expected": "an absolute directory"},
        **{key: {"type": ["string", "integer", "null"]} for key in _SSH_KEYS},
    },
    "additionalProperties": False,
    "allOf": [
        {
            "if": {"properties": {"action": {"const": "rewrite"}}, "required": ["action"]},
            "then": {"required": ["source_directory", "destination_directory"]},
        },
    ],
}

#: The JSON schema of a file action config.
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "default_action": {"enum": list(ACTIONS)},
        "default_file_action": {"enum": list(ACTIONS)},
        "files_endpoint": {"type": ["string", "null"], "x-expected": "a URL"},
        "paths": {"type": "array", "items": _ENTRY_SCHEMA, "x-expected": "a list of path entries"},
        **{key: {"type": ["string", "integer", "null"]} for key in _SSH_KEYS},
    },
    "additionalProperties": False,
}

Source = Union[str, "os.PathLike[str]", Mapping[str, Any], None]


@dataclass(frozen=True)
class PathRule:
    """One ``paths`` entry, normalized: ``pattern`` is None for a ``path_type_only`` entry."""

    index: int
    action: str
    match_type: str
    pattern: str | None
    path_types: frozenset[str]
    depth: int = 0
    source_directory: str | None = None
    destination_directory: str | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)

    def matches(self, path: str | None, path_type: str) -> bool:
        """Does this entry apply to ``path`` of ``path_type``? (The protocol's one rule engine.)"""
        return rule_matches(self, path, path_type)

    def reference_pattern(self) -> re.Pattern[str] | None:
        """A regex finding paths this entry matches inside a command line or config file."""
        if self.pattern is None:
            return None
        if self.match_type == "prefix":
            return re.compile(re.escape(self.pattern.rstrip("/")) + f"/{_PATH_CHAR}+")
        if self.match_type == "glob":
            return re.compile(_glob_reference_regex(self.pattern))
        return re.compile(self.pattern.lstrip("^").rstrip("$"))

    def to_dict(self) -> dict[str, Any]:
        """The entry in the form Pulsar's ``FileActionMapper`` reads (for ``remote_staging``)."""
        entry: dict[str, Any] = {
            # Pulsar's mapper knows no "message" entry; for the server such a file was simply transferred.
            "action": "transfer" if self.action == "message" else self.action,
            "match_type": self.match_type,
            "path_types": ",".join(sorted(self.path_types)),
            "depth": self.depth,
        }
        if self.pattern is not None:
            entry["path"] = self.pattern
        if self.action == "rewrite":
            entry["source_directory"] = self.source_directory
            entry["destination_directory"] = self.destination_directory
        entry.update(self.extras)
        return entry


@dataclass(frozen=True)
class ActionConfig:
    """A validated file action config."""

    default_action: str = "transfer"
    paths: tuple[PathRule, ...] = ()
    files_endpoint: str | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)

    def unstructured_rules(self) -> list[PathRule]:
        """Entries that stage paths found inside the command line and config files."""
        return [rule for rule in self.paths if "unstructured" in rule.path_types and rule.pattern is not None]

    def to_dict(self) -> dict[str, Any]:
        """The config in the form Pulsar's server reads from ``remote_staging.action_mapper``."""
        return {
            "default_action": "transfer" if self.default_action == "message" else self.default_action,
            "files_endpoint": self.files_endpoint,
            **dict(self.extras),
            "paths": [rule.to_dict() for rule in self.paths],
        }


def load_action_config(source: Source = None, *, default_action: str | None = None) -> ActionConfig:
    """Read (a path to YAML or JSON, or an already parsed mapping), validate, and normalize.

    ``default_action`` (the client's ``default_file_action`` option) overrides the file's.
    """
    name = "file_action_config"
    if source is None:
        data: Any = {}
    elif isinstance(source, Mapping):
        data = dict(source)
    else:
        name = os.fspath(source)
        try:
            with open(name, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            raise ConfigError(
                f"{name}: cannot read the file action config: {exc.strerror}", file=name
            ) from exc
        try:
            data = json.loads(text) if name.endswith(".json") else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise ConfigError(
                f"{name}: not valid {'JSON' if name.endswith('.json') else 'YAML'}: {exc}", file=name
            ) from exc
        data = {} if data is None else data
    return parse_action_config(data, name=name, default_action=default_action)


def parse_action_config(
    data: Any, *, name: str = "file_action_config", default_action: str | None = None
) -> ActionConfig:
    """Validate an already parsed config; see :func:`load_action_config`."""
    validator = jsonschema.Draft202012Validator(SCHEMA)
    problems = sorted(
        validator.iter_errors(data),
        key=lambda error: (list(map(str, error.absolute_path)), error.validator != "required"),
    )
    if problems:
        raise ConfigError(
            f"{name}: {describe_error(problems[0])}",
            file=name,
            problems=[describe_error(problem) for problem in problems],
        )
    if default_action is not None and default_action not in ACTIONS:
        raise ConfigError(
            f"default_file_action: expected one of {', '.join(ACTIONS)}; got {default_action!r}"
        )
    rules = tuple(_rule(index, entry, name) for index, entry in enumerate(data.get("paths") or []))
    extras = {key: data[key] for key in _SSH_KEYS if data.get(key) is not None}
    return ActionConfig(
        default_action=default_action
        or data.get("default_action")
        or data.get("default_file_action")
        or "transfer",
        paths=rules,
        files_endpoint=data.get("files_endpoint"),
        extras=extras,
    )


def describe_error(error: jsonschema.ValidationError) -> str:
    """``paths[2].match_type: expected one of prefix, glob, regex, path_type_only; got 'globb'``."""
    where = _location(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        action = f" (action {error.instance.get('action')!r})" if isinstance(error.instance, dict) else ""
        return f"{_join(where, missing)}: required{action} but missing"
    if error.validator == "additionalProperties":
        known = (
            sorted((error.schema.get("properties") or {}).keys()) if isinstance(error.schema, dict) else []
        )
        extra = sorted(set(error.instance) - set(known)) if isinstance(error.instance, dict) else []
        return f"{_join(where, extra[0] if extra else '?')}: unknown key; expected one of {', '.join(known)}"
    if error.validator == "enum":
        expected = "one of " + ", ".join(map(str, error.validator_value))
    elif "x-expected" in schema:
        expected = schema["x-expected"]
    elif (
        error.parent is not None
        and isinstance(error.parent.schema, dict)
        and "x-expected" in error.parent.schema
    ):
        expected = error.parent.schema["x-expected"]
    elif error.validator == "type":
        expected = f"a value of type {error.validator_value}"
    else:
        expected = error.message
    return f"{where or '(top level)'}: expected {expected}; got {error.instance!r}"


_PATH_CHAR = r"[^\s,;\"'`<>|&()]"


def _glob_reference_regex(glob: str) -> str:
    """A glob as a regex finding it inside text: ``*`` and ``?`` stop at whitespace and quotes.

    Like :func:`fnmatch.fnmatch`, ``*`` also crosses ``/``.
    """
    out, i = [], 0
    while i < len(glob):
        char = glob[i]
        if char == "*":
            out.append(f"{_PATH_CHAR}*")
        elif char == "?":
            out.append(_PATH_CHAR)
        elif char == "[" and "]" in glob[i + 2 :]:
            end = glob.index("]", i + 2)
            body = glob[i + 1 : end]
            out.append(
                "[^" + re.escape(body[1:]) + "]" if body.startswith("!") else "[" + re.escape(body) + "]"
            )
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def _location(path: Any) -> str:
    where = ""
    for part in path:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    return where


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _rule(index: int, entry: Mapping[str, Any], name: str) -> PathRule:
    where = f"{name}: paths[{index}]"
    given = [key for key in ("path", "glob", "regex") if key in entry]
    if len(given) > 1:
        raise ConfigError(
            f"{where}: expected only one of path, glob, regex; got {', '.join(given)}",
            index=index,
            key=given[1],
        )
    match_type = entry.get("match_type")
    pattern: str | None = None
    if given:
        key = given[0]
        pattern = str(entry[key])
        implied = "prefix" if key == "path" else key
        if key != "path" and match_type not in (None, key):
            raise ConfigError(
                f"{where}.match_type: expected {key!r} for a {key} entry; got {match_type!r}",
                index=index,
                key="match_type",
            )
        match_type = match_type or implied
        if match_type == "path_type_only":
            raise ConfigError(
                f"{where}.match_type: expected prefix, glob or regex for an entry with {key}",
                index=index,
                key="match_type",
            )
    elif match_type not in (None, "path_type_only"):
        raise ConfigError(
            f"{where}.path: required by match_type {match_type!r} but missing", index=index, key="path"
        )
    else:
        match_type = "path_type_only"
    if match_type == "prefix" and pattern is not None:
        pattern = os.path.normpath(pattern) if os.path.isabs(pattern) else os.path.abspath(pattern)
    if match_type == "regex" and pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(
                f"{where}.{given[0]}: expected a regular expression; {exc}", index=index, key=given[0]
            ) from exc
    return PathRule(
        index=index,
        action=entry.get("action", "transfer"),
        match_type=match_type,
        pattern=pattern,
        path_types=parse_path_types(entry.get("path_types", "*defaults*")),
        depth=int(entry.get("depth", 0)),
        source_directory=entry.get("source_directory"),
        destination_directory=entry.get("destination_directory"),
        extras={key: entry[key] for key in _SSH_KEYS if key in entry},
    )
