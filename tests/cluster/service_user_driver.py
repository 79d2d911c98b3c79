"""Run by test_external_as_service_user.py as the unprivileged user "lwr", with the system python3:
drives queued_external_drmaa through the real sudoers rule and prints what happened as JSON."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

from lwr.core import job_directory as layout
from lwr.core.job_directory import JobDirectory
from lwr.core.job_script import write_job_script
from lwr.errors import BadRequest
from lwr.managers.base import LaunchSpec
from lwr.managers.external_drmaa import ExternalDrmaaManager


class Listener:
    def __init__(self) -> None:
        self.events: list[list[object]] = []
        self.ended = threading.Event()

    def job_submitted(self, job_id: str, external_id: str) -> None:
        self.events.append(["submitted", job_id, external_id])

    def job_running(self, job_id: str) -> None:
        self.events.append(["running", job_id, None])

    def job_ended(
        self, job_id: str, state: object, reason: object = None, failure_class: object = None
    ) -> None:
        self.events.append(["ended", job_id, [str(getattr(state, "value", state)), reason]])
        self.ended.set()


def main() -> None:
    base, user, scripts = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    directory = JobDirectory(base / "as-service-user")
    directory.create(handed_over=True)  # as the job service does for queued_external_drmaa
    script = write_job_script(directory, "id -un; touch made-by-job", [])
    listener = Listener()
    settings = {"min_polling_interval": 0.25, "exit_code_grace": 2.0, "scripts_directory": scripts}
    manager = ExternalDrmaaManager("external", settings, listener)
    refused = []
    for bad_user in ("root", "lwr"):
        try:
            manager.launch(LaunchSpec(f"bad-{bad_user}", directory, script, submit_user=bad_user))
        except BadRequest as error:
            refused.append(error.message)
    manager.start()
    manager.launch(LaunchSpec("as-service-user", directory, script, submit_params={"user": user}))
    listener.ended.wait(90)
    manager.shutdown()
    not_allowed = subprocess.run(["sudo", "-n", "/bin/true"], capture_output=True, text=True)
    print(
        json.dumps(
            {
                "events": listener.events,
                "refused": refused,
                "tool_stdout": (directory.read_internal(layout.TOOL_STDOUT) or b"").decode(),
                "exit_code": directory.exit_code(),
                "owner_after": (directory.working / "made-by-job").stat().st_uid
                if (directory.working / "made-by-job").exists()
                else None,
                "sudo_other_command_rc": not_allowed.returncode,
            }
        )
    )


if __name__ == "__main__":
    main()
