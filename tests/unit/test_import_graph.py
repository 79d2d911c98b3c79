"""The packages' imports point one way: the protocol and the core depend on nothing above them.

Layers, lowest first: ``lwr`` (version), ``lwr.errors`` and ``lwr.digests`` (hashing); ``lwr.protocol`` (pure wire rules);
``lwr.core`` (job states, store, directory, job service, manager contract); ``lwr.managers``;
``lwr.config`` (with its leaf ``lwr.config_amqp``); the transports and server-side staging; ``lwr.app`` and ``lwr.cli`` at the top.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import lwr

PACKAGE_ROOT = Path(lwr.__file__).resolve().parent

#: What each lower package may import (besides itself).
BASE = {"lwr", "lwr.errors", "lwr.digests"}
ALLOWED = {
    "lwr.digests": {"lwr", "lwr.errors"},
    "lwr.protocol": {"lwr", "lwr.errors"},
    "lwr.core": BASE | {"lwr.protocol"},
    "lwr.managers": BASE | {"lwr.protocol", "lwr.core"},
    "lwr.config": BASE | {"lwr.protocol", "lwr.core", "lwr.managers", "lwr.config_amqp"},
    #: The typed amqp_* settings: a leaf of the config layer, read by the transport.
    "lwr.config_amqp": BASE,
}


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def package_graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE_ROOT.rglob("*.py"):
        relative = path.relative_to(PACKAGE_ROOT.parent).with_suffix("")
        module = ".".join(relative.parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                if name == "lwr" or name.startswith("lwr."):
                    source, target = _package(module), _package(name)
                    if source != target:
                        edges[source].add(target)
    return edges


def test_lower_packages_import_nothing_above_them():
    graph = package_graph()
    upward = {source: sorted(graph.get(source, set()) - allowed) for source, allowed in ALLOWED.items()}
    assert {source: targets for source, targets in upward.items() if targets} == {}


def test_the_package_graph_has_no_cycle():
    graph = package_graph()
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> None:
        if node in done:
            return
        assert node not in visiting, f"import cycle: {' -> '.join([*visiting[visiting.index(node) :], node])}"
        visiting.append(node)
        for target in sorted(graph.get(node, set())):
            visit(target)
        visiting.pop()
        done.add(node)

    for node in sorted(graph):
        visit(node)
