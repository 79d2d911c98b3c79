"""Shared by drmaa_launch and drmaa_kill, which lwr runs as a job's user through sudo.

sudo clears the environment, so the DRMAA settings arrive as ``--env NAME=VALUE`` arguments
(only the names below are accepted), and a process that must load Grid Engine's libdrmaa
re-executes itself once with the glibc tunable that lets libjemalloc load.
"""

from __future__ import annotations

import os
import re
import sys

ALLOWED_ENV = re.compile(r"^(SGE_[A-Z_]+|DRMAA_LIBRARY_PATH)$")
TUNABLE = "glibc.rtld.optional_static_tls=65536"


def refuse(message: str, status: int = 2) -> None:
    print(f"{os.path.basename(sys.argv[0])}: {message}", file=sys.stderr)
    sys.exit(status)


def apply_env(pairs: list[str]) -> None:
    for pair in pairs:
        name, _, value = pair.partition("=")
        if not ALLOWED_ENV.match(name) or "\x00" in value or "\n" in value:
            refuse(f"environment variable not accepted: {name}")
        os.environ[name] = value


def import_drmaa():  # type: ignore[no-untyped-def]
    """Import drmaa, re-executing this script once with the tunable libdrmaa needs."""
    if TUNABLE not in os.environ.get("GLIBC_TUNABLES", ""):
        os.environ["GLIBC_TUNABLES"] = TUNABLE
        os.execv(sys.executable, [sys.executable, *sys.argv])
    import drmaa

    return drmaa


def check_not_root() -> None:
    if os.geteuid() == 0:
        refuse("refusing to run a job as root")
