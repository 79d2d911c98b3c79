"""The one client over the transport contract: capabilities decide, in one place, what is refused."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lwr.client.client import LwrClient, open_client
from lwr.client.errors import UnsupportedOperation
from lwr.client.http import BodySource, Progress
from lwr.client.transports.amqp import AmqpTransport
from lwr.client.transports.base import Capabilities, Transport
from lwr.client.transports.rest import RestTransport
from lwr.client.wire import JobConfig, LaunchRequest

NOTHING = Capabilities(
    uploads=False,
    downloads=False,
    copy=False,
    input_cache=False,
    status_polling=False,
    clean=False,
    server_side_staging=False,
    queued=False,
)


class Recording(Transport):
    """A transport that records the calls it is asked to carry and can carry none of the optional ones."""

    capabilities = NOTHING

    def __init__(self) -> None:
        self.calls: list[str] = []

    @property
    def description(self) -> str:
        return "recording"

    def healthz(self, timeout: float | None = None) -> dict[str, Any]:
        self.calls.append("healthz")
        return {}

    def setup(self, job_id: str, *, tool_id: str | None, tool_version: str | None) -> JobConfig:
        self.calls.append("setup")
        return JobConfig(job_id=job_id, raw={})

    def upload(
        self, job_id: str, name: str, file_type: str, source: BodySource, *, progress: Progress | None
    ) -> str:
        self.calls.append("upload")
        return name

    def submit(self, job_id: str, request: LaunchRequest) -> None:
        self.calls.append("submit")

    def wait(
        self,
        job_id: str,
        *,
        timeout: float,
        interval: float,
        max_interval: float,
        on_status: Callable[[str], None] | None,
    ) -> dict[str, Any]:
        self.calls.append("wait")
        return {"status": "complete"}

    def cancel(self, job_id: str) -> None:
        self.calls.append("cancel")


REFUSED: dict[str, Callable[[LwrClient], object]] = {
    "status": lambda c: c.status("1"),
    "clean": lambda c: c.clean("1"),
    "download": lambda c: c.download("1", "out", "output", "/tmp/never"),
    "copy_out": lambda c: c.copy_out("1", "out", "output", "/tmp/never"),
    "copy_in": lambda c: c.copy_in("1", "/tmp/never", "in", "input"),
    "file_path": lambda c: c.file_path("1", "in", "input"),
    "upload_cached": lambda c: c.upload_cached("1", "in", "input", "token"),
    "cache_required": lambda c: c.cache_required("/x"),
    "cache_status": lambda c: c.cache_status("/x"),
    "cache_insert": lambda c: c.cache_insert("/x"),
}


@pytest.mark.parametrize("call", sorted(REFUSED))
def test_a_missing_capability_is_refused_by_the_client_before_the_transport_sees_it(call: str) -> None:
    transport = Recording()
    with pytest.raises(UnsupportedOperation, match="needs lwr's HTTP API"):
        REFUSED[call](LwrClient(transport))
    assert transport.calls == []


def test_the_contract_calls_reach_the_transport() -> None:
    transport = Recording()
    client = LwrClient(transport)
    client.healthz()
    client.setup("1")
    client.upload("1", "in", "input", b"contents")
    client.submit("1", LaunchRequest(command_line="true"))
    client.wait("1")
    client.cancel("1")
    assert transport.calls == ["healthz", "setup", "upload", "submit", "wait", "cancel"]


def test_each_transport_declares_what_it_carries() -> None:
    assert RestTransport.capabilities == Capabilities(
        uploads=True,
        downloads=True,
        copy=True,
        input_cache=True,
        status_polling=True,
        clean=True,
        server_side_staging=False,
        queued=False,
    )
    assert AmqpTransport.capabilities == Capabilities(
        uploads=False,
        downloads=False,
        copy=False,
        input_cache=False,
        status_polling=False,
        clean=False,
        server_side_staging=True,
        queued=True,
    )


def test_open_client_picks_the_transport_from_the_options() -> None:
    with open_client(url="http://127.0.0.1:9/", manager="gpu") as client:
        assert isinstance(client.transport, RestTransport)
        assert client.description == "http://127.0.0.1:9/managers/gpu/"
    with pytest.raises(ValueError, match="files endpoint"):
        open_client(amqp_url="amqp://guest:guest@127.0.0.1:5672/")
    with pytest.raises(ValueError, match="url= or amqp_url="):
        open_client()


def test_no_module_of_the_client_asks_a_client_or_transport_its_type() -> None:
    names = {"LwrClient", "RestTransport", "AmqpTransport", "Transport", "HttpTransport"}
    offenders = []
    for path in Path("lwr/client").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance":
                classes = node.args[1]
                for name in ast.walk(classes):
                    if isinstance(name, ast.Name) and name.id in names:
                        offenders.append(f"{path}:{node.lineno}")
    assert offenders == []
