"""Galaxy's stock Pulsar runners run our tools through lwr, and through Pulsar 0.16.0 in the same test.

Every test checks one thing of one job on both servers with the same expectations: a failure
on Pulsar means the test is wrong, a failure on lwr only means lwr is. The jobs were all
submitted when the module's Galaxy started (galaxy_session.py); a test waits for its own.
"""

from __future__ import annotations

from typing import Any

import pytest
from galaxy_cases import BACKENDS, Case
from galaxy_session import INPUT_TEXT, PACKAGE_OUTPUT, GalaxySession, Run

VERSION_FALLBACK = "does not support dataset collector descriptions"
backends = pytest.mark.parametrize("backend", BACKENDS)
http_and_amqp = pytest.mark.parametrize("transport", ["http", "amqp"])


def finished(session: GalaxySession, tool: str, transport: str, backend: str) -> tuple[Run, dict[str, Any]]:
    """The run and its Galaxy job once final; a failure names the backend, with the job and server log."""
    run = session.run(Case(tool, transport), backend)
    job = session.api.wait_for_job(run.job_id)
    assert job["state"] == "ok", (
        f"{backend}: {tool} over {transport}: job {job['state']}: exit code {job.get('exit_code')}\n"
        f"stdout: {job.get('tool_stdout')}\nstderr: {job.get('tool_stderr')}\n"
        f"job messages: {job.get('job_messages')}\n{session.server_log(run)}"
    )
    return run, job


def output_text(session: GalaxySession, run: Run, name: str) -> str:
    outputs = {output["output_name"]: output["id"] for output in run.reply["outputs"]}
    return session.api.dataset_text(outputs[name])


@backends
@http_and_amqp
def test_plain_command(galaxy_session: GalaxySession, transport: str, backend: str) -> None:
    run, _ = finished(galaxy_session, "staging", transport, backend)
    assert output_text(galaxy_session, run, "upper") == INPUT_TEXT.upper()


@backends
@http_and_amqp
def test_configfile_naming_an_input(galaxy_session: GalaxySession, transport: str, backend: str) -> None:
    run, _ = finished(galaxy_session, "staging", transport, backend)
    lines = output_text(galaxy_session, run, "report").splitlines()
    assert lines[0] == "lines: 3", lines
    # Galaxy wrote the config file naming the input where the job ran: on the server, not in Galaxy
    staging = str(galaxy_session.servers[run.server].staging)
    assert lines[1].startswith(f"input: {staging}/"), (lines, staging)


@backends
@http_and_amqp
def test_output_from_the_working_directory(
    galaxy_session: GalaxySession, transport: str, backend: str
) -> None:
    run, _ = finished(galaxy_session, "staging", transport, backend)
    expected = "".join(sorted(INPUT_TEXT.splitlines(keepends=True), reverse=True))
    assert output_text(galaxy_session, run, "sorted") == expected


@backends
@http_and_amqp
def test_stdout_and_stderr(galaxy_session: GalaxySession, transport: str, backend: str) -> None:
    _, job = finished(galaxy_session, "staging", transport, backend)
    assert "lwr says hello on stdout" in job["tool_stdout"], job
    assert "lwr says hello on stderr" in job["tool_stderr"], job
    assert "lwr says hello on stderr" not in job["tool_stdout"], job


@backends
@http_and_amqp
def test_discovered_outputs(galaxy_session: GalaxySession, transport: str, backend: str) -> None:
    run, _ = finished(galaxy_session, "discover", transport, backend)
    collections = run.reply["output_collections"]
    assert len(collections) == 1, run.reply
    elements = galaxy_session.api.collection_elements(collections[0]["id"])
    assert sorted(elements) == ["line_a", "line_b", "line_c"], elements
    texts = [galaxy_session.api.dataset_text(elements[name]) for name in sorted(elements)]
    assert texts == INPUT_TEXT.splitlines(keepends=True)


@backends
@http_and_amqp
def test_package_requirement_resolved_remotely(
    galaxy_session: GalaxySession, transport: str, backend: str
) -> None:
    """Only the server's tool_dependency_dir has lwrtestpkg 1.0 (galaxy_packages layout)."""
    run, job = finished(galaxy_session, "requirement", transport, backend)
    assert output_text(galaxy_session, run, "output").strip() == PACKAGE_OUTPUT, job


@backends
@pytest.mark.parametrize("transport", ["http", "slurm"])
def test_job_environment(galaxy_session: GalaxySession, transport: str, backend: str) -> None:
    """GALAXY_SLOTS: 1 on a local queue, 2 on Slurm (submit_native_specification --cpus-per-task=2)."""
    run, _ = finished(galaxy_session, "environment", transport, backend)
    values = dict(line.split("=", 1) for line in output_text(galaxy_session, run, "output").splitlines())
    assert values["GALAXY_SLOTS"] == ("2" if transport == "slurm" else "1"), values
    assert values["TMPDIR"] != "unset", values
    if backend == "lwr":
        # Beyond Pulsar (whose jobs inherit the server's TMPDIR): the job's own tmp directory,
        # beside its working directory (lwr's tmp_dir setting unset).
        job_directory = values["PWD"].rsplit("/", 1)[0]
        assert values["TMPDIR"] == f"{job_directory}/tmp", values


@backends
@pytest.mark.parametrize(
    "tool, transport", [("staging", "http"), ("staging", "amqp"), ("environment", "slurm")]
)
def test_job_metrics(galaxy_session: GalaxySession, tool: str, transport: str, backend: str) -> None:
    """Galaxy's /api/jobs/{id}/metrics shows the core plugin's figures for a remote job."""
    run, _ = finished(galaxy_session, tool, transport, backend)
    metrics = galaxy_session.api.job_metrics(run.job_id)
    assert "core.runtime_seconds" in metrics, metrics
    assert float(metrics["core.runtime_seconds"]) >= 0, metrics
    assert int(float(metrics["core.galaxy_slots"])) == (2 if transport == "slurm" else 1), metrics


def test_galaxy_logs_no_version_fallback(galaxy_session: GalaxySession) -> None:
    """Galaxy believes every server's pulsar_version: no legacy code path for any job."""
    for run in galaxy_session.runs.values():
        galaxy_session.api.wait_for_job(run.job_id)
    log = galaxy_session.galaxy.log_text()
    assert "pulsar_version is" in log  # the runners did log the versions they read
    fallbacks = [
        line for line in log.splitlines() if VERSION_FALLBACK in line or "pulsar_version is 0.6.0" in line
    ]
    assert not fallbacks, "\n".join(fallbacks[:20])
