"""Job plugins and the HTCondor manager on batch-system output (see fixtures/README.md: the Slurm
files are captured from the real Slurm; Torque, PBS Pro, LSF and HTCondor files are written in
their documented formats, because none of those systems can run on the test machines)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from lwr.core.states import JobState
from lwr.errors import BadRequest, ConfigError
from lwr.managers.base import LaunchSpec
from lwr.managers.cli.job_plugins import JOB_PLUGINS, job_plugin_name
from lwr.managers.cli.job_plugins.base import BatchSubmission
from lwr.managers.cli.job_plugins.lsf import LsfPlugin
from lwr.managers.cli.job_plugins.slurm import SlurmPlugin
from lwr.managers.cli.job_plugins.torque import PbsProPlugin, TorquePlugin
from lwr.managers.cli.shell_plugins.ssh import SecureShell, SshTarget
from lwr.managers.condor import CondorManager, parse_history, parse_queue, parse_submit
from lwr.managers.polling import BatchStatus, batch_job_name, checked_specification
from lwr.protocol.failure import FailureClass

FIXTURES = Path(__file__).parent / "fixtures"
Q, R, C = JobState.QUEUED, JobState.RUNNING, JobState.COMPLETE


def fixture(name: str) -> str:
    return "".join(
        line for line in (FIXTURES / name).read_text().splitlines(keepends=True) if not line.startswith("#")
    )


def states(found: dict[str, BatchStatus]) -> dict[str, tuple[JobState, str | None]]:
    return {key: (value.state, value.reason) for key, value in found.items()}


def classes(found: dict[str, BatchStatus]) -> dict[str, str | None]:
    return {key: value.failure_class.value if value.failure_class else None for key, value in found.items()}


REQUEST = BatchSubmission(
    script="/jobs/a b/lwr/job.sh",
    job_name="lwr_a",
    working_directory="/jobs/a b",
    stdout_path="/jobs/a b/lwr/job_stdout",
    stderr_path="/jobs/a b/lwr/job_stderr",
    native_args=["-p", "short", "--mem=4G"],
)


# --- Slurm (captured) ----------------------------------------------------------------------------
def test_slurm_submit_command_and_ids() -> None:
    assert SlurmPlugin().submit_argv(REQUEST) == [
        "sbatch",
        "--parsable",
        "-J",
        "lwr_a",
        "-D",
        "/jobs/a b",
        "-o",
        "/jobs/a b/lwr/job_stdout",
        "-e",
        "/jobs/a b/lwr/job_stderr",
        "-p",
        "short",
        "--mem=4G",
        "/jobs/a b/lwr/job.sh",
    ]
    parsable, verbose = fixture("slurm_sbatch.txt").splitlines()
    assert SlurmPlugin().parse_submit(parsable) == "8"
    assert SlurmPlugin().parse_submit(verbose) == "9"
    assert SlurmPlugin().parse_submit("42;cluster2\n") == "42"
    with pytest.raises(ValueError):
        SlurmPlugin().parse_submit("sbatch: error: Batch job submission failed\n")


def test_slurm_one_status_command_for_all_jobs() -> None:
    assert SlurmPlugin().status_argv(["1", "2", "3"]) == [
        "squeue",
        "-h",
        "--states=all",
        "-o",
        "%i|%T|%r|%j",
        "-j",
        "1,2,3",
    ]
    assert SlurmPlugin().history_argv(["1", "2"]) == [
        "sacct",
        "-n",
        "-X",
        "-P",
        "-o",
        "JobID,State,ExitCode",
        "-j",
        "1,2",
    ]


def test_slurm_active_states() -> None:
    assert states(SlurmPlugin().parse_status(fixture("slurm_squeue_active.txt"))) == {
        "7": (Q, None),
        "5": (Q, None),
        "6": (R, None),
    }


def test_slurm_final_states_with_reasons() -> None:
    found = states(SlurmPlugin().parse_status(fixture("slurm_squeue_final.txt")))
    assert found == {
        "1": (JobState.FAILED, "slurm: FAILED (failed), NonZeroExitCode"),
        "2": (JobState.CANCELLED, "slurm: CANCELLED (cancelled)"),
        "3": (C, None),
        "4": (JobState.FAILED, "slurm: TIMEOUT (time limit reached), TimeLimit"),
        "5": (JobState.CANCELLED, "slurm: CANCELLED (cancelled), JobHeldUser"),
    }
    assert "99999" not in found  # squeue leaves unknown ids out
    assert classes(SlurmPlugin().parse_status(fixture("slurm_squeue_final.txt"))) == {
        "1": "job_script_failed",
        "2": "cancelled_by_system",
        "3": None,
        "4": "walltime_reached",
        "5": "cancelled_by_system",
    }


def test_slurm_accounting_records() -> None:
    found = states(SlurmPlugin().parse_history(fixture("slurm_sacct.txt")))
    assert found["1"] == (JobState.FAILED, "slurm: FAILED (failed), exit code 3:0")
    assert found["2"] == (JobState.CANCELLED, "slurm: CANCELLED (cancelled)")
    assert found["3"] == (C, None)
    assert found["4"] == (JobState.FAILED, "slurm: TIMEOUT (time limit reached)")
    assert classes(SlurmPlugin().parse_history(fixture("slurm_sacct.txt")))["4"] == "walltime_reached"
    assert SlurmPlugin().history_unavailable("sacct: error: Slurm accounting storage is disabled\n")
    # squeue -j with only ids a restarted controller lost fails outright; sacct is asked instead
    assert SlurmPlugin().ignorable_status_error("slurm_load_jobs error: Invalid job id specified\n")


@pytest.mark.parametrize(
    ("state", "expected", "failure_class"),
    [
        # states the real Slurm here could not be driven into (no cgroup memory limit, one healthy node)
        ("OUT_OF_MEMORY", (JobState.FAILED, "slurm: OUT_OF_MEMORY (out of memory)"), "memory_limit_reached"),
        ("NODE_FAIL", (JobState.FAILED, "slurm: NODE_FAIL (node failure)"), "node_failure"),
        ("PREEMPTED", (JobState.FAILED, "slurm: PREEMPTED (preempted)"), "preempted"),
        ("BOOT_FAIL", (JobState.FAILED, "slurm: BOOT_FAIL (node boot failure)"), "node_failure"),
        ("DEADLINE", (JobState.FAILED, "slurm: DEADLINE (deadline reached)"), "walltime_reached"),
        ("TIMEOUT", (JobState.FAILED, "slurm: TIMEOUT (time limit reached)"), "walltime_reached"),
        (
            "REVOKED",
            (JobState.FAILED, "slurm: REVOKED (revoked by a sibling cluster)"),
            "cancelled_by_system",
        ),
        ("REQUEUED", (Q, None), None),
        ("SUSPENDED", (R, None), None),
        ("COMPLETING", (R, None), None),
        ("CONFIGURING", (Q, None), None),
        ("COMPLETED", (C, None), None),
    ],
)
def test_slurm_state_table(
    state: str, expected: tuple[JobState, str | None], failure_class: str | None
) -> None:
    found = SlurmPlugin().parse_status(f"12|{state}|None\n")
    assert states(found) == {"12": expected}
    assert classes(found) == {"12": failure_class}


def test_slurm_status_carries_the_job_name() -> None:
    """squeue's name tells a reused batch id (after a controller restart) from the job lwr
    submitted; sacct's is not asked (slurmdbd says "allocation" until its record is complete)."""
    queue = SlurmPlugin().parse_status("7|RUNNING|None|lwr_job-1\n8|PENDING|Resources\n")
    assert (queue["7"].name, queue["8"].name) == ("lwr_job-1", None)
    history = SlurmPlugin().parse_history("7|COMPLETED|0:0\n")
    assert history["7"].name is None and history["7"].state is JobState.COMPLETE


