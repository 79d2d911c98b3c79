"""Remote dependency resolution: a job's requirements resolved on this server by Galaxy's own library.

Galaxy's Pulsar runners default to ``dependency_resolution: remote``: the command line comes
without the activation of the tool's requirements, and ``dependencies_description`` (the
requirements and the tool shed repositories installed for the tool) comes beside it. Galaxy's
dependency manager (galaxy-tool-util) resolves them here with the admin's resolvers
(``dependency_resolvers_config_file``, Galaxy's format) under ``tool_dependency_dir``; the
activation commands go before the command. A requirement nothing resolves becomes a notice in
the job's stderr rather than a silent run.

galaxy-tool-util takes most of a second to import, so it is imported when first needed: at
start-up only when resolution is configured (so a broken resolvers file stops lwr at once),
otherwise never.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lwr.errors import BadRequest, ConfigError, DependencyError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Activation:
    """What a job's requirements add to its script."""

    commands: tuple[str, ...] = ()
    notices: tuple[str, ...] = ()


def requirement_label(name: str, version: str | None, kind: str) -> str:
    label = f"{name} {version}" if version else name
    return label if kind == "package" else f"{label} ({kind})"


#: A requirement's name, version or type, a tool shed repository's name, owner or revision: one
#: plain word. Galaxy's resolvers join them, unchecked, into the paths of scripts they source
#: (``tool_dependency_dir/NAME/VERSION/env.sh``) and into shell commands, so a ``/``, a ``..`` or
#: a shell character would have lwr source a script the client uploaded, or run a command.
_PLAIN_WORD = re.compile(r"^[A-Za-z0-9_+][A-Za-z0-9_.+-]{0,199}$")


def _plain(value: Any, where: str, required: bool = False) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str) or not _PLAIN_WORD.match(value):
        raise BadRequest(
            f"dependencies_description: {where} must be a plain word (letters, digits, '_', '+', '.', "
            "'-'; no '/' or leading '.')",
            field=where,
        )


def validate_description(description: Any) -> dict[str, Any] | None:
    """The ``dependencies_description`` of a submit, checked for shape (Galaxy's ``to_dict``)
    and for words the resolvers would turn into paths or commands (:data:`_PLAIN_WORD`)."""
    if description is None:
        return None
    if not isinstance(description, Mapping):
        raise BadRequest("dependencies_description must be a JSON object")
    for key in ("requirements", "installed_tool_dependencies"):
        items = description.get(key) or []
        if not isinstance(items, list) or not all(isinstance(item, Mapping) for item in items):
            raise BadRequest(f"dependencies_description.{key} must be a list of objects")
    for index, item in enumerate(description.get("requirements") or []):
        if not isinstance(item.get("name"), str) or not item["name"]:
            raise BadRequest("dependencies_description.requirements item has no name", index=index)
        _check_requirement(item, f"requirements[{index}]")
        specs = item.get("specs") or []
        if not isinstance(specs, list) or not all(isinstance(spec, Mapping) for spec in specs):
            raise BadRequest(
                f"dependencies_description.requirements[{index}].specs must be a list of objects"
            )
        for number, spec in enumerate(specs):
            where = f"requirements[{index}].specs[{number}]"
            uri = spec.get("uri")
            # A spec's last URI segment replaces the requirement's name (Galaxy's short_name).
            _plain(uri.rsplit("/", 1)[-1] if isinstance(uri, str) else uri, f"{where}.uri", required=True)
            _plain(spec.get("version"), f"{where}.version")
    for index, item in enumerate(description.get("installed_tool_dependencies") or []):
        where = f"installed_tool_dependencies[{index}]"
        _check_requirement(item, where)
        repository = item.get("tool_shed_repository") or {}
        if not isinstance(repository, Mapping):
            raise BadRequest(f"dependencies_description.{where}.tool_shed_repository must be an object")
        for key in ("name", "owner", "installed_changeset_revision"):
            _plain(repository.get(key), f"{where}.tool_shed_repository.{key}")
    return dict(description)


