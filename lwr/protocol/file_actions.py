"""The file-action rule engine: which staging action a path gets. Pure functions, no I/O.

A file action config (the original LWR's ``lwr_actions.yaml``, Pulsar's ``file_action_config``)
has a ``default_action`` and ``paths`` entries, each matching by prefix, glob or regex (or by
path type alone). The client decides with it what to stage; the server decides with the same
config, sent as ``remote_staging.action_mapper``, what it must deliver itself. Both ends call
:func:`choose_action`, so they can never disagree about a path.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

ACTIONS = ("none", "transfer", "copy", "remote_transfer", "remote_copy", "rewrite", "message")
MATCH_TYPES = ("prefix", "glob", "regex", "path_type_only")
#: Path types an entry applies to when it names none (``*defaults*``), and the ones the
#: ``default_action`` applies to: everything but unstructured paths and containers.
DEFAULT_PATH_TYPES = (
    "input",
    "config",
    "tool",
    "workdir",
    "jobdir",
    "metadata",
    "output",
    "output_workdir",
    "output_metadata",
    "output_jobdir",
)
ALL_PATH_TYPES = (*DEFAULT_PATH_TYPES, "unstructured", "container")
#: Path types whose files must reach the job even when the action says ``none``: the job's working,
#: metadata and job directories are the server's own, not the client's.
ALWAYS_STAGED_TYPES = frozenset(
    {"workdir", "jobdir", "metadata", "output_workdir", "output_metadata", "output_jobdir"}
)
#: Actions whose bytes the client moves itself (over HTTP, or by copying through a shared mount).
LOCAL_STAGING = frozenset({"transfer", "copy", "message"})
#: Actions the server carries out (it fetches inputs and pushes outputs itself).
REMOTE_STAGING = frozenset({"remote_transfer", "remote_copy"})


class Rule(Protocol):
    """What the engine needs of a ``paths`` entry (the client's and the server's both have it)."""

    @property
    def action(self) -> str: ...

    @property
    def match_type(self) -> str: ...

    @property
    def pattern(self) -> str | None: ...

    @property
    def path_types(self) -> frozenset[str]: ...


R = TypeVar("R", bound=Rule)


def parse_path_types(value: str | Iterable[str] | None) -> frozenset[str]:
    """``"input,*defaults*"`` or a list of words, with ``*defaults*`` and ``*any*`` expanded."""
    if value is None:
        value = "*defaults*"
    words = value.split(",") if isinstance(value, str) else list(value)
    types: set[str] = set()
    for word in (str(word).strip() for word in words):
        if word == "*any*":
            types.update(ALL_PATH_TYPES)
        elif word == "*defaults*":
            types.update(DEFAULT_PATH_TYPES)
        elif word:
            types.add(word)
    return frozenset(types)


def normalize_path(path: str) -> str:
    """The form paths and prefixes are compared in: absolute, no ``.``/``..``/``//`` segments."""
    return "/" + posixpath.normpath(path).lstrip("/") if path else path


def prefix_matches(prefix: str, path: str) -> bool:
    """Is ``path`` the prefix itself or below it? On segment boundaries: ``/data`` is not ``/database``."""
    prefix = normalize_path(prefix)
    path = normalize_path(path)
    return path == prefix or path.startswith(prefix if prefix.endswith("/") else prefix + "/")


def rule_matches(rule: Rule, path: str | None, path_type: str) -> bool:
    """Does ``rule`` apply to ``path`` of ``path_type``?"""
    if path_type not in rule.path_types:
        return False
    if rule.match_type == "path_type_only":
        return True
    if not path or rule.pattern is None:
        return False
    if rule.match_type == "prefix":
        return prefix_matches(rule.pattern, path)
    if rule.match_type == "glob":
        return fnmatch.fnmatchcase(normalize_path(path), rule.pattern)
    if rule.match_type == "regex":
        return re.match(rule.pattern, normalize_path(path)) is not None
    return False


def choose_action(
    rules: Iterable[R], default_action: str, path: str | None, path_type: str
) -> tuple[str, R | None]:
    """The action for ``path`` of ``path_type`` and the entry that chose it (None: the default).

    The first matching entry wins; otherwise ``default_action`` for the default path types and
    ``none`` for the others. ``none`` becomes ``copy`` for the job's own directories.
    """
    rule = next((rule for rule in rules if rule_matches(rule, path, path_type)), None)
    if rule is not None:
        action = rule.action
    else:
        action = default_action if path_type in DEFAULT_PATH_TYPES else "none"
    if action == "none" and path_type in ALWAYS_STAGED_TYPES:
        action = "copy"
    return action, rule


@dataclass(frozen=True)
class WireRule:
    """A ``paths`` entry as it arrives in ``remote_staging.action_mapper`` (Pulsar's ``to_dict`` form)."""

    action: str
    match_type: str
    pattern: str | None
    path_types: frozenset[str]

    @classmethod
    def from_wire(cls, entry: Mapping[str, Any]) -> WireRule:
        match_type = str(entry.get("match_type") or "prefix")
        pattern = entry.get("path")
        if pattern is None and match_type in ("glob", "regex"):
            pattern = entry.get(match_type)
        if pattern is None and match_type != "path_type_only":
            match_type = "path_type_only"
        return cls(
            action=str(entry.get("action") or "transfer"),
            match_type=match_type,
            pattern=None if pattern is None else str(pattern),
            path_types=parse_path_types(entry.get("path_types")),
        )


def wire_rules(config: Mapping[str, Any]) -> list[WireRule]:
    """The rules of a wire ``action_mapper``; entries that are not objects are ignored."""
    return [WireRule.from_wire(entry) for entry in config.get("paths") or [] if isinstance(entry, Mapping)]