def test_slurm_tells_a_job_held_after_a_failed_launch_from_one_waiting() -> None:
    """Held after a failed launch, a job never runs; waiting for resources, it will."""
    found = SlurmPlugin().parse_status(
        "7|PENDING|launch failed requeued held\n8|PENDING|Resources\n9|PENDING|JobHeldUser\n"
    )
    assert {key: status.held_after_failed_launch for key, status in found.items()} == {
        "7": True,
        "8": False,
        "9": False,
    }
    assert states(found) == {
        "7": (JobState.QUEUED, "launch failed requeued held"),
        "8": (JobState.QUEUED, None),
        "9": (JobState.QUEUED, None),
    }


# --- Torque / PBS Pro / LSF (documented formats, not captured) -------------------------------------
def test_torque_submit_and_xml_status() -> None:
    argv = TorquePlugin().submit_argv(REQUEST)
    assert argv[:3] == ["qsub", "-N", "lwr_a"] and argv[-1] == REQUEST.script and "-S" in argv
    assert TorquePlugin().parse_submit("101.torque.example.org\n") == "101.torque.example.org"
    assert TorquePlugin().status_argv(["1.s", "2.s"]) == ["qstat", "-x", "1.s", "2.s"]
    found = states(TorquePlugin().parse_status((FIXTURES / "torque_qstat.xml").read_text()))
    assert {key.split(".")[0]: value[0] for key, value in found.items()} == {
        "101": Q,
        "102": Q,
        "103": R,
        "104": C,
        "105": JobState.FAILED,
        "106": JobState.FAILED,
        "107": JobState.CANCELLED,
        "108": R,
    }
    assert "signal 15" in str(found["105.torque.example.org"][1])
    assert (
        classes(TorquePlugin().parse_status((FIXTURES / "torque_qstat.xml").read_text()))[
            "106.torque.example.org"
        ]
        == "launch_failed"
    )
    assert "could not run" in str(found["106.torque.example.org"][1])
    assert TorquePlugin().ignorable_status_error("qstat: Unknown Job Id 999.torque.example.org\n")
    assert TorquePlugin().cancel_argv("101.s") == ["qdel", "101.s"]


