"""queued_external_drmaa: DRMAA jobs that run as the user the client names (``submit_user``).

lwr itself stays unprivileged. Three small programs in ``scripts/`` do the privileged parts,
each through ``sudo -n`` with an argument list, under the rule in ``scripts/sudoers.example``:

* ``chown_working_directory`` (as root) hands the job directory to the user before the job and
  takes it back before lwr reports the end, so lwr can read and stage the outputs;
* ``drmaa_launch`` and ``drmaa_kill`` (as the user) submit and terminate through DRMAA, so the
  batch system sees the job as the user's own.

Which users may run jobs is an explicit allow-list (``submit_user_groups``, a uid range), checked
here before anything is asked of sudo, and again by the helpers against the root-owned
``/etc/lwr/drmaa_helpers.env``, which also gives them their DRMAA environment: nothing lwr passes
decides which library they load or which accounts they act as.

Status polling goes through lwr's own DRMAA session (a DRM answers ``jobStatus`` for any job
id); once the DRM forgets a finished job, the job script's exit-code record decides.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
import re
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lwr.core import job_directory as layout
from lwr.errors import BadRequest, ManagerError
from lwr.managers.base import LaunchSpec, ManagerListener, Option, as_bool
from lwr.managers.drmaa import QueuedDrmaaManager
from lwr.managers.polling import batch_job_name, submit_param

log = logging.getLogger(__name__)

#: Where the helper programs live: ``scripts/`` beside the ``lwr`` package.
DEFAULT_SCRIPTS_DIRECTORY = str(Path(__file__).resolve().parents[2] / "scripts")

_USER_NAME = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
HELPER_TIMEOUT = 120.0


def own_user_name() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


def group_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise ValueError("expected one or more group names, separated by commas")
    return names


def uid(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("expected a uid (a number, 0 or more)")
    return value


def groups_of(account: pwd.struct_passwd) -> set[str]:
    names = set()
    for gid in os.getgrouplist(account.pw_name, account.pw_gid):
        try:
            names.add(grp.getgrgid(gid).gr_name)
        except KeyError:
            continue
    return names


class ExternalDrmaaManager(QueuedDrmaaManager):
    type_name = "queued_external_drmaa"
    hands_directories_to_users = True
    options = {
        **QueuedDrmaaManager.options,
        "production": Option(
            as_bool, True, "refuse to run jobs as root or as lwr's own user", "true or false"
        ),
        "helper_python": Option(
            str,
            "/usr/bin/python3",
            "the python (with drmaa) that every job user may run the helpers with; "
            "it must match the sudoers rule",
        ),
        "scripts_directory": Option(
            str,
            DEFAULT_SCRIPTS_DIRECTORY,
            "directory of drmaa_launch, drmaa_kill and chown_working_directory",
        ),
        "chown_working_directory": Option(
            as_bool, True, "hand the job directory to the job's user and back", "true or false"
        ),
        "submit_user_groups": Option(
            group_list,
            ["lwrjobs"],
            "a submit_user must belong to one of these groups (the sudoers rule's)",
            "group names separated by commas",
        ),
        "submit_user_min_uid": Option(uid, 1000, "lowest uid a submit_user may have", "a number"),
        "submit_user_max_uid": Option(uid, 59999, "highest uid a submit_user may have", "a number"),
    }

    def __init__(self, name: str, settings: Mapping[str, Any], listener: ManagerListener) -> None:
        super().__init__(name, settings, listener)
        self.production: bool = self.settings["production"]
        self.helper_python: str = self.settings["helper_python"]
        self.scripts_directory: str = self.settings["scripts_directory"]
        self.chown: bool = self.settings["chown_working_directory"]
        self.user_groups: list[str] = self.settings["submit_user_groups"]
        self.min_uid: int = self.settings["submit_user_min_uid"]
        self.max_uid: int = self.settings["submit_user_max_uid"]
        self._users: dict[str, str] = {}
        self._users_lock = threading.Lock()

    # --- who runs the job -------------------------------------------------------------------------
    def validate(self, spec: LaunchSpec) -> None:
        super().validate(spec)
        self.job_user(spec)

    def job_user(self, spec: LaunchSpec) -> str:
        """The checked submit user: an existing account on the allow-list, never root or lwr in production.

        Galaxy's Pulsar client sends its destination's ``submit_user`` as the submit parameter
        ``user`` (the client strips the ``submit_`` prefix); the core may also set it directly.
        """
        user = spec.submit_user or submit_param(spec, "user")
        if not user or not isinstance(user, str) or not _USER_NAME.match(user):
            raise BadRequest("queued_external_drmaa needs a valid submit_user", submit_user=str(user))
        try:
            account = pwd.getpwnam(user)
        except KeyError:
            raise BadRequest("submit_user is not a user on the lwr host", submit_user=user) from None
        if self.production and (account.pw_uid == 0 or account.pw_uid == os.geteuid()):
            raise BadRequest(
                "refusing to run a job as root or as lwr's own user (production = true)", submit_user=user
            )
        if not self.min_uid <= account.pw_uid <= self.max_uid:
            raise BadRequest(
                f"submit_user is outside submit_user_min_uid..submit_user_max_uid of manager {self.name}",
                submit_user=user,
                min_uid=self.min_uid,
                max_uid=self.max_uid,
            )
        if not groups_of(account) & set(self.user_groups):
            raise BadRequest(
                f"submit_user is in none of the submit_user_groups of manager {self.name}",
                submit_user=user,
                groups=self.user_groups,
            )
        return user

    # --- the helpers ------------------------------------------------------------------------------
    def _helper(self, name: str, arguments: list[str], as_user: str | None) -> str:
        """Run ``scripts/NAME`` through ``sudo -n`` (as ``as_user``, or root); its stdout."""
        argv = ["sudo", "-n"]
        if as_user is not None:
            argv += ["-u", as_user]
        argv += ["--", self.helper_python, os.path.join(self.scripts_directory, name), *arguments]
        try:
            completed = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=HELPER_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise ManagerError(f"{name} could not run: {error}") from None
        if completed.returncode != 0:
            detail = (completed.stderr.strip() or completed.stdout.strip())[:500]
            raise ManagerError(f"{name} failed (status {completed.returncode}): {detail}")
        return completed.stdout

    def _hand_over(self, spec: LaunchSpec, user: str) -> None:
        if self.chown:
            self._helper(
                "chown_working_directory", ["--user", user, "--job-directory", str(spec.directory.path)], None
            )

    # --- the batch primitives ---------------------------------------------------------------------
    def submit(self, spec: LaunchSpec) -> str:
        user = self.job_user(spec)
        self._hand_over(spec, user)
        arguments = [
            "--script",
            spec.script,
            "--working-directory",
            str(spec.directory.path),
            "--stdout",
            str(spec.directory.internal_file(layout.JOB_STDOUT)),
            "--stderr",
            str(spec.directory.internal_file(layout.JOB_STDERR)),
            "--job-name",
            batch_job_name(spec.job_id),
        ]
        native = self.native_specification_for(spec)
        if native:
            arguments += ["--native-specification", native]
        output = self._helper("drmaa_launch", arguments, user).strip()
        external_id = output.splitlines()[-1].strip() if output else ""
        if not external_id:
            raise ManagerError("drmaa_launch printed no job id")
        with self._users_lock:
            self._users[external_id] = user
        return external_id

    def reattach(self, spec: LaunchSpec, external_id: str | None, was_running: bool) -> None:
        if external_id:
            try:
                user = self.job_user(spec)
            except BadRequest as error:
                # Followed all the same; only a cancel would fail, saying why.
                log.warning("manager %s: job %s: %s", self.name, spec.job_id, error.message)
            else:
                with self._users_lock:
                    self._users[external_id] = user
        super().reattach(spec, external_id, was_running)

    def cancel(self, external_id: str) -> None:
        with self._users_lock:
            user = self._users.get(external_id)
        if user is None:
            raise ManagerError(f"do not know which user owns job {external_id}")
        self._helper("drmaa_kill", ["--external-id", external_id], user)

    def before_end(self, spec: LaunchSpec, external_id: str | None) -> None:
        """Take the job directory back, so the core can read and stage the outputs."""
        if external_id is not None:
            with self._users_lock:
                self._users.pop(external_id, None)
        if self.chown:
            self._helper(
                "chown_working_directory",
                ["--user", own_user_name(), "--job-directory", str(spec.directory.path)],
                None,
            )
