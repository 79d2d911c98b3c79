"""The toolbox of a public lwr: Galaxy toolbox files naming the only tools that may run.

``tool_config_files`` lists toolbox XML files in Galaxy's format::

    <toolbox tool_path="tools">                      relative to this file's directory
      <tool file="cat/cat.xml"/>                     a tool, its id and version from its XML
      <section id="text" name="Text"><tool file="wc/wc.xml"/></section>
      <tool file="shed/x/x.xml" guid="toolshed.example.org/repos/o/x/x/1.0"/>  id = the guid
    </toolbox>

Each tool's XML must carry ``<validators>`` with a ``<command_validator>`` (the syntax is in
:mod:`lwr.tools.validator`). A file, tool or validator that cannot be read stops lwr at start-up
with a message naming it; nothing is skipped, since a tool silently missing would be a tool
silently refused, or a validator silently absent.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

from lwr.errors import ConfigError
from lwr.tools.validator import Validator, ValidatorSyntaxError, compile_validator


@dataclass(frozen=True)
class Tool:
    """One tool a public lwr runs: where its files are, and its validators."""

    id: str
    version: str
    path: Path
    command_validator: Validator
    configfile_validators: dict[str, Validator] = field(default_factory=dict)

    @property
    def directory(self) -> Path:
        """The server's copies of the tool's files (tool files must match them byte for byte)."""
        return self.path.parent


@dataclass(frozen=True)
class Toolbox:
    tools: tuple[Tool, ...]

    def find(self, tool_id: str | None, tool_version: str | None) -> Tool | None:
        """The tool of that id (and version, if one is given); None if this toolbox has none."""
        found = [
            tool
            for tool in self.tools
            if tool.id == tool_id and (not tool_version or tool.version == tool_version)
        ]
        return found[0] if len(found) == 1 else None


def load_toolbox(paths: Iterable[Path]) -> Toolbox:
    tools: list[Tool] = []
    for path in paths:
        root = _parse(path, "toolbox file")
        if root.tag != "toolbox":
            raise ConfigError(
                f"{path}: the root element is <{root.tag}>, not <toolbox>",
                file=str(path),
                expected="<toolbox tool_path=...>",
            )
        tool_path = (path.parent / os.path.expanduser(root.get("tool_path", "."))).resolve()
        for element in root.iter("tool"):
            relative = element.get("file")
            if not relative:
                raise ConfigError(
                    f"{path}: a <tool> element has no file attribute",
                    file=str(path),
                    expected='<tool file="...">',
                )
            tools.append(_load_tool((tool_path / relative).resolve(), element.get("guid")))
    seen: set[tuple[str, str]] = set()
    for tool in tools:
        if (tool.id, tool.version) in seen:
            raise ConfigError(
                f"{tool.path}: tool {tool.id} version {tool.version} appears twice in the toolbox",
                file=str(tool.path),
            )
        seen.add((tool.id, tool.version))
    if not tools:
        raise ConfigError(
            f"{', '.join(map(str, paths))}: the toolbox names no tool; a public lwr would refuse every job",
            expected="at least one <tool>",
        )
    return Toolbox(tuple(tools))


def _parse(path: Path, what: str) -> ElementTree.Element:
    try:
        return ElementTree.parse(path).getroot()
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found", file=str(path)) from None
    except (ElementTree.ParseError, OSError) as error:
        raise ConfigError(f"{path}: cannot read the {what}: {error}", file=str(path)) from None


def _load_tool(path: Path, guid: str | None) -> Tool:
    root = _parse(path, "tool XML")
    tool_id = guid or root.get("id")
    if not tool_id:
        raise ConfigError(f"{path}: the tool has no id", file=str(path), expected='<tool id="...">')
    command = root.find("./validators/command_validator")
    if command is None:
        raise ConfigError(
            f"{path}: tool {tool_id} has no <validators><command_validator>; a public lwr runs "
            "only validated tools",
            file=str(path),
            expected="<command_validator>",
        )
    try:
        command_validator = compile_validator(command)
        configs: dict[str, Validator] = {}
        for element in root.findall("./validators/configfile_validator"):
            name = element.get("name")
            if not name or name in configs:
                raise ValidatorSyntaxError("each <configfile_validator> needs a name of its own")
            configs[name] = compile_validator(element)
    except ValidatorSyntaxError as error:
        raise ConfigError(f"{path}: tool {tool_id}: {error}", file=str(path)) from None
    return Tool(tool_id, root.get("version", "1.0.0"), path, command_validator, configs)
