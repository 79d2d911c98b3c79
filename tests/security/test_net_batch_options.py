"""Hostile per-job batch options: a client's native specification or Condor submit keys must
not replace lwr's job script or the settings lwr makes itself. The Slurm attacks run against
the real Slurm (tests/cluster fixtures); Torque, PBS, LSF and HTCondor cannot run here, so their
option checks are tested on the argument lists and submit descriptions lwr would run."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster.conftest import RecordingListener, make_job, shared_tmp, slurm  # noqa: F401, F811

from lwr.core.job_directory import JobDirectory
from lwr.errors import BadRequest, ConfigError
from lwr.managers.base import LaunchSpec
from lwr.managers.cli.job_plugins import JOB_PLUGINS
from lwr.managers.cli.manager import CliManager
from lwr.managers.condor import CondorManager


@pytest.fixture
def listener() -> RecordingListener:
    return RecordingListener()


@pytest.fixture
def slurm_manager(slurm, listener) -> Iterator[CliManager]:  # noqa: F811
    manager = CliManager(
        "slurm", {"job_plugin": "Slurm", "min_polling_interval": 0.25, "exit_code_grace": 2.0}, listener
    )
    manager.start()
    yield manager
    for job_id in manager.tracked_ids():
        manager.kill(job_id)
    manager.shutdown()


def slurm_attacks(tmp: Path) -> dict[str, tuple[str, Path]]:
    """Native specifications, each with the file whose appearance would show the harm."""
    evil = tmp / "evil.sh"
    evil.write_text(f"#!/bin/bash\necho replaced > {tmp / 'replaced'}\n")
    evil.chmod(0o755)
    return {
        "positional": (f"{evil}", tmp / "replaced"),
        "flag-then-positional": (f"-Q {evil}", tmp / "replaced"),
        "value-then-positional": (f"--partition=debug {evil}", tmp / "replaced"),
        "reserved-output": (f"-o {tmp / 'stolen-o'}", tmp / "stolen-o"),
        "abbreviated-output": (f"--outp={tmp / 'stolen-outp'}", tmp / "stolen-outp"),
        "reserved-error": (f"--ERROR={tmp / 'stolen-e'}", tmp / "stolen-e"),
        "cluster": (f"-Qo{tmp / 'stolen-cluster'}", tmp / "stolen-cluster"),
    }


@pytest.mark.parametrize(
    "form",
    [
        "positional",
        "flag-then-positional",
        "value-then-positional",
        "reserved-output",
        "abbreviated-output",
        "reserved-error",
        "cluster",
    ],
)
def test_slurm_native_specification_cannot_replace_lwr_settings(  # noqa: F811
    form,
    slurm_manager,
    listener,
    make_job,  # noqa: F811
    shared_tmp,  # noqa: F811
):
    specification, evidence = slurm_attacks(shared_tmp)[form]
    spec = make_job("echo mine", submit_params={"submit_native_specification": specification})
    refused = False
    try:
        slurm_manager.launch(spec)
    except BadRequest as error:
        refused = True
        assert "lwr" in error.message or "not an option" in error.message or "no value" in error.message
    if not refused:
        listener.wait_ended(spec.job_id, 120)
    assert not evidence.exists(), f"{specification!r} replaced lwr's script or its settings"
    assert refused, f"{specification!r} was submitted"


def test_slurm_allowed_forms_still_reach_slurm(slurm_manager, listener, make_job) -> None:  # noqa: F811
    spec = make_job(
        "echo fine", submit_params={"submit_native_specification": "-n 1 --time=5 --comment lwr-test -s"}
    )
    slurm_manager.launch(spec)
    state, reason = listener.wait_ended(spec.job_id, 120)
    assert state.value == "complete", reason
    assert spec.directory.exit_code() == 0


def test_admin_native_specification_is_checked_at_start_up(listener) -> None:
    with pytest.raises(ConfigError, match="native_specification"):
        CliManager(
            "slurm", {"job_plugin": "Slurm", "native_specification": "-p short /tmp/evil.sh"}, listener
        )


@pytest.mark.parametrize(
    ("plugin", "bad", "good"),
    [
        (
            "Torque",
            ["/tmp/evil.sh", "-V /tmp/evil.sh", "-d /tmp", "-o /x", "-F 'a b'", "-j oe", "-I", "--", "-Vo/x"],
            ["-l nodes=1:ppn=4 -q batch -V", "-l walltime=1:00:00 -W umask=077"],
        ),
        ("PBS", ["-- /bin/evil", "evil.sh", "-k oe", "-e /x"], ["-l select=1:ncpus=2 -q workq"]),
        (
            "LSF",
            ["/tmp/evil.sh", "-x /tmp/evil.sh", "-cwd /tmp", "-oo /x", "-eo /x", "-K", "-Is", "-Zs"],
            ["-q normal -n 4 -R 'rusage[mem=4000]' -x", "-W 10 -app galaxy"],
        ),
    ],
)
def test_other_batch_systems_keep_their_reserved_options(plugin, bad, good) -> None:
    grammar = JOB_PLUGINS[plugin].grammar
    for text in bad:
        with pytest.raises(BadRequest):
            grammar.check(shlex.split(text), "submit_native_specification")
    for text in good:
        assert grammar.check(shlex.split(text), "submit_native_specification") == shlex.split(text)


class RecordingShell:
    """Stands in for condor_submit (HTCondor cannot run here): records what would be submitted."""

    def __init__(self) -> None:
        self.descriptions: list[str] = []

    def run(self, argv: list[str], timeout: float = 60.0) -> Any:
        from lwr.managers.cli.shell_plugins.base import CommandResult

        if argv[0] == "condor_submit":
            self.descriptions.append(Path(argv[-1]).read_text())
            return CommandResult(0, "7.0 - 7.0\n", "")
        return CommandResult(0, "", "")

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    "key",
    [
        "submit_+Cmd",
        "+Cmd",
        "submit_MY.Cmd",
        "submit_+Iwd",
        "submit_+iwd",
        "+Args",
        "submit_+PreCmd",
        "submit_+PostCmd",
        "submit_+Out",
        "submit_+UserLog",
        "submit_+Environment",
        "submit_Executable",
        "submit_INITIALDIR",
        "submit_getenv",
        "submit_environment",
        "submit_transfer_output_remaps",
        "submit_+Owner",
    ],
)
def test_condor_reserved_settings_are_out_of_a_clients_reach(key, tmp_path, listener) -> None:
    directory = JobDirectory(tmp_path / "job")
    directory.create()
    shell = RecordingShell()
    manager = CondorManager("condor", {"min_polling_interval": 1.0}, listener, shell=shell)  # type: ignore[arg-type]
    spec = LaunchSpec(
        "j1", directory, str(directory.internal_file("job.sh")), submit_params={key: '"/tmp/evil.sh"'}
    )
    with pytest.raises(BadRequest):
        manager.validate(spec)
    with pytest.raises(BadRequest):
        manager.submit_description(spec)
    assert shell.descriptions == []


def test_condor_client_values_may_not_expand_macros(tmp_path, listener) -> None:
    directory = JobDirectory(tmp_path / "job")
    directory.create()
    manager = CondorManager("condor", {}, listener)  # type: ignore[arg-type]
    with pytest.raises(BadRequest):
        manager.validate(LaunchSpec("j", directory, "s", submit_params={"+ProjectName": "$ENV(HOME)"}))
    fine = LaunchSpec(
        "j", directory, "s", submit_params={"+ProjectName": '"galaxy"', "request_memory": "4096"}
    )
    manager.validate(fine)
    lines = manager.submit_description(fine).splitlines()
    assert '+ProjectName = "galaxy"' in lines and "request_memory = 4096" in lines
    assert lines.count("executable = /bin/bash") == 1
