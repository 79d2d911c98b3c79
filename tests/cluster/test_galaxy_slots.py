"""GALAXY_SLOTS and Galaxy's job metrics from a REAL Slurm allocation: a real lwr with a Slurm
manager, driven over HTTP as Galaxy's Pulsar runner drives it (``submit_native_specification``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from http_helpers import Http

pytestmark = pytest.mark.usefixtures("slurm")


def test_cpus_per_task_becomes_galaxy_slots(make_server):
    server = make_server(
        job_managers_ini="[manager:slurm]\ntype = queued_cli\njob_plugin = Slurm\n"
        "min_polling_interval = 0.25\n"
    )
    http = Http(server.url + "managers/slurm/")
    for job_id, specification, slots in [("slots2", "--cpus-per-task=2", "2"), ("slots1", "", "1")]:
        http.setup(job_id)
        params = json.dumps({"submit_native_specification": specification} if specification else {})
        reply = http.submit(
            job_id, 'echo "$GALAXY_SLOTS ${SLURM_JOB_ID:+slurm}"; echo "$GALAXY_MEMORY_MB" >&2', params=params
        )
        assert reply.status == 200, reply.body
        status = http.wait_complete(job_id, timeout=120)
        assert (status["status"], status["returncode"]) == ("complete", 0), status
        assert status["stdout"] == f"{slots} slurm\n", status
        # the core job-metrics plugin recorded the same slots for Galaxy to collect
        metadata = Path(status["metadata_directory"])
        assert (metadata / "__instrument_core_galaxy_slots").read_text() == f"{slots}\n"


def test_grid_engine_nslots_becomes_galaxy_slots(make_server, monkeypatch):
    from .conftest import DRMAA_TUNABLES, SGE_ENV

    for name, value in {**SGE_ENV, "GLIBC_TUNABLES": DRMAA_TUNABLES}.items():
        monkeypatch.setenv(name, value)  # what local_env.sh sets for the server in production
    server = make_server(
        job_managers_ini="[manager:sge]\ntype = queued_drmaa\nnative_specification = -l h_rt=600\n"
        "min_polling_interval = 0.25\n"
    )
    http = Http(server.url + "managers/sge/")
    http.setup("sge-slots")
    assert (
        http.submit("sge-slots", 'echo "$GALAXY_SLOTS $NSLOTS ${GALAXY_SLOTS_CONFIGURED:-unset}"').status
        == 200
    )
    status = http.wait_complete("sge-slots", timeout=120)
    assert (status["status"], status["stdout"]) == ("complete", "1 1 1\n"), status
