"""Galaxy's job environment on a real lwr: remote dependency resolution, job metrics, touch_outputs,
Galaxy's Python, TMPDIR and GALAXY_SLOTS, driven over HTTP as Galaxy's Pulsar runner drives it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from http_helpers import Http

LMOD = "/usr/share/lmod/lmod/libexec/lmod"  # Debian's lmod (.ci/backends.sh installs it)


def description(*requirements: tuple[str, str | None]) -> str:
    """``dependencies_description`` as Galaxy's runner builds and sends it."""
    from galaxy.tool_util.deps.dependencies import DependenciesDescription
    from galaxy.tool_util.deps.requirements import ToolRequirement, ToolRequirements

    tool_requirements = ToolRequirements(
        [ToolRequirement(name=name, version=version, type="package") for name, version in requirements]
    )
    return json.dumps(DependenciesDescription(tool_requirements, []).to_dict())


def run(http: Http, job_id: str, command: str, **params: str) -> dict:
    http.setup(job_id)
    reply = http.submit(job_id, command, **params)
    assert reply.status == 200, reply.body
    return http.wait_complete(job_id)


def galaxy_package(root: Path, name: str, version: str, output: str) -> None:
    """A real galaxy_packages layout: NAME/VERSION/env.sh putting NAME/VERSION/bin on PATH."""
    bin_dir = root / name / version / "bin"
    bin_dir.mkdir(parents=True)
    tool = bin_dir / name
    tool.write_text(f"#!/bin/sh\necho {output}\n")
    tool.chmod(0o755)
    (root / name / version / "env.sh").write_text(f'PATH="{bin_dir}:$PATH"; export PATH\n')


def test_galaxy_packages_resolved_and_unresolved_reported(make_server, tmp_path):
    deps = tmp_path / "deps"
    galaxy_package(deps, "mytool", "1.0", "mytool-one")
    galaxy_package(deps, "mytool", "2.0", "mytool-two")
    server = make_server(app_options={"tool_dependency_dir": str(deps)})
    http = Http(server.url)

    status = run(http, "pkg1", "mytool", dependencies_description=description(("mytool", "2.0")))
    assert (status["returncode"], status["stdout"]) == (0, "mytool-two\n"), status
    assert "not resolved" not in status["job_stderr"]

    status = run(
        http,
        "pkg2",
        "echo ran; command -v mytool || echo no-mytool",
        dependencies_description=description(("mytool", "1.0"), ("nosuchtool", "9.9")),
    )
    assert status["stdout"].splitlines() == ["ran", str(deps / "mytool/1.0/bin/mytool")], status
    assert "lwr: requirement nosuchtool 9.9 was not resolved" in status["job_stderr"], status
    assert "nosuchtool" not in status["stderr"]  # the tool's own stderr stays the tool's


def test_no_dependency_dir_reports_every_requirement(lwr_server):
    status = run(
        Http(lwr_server.url), "nodeps", "echo ran", dependencies_description=description(("bwa", "0.7"))
    )
    assert status["stdout"] == "ran\n"
    assert (
        "lwr: requirement bwa 0.7 was not resolved: this server has no tool_dependency_dir"
        in status["job_stderr"]
    )


def test_bad_dependencies_description_is_a_400(lwr_server):
    http = Http(lwr_server.url)
    http.setup("baddeps")
    reply = http.submit("baddeps", "true", dependencies_description=json.dumps({"requirements": "bwa"}))
    assert reply.status == 400 and "requirements" in reply.json()["error"]


def test_lmod_environment_modules(make_server, tmp_path):
    assert os.access(LMOD, os.X_OK), "Debian's lmod is not installed (bash .ci/backends.sh installs it)"
    modules = tmp_path / "modulefiles"
    (modules / "mymod").mkdir(parents=True)
    (modules / "mymod" / "2.0.lua").write_text('setenv("MYMOD_VERSION", "2.0-from-lmod")\n')
    resolvers = tmp_path / "dependency_resolvers_conf.xml"
    resolvers.write_text(
        f'<dependency_resolvers>\n  <lmod lmodexec="{LMOD}" modulepath="{modules}"/>\n'
        "</dependency_resolvers>\n"
    )
    server = make_server(
        app_options={
            "dependency_resolvers_config_file": str(resolvers),
            "tool_dependency_dir": str(tmp_path / "deps"),
        }
    )
    http = Http(server.url)
    status = run(
        http,
        "mod1",
        'echo "v=$MYMOD_VERSION"',
        dependencies_description=description(("mymod", "2.0"), ("mymod", "3.0")),
    )
    assert status["stdout"] == "v=2.0-from-lmod\n", status
    assert "lwr: requirement mymod 3.0 was not resolved" in status["job_stderr"]


