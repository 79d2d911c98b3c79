"""Which of our tools (tests/galaxy/tools/) run over which transport, and their per-destination copies.

Galaxy maps a tool to one destination, so every (tool, destination) pair gets a copy of the
tool's XML whose id names the destination (``lwr_plain__lwr_http``), mapped in job_conf.yml's
``tools:`` section. Each case runs on lwr and on Pulsar: the Pulsar run shows that the test
itself (tool, configuration, expectation) is right.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from galaxy_job_conf import destination

TOOLS = Path(__file__).resolve().parent / "tools"
BACKENDS = ("lwr", "pulsar")


@dataclass(frozen=True)
class Case:
    """One job per backend: a tool of tools/ over one transport (several tests may check it)."""

    tool: str  # file stem in tools/, tool id lwr_<tool>
    transport: str  # http, amqp or slurm

    @property
    def id(self) -> str:
        return f"{self.tool}-{self.transport}"

    def destination(self, backend: str) -> str:
        return destination(backend, self.transport)

    def tool_id(self, backend: str) -> str:
        return f"lwr_{self.tool}__{self.destination(backend)}"


CASES = [
    Case(tool, transport)
    for tool, transports in (
        ("staging", ("http", "amqp")),
        ("discover", ("http", "amqp")),
        ("requirement", ("http", "amqp")),
        # the job environment does not depend on the transport, but on the manager
        ("environment", ("http", "slurm")),
    )
    for transport in transports
]


def write_tool_copies(directory: Path) -> tuple[list[Path], dict[str, str]]:
    """Every case's tool once per backend; returns the files and ``{tool id: destination}``."""
    directory.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    mapping: dict[str, str] = {}
    for case in CASES:
        source = (TOOLS / f"{case.tool}.xml").read_text()
        for backend in BACKENDS:
            tool_id, target = case.tool_id(backend), case.destination(backend)
            text, count = re.subn(
                r'<tool id="lwr_[a-z_]+" name="([^"]*)"',
                lambda match: f'<tool id="{tool_id}" name="{match.group(1)} ({target})"',  # noqa: B023
                source,
                count=1,
            )
            assert count == 1, f"{case.tool}.xml: no <tool id=... name=...> to rename"
            path = directory / f"{tool_id}.xml"
            path.write_text(text)
            files.append(path)
            mapping[tool_id] = case.destination(backend)
    return files, mapping
