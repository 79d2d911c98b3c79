"""queued_drmaa and queued_external_drmaa against a REAL Son of Grid Engine cell and its libdrmaa
(started by .ci/backends.sh); external jobs run as the real second user ``lwrjob``.

libdrmaa can only be loaded by a process started with the right environment (see
``DRMAA_TUNABLES``). When pytest itself was not, this module runs its own tests in a child
pytest that is, and reports that run as one test.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lwr.core import job_directory as layout
from lwr.core.states import JobState
from lwr.errors import BadRequest
from lwr.managers import manager_class
from lwr.managers.drmaa import QueuedDrmaaManager
from lwr.managers.external_drmaa import ExternalDrmaaManager

from .conftest import BACKENDS_HINT, DRMAA_TUNABLES, JOB_USER, REPO, SGE_ENV, RecordingListener

FAST = {"min_polling_interval": 0.25, "exit_code_grace": 2.0}
DRMAA_LOADABLE = DRMAA_TUNABLES in os.environ.get("GLIBC_TUNABLES", "") or "jemalloc" in os.environ.get(
    "LD_PRELOAD", ""
)


def test_sudoers_example_parses_for_a_real_install() -> None:
    rule = (REPO / "scripts" / "sudoers.example").read_text().replace("@LWR_ROOT@", str(REPO))
    result = subprocess.run(["visudo", "-c", "-f", "-"], input=rule, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_without_the_tunable_lwr_says_what_to_set() -> None:
    env = {key: value for key, value in os.environ.items() if key not in ("GLIBC_TUNABLES", "LD_PRELOAD")}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from lwr.managers.drmaa import QueuedDrmaaManager as M; M('sge', {}, None).start()",
        ],
        env={**env, **SGE_ENV},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert (
        "ManagerError" in result.stderr and "GLIBC_TUNABLES=glibc.rtld.optional_static_tls" in result.stderr
    )


if not DRMAA_LOADABLE:

    def test_drmaa_suite_in_a_child_process_with_the_drmaa_environment() -> None:
        env = {**os.environ, **SGE_ENV, "GLIBC_TUNABLES": DRMAA_TUNABLES}
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", __file__],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        print(result.stdout)
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
        assert " passed" in result.stdout and "skipped" not in result.stdout

else:

    @pytest.fixture(scope="module", autouse=True)
    def sge() -> None:
        for name, value in SGE_ENV.items():
            os.environ.setdefault(name, value)
        result = subprocess.run(["qstat", "-f"], capture_output=True, text=True)
        if result.returncode != 0 or "all.q@" not in result.stdout:
            pytest.fail(f"Grid Engine is not running ({result.stderr.strip()}); {BACKENDS_HINT}")

    @pytest.fixture
    def make_manager(listener: RecordingListener, helper_scripts) -> Iterator[Callable[..., Any]]:
        managers: list[QueuedDrmaaManager] = []

        def make(cls: type[QueuedDrmaaManager] = QueuedDrmaaManager, **settings: Any) -> Any:
            if cls is ExternalDrmaaManager:
                settings.setdefault("scripts_directory", str(helper_scripts))
            manager = cls("sge", {**FAST, **settings}, listener)
            manager.start()
            managers.append(manager)
            return manager

        yield make
        for manager in managers:
            for job_id in manager.tracked_ids():  # a failed test leaves no job holding a CPU
                manager.kill(job_id)
            manager.shutdown()

    def qacct(external_id: str) -> dict[str, str]:
        """Grid Engine's accounting record of a finished job (written a moment after its end)."""
        for _ in range(100):
            result = subprocess.run(["qacct", "-j", external_id], capture_output=True, text=True)
            if result.returncode == 0:
                pairs = (line.split(None, 1) for line in result.stdout.splitlines() if " " in line)
                return {key: value.strip() for key, value in pairs}
            time.sleep(0.1)
        raise AssertionError(f"qacct does not know job {external_id}")

    def test_registry_names_the_drmaa_managers() -> None:
        assert manager_class("queued_drmaa") is QueuedDrmaaManager
        assert manager_class("queued_external_drmaa") is ExternalDrmaaManager

    def test_job_runs_to_completion_with_its_exit_code(make_manager, make_job, listener) -> None:
        manager = make_manager()
        spec = make_job("echo hello from sge; exit 3")
        manager.launch(spec)
        external_id = str(listener.wait_for(spec.job_id, "submitted", 30))
        assert listener.wait_ended(spec.job_id, 60) == (JobState.COMPLETE, None)
        assert spec.directory.exit_code() == 3
        assert spec.directory.read_internal(layout.TOOL_STDOUT) == b"hello from sge\n"
        assert listener.of(spec.job_id, "running") == [None]
        assert qacct(external_id)["exit_status"] == "3"

    def test_native_specification_reaches_grid_engine(make_manager, make_job, listener) -> None:
        manager = make_manager(native_specification="-l h_rt=600")
        spec = make_job("echo ok", submit_params={"submit_native_specification": "-q no.such.queue"})
        manager.launch(spec)
        state, reason = listener.wait_ended(spec.job_id, 30)
        assert state is JobState.FAILED
        assert reason is not None and "no.such.queue" in reason

    def test_cancel_a_running_job(make_manager, make_job, listener) -> None:
        manager = make_manager()
        spec = make_job("sleep 300")
        manager.launch(spec)
        listener.wait_for(spec.job_id, "running", 30)
        manager.kill(spec.job_id)
        state, _reason = listener.wait_ended(spec.job_id, 30)
        assert state is JobState.CANCELLED
        assert spec.directory.exit_code() is None

    def test_reattach_with_a_fresh_manager(make_job, listener) -> None:
        first = QueuedDrmaaManager("sge", FAST, listener)
        first.start()
        spec = make_job("sleep 2; echo finished")
        first.launch(spec)
        external_id = str(listener.wait_for(spec.job_id, "submitted", 30))
        first.shutdown()

        again = RecordingListener()
        second = QueuedDrmaaManager("sge", FAST, again)
        try:
            second.reattach(spec, external_id, was_running=False)
            second.start()
            assert again.wait_ended(spec.job_id, 60) == (JobState.COMPLETE, None)
            assert spec.directory.read_internal(layout.TOOL_STDOUT) == b"finished\n"
            assert again.of(spec.job_id, "submitted") == []
        finally:
            second.shutdown()

    # --- queued_external_drmaa: the job runs as a real second user ----------------------------------
    def test_external_job_runs_as_the_submit_user(make_manager, make_job, listener) -> None:
        manager = make_manager(ExternalDrmaaManager)
        spec = make_job("id -un; touch made-by-job", submit_user=JOB_USER)
        manager.launch(spec)
        external_id = str(listener.wait_for(spec.job_id, "submitted", 30))
        assert listener.wait_ended(spec.job_id, 60) == (JobState.COMPLETE, None)
        assert spec.directory.read_internal(layout.TOOL_STDOUT) == f"{JOB_USER}\n".encode()
        assert qacct(external_id)["owner"] == JOB_USER
        # taken back before the end was reported, so lwr can stage the outputs
        made = spec.directory.working / "made-by-job"
        assert made.exists() and made.stat().st_uid == os.geteuid()
        assert spec.directory.path.stat().st_uid == os.geteuid()

    def test_external_job_cancel_as_the_submit_user(make_manager, make_job, listener) -> None:
        manager = make_manager(ExternalDrmaaManager)
        spec = make_job("sleep 300", submit_user=JOB_USER)
        manager.launch(spec)
        listener.wait_for(spec.job_id, "running", 30)
        manager.kill(spec.job_id)
        assert listener.wait_ended(spec.job_id, 30)[0] is JobState.CANCELLED

    def test_external_reattach_with_a_fresh_manager(make_job, listener, helper_scripts) -> None:
        settings = {**FAST, "scripts_directory": str(helper_scripts)}
        first = ExternalDrmaaManager("sge", settings, listener)
        first.start()
        spec = make_job("sleep 2; id -un", submit_user=JOB_USER)
        first.launch(spec)
        external_id = str(listener.wait_for(spec.job_id, "submitted", 30))
        first.shutdown()
        again = RecordingListener()
        second = ExternalDrmaaManager("sge", settings, again)
        try:
            second.reattach(spec, external_id, was_running=False)
            second.start()
            assert again.wait_ended(spec.job_id, 60) == (JobState.COMPLETE, None)
            assert spec.directory.read_internal(layout.TOOL_STDOUT) == f"{JOB_USER}\n".encode()
        finally:
            second.shutdown()

    def test_production_refuses_root_and_lwrs_own_user(make_manager, make_job) -> None:
        manager = make_manager(ExternalDrmaaManager)
        own = pwd.getpwuid(os.geteuid()).pw_name
        for user in {"root", own}:
            with pytest.raises(BadRequest, match="refusing"):
                manager.launch(make_job("true", submit_user=user))
        for user in (None, "no-such-user-here", "bad name;rm"):
            with pytest.raises(BadRequest):
                manager.launch(make_job("true", submit_user=user))

    def test_launch_helper_refuses_root_even_when_asked(make_job, helper_scripts) -> None:
        spec = make_job("true")
        result = subprocess.run(
            [
                "sudo",
                "-n",
                "/usr/bin/python3",
                str(helper_scripts / "drmaa_launch"),
                "--script",
                spec.script,
                "--working-directory",
                str(spec.directory.path),
                "--stdout",
                "/dev/null",
                "--stderr",
                "/dev/null",
            ],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 2 and "root" in result.stderr

    def test_chown_helper_refuses_a_directory_that_is_not_a_job(helper_scripts) -> None:
        result = subprocess.run(
            [
                "sudo",
                "-n",
                "/usr/bin/python3",
                str(helper_scripts / "chown_working_directory"),
                "--user",
                JOB_USER,
                "--job-directory",
                "/etc",
            ],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 2 and "not an lwr job directory" in result.stderr
        assert os.stat("/etc").st_uid == 0
