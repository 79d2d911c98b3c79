"""Public mode: a client's batch options cannot decide what runs around the validated command.

Attack (issue 8, b/f): public mode validated the command line and environment, but the
submit's ``submit_native_specification`` still reached ``sbatch``. Its option grammar keeps
lwr's own options (script, output, working directory), yet ``--export=ALL,BASH_ENV=FILE`` is an
allowed form: the job script is bash, which sources ``BASH_ENV`` before anything else, so a
script the client uploaded as an input ran as lwr's account before the validated tool (and
``--container``, HTCondor's ``docker_image`` or a DRMAA native specification can do as much).
Against a real public lwr whose manager is the real Slurm.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cluster.conftest import slurm  # noqa: F401
from public_tools import CAT_PY, CAT_TOOL, write_toolbox

from http_helpers import Http
from server import TOKEN, LwrServer


@pytest.fixture
def public_slurm(slurm):  # noqa: F811
    base = Path("/tmp/lwr-cluster-tests")
    base.mkdir(mode=0o755, exist_ok=True)
    directory = Path(
        subprocess.check_output(["mktemp", "-d", str(base / "public.XXXXXX")], text=True).strip()
    )
    directory.chmod(0o755)
    toolbox = write_toolbox(directory / "config", {"cat": CAT_TOOL})
    server = LwrServer(
        directory / "server",
        app_options={"private_token": TOKEN, "tool_config_files": str(toolbox)},
        job_managers_ini="[manager:_default_]\ntype = queued_cli\njob_plugin = Slurm\nmin_polling_interval = 0.25\n",
    )
    server.start()
    yield server, directory
    server.stop()
    subprocess.run(["rm", "-rf", str(directory)], check=False)


@pytest.mark.parametrize(
    "specification",
    ["--export=ALL,BASH_ENV={evil}", "--export=BASH_ENV={evil}", "--export-file={evil}"],
)
def test_client_batch_options_are_refused_in_public_mode(public_slurm, specification):
    server, directory = public_slurm
    marker = directory / "pwned"
    http = Http(server.url, TOKEN)
    config = http.setup("opt", tool_id="cat1")
    assert http.upload("opt", "cat.py", CAT_PY, "tool").status == 200
    assert http.upload("opt", "in.txt", b"data\n").status == 200
    assert http.upload("opt", "evil.sh", f"echo ran > {marker}\nBASH_ENV={marker}\n".encode()).status == 200
    evil = f"{config['inputs_directory']}/evil.sh"
    command = (
        f"python3 {config['tools_directory']}/cat.py {config['inputs_directory']}/in.txt "
        f"{config['outputs_directory']}/out.txt"
    )
    params = json.dumps({"submit_native_specification": specification.format(evil=evil)})
    reply = http.submit("opt", command, params=params)
    if reply.status == 200:
        http.wait_complete("opt", timeout=120)
    assert not marker.exists(), f"{specification}: the client's script ran before the validated command"
    assert reply.status == 403 and reply.json()["code"] == "forbidden", reply


def test_validated_jobs_still_run_on_slurm(public_slurm):
    server, _directory = public_slurm
    http = Http(server.url, TOKEN)
    config = http.setup("fine", tool_id="cat1")
    assert http.upload("fine", "cat.py", CAT_PY, "tool").status == 200
    assert http.upload("fine", "in.txt", b"data\n").status == 200
    command = (
        f"python3 {config['tools_directory']}/cat.py {config['inputs_directory']}/in.txt "
        f"{config['outputs_directory']}/out.txt"
    )
    assert http.submit("fine", command).status == 200
    assert http.wait_complete("fine", timeout=120)["status"] == "complete"
    assert http.request("GET", "/jobs/fine/files", {"name": "out.txt"}).body == b"data\n"
