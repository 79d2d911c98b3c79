"""What the client tests know of a server under test (shared by conftest and the tests)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TOKEN = "client-test-token"
SECOND_MANAGER = "two"


@dataclass
class Target:
    """A running server as the client tests see it."""

    kind: str
    url: str
    token: str
    #: lwr sends and checks SHA-256 digests; Pulsar ignores them.
    checks_integrity: bool
    staging: Path