def test_broken_resolvers_file_stops_lwr_naming_it(make_server, tmp_path):
    resolvers = tmp_path / "resolvers.xml"
    resolvers.write_text("<dependency_resolvers><no_such_resolver/></dependency_resolvers>")
    server = make_server(app_options={"dependency_resolvers_config_file": str(resolvers)}, wait=False)
    assert server.process.wait(120) == 2  # a configuration error, however long Galaxy's import takes
    log = server.log_text()
    assert (
        "configuration error" in log and "dependency_resolvers_config_file" in log and str(resolvers) in log
    ), log


def test_core_job_metrics_in_the_metadata_directory(lwr_server):
    status = run(Http(lwr_server.url), "metrics1", "true")
    metadata = Path(status["metadata_directory"])
    assert {
        "__instrument_core_galaxy_slots",
        "__instrument_core_epoch_start",
        "__instrument_core_epoch_end",
    } <= set(status["metadata_directory_contents"]), status
    assert (metadata / "__instrument_core_galaxy_slots").read_text() == "1\n"
    start = int((metadata / "__instrument_core_epoch_start").read_text())
    end = int((metadata / "__instrument_core_epoch_end").read_text())
    assert 0 < start <= end
    from galaxy.job_metrics import JobMetrics  # Galaxy's own collector reads what lwr left

    collected = JobMetrics().default_job_instrumenter.collect_properties("metrics1", str(metadata))
    assert collected["core"]["galaxy_slots"] == 1 and collected["core"]["runtime_seconds"] >= 0


def test_job_metrics_config_file_and_none(make_server, tmp_path):
    conf = tmp_path / "job_metrics_conf.xml"
    conf.write_text("<job_metrics>\n  <core/>\n  <hostname/>\n</job_metrics>\n")
    server = make_server("withconf", app_options={"job_metrics_config_file": str(conf)})
    status = run(Http(server.url), "metrics2", "true")
    assert "__instrument_hostname_hostname" in status["metadata_directory_contents"], status
    server = make_server("without", app_options={"job_metrics_config_file": "none"})
    status = run(Http(server.url), "metrics3", "true")
    assert not [name for name in status["metadata_directory_contents"] if name.startswith("__instrument")]


def test_touch_outputs_and_tmp_dir(lwr_server):
    http = Http(lwr_server.url)
    config = http.setup("touch1")
    command = (
        'ls ../outputs; echo "$TMPDIR|$TMP|$TEMP|$_GALAXY_JOB_TMP_DIR"; test -d "$TMPDIR"; '
        'python3 -c "import tempfile; print(tempfile.gettempdir())"'
    )
    reply = http.submit("touch1", command, submit_extras=json.dumps({"touch_outputs": ["a.dat", "b.dat"]}))
    assert reply.status == 200, reply.body
    status = http.wait_complete("touch1")
    tmp = os.path.join(config["job_directory"], "tmp")
    assert status["stdout"].splitlines() == ["a.dat", "b.dat", f"{tmp}|{tmp}|{tmp}|{tmp}", tmp], status
    assert status["returncode"] == 0
    http.setup("touch2")
    reply = http.submit("touch2", "true", submit_extras=json.dumps({"touch_outputs": ["../../escape"]}))
    assert reply.status in (400, 403), reply.body


def test_admin_tmp_dir_galaxy_slots_and_destination_env(make_server, tmp_path, monkeypatch):
    monkeypatch.setenv("LWR_TEST_SCRATCH", str(tmp_path / "scratch"))  # the job's (inherited) environment
    server = make_server(
        app_options={"tmp_dir": "$LWR_TEST_SCRATCH/jobtmp"},
        job_managers_ini="[manager:_default_]\ntype = queued_python\ngalaxy_slots = 3\n",
    )
    http = Http(server.url)
    # the shell word expands where the job runs
    status = run(http, "tmpdir1", 'echo "$TMPDIR $TEMP $GALAXY_SLOTS"; test -d "$TMPDIR"')
    scratch = tmp_path / "scratch" / "jobtmp"
    assert (status["stdout"], status["returncode"]) == (f"{scratch} {scratch} 3\n", 0), status
    # what Galaxy sends explicitly (a destination's <env id="TMPDIR">, GALAXY_SLOTS) wins
    env = json.dumps([{"name": "GALAXY_SLOTS", "value": "7"}, {"name": "TMPDIR", "value": "/tmp/dest"}])
    status = run(http, "slots1", 'echo "$GALAXY_SLOTS $TMPDIR"', env=env)
    assert status["stdout"] == "7 /tmp/dest\n"