def test_pbs_pro_json_status() -> None:
    assert PbsProPlugin().status_argv(["1"]) == ["qstat", "-x", "-f", "-F", "json", "1"]
    found = states(PbsProPlugin().parse_status((FIXTURES / "pbs_qstat.json").read_text()))
    assert {key.split(".")[0]: value[0] for key, value in found.items()} == {
        "201": Q,
        "202": R,
        "203": C,
        "204": JobState.FAILED,
        "205": JobState.CANCELLED,
    }
    assert "signal 9" in str(found["204.pbs.example.org"][1])


@pytest.mark.parametrize(
    ("exit_status", "state", "failure_class"),
    [
        ("0", C, None),
        (None, JobState.CANCELLED, None),
        ("3", JobState.FAILED, "job_script_failed"),
        ("-29", JobState.FAILED, "walltime_reached"),
        ("-28", JobState.FAILED, "walltime_reached"),
        ("-27", JobState.FAILED, "memory_limit_reached"),
        ("-26", JobState.FAILED, "memory_limit_reached"),
        ("-1", JobState.FAILED, "launch_failed"),
        ("271", JobState.FAILED, "unknown"),
        ("267", JobState.FAILED, "job_script_failed"),
    ],
)
def test_pbs_exit_status_table(exit_status: str | None, state: JobState, failure_class: str | None) -> None:
    from lwr.managers.cli.job_plugins.torque import finished_status

    status = finished_status("pbs", exit_status)
    assert status.state is state
    assert (status.failure_class.value if status.failure_class else None) == failure_class


def test_lsf_submit_and_status() -> None:
    argv = LsfPlugin().submit_argv(REQUEST)
    assert argv[:3] == ["bsub", "-J", "lwr_a"] and argv[-2:] == ["/bin/bash", REQUEST.script]
    assert LsfPlugin().parse_submit("Job <301> is submitted to default queue <normal>.\n") == "301"
    assert LsfPlugin().status_argv(["1", "2"])[:3] == ["bjobs", "-a", "-noheader"]
    found = states(LsfPlugin().parse_status((FIXTURES / "lsf_bjobs.txt").read_text()))
    assert found == {
        "301": (Q, None),
        "302": (Q, None),
        "303": (R, None),
        "304": (C, None),
        "305": (JobState.FAILED, "lsf: EXIT (exit code 1)"),
        "306": (JobState.CANCELLED, "lsf: Killed by owner"),
        "307": (JobState.FAILED, "lsf: EXIT (TERM_RUNLIMIT: job killed after reaching LSF run time limit)"),
        "308": (
            JobState.FAILED,
            "lsf: EXIT (TERM_MEMLIMIT: job killed after reaching LSF memory usage limit)",
        ),
        "309": (R, None),
    }
    assert classes(LsfPlugin().parse_status((FIXTURES / "lsf_bjobs.txt").read_text())) == {
        "301": None,
        "302": None,
        "303": None,
        "304": None,
        "305": "job_script_failed",
        "306": None,
        "307": "walltime_reached",
        "308": "memory_limit_reached",
        "309": None,
    }
    assert classes(
        LsfPlugin().parse_status(
            "310|ZOMBI|-|-\n311|EXIT|143|TERM_PREEMPT: job killed after "
            "preemption\n312|EXIT|130|TERM_ADMIN: job killed by root\n"
        )
    ) == {"310": "node_failure", "311": "preempted", "312": "cancelled_by_system"}
    assert LsfPlugin().ignorable_status_error("Job <999> is not found\n")


