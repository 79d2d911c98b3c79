"""Fuzz every HTTP route, as docs/openapi.yaml describes it, against a real lwr process.

schemathesis generates requests from the OpenAPI description (valid and invalid arguments,
bodies, headers); a hypothesis test then aims hostile names and JSON at a job that exists.
Whatever arrives: no 5xx, every refusal is a JSON ``{"error": ...}``, no traceback in the
server's log, the server still answers, and its memory stays bounded. The example counts keep
the whole module well under a minute.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import hypothesis.strategies as st
import psutil
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings

from lwr.web.admin import AdminApi
from lwr.web.app import LwrWebApp
from lwr.web.status_page import StatusPage

from server import TOKEN, LwrServer

SPEC = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
schema = schemathesis.openapi.from_path(str(SPEC))
#: Resident memory the server may reach while fuzzed (it starts at about 60 MB).
MEMORY_BOUND = 400 * 1024 * 1024
FUZZ_SETTINGS = settings(
    max_examples=25, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    directory = tmp_path_factory.mktemp("fuzz")
    server = LwrServer(
        directory=directory / "lwr",
        app_options={
            "private_token": TOKEN,
            "assign_ids": "uuid",
            "file_cache_dir": str(directory / "cache"),
            "max_upload_size": "1M",
        },
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def session():
    with requests.Session() as http:
        yield http


def check_reply(response: requests.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:2000])
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body, dict) and isinstance(body.get("error"), str), response.text[:2000]


@schema.parametrize()
@FUZZ_SETTINGS
def test_every_route_survives_generated_requests(case, fuzzed, session):
    params = (
        {} if case.operation.path in ("/healthz", "/readyz", "/openapi.yaml") else {"private_token": TOKEN}
    )
    check_reply(case.call(base_url=fuzzed.url.rstrip("/"), session=session, params=params, timeout=30))


HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "..",
            "../x",
            "/etc/passwd",
            "a/../../b",
            "a\\..\\b",
            "%2e%2e/x",
            "sub",
            "sub/",
            "sub/a/b",
            ".",
            "",
            " ",
            "\u202e",
            "a" * 300,
            "CON",
            "x\ny",
            "\ufffd",
        ]
    ),
)
JSON_TEXT = st.one_of(
    st.text(max_size=30),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
        max_leaves=12,
    ).map(json.dumps),
    st.integers(1, 3000).map(lambda depth: "[" * depth + "]" * depth),
)


@FUZZ_SETTINGS
@given(
    name=HOSTILE_TEXT,
    file_type=st.sampled_from(
        ["input", "tool", "config", "workdir", "metadata", "jobdir", "output", "nonsense", ""]
    ),
    body=st.binary(max_size=256),
)
def test_hostile_file_names_on_a_real_job(fuzzed, session, name, file_type, body):
    config = session.post(
        fuzzed.url + "jobs", params={"job_id": "f", "private_token": TOKEN}, timeout=30
    ).json()
    job = fuzzed.url + f"jobs/{config['job_id']}/files"
    params = {"name": name, "type": file_type, "private_token": TOKEN}
    check_reply(session.post(job, params=params, data=body, timeout=30))
    check_reply(session.get(job, params=params, timeout=30))
    check_reply(session.get(job + "/path", params=params, timeout=30))


@FUZZ_SETTINGS
@given(
    arguments=st.dictionaries(
        st.sampled_from(
            [
                "params",
                "setup_params",
                "env",
                "remote_staging",
                "submit_extras",
                "dependencies_description",
                "dynamic_file_sources",
            ]
        ),
        JSON_TEXT,
        max_size=4,
    )
)
def test_hostile_submit_arguments_on_a_real_job(fuzzed, session, arguments):
    config = session.post(
        fuzzed.url + "jobs", params={"job_id": "s", "private_token": TOKEN}, timeout=30
    ).json()
    job = fuzzed.url + f"jobs/{config['job_id']}"
    check_reply(
        session.post(
            job + "/submit", params={"command_line": "true", "private_token": TOKEN, **arguments}, timeout=30
        )
    )
    check_reply(session.get(job + "/status", params={"private_token": TOKEN}, timeout=30))
    check_reply(session.delete(job, params={"private_token": TOKEN}, timeout=30))


def test_the_server_survived_the_fuzzing(fuzzed, session):
    """Runs last in this module: alive, no traceback logged, memory bounded."""
    assert session.get(fuzzed.url + "healthz", timeout=30).status_code == 200
    assert fuzzed.process is not None and fuzzed.process.poll() is None
    log = fuzzed.log_text()
    assert "Traceback" not in log and "unexpected error" not in log, log[-5000:]
    assert psutil.Process(fuzzed.process.pid).memory_info().rss < MEMORY_BOUND


def route_table() -> set[tuple[str, str]]:
    """Every (method, path) the web app serves: its own routes and its extensions' (admin, status page)."""
    app = LwrWebApp.__new__(LwrWebApp)
    app.routes = []
    app._add_routes()
    patterns = [(method, pattern.pattern) for method, pattern, _handler in app.routes]
    for extension in (AdminApi(None, None), StatusPage(None, None)):  # type: ignore[arg-type]
        patterns += [(method, f"^{pattern}/?$") for method, pattern, _handler, _admin in extension.routes()]
    routes = set()
    for method, pattern in patterns:
        path = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", pattern).removeprefix("^").removesuffix("/?$")
        routes.add((method, path.replace("\\", "")))
    return routes


def test_openapi_describes_every_route_and_only_those():
    described = {
        (method.upper(), path) for path, item in schema.raw_schema["paths"].items() for method in item
    }
    assert described == route_table()


def test_a_running_lwr_serves_its_description(fuzzed):
    reply = requests.get(fuzzed.url + "openapi.yaml", timeout=30)
    assert reply.status_code == 200 and reply.content == SPEC.read_bytes()