def _check_requirement(item: Mapping[str, Any], where: str) -> None:
    _plain(item.get("name"), f"{where}.name")
    _plain(item.get("version"), f"{where}.version")
    _plain(item.get("type"), f"{where}.type")


class ToolDependencies:
    """Galaxy's dependency manager, built once; ``None`` settings resolve nothing."""

    def __init__(
        self, tool_dependency_dir: Path | None, resolvers_config_file: Path | None, source: str = "server.ini"
    ) -> None:
        self.tool_dependency_dir = tool_dependency_dir
        self.resolvers_config_file = resolvers_config_file
        self.source = source
        self._manager: Any = None
        self._lock = threading.Lock()
        if tool_dependency_dir is not None:
            self._build()

    @property
    def configured(self) -> bool:
        return self.tool_dependency_dir is not None

    def _build(self) -> Any:
        with self._lock:
            if self._manager is None:
                from galaxy.tool_util.deps import build_dependency_manager

                assert self.tool_dependency_dir is not None
                key = (
                    "dependency_resolvers_config_file"
                    if self.resolvers_config_file
                    else "tool_dependency_dir"
                )
                try:
                    # Conda is never installed behind the admin's back (a first job would wait minutes).
                    self._manager = build_dependency_manager(
                        app_config_dict={
                            "tool_dependency_dir": str(self.tool_dependency_dir),
                            "conda_auto_init": False,
                            "conda_auto_install": False,
                        },
                        conf_file=str(self.resolvers_config_file) if self.resolvers_config_file else None,
                        default_tool_dependency_dir=str(self.tool_dependency_dir),
                    )
                except Exception as error:  # noqa: BLE001 - Galaxy's parser raises anything
                    path = self.resolvers_config_file or self.tool_dependency_dir
                    raise ConfigError(
                        f"{self.source}: {key} = {path}: Galaxy's dependency manager refused it: "
                        f"{type(error).__name__}: {error}",
                        file=self.source,
                        key=key,
                        expected="Galaxy's dependency resolvers configuration",
                    ) from None
            return self._manager

    def activation(self, description: Mapping[str, Any] | None, job_directory: str) -> Activation:
        """Shell commands activating the described requirements, and a notice for each unresolved one."""
        if not description or not description.get("requirements"):
            return Activation()
        from galaxy.tool_util.deps.dependencies import DependenciesDescription
        from galaxy.tool_util.deps.resolvers import NullDependency

        try:
            parsed = DependenciesDescription.from_dict(dict(description))
        except Exception as error:  # noqa: BLE001
            raise BadRequest(f"dependencies_description: {type(error).__name__}: {error}") from None
        notices = []
        commands = []
        if not self.configured:
            for requirement in parsed.requirements.resolvable:
                label = requirement_label(requirement.name, requirement.version, requirement.type)
                notices.append(
                    f"lwr: requirement {label} was not resolved: this server has no "
                    "tool_dependency_dir; the tool runs without it"
                )
            return Activation((), tuple(notices))
        manager = self._build()
        try:
            resolved = manager.requirements_to_dependencies(
                parsed.requirements,
                installed_tool_dependencies=parsed.installed_tool_dependencies,
                job_directory=job_directory,
            )
        except Exception as error:  # noqa: BLE001 - a resolver that breaks (not one that finds nothing)
            labels = ", ".join(
                requirement_label(r.name, r.version, r.type) for r in parsed.requirements.resolvable
            )
            log.exception("resolving requirements %s failed", labels)
            raise DependencyError(
                f"resolving the requirements {labels} failed: {type(error).__name__}: {error}",
                requirements=labels,
            ) from None
        for requirement in parsed.requirements.resolvable:
            dependency = resolved.get(requirement)
            label = requirement_label(requirement.name, requirement.version, requirement.type)
            if dependency is None or isinstance(dependency, NullDependency):
                notices.append(
                    f"lwr: requirement {label} was not resolved by this server's dependency "
                    "resolvers; the tool runs without it"
                )
                continue
            command = dependency.shell_commands()
            if command:
                commands.append(command)
            log.debug("requirement %s resolved by %s", label, type(dependency).__name__)
        return Activation(tuple(commands), tuple(notices))
