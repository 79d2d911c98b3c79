"""The Galaxy tests' one session: a real Galaxy, lwr and Pulsar servers, every case submitted."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from galaxy_session import GalaxySession, start_session  # noqa: E402


@pytest.fixture(scope="module")
def galaxy_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GalaxySession]:
    """Started once: test_galaxy_tools.py is its only user, so it stops when that module ends
    rather than idling through the rest of the suite."""
    with start_session(tmp_path_factory.mktemp("galaxy")) as session:
        yield session