def test_galaxy_home_announced_and_galaxy_python_preserved(make_server, tmp_path):
    home = tmp_path / "galaxy"
    (home / "lib").mkdir(parents=True)
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    shutil.copy("/bin/true", venv / "bin" / "python")
    (venv / "bin" / "activate").write_text(
        f'VIRTUAL_ENV="{venv}"; PATH="{venv}/bin:$PATH"; export VIRTUAL_ENV PATH\n'
    )
    server = make_server(app_options={"galaxy_home": str(home), "galaxy_virtual_env": str(venv)})
    http = Http(server.url)
    config = http.setup("gx1", preserve_galaxy_python_environment="True")
    assert config["system_properties"]["galaxy_home"] == str(home)
    assert config["system_properties"]["galaxy_virtual_env"] == str(venv)
    assert http.submit("gx1", 'echo "$VIRTUAL_ENV|${PYTHONPATH%%:*}"').status == 200
    assert http.wait_complete("gx1")["stdout"] == f"{venv}|{home}/lib\n"
    # without the flag the tool runs in a plain environment; Galaxy's metadata snippet brings Galaxy back
    http.setup("gx2")
    metadata_snippet = (
        'echo "before=$VIRTUAL_ENV"; [ "$GALAXY_VIRTUAL_ENV" = "None" ] && '
        'GALAXY_VIRTUAL_ENV="$_GALAXY_VIRTUAL_ENV"; _galaxy_setup_environment True; '
        'echo "after=$VIRTUAL_ENV|${PYTHONPATH%%:*}"'
    )
    assert http.submit("gx2", metadata_snippet).status == 200
    assert http.wait_complete("gx2")["stdout"] == f"before=\nafter={venv}|{home}/lib\n"


def test_a_resolver_that_breaks_refuses_the_job_saying_why(make_server, tmp_path):
    resolvers = tmp_path / "dependency_resolvers_conf.xml"
    resolvers.write_text(
        f'<dependency_resolvers><lmod lmodexec="{tmp_path}/no-lmod" modulepath="{tmp_path}"/>'
        "</dependency_resolvers>\n"
    )
    server = make_server(app_options={"dependency_resolvers_config_file": str(resolvers)})
    http = Http(server.url)
    http.setup("broken1")
    reply = http.submit("broken1", "true", dependencies_description=description(("mymod", "2.0")))
    assert reply.status == 500, reply.body
    error = reply.json()["error"]
    assert "resolving the requirements mymod 2.0 failed" in error and "no-lmod" in error, error


#: Pulsar's own client check with its remote-dependency variant: the client sends requirement
#: dep1 1.1 (Galaxy's DependenciesDescription) and expects the job to see MOO=moo_override.
CHECK_WITH_REQUIREMENT = """
import sys
from types import SimpleNamespace
from pulsar.client.test import check
check.run(SimpleNamespace(url=sys.argv[1], private_token=None, job_id="dep-check", test_requirement=True,
                          test_env=True, suppress_output=True, cleanup=True, test_errors=False,
                          explicit_tool_declarations=False, legacy_galaxy_json=False))
print("checked")
"""


def test_pulsar_client_check_with_a_remotely_resolved_requirement(make_server, tmp_path):
    deps = tmp_path / "deps"
    (deps / "dep1" / "1.1").mkdir(parents=True)
    (deps / "dep1" / "1.1" / "env.sh").write_text("MOO=moo_override; export MOO\n")
    server = make_server(app_options={"tool_dependency_dir": str(deps)})
    result = subprocess.run(
        [sys.executable, "-c", CHECK_WITH_REQUIREMENT, server.url],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0 and "checked" in result.stdout, (
        result.stdout + result.stderr + server.log_text()
    )
