"""Public mode: a client's requirements cannot name a script of its own for lwr to source.

Attack (issue 8, b): public mode checks the command line, environment and files, but a submit
also carries ``dependencies_description``, which Galaxy's resolvers turn into activation
commands placed before the command. ``galaxy_packages`` (a resolver of what is installed, the
kind SECURITY.md recommends for public mode) sources ``tool_dependency_dir/NAME/VERSION/env.sh``
with NAME joined unchecked: an absolute NAME, or one with ``..``, names the job's own inputs
directory, where the client had uploaded ``evil/1.0/env.sh``; lwr sourced it, as lwr's account,
before the validated command. The same holds for the tool shed resolvers' owner, repository and
revision, and for a spec's URI. Against a real public lwr with Galaxy's default resolvers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from public_tools import CAT_PY, CAT_TOOL, write_toolbox

from http_helpers import Http
from server import TOKEN


@pytest.fixture
def public(make_server, tmp_path: Path):
    toolbox = write_toolbox(tmp_path / "config", {"cat": CAT_TOOL})
    (tmp_path / "dependencies").mkdir()
    return make_server(
        "public-requirements",
        app_options={
            "private_token": TOKEN,
            "tool_config_files": str(toolbox),
            "tool_dependency_dir": str(tmp_path / "dependencies"),
        },
    )


def hostile_requirements(inputs: str, dependencies: Path) -> dict[str, dict]:
    """Descriptions whose resolution would source ``<inputs>/evil/1.0/env.sh``."""
    climb = "/".join([".."] * len(dependencies.parts)) + inputs
    repository = {"name": "repo", "owner": "owner", "installed_changeset_revision": "abc", "tool_shed": "ts"}
    return {
        "absolute name": {"requirements": [{"name": f"{inputs}/evil", "version": "1.0", "type": "package"}]},
        "name climbing out": {
            "requirements": [{"name": f"{climb}/evil", "version": "1.0", "type": "package"}]
        },
        "version climbing out": {
            "requirements": [{"name": "evil", "version": f"../{climb}/evil/1.0", "type": "package"}]
        },
        "spec naming a path": {
            "requirements": [
                {
                    "name": "cat",
                    "version": "1.0",
                    "type": "package",
                    "specs": [{"uri": "https://anaconda.org/bioconda/..", "version": "1.0"}],
                }
            ]
        },
        "tool shed owner": {
            "requirements": [{"name": "evil", "version": "1.0", "type": "package"}],
            "installed_tool_dependencies": [
                {
                    "name": "evil",
                    "version": "1.0",
                    "type": "package",
                    "tool_shed_repository": {**repository, "owner": f"../{climb}"},
                }
            ],
        },
        "shell words in a name": {
            "requirements": [{"name": "x; touch pwned", "version": "1.0", "type": "package"}]
        },
    }


@pytest.mark.parametrize(
    "form",
    [
        "absolute name",
        "name climbing out",
        "version climbing out",
        "spec naming a path",
        "tool shed owner",
        "shell words in a name",
    ],
)
def test_requirements_cannot_name_the_clients_own_script(public, tmp_path, form):
    http = Http(public.url, TOKEN)
    marker = tmp_path / "pwned"
    config = http.setup("req", tool_id="cat1")
    assert http.upload("req", "cat.py", CAT_PY, "tool").status == 200
    assert http.upload("req", "in.txt", b"data\n").status == 200
    env_sh = f"echo ran > {marker}\n".encode()
    assert http.upload("req", "evil/1.0/env.sh", env_sh).status == 200
    description = hostile_requirements(config["inputs_directory"], tmp_path / "dependencies")[form]
    command = (
        f"python3 {config['tools_directory']}/cat.py {config['inputs_directory']}/in.txt "
        f"{config['outputs_directory']}/out.txt"
    )
    reply = http.submit("req", command, dependencies_description=json.dumps(description))
    if reply.status == 200:
        http.wait_complete("req")
    assert not marker.exists(), f"{form}: lwr sourced the client's own script"
    assert reply.status == 400 and reply.json()["code"] == "bad_request", reply


def test_plain_requirements_still_resolve(public, tmp_path):
    """A requirement the server has (galaxy_packages layout) is activated as before."""
    package = tmp_path / "dependencies" / "lwrpkg" / "1.0"
    package.mkdir(parents=True)
    (package / "env.sh").write_text("export LWRPKG=activated\n")
    http = Http(public.url, TOKEN)
    config = http.setup("plain", tool_id="cat1")
    assert http.upload("plain", "cat.py", CAT_PY, "tool").status == 200
    assert http.upload("plain", "in.txt", b"data\n").status == 200
    command = (
        f"python3 {config['tools_directory']}/cat.py {config['inputs_directory']}/in.txt "
        f"{config['outputs_directory']}/out.txt"
    )
    description = {"requirements": [{"name": "lwrpkg", "version": "1.0", "type": "package"}]}
    assert http.submit("plain", command, dependencies_description=json.dumps(description)).status == 200
    assert http.wait_complete("plain")["status"] == "complete"
    script = (public.staging / "_default_" / "plain" / "lwr" / "job.sh").read_text()
    assert str(package / "env.sh") in script
