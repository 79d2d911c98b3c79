"""Shared fixtures: real lwr server processes on free loopback ports."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from server import TOKEN, LwrServer  # noqa: E402


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., LwrServer]]:
    """Factory: ``make_server(app_options=..., job_managers_ini=...)`` starts a server; all are stopped after."""
    started: list[LwrServer] = []

    def make(name: str = "lwr", wait: bool = True, **kwargs: object) -> LwrServer:
        server = LwrServer(directory=tmp_path / name, **kwargs)  # type: ignore[arg-type]
        started.append(server)
        return server.start(wait=wait)

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def lwr_server(make_server: Callable[..., LwrServer]) -> LwrServer:
    """A plain lwr on the embedded defaults (one queued_python manager, no token)."""
    return make_server()


@pytest.fixture
def token_server(make_server: Callable[..., LwrServer]) -> LwrServer:
    """An lwr requiring a private token, with a second named manager running 2 jobs at once."""
    return make_server(
        app_options={"private_token": TOKEN, "max_upload_size": "64M"},
        job_managers_ini="[manager:_default_]\ntype = queued_python\nmax_concurrent_jobs = 1\n\n"
        "[manager:two]\ntype = queued_python\nmax_concurrent_jobs = 2\n",
    )
