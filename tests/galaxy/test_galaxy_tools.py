"""Galaxy's stock Pulsar runners run our tools through lwr, and through Pulsar 0.16.0 in the same test.

Each test checks one case (a tool over HTTP, AMQP or to Slurm) on both servers with the same
expectations: a failure on Pulsar means the test is wrong, a failure on lwr only means lwr is.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest
from galaxy_cases import BACKENDS, CASES, Case
from galaxy_session import INPUT_TEXT, PACKAGE_OUTPUT, GalaxySession, Run

VERSION_FALLBACK = "does not support dataset collector descriptions"


def finished_job(session: GalaxySession, run: Run) -> dict[str, Any]:
    """The run's Galaxy job once final; a failure names the backend and shows the job and server logs."""
    job = session.api.wait_for_job(run.job_id)
    assert job["state"] == "ok", (
        f"{run.backend}: {run.case.id}: job {job['state']}: exit code {job.get('exit_code')}\n"
        f"stdout: {job.get('tool_stdout')}\nstderr: {job.get('tool_stderr')}\n"
        f"job messages: {job.get('job_messages')}\n{session.server_log(run)}")
    return job


def output_text(session: GalaxySession, run: Run, name: str = "output") -> str:
    outputs = {output["output_name"]: output["id"] for output in run.reply["outputs"]}
    return session.api.dataset_text(outputs[name])


def check_plain(session: GalaxySession, run: Run, job: dict[str, Any]) -> None:
    assert output_text(session, run) == INPUT_TEXT.upper()


def check_configfile(session: GalaxySession, run: Run, job: dict[str, Any]) -> None:
    lines = output_text(session, run).splitlines()
    assert lines[0] == "lines: 3", lines
    # the config file named the input by a path that exists where the job ran
    assert lines[1].startswith("input: ") and lines[1] != "input: ", lines


def check_from_work_dir(session: GalaxySession, run: Run, job: dict[str, Any]) -> None:
    assert output_text(session, run) == "".join(sorted(INPUT_TEXT.splitlines(keepends=True), reverse=True))


def check_stdio(session: GalaxySession, run: Run, job: dict[str, Any]) -> None:
    assert "lwr says hello on stdout" in job["tool_stdout"], job
    assert "lwr says hello on stderr" in job["tool_stderr"], job
    assert output_text(session, run).strip() == str(len(INPUT_TEXT.encode()))


def check_discover(session: GalaxySession, run: Run, job: dict[str, Any]) -> None:
    collections = run.reply["output_collections"]
    assert len(collections) == 1, run.reply
    elements = session.api.collection_elements(collections[0]["id"])
    assert sorted(elements) == ["line_a", "line_b", "line_c"], elements
    texts = [session.api.dataset_text(elements[name]) for name in sorted(elements)]
    assert texts == INPUT_TEXT.splitlines(keepends=True)


def check_requirement(session: GalaxySession, run: Run, job: dict[str, Any]) -> None:
    assert output_text(session, run).strip() == PACKAGE_OUTPUT, job


def check_environment(session: GalaxySession, run: Run, job: dict[str, Any]) -> None:
    values = dict(line.split("=", 1) for line in output_text(session, run).splitlines())
    expected_slots = "2" if run.case.transport == "slurm" else "1"
    assert values["GALAXY_SLOTS"] == expected_slots, values
    assert values["TMPDIR"] != "unset", values
    if run.backend == "lwr":
        # Beyond Pulsar (whose jobs inherit the server's TMPDIR): the job's own tmp directory,
        # beside its working directory (lwr's tmp_dir setting unset).
        job_directory = values["PWD"].rsplit("/", 1)[0]
        assert values["TMPDIR"] == f"{job_directory}/tmp", values


CHECKS: dict[str, Callable[[GalaxySession, Run, dict[str, Any]], None]] = {
    "plain": check_plain,
    "configfile": check_configfile,
    "from_work_dir": check_from_work_dir,
    "stdio": check_stdio,
    "discover": check_discover,
    "requirement": check_requirement,
    "environment": check_environment,
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_tool(galaxy_session: GalaxySession, case: Case, backend: str) -> None:
    run = galaxy_session.run(case, backend)
    job = finished_job(galaxy_session, run)
    CHECKS[case.tool](galaxy_session, run, job)


METRICS_CASES = [Case("plain", "http"), Case("plain", "amqp"), Case("environment", "slurm")]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", METRICS_CASES, ids=[case.id for case in METRICS_CASES])
def test_job_metrics(galaxy_session: GalaxySession, case: Case, backend: str) -> None:
    """Galaxy's /api/jobs/{id}/metrics shows the core plugin's figures for a remote job."""
    run = galaxy_session.run(case, backend)
    finished_job(galaxy_session, run)
    metrics = galaxy_session.api.job_metrics(run.job_id)
    assert "core.runtime_seconds" in metrics, metrics
    assert float(metrics["core.runtime_seconds"]) >= 0, metrics
    assert int(float(metrics["core.galaxy_slots"])) == (2 if case.transport == "slurm" else 1), metrics


def test_galaxy_logs_no_version_fallback(galaxy_session: GalaxySession) -> None:
    """Galaxy believes every server's pulsar_version: no legacy code path for any job."""
    for run in galaxy_session.runs.values():
        galaxy_session.api.wait_for_job(run.job_id)
    log = galaxy_session.galaxy.log_text()
    assert "pulsar_version is" in log   # the runner did log the versions it read
    fallbacks = [line for line in log.splitlines() if VERSION_FALLBACK in line or "pulsar_version is 0.6.0" in line]
    assert not fallbacks, "\n".join(fallbacks[:20])
