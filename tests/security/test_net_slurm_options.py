"""Slurm options a client may not give: ones that hold lwr's submissions, or move its job to
another cluster than the one lwr polls and cancels on.

Attack (issue 8, b/f): ``--wait`` (``-W``) makes ``sbatch`` return only when the job ends, so a
client's job held one of lwr's few submit threads for its whole run (up to the command timeout,
then lwr judged the submission failed while the job ran on): four such jobs stopped every
tenant's submissions. ``--clusters`` (``-M``) submits to another cluster, while lwr's
``squeue`` and ``scancel`` address the default one, where the same number is another job: its
cancel would kill that job. ``--wait`` runs against the real Slurm; one Slurm here has no
second cluster, so ``--clusters`` is checked on the option grammar.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Iterator

import pytest
from cluster.conftest import RecordingListener, make_job, shared_tmp, slurm  # noqa: F401, F811

from lwr.errors import BadRequest
from lwr.managers.cli.job_plugins import JOB_PLUGINS
from lwr.managers.cli.manager import CliManager


@pytest.fixture
def listener() -> RecordingListener:
    return RecordingListener()


@pytest.fixture
def one_submit_thread(slurm, listener) -> Iterator[CliManager]:  # noqa: F811
    manager = CliManager(
        "slurm",
        {"job_plugin": "Slurm", "min_polling_interval": 0.25, "exit_code_grace": 2.0, "submit_threads": 1},
        listener,
    )
    manager.start()
    yield manager
    for job_id in manager.tracked_ids():
        manager.kill(job_id)
    manager.shutdown()


@pytest.mark.parametrize("option", ["--wait", "-W", "--wai"])
def test_a_clients_wait_cannot_hold_lwrs_submissions(option, one_submit_thread, listener, make_job):  # noqa: F811
    holder = make_job("sleep 20", submit_params={"submit_native_specification": option})
    other = make_job("echo other")
    try:
        one_submit_thread.launch(holder)
    except BadRequest:
        pass
    started = time.monotonic()
    one_submit_thread.launch(other)
    listener.wait_for(other.job_id, "submitted", 60)
    waited = time.monotonic() - started
    assert waited < 10, f"{option}: another job's submission waited {waited:.0f} s behind it"
    assert not listener.of(holder.job_id, "submitted"), f"{option} was submitted"


@pytest.mark.parametrize(
    "text", ["-M other", "-Mother", "--clusters=other", "--clusters other", "--clu=other"]
)
def test_another_cluster_is_refused(text):
    with pytest.raises(BadRequest):
        JOB_PLUGINS["Slurm"].grammar.check(shlex.split(text), "submit_native_specification")


def test_allowed_slurm_options_still_pass():
    text = "-n 1 --time=5 --comment lwr-test -p debug --mem=1G --wait-all-nodes=1"
    assert JOB_PLUGINS["Slurm"].grammar.check(shlex.split(text), "x") == shlex.split(text)