def test_every_plugin_name_is_accepted_and_others_refused() -> None:
    for name in JOB_PLUGINS:
        assert job_plugin_name(f" {name} ") == name
    with pytest.raises(ValueError):
        job_plugin_name("PBSPro")


# --- HTCondor (documented formats, not captured) --------------------------------------------------
def test_condor_submit_output_and_status() -> None:
    assert parse_submit(fixture("condor_submit_terse.txt")) == "401.0"
    assert parse_submit(fixture("condor_submit_verbose.txt")) == "402.0"
    assert states(parse_queue(fixture("condor_q.txt"))) == {
        "401.0": (Q, None),
        "402.0": (R, None),
        "404.0": (R, None),
        "405.0": (R, None),
        # held over its memory limit: it will never run as submitted, so it fails (resubmittable)
        "403.0": (
            JobState.FAILED,
            "condor: held (Error from slot1@worker1.example.org: Job has gone over memory "
            "limit of 2048 megabytes.)",
        ),
    }
    assert states(parse_history(fixture("condor_history.txt"))) == {
        "406.0": (C, None),
        "407.0": (C, None),
        "408.0": (JobState.CANCELLED, "condor: removed (via condor_rm (by user galaxy))"),
    }
    assert classes(parse_history(fixture("condor_history.txt")))["408.0"] == "cancelled_by_system"


@pytest.mark.parametrize(
    ("hold_reason", "state", "failure_class"),
    [
        (
            "Error from slot1@worker1.example.org: Job has gone over memory limit of 2048 megabytes.",
            JobState.FAILED,
            "memory_limit_reached",
        ),
        (
            "The job exceeded allowed execute duration of 1:00:00 (periodic hold: wall time limit)",
            JobState.FAILED,
            "walltime_reached",
        ),
        ("Job has gone over its disk usage limit (RequestDisk)", JobState.FAILED, "disk_full"),
        ("via condor_hold (by user galaxy)", Q, None),  # an administrator may release it
        ("Error from slot1: Failed to transfer files", Q, None),
    ],
)
def test_condor_hold_reasons(hold_reason: str, state: JobState, failure_class: str | None) -> None:
    found = parse_queue(f"410.0 5 {hold_reason}\n")
    assert found["410.0"].state is state
    assert classes(found) == {"410.0": failure_class}


def test_condor_submit_description_passes_submit_keys_through(tmp_path: Path) -> None:
    from lwr.core.job_directory import JobDirectory

    directory = JobDirectory(tmp_path / "job 1")
    directory.create()
    settings = {
        "submit_universe": "vanilla",
        "submit_request_memory": "4096",
        "submit_requirements": 'OpSys == "LINUX"',
        "submit_rank": "Memory",
        "submit_+ProjectName": '"galaxy"',
        "min_polling_interval": 1.0,
    }
    manager = CondorManager("condor", settings, listener=None)  # type: ignore[arg-type]
    spec = LaunchSpec(
        "job1",
        directory,
        str(directory.internal_file("job.sh")),
        submit_params={"request_memory": "8192", "submit_request_cpus": "2"},
    )
    text = manager.submit_description(spec)
    lines = text.splitlines()
    assert "universe = vanilla" in lines
    assert "request_memory = 8192" in lines  # the client's value wins
    assert "request_cpus = 2" in lines
    assert 'requirements = OpSys == "LINUX"' in lines
    assert "rank = Memory" in lines
    assert '+ProjectName = "galaxy"' in lines
    assert f"arguments = \"'{directory.internal_file('job.sh')}'\"" in lines
    assert lines[-1] == "queue 1"
    with pytest.raises(BadRequest):
        manager.validate(LaunchSpec("j", directory, "s", submit_params={"executable": "/bin/evil"}))
    with pytest.raises(BadRequest):
        manager.validate(LaunchSpec("j", directory, "s", submit_params={"request_memory": "1\nqueue 100"}))
    with pytest.raises(ConfigError, match="submit_log|log"):
        CondorManager("condor", {"submit_log": "/tmp/x"}, listener=None)  # type: ignore[arg-type]


