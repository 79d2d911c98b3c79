"""Public mode: the GALAXY_* variables a client may export cannot be the ones lwr's script acts on.

Attack (issue 8, b): public mode lets a client export plain ``GALAXY_*`` values (Galaxy's job
resources), but lwr's job script itself reads some of them: with the setup parameter
``preserve_galaxy_python_environment`` (also the client's), the script's
``_galaxy_setup_environment`` sources ``$GALAXY_VIRTUAL_ENV/bin/activate`` and puts
``$GALAXY_LIB`` first on PYTHONPATH, after the client's exports. A client that uploaded
``venv/bin/activate`` (or a ``shutil.py``) and exported ``GALAXY_VIRTUAL_ENV`` (or
``GALAXY_LIB``) at its inputs had its code run as lwr's account before, or inside, the
validated tool. Against a real public lwr.
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
    return make_server("public-env", app_options={"private_token": TOKEN, "tool_config_files": str(toolbox)})


@pytest.mark.parametrize(
    ("variable", "planted", "where"),
    [
        ("GALAXY_VIRTUAL_ENV", "venv/bin/activate", "venv"),
        ("_GALAXY_VIRTUAL_ENV", "venv/bin/activate", "venv"),
        ("GALAXY_LIB", "lib/shutil.py", "lib"),
    ],
)
def test_variables_of_lwrs_script_are_refused(public, tmp_path, variable, planted, where):
    http = Http(public.url, TOKEN)
    marker = tmp_path / "pwned"
    reply = http.request(
        "POST", "/jobs", {"job_id": "env", "tool_id": "cat1", "preserve_galaxy_python_environment": "true"}
    )
    config = reply.json()
    assert http.upload("env", "cat.py", CAT_PY, "tool").status == 200
    assert http.upload("env", "in.txt", b"data\n").status == 200
    code = (
        f"open({str(marker)!r}, 'w').write('ran')\n" if planted.endswith(".py") else f"echo ran > {marker}\n"
    )
    assert http.upload("env", planted, code.encode()).status == 200
    command = (
        f"python3 {config['tools_directory']}/cat.py {config['inputs_directory']}/in.txt "
        f"{config['outputs_directory']}/out.txt"
    )
    env = [{"name": variable, "value": f"{config['inputs_directory']}/{where}"}]
    reply = http.submit("env", command, env=json.dumps(env))
    if reply.status == 200:
        http.wait_complete("env")
    assert not marker.exists(), f"{variable}: the client's code ran"
    assert reply.status == 403 and reply.json()["code"] == "forbidden", reply


def test_resource_variables_still_pass(public):
    http = Http(public.url, TOKEN)
    config = http.setup("res", tool_id="cat1")
    assert http.upload("res", "cat.py", CAT_PY, "tool").status == 200
    assert http.upload("res", "in.txt", b"data\n").status == 200
    command = (
        f"python3 {config['tools_directory']}/cat.py {config['inputs_directory']}/in.txt "
        f"{config['outputs_directory']}/out.txt"
    )
    env = [{"name": "GALAXY_SLOTS", "value": "2"}, {"name": "GALAXY_MEMORY_MB", "value": "1024"}]
    assert http.submit("res", command, env=json.dumps(env)).status == 200
    assert http.wait_complete("res")["status"] == "complete"
