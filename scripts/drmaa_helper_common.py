"""Shared by lwr's sudo helpers (drmaa_launch, drmaa_kill, chown_working_directory).

Nothing the caller passes decides which library is loaded or which users may be used: the
helpers' environment (``SGE_ROOT``, ``DRMAA_LIBRARY_PATH``, ...) and the allow-list of job users
come from one root-owned file, :data:`SETTINGS_FILE`, which the administrator writes::

    SGE_ROOT=/var/lib/gridengine
    SGE_CELL=default
    DRMAA_LIBRARY_PATH=/usr/lib/gridengine-drmaa/lib/libdrmaa.so.1.0
    LWR_SUBMIT_USER_GROUPS=lwrjobs        # comma-separated; a job user must belong to one of them
    LWR_SUBMIT_USER_MIN_UID=1000          # optional, 1000 when absent
    LWR_SUBMIT_USER_MAX_UID=59999         # optional, 59999 when absent

The file and every directory above it must belong to root and be writable by nobody else,
and it is opened without following symlinks. A process that must load Grid Engine's libdrmaa
re-executes itself once with the glibc tunable that lets libjemalloc load.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import stat
import sys
from dataclasses import dataclass, field

SETTINGS_FILE = "/etc/lwr/drmaa_helpers.env"
TUNABLE = "glibc.rtld.optional_static_tls=65536"
DEFAULT_MIN_UID = 1000
DEFAULT_MAX_UID = 59999

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_POLICY_KEYS = ("LWR_SUBMIT_USER_GROUPS", "LWR_SUBMIT_USER_MIN_UID", "LWR_SUBMIT_USER_MAX_UID")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def refuse(message: str, status: int = 2) -> None:
    print(f"{os.path.basename(sys.argv[0])}: {message}", file=sys.stderr)
    sys.exit(status)


@dataclass
class HelperSettings:
    """What the root-owned settings file says: the environment and the allow-list of job users."""

    environment: dict[str, str] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)
    min_uid: int = DEFAULT_MIN_UID
    max_uid: int = DEFAULT_MAX_UID

    def refusal(self, account: pwd.struct_passwd) -> str | None:
        """Why ``account`` may not be a job user, or None if it may."""
        if account.pw_uid == 0:
            return "root is never a job user"
        if not self.min_uid <= account.pw_uid <= self.max_uid:
            return (f"user {account.pw_name} (uid {account.pw_uid}) is outside the job users' uid range "
                    f"{self.min_uid}-{self.max_uid} of {SETTINGS_FILE}")
        if not self.groups:
            return f"{SETTINGS_FILE} names no LWR_SUBMIT_USER_GROUPS"
        member_of = {grp.getgrgid(gid).gr_name for gid in os.getgrouplist(account.pw_name, account.pw_gid)
                     if _group_exists(gid)}
        if not member_of & set(self.groups):
            return f"user {account.pw_name} is in none of the job users' groups ({', '.join(self.groups)})"
        return None


def _group_exists(gid: int) -> bool:
    try:
        grp.getgrgid(gid)
    except KeyError:
        return False
    return True


def load_settings(path: str = SETTINGS_FILE) -> HelperSettings:
    """Read :data:`SETTINGS_FILE`, refusing unless it and its directories are root's alone."""
    parts = [part for part in path.split("/") if part]
    current = os.open("/", _DIR_FLAGS)
    try:
        for index, part in enumerate(parts):
            _check_root_only(os.fstat(current), "/" + "/".join(parts[:index]))
            last = index == len(parts) - 1
            flags = (os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC) if last else _DIR_FLAGS
            try:
                child = os.open(part, flags, dir_fd=current)
            except OSError as error:
                refuse(f"cannot open {path} (the administrator writes it; see README): {error.strerror}")
            os.close(current)
            current = child
        info = os.fstat(current)
        if not stat.S_ISREG(info.st_mode):
            refuse(f"{path} is not a regular file")
        _check_root_only(info, path)
        with os.fdopen(current, "r", encoding="utf-8") as handle:
            current = -1
            text = handle.read(1 << 16)
    finally:
        if current >= 0:
            os.close(current)
    return parse_settings(text, path)


def _check_root_only(info: os.stat_result, name: str) -> None:
    if info.st_uid != 0 or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        refuse(f"{name or '/'} must belong to root and be writable by no one else")


def parse_settings(text: str, path: str) -> HelperSettings:
    settings = HelperSettings()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, equals, value = line.partition("=")
        name, value = name.strip(), value.strip()
        if not equals or not _NAME.match(name):
            refuse(f"{path} line {number}: expected NAME=VALUE")
        if name == "LWR_SUBMIT_USER_GROUPS":
            settings.groups = [group.strip() for group in value.split(",") if group.strip()]
        elif name in ("LWR_SUBMIT_USER_MIN_UID", "LWR_SUBMIT_USER_MAX_UID"):
            if not value.isdigit():
                refuse(f"{path} line {number}: {name} must be a number")
            if name.endswith("MIN_UID"):
                settings.min_uid = int(value)
            else:
                settings.max_uid = int(value)
        elif name.startswith("LWR_"):
            refuse(f"{path} line {number}: unknown setting {name} (known: {', '.join(_POLICY_KEYS)})")
        else:
            settings.environment[name] = value
    return settings


def apply_settings(settings: HelperSettings) -> None:
    """Export the settings file's environment, and nothing from the caller."""
    os.environ.update(settings.environment)


def refuse_caller_environment(pairs: list[str]) -> None:
    if pairs:
        refuse(f"--env is no longer accepted: the helpers' environment comes from {SETTINGS_FILE}")


def check_job_user(settings: HelperSettings) -> None:
    """The helper runs as the job's user: refuse unless that user is on the allow-list."""
    if os.geteuid() == 0:
        refuse("refusing to run a job as root")
    problem = settings.refusal(pwd.getpwuid(os.geteuid()))
    if problem:
        refuse(problem)


def import_drmaa():  # type: ignore[no-untyped-def]
    """Import drmaa, re-executing this script once with the tunable libdrmaa needs."""
    if TUNABLE not in os.environ.get("GLIBC_TUNABLES", ""):
        os.environ["GLIBC_TUNABLES"] = TUNABLE
        os.execv(sys.executable, [sys.executable, *sys.argv])
    import drmaa

    return drmaa