# --- shared pieces --------------------------------------------------------------------------------
def test_secure_shell_quotes_every_argument_for_the_remote_shell() -> None:
    shell = SecureShell(SshTarget("cluster.example.org", "galaxy", 2222, "/keys/id", "/keys/known_hosts"))
    argv = shell.ssh_argv(["sbatch", "-J", "x; rm -rf ~", "/jobs/a b/job.sh"])
    assert (
        argv[0] == "ssh" and argv[argv.index("-p") + 1] == "2222" and argv[argv.index("-i") + 1] == "/keys/id"
    )
    assert "BatchMode=yes" in argv and "galaxy@cluster.example.org" in argv
    assert argv[-2] == "--"
    assert shlex.split(argv[-1]) == ["sbatch", "-J", "x; rm -rf ~", "/jobs/a b/job.sh"]


def test_native_specification_checks() -> None:
    assert checked_specification("  -p short --mem=4G ") == "-p short --mem=4G"
    assert checked_specification(None) == ""
    for bad in ("-p x\n#SBATCH -A y", "-p\x00x", 42, "x" * 5000):
        with pytest.raises(BadRequest):
            checked_specification(bad)


def test_batch_job_names_are_safe_everywhere() -> None:
    assert batch_job_name("abc-1.2_x") == "lwr_abc-1.2_x"
    long = batch_job_name("a" * 100)
    assert len(long) == 64 and long.startswith("lwr_" + "a" * 40)
    # Ids that share a prefix or differ only in rewritten characters never share a name.
    assert batch_job_name("a" * 100) != batch_job_name("a" * 99 + "b")
    assert batch_job_name("a:b") != batch_job_name("a;b")
    for job_id in ("a" * 100, "a:b", "x y"):
        assert re.fullmatch(r"lwr_[A-Za-z0-9_.-]+", batch_job_name(job_id))


# --- DRMAA states (the library's own names; the real SGE runs in test_drmaa.py) -------------------
def test_drmaa_state_mapping_and_reasons() -> None:
    from types import SimpleNamespace

    from lwr.managers.drmaa import drmaa_status

    assert drmaa_status("queued_active") == BatchStatus(Q)
    assert drmaa_status("user_on_hold") == BatchStatus(Q)
    assert drmaa_status("running") == BatchStatus(R)
    assert drmaa_status("user_suspended") == BatchStatus(R)
    assert drmaa_status("done") == BatchStatus(C)
    aborted = SimpleNamespace(wasAborted=True, hasSignal=False, hasExited=False)
    assert drmaa_status("failed", aborted).reason == "drmaa: job aborted (deleted, or it never ran)"
    killed = SimpleNamespace(wasAborted=False, hasSignal=True, terminatedSignal="SIGKILL", hasExited=False)
    assert drmaa_status("failed", killed) == BatchStatus(
        JobState.FAILED, "drmaa: killed by SIGKILL", FailureClass.UNKNOWN
    )
    assert drmaa_status("failed") == BatchStatus(JobState.FAILED, "drmaa: job failed", FailureClass.UNKNOWN)
    assert drmaa_status("failed", aborted).failure_class is FailureClass.CANCELLED_BY_SYSTEM
    xcpu = SimpleNamespace(wasAborted=False, hasSignal=True, terminatedSignal="SIGXCPU", hasExited=False)
    assert drmaa_status("failed", xcpu).failure_class is FailureClass.WALLTIME_REACHED
    segv = SimpleNamespace(wasAborted=False, hasSignal=True, terminatedSignal="SIGSEGV", hasExited=False)
    assert drmaa_status("failed", segv).failure_class is FailureClass.JOB_SCRIPT_FAILED
