"""Staging actions as pure functions: which action a path gets, and how text is rewritten.

Nothing here touches the network; only :func:`files_to_stage` reads a directory listing. The
staging layer asks :func:`resolve` for each file, and uses :func:`rewrite_text` to turn the
command line and config files into their server-side form.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from lwr.client.action_config import ActionConfig, PathRule
from lwr.protocol.file_actions import LOCAL_STAGING, REMOTE_STAGING, choose_action


@dataclass(frozen=True)
class Resolved:
    """The action for one path, and the entry that chose it (None: the default applied)."""

    action: str
    rule: PathRule | None = None

    @property
    def staged_locally(self) -> bool:
        return self.action in LOCAL_STAGING

    @property
    def staged_remotely(self) -> bool:
        return self.action in REMOTE_STAGING

    @property
    def depth(self) -> int:
        return self.rule.depth if self.rule else 0


def resolve(config: ActionConfig, path: str | None, path_type: str) -> Resolved:
    """The action for ``path`` of ``path_type``: the first matching entry, else the default.

    The default action applies to the default path types only; an unstructured path no entry
    matches is left alone (``none``). ``none`` becomes ``copy`` for the job's own directories.
    """
    normalized = os.path.abspath(path) if path else None
    action, rule = choose_action(config.paths, config.default_action, normalized, path_type)
    return Resolved(action, rule)


def rewrite_path(path: str, source_directory: str, destination_directory: str) -> str | None:
    """``path`` moved from under ``source_directory`` to ``destination_directory``; None if not under it."""
    source = source_directory.rstrip("/") or "/"
    if path == source:
        return destination_directory
    prefix = source if source.endswith("/") else source + "/"
    if not path.startswith(prefix):
        return None
    return posixpath.join(destination_directory, path[len(prefix) :])


_BEFORE = r"(?<![\w./+~@%-])"
_AFTER = r"(?![\w.+~@%-])"


def rewrite_text(text: str, renames: Mapping[str, str]) -> str:
    """Replace every local path of ``renames`` with its server path, in one pass.

    One pass, longest path first, so a server path is never rewritten again (a staging directory
    may well lie under a client path) and ``/data/in`` never rewrites the start of ``/data/input``.
    A path also rewrites the paths below it (``/w`` → ``/srv/w`` turns ``/w/x`` into ``/srv/w/x``).
    """
    if not renames:
        return text
    keys = sorted((key for key in renames if key), key=len, reverse=True)
    pattern = re.compile(_BEFORE + "(" + "|".join(map(re.escape, keys)) + ")" + _AFTER)
    return pattern.sub(lambda match: renames[match.group(1)], text)


def find_references(texts: Iterable[str], pattern: re.Pattern[str]) -> list[str]:
    """Distinct paths ``pattern`` finds in ``texts``, in order of first appearance."""
    seen: dict[str, None] = {}
    for text in texts:
        for match in pattern.finditer(text):
            seen.setdefault(match.group(0), None)
    return list(seen)


def referenced_under(texts: Iterable[str], directory: str) -> list[str]:
    """Paths below ``directory`` mentioned in ``texts`` (quotes around them allowed)."""
    pattern = re.compile(re.escape(directory.rstrip("/")) + r"/[^\s'\"`;|&<>()]+")
    return find_references(texts, pattern)


def enclosing_directory(path: str, depth: int) -> str:
    """The directory ``depth`` levels above ``path`` (``depth`` 0: the path itself)."""
    for _ in range(depth):
        path = os.path.dirname(path)
    return path


def unique_prefix(path: str) -> str:
    """A directory name that keeps unstructured files from different places apart on the server."""
    return hashlib.sha256(path.encode("utf-8")).hexdigest()[:16]


def files_to_stage(reference: str, depth: int) -> dict[str, str]:
    """For an unstructured ``reference`` staged with ``depth``: local file → server name.

    Depth 0 stages the file itself; depth N stages every file under the directory N levels up
    (an index and its siblings), keeping their layout. Names are put under :func:`unique_prefix`
    of the reference, so two references with the same base name do not collide.
    """
    prefix = unique_prefix(reference)
    if depth <= 0 and not os.path.isdir(reference):
        return {reference: f"{prefix}/{os.path.basename(reference)}"}
    root = enclosing_directory(reference, depth)
    if depth <= 0:  # a directory referenced as a whole keeps its name
        prefix = f"{prefix}/{os.path.basename(reference.rstrip('/'))}"
    staged: dict[str, str] = {}
    for directory, _subdirectories, files in os.walk(root):
        for name in sorted(files):
            path = os.path.join(directory, name)
            staged[path] = f"{prefix}/{os.path.relpath(path, root).replace(os.sep, '/')}"
    return staged


def directory_files(directory: str) -> list[str]:
    """Every file under ``directory``, as sorted ``/``-separated relative names."""
    names = []
    for root, _subdirectories, files in os.walk(directory):
        for name in files:
            names.append(os.path.relpath(os.path.join(root, name), directory).replace(os.sep, "/"))
    return sorted(names)
