"""Running a job script as a local process group, and following it to its end.

Shared by the local managers (queued_python, unqueued). A job started here is followed by
a thread blocked in ``Popen.wait``; a job found running after a restart is followed by a
thread blocked on the script's ``flock``: both notice the end at once, without polling.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import subprocess
import threading
from typing import Callable

from lwr.core import job_directory as layout
from lwr.core.job_directory import JobDirectory
from lwr.core.job_script import ALREADY_LAUNCHED_STATUS, RUN_LOCK_FD_VARIABLE
from lwr.core.states import JobState
from lwr.protocol.failure import FailureClass

log = logging.getLogger(__name__)

#: Seconds between SIGTERM and SIGKILL when a job is cancelled.
KILL_GRACE_SECONDS = 5.0


def start_job_process(directory: JobDirectory, script: str) -> subprocess.Popen[bytes]:
    """Start the job script in a new session, so cancel can signal its whole process group.

    The script's run lock is taken here and handed to it (see :mod:`lwr.core.job_script`): the
    script then forks no ``flock``. A lock already held (a copy still running) is left to the
    script, which refuses to run twice as it always does.
    """
    lock = take_run_lock(directory)
    env = None  # lwr's own
    if lock is not None:
        env = {**os.environ, RUN_LOCK_FD_VARIABLE: str(lock)}
    elif RUN_LOCK_FD_VARIABLE in os.environ:  # never a descriptor number that is not the lock
        env = {key: value for key, value in os.environ.items() if key != RUN_LOCK_FD_VARIABLE}
    try:
        with (
            open(directory.internal_file(layout.JOB_STDOUT), "ab") as out,
            open(directory.internal_file(layout.JOB_STDERR), "ab") as err,
        ):
            return subprocess.Popen(
                ["/bin/bash", script],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=str(directory.path),
                start_new_session=True,
                close_fds=True,
                pass_fds=() if lock is None else (lock,),
                env=env,
            )
    finally:
        if lock is not None:
            os.close(lock)  # the script's copy holds the lock from here on


def take_run_lock(directory: JobDirectory) -> int | None:
    """The job's run lock, opened and held (exclusively) by lwr; None if another process holds it."""
    fd = os.open(
        directory.internal_file(layout.RUN_LOCK),
        os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
        0o600,
    )
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def was_launched(directory: JobDirectory) -> bool:
    """True once a copy of the job script passed its launch guard."""
    return directory.internal_file(layout.LAUNCH_GUARD).exists()


def is_running(directory: JobDirectory) -> bool:
    """True while a job script holds its run lock."""
    try:
        fd = os.open(directory.internal_file(layout.RUN_LOCK), os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def wait_for_lock_release(directory: JobDirectory) -> None:
    """Block until the job script that holds the run lock has ended."""
    try:
        fd = os.open(directory.internal_file(layout.RUN_LOCK), os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
    finally:
        os.close(fd)


def outcome(
    directory: JobDirectory, cancelled: bool, returncode: int | None = None
) -> tuple[JobState, str | None, FailureClass | None]:
    """Decide a final state (and a failure's class) from what the job script left behind."""
    if cancelled:
        return JobState.CANCELLED, "cancelled on request", None
    if directory.exit_code() is not None:
        return JobState.COMPLETE, None, None
    if returncode is not None and returncode < 0:
        return (
            JobState.FAILED,
            f"job script killed by signal {-returncode} before recording an exit code",
            FailureClass.JOB_SCRIPT_FAILED,
        )
    if disk_full(directory):
        return (
            JobState.FAILED,
            f"job script ended (status {returncode}) without recording an exit code: its file system is full",
            FailureClass.DISK_FULL,
        )
    return (
        JobState.FAILED,
        f"job script ended (status {returncode}) without recording an exit code",
        FailureClass.JOB_SCRIPT_FAILED,
    )


#: A file system with less free space than this cannot hold a job's records.
DISK_FULL_BYTES = 64 * 1024


def disk_full(directory: JobDirectory) -> bool:
    """True when the job directory's file system has (next to) no space left: the likeliest reason
    a job script could not write its exit code."""
    try:
        stats = os.statvfs(directory.path)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < DISK_FULL_BYTES or (stats.f_files > 0 and stats.f_favail == 0)


def signal_group(pid: int, sig: int) -> bool:
    try:
        os.killpg(pid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        log.warning("not allowed to signal process group %s", pid)
        return False


def recorded_pid(directory: JobDirectory) -> int | None:
    raw = directory.read_internal(layout.PID_FILE)
    try:
        return int(raw.strip()) if raw else None
    except ValueError:
        return None


def terminate_job(
    directory: JobDirectory, pid: int | None, process: subprocess.Popen[bytes] | None = None
) -> None:
    """SIGTERM the job's process group, then SIGKILL it after a grace period if still running.

    Our own child (``process``) is signalled while it is unreaped, so its pid cannot have been
    recycled. A job re-attached after a restart is signalled only while it still holds its run
    lock, so a recycled pid of some other process is never hit.
    """
    if process is not None:

        def alive() -> bool:
            return process.poll() is None

        pid = process.pid
    else:

        def alive() -> bool:
            return is_running(directory)

        pid = pid or recorded_pid(directory)
    if pid is None or not alive():
        return
    signal_group(pid, signal.SIGTERM)

    def escalate() -> None:
        if alive():
            signal_group(pid, signal.SIGKILL)

    timer = threading.Timer(KILL_GRACE_SECONDS, escalate)
    timer.daemon = True
    timer.start()


def follow(
    directory: JobDirectory,
    process: subprocess.Popen[bytes] | None,
    on_end: Callable[[int | None], None],
    name: str,
) -> threading.Thread:
    """Start a thread that calls ``on_end(returncode)`` when the job ends.

    ``process`` is our own child (waited on) or ``None`` for a job re-attached after a restart
    (followed through its run lock; returncode unknown).
    """

    def watch() -> None:
        if process is not None:
            returncode: int | None = process.wait()
            if returncode == ALREADY_LAUNCHED_STATUS and was_launched(directory):
                # A copy launched before a restart owns the job; follow that one.
                wait_for_lock_release(directory)
                returncode = None
        else:
            wait_for_lock_release(directory)
            returncode = None
        on_end(returncode)

    thread = threading.Thread(target=watch, name=name, daemon=True)
    thread.start()
    return thread
