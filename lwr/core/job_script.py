"""The job script: the one bash script every manager runs, locally or on a cluster node.

It is the job's own record keeper, so what it writes survives lwr being killed or a batch
system forgetting the job: the tool's stdout/stderr, start and end times, and the exit code
(one write of a few bytes, so a half-written code is never read). Of its own it forks nothing
but the command (and ``flock`` on a batch system): every process costs a millisecond or more
per job. The job metrics plugins' commands, Galaxy's, add theirs; ``core``'s two ``date`` are
read from bash's clock instead (:func:`lwr.core.job_metrics.without_date_forks`).

Two guards make a job run at most once: creating ``lwr/launched`` exclusively is atomic, so a second copy
of the script (a relaunch after a crash, a batch-system requeue) exits without running the
command; and the script holds ``flock`` on ``lwr/run.lock`` while it runs, which lets lwr
tell after a restart whether the job is still alive and wait for it without polling. A local
launcher (:mod:`lwr.managers.local_process`) takes that lock itself before it starts the script
and hands it over on the descriptor ``$LWR_RUN_LOCK_FD`` names, which spares the ``flock`` process;
on a batch system the script takes it.

Around the tool it sets up the environment Galaxy's tools expect from any Galaxy job runner
(:class:`GalaxyEnvironment`): ``GALAXY_SLOTS`` and ``GALAXY_MEMORY_MB`` from the batch system's own
allocation, ``TMPDIR``/``TMP``/``TEMP`` in the job's tmp directory, ``_galaxy_setup_environment`` (which
Galaxy's remote-metadata commands call), the activation of resolved requirements, and the job
metrics plugins' commands. The client's ``env`` is exported after all that, so what Galaxy sends
explicitly (a destination's ``<env id="GALAXY_SLOTS">``) wins.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field

from lwr.core import job_directory as layout
from lwr.core.job_directory import JobDirectory
from lwr.protocol.submit import EnvItem, parse_env

__all__ = ["EnvItem", "parse_env", "write_job_script"]

#: Exit status of a second copy of the script that refused to run the command again.
ALREADY_LAUNCHED_STATUS = 75

#: Names the descriptor on which a local launcher hands the script its run lock, already held.
RUN_LOCK_FD_VARIABLE = "LWR_RUN_LOCK_FD"


#: ``GALAXY_SLOTS`` from what the batch system allocated; ``$lwr_default_slots`` when none did.
#: Slurm's CPUs-per-task times tasks is the request itself; CPUS_ON_NODE may be rounded up to whole
#: cores. HTCondor tells the slot's size only in its machine ad file, read without forking.
SLOTS_STATEMENT = r"""GALAXY_SLOTS_CONFIGURED=1
if [ -n "$SLURM_CPUS_PER_TASK" ] || [ -n "$SLURM_NTASKS" ]; then
    GALAXY_SLOTS=$(( ${SLURM_CPUS_PER_TASK:-1} * ${SLURM_NTASKS:-1} ))
elif [ -n "$SLURM_CPUS_ON_NODE" ]; then
    GALAXY_SLOTS="$SLURM_CPUS_ON_NODE"
elif [ -n "$NSLOTS" ]; then
    GALAXY_SLOTS="$NSLOTS"
elif [ -n "$PBS_NCPUS" ]; then
    GALAXY_SLOTS="$PBS_NCPUS"
elif [ -n "$NCPUS" ] && [ -n "$PBS_JOBID" ]; then
    GALAXY_SLOTS="$NCPUS"
elif [ -n "$PBS_NUM_PPN" ]; then
    GALAXY_SLOTS="$PBS_NUM_PPN"
elif [ -n "$LSB_DJOB_NUMPROC" ]; then
    GALAXY_SLOTS="$LSB_DJOB_NUMPROC"
elif [ -n "$_CONDOR_MACHINE_AD" ] && [ -r "$_CONDOR_MACHINE_AD" ]; then
    while read -r lwr_key lwr_eq lwr_value; do
        [ "$lwr_key" = Cpus ] && GALAXY_SLOTS="$lwr_value"
        [ "$lwr_key" = Memory ] && GALAXY_MEMORY_MB="$lwr_value"
    done < "$_CONDOR_MACHINE_AD"
elif [ -n "$lwr_default_slots" ]; then
    GALAXY_SLOTS="$lwr_default_slots"
elif [ -z "$GALAXY_SLOTS" ]; then
    GALAXY_SLOTS=1
    unset GALAXY_SLOTS_CONFIGURED
fi
case "$GALAXY_SLOTS" in ''|*[!0-9]*|0) GALAXY_SLOTS=1; unset GALAXY_SLOTS_CONFIGURED;; esac
export GALAXY_SLOTS
[ -n "$GALAXY_SLOTS_CONFIGURED" ] && export GALAXY_SLOTS_CONFIGURED
if [ -n "$SLURM_MEM_PER_NODE" ]; then
    GALAXY_MEMORY_MB="$SLURM_MEM_PER_NODE"
elif [ -n "$SLURM_MEM_PER_CPU" ]; then
    GALAXY_MEMORY_MB_PER_SLOT="$SLURM_MEM_PER_CPU"
elif [ -n "$SGE_HGR_h_vmem" ]; then
    lwr_mem="${SGE_HGR_h_vmem%%[.kKmMgGtT]*}"
    case "$SGE_HGR_h_vmem" in
        *[tT]) GALAXY_MEMORY_MB_PER_SLOT=$(( lwr_mem * 1024 * 1024 ));;
        *[gG]) GALAXY_MEMORY_MB_PER_SLOT=$(( lwr_mem * 1024 ));;
        *[mM]) GALAXY_MEMORY_MB_PER_SLOT="$lwr_mem";;
        *[kK]) GALAXY_MEMORY_MB_PER_SLOT=$(( lwr_mem / 1024 ));;
        *) GALAXY_MEMORY_MB_PER_SLOT=$(( lwr_mem / 1048576 ));;
    esac
fi
if [ -n "$GALAXY_MEMORY_MB" ] && [ -z "$GALAXY_MEMORY_MB_PER_SLOT" ]; then
    GALAXY_MEMORY_MB_PER_SLOT=$(( GALAXY_MEMORY_MB / GALAXY_SLOTS ))
elif [ -n "$GALAXY_MEMORY_MB_PER_SLOT" ] && [ -z "$GALAXY_MEMORY_MB" ]; then
    GALAXY_MEMORY_MB=$(( GALAXY_MEMORY_MB_PER_SLOT * GALAXY_SLOTS ))
fi
case "$GALAXY_MEMORY_MB" in ''|*[!0-9]*|0) unset GALAXY_MEMORY_MB;; *) export GALAXY_MEMORY_MB;; esac
case "$GALAXY_MEMORY_MB_PER_SLOT" in ''|*[!0-9]*|0) unset GALAXY_MEMORY_MB_PER_SLOT;; *) export GALAXY_MEMORY_MB_PER_SLOT;; esac"""

#: Galaxy's remote-metadata commands call ``_galaxy_setup_environment True``: Galaxy's own Python
#: (its virtualenv, and its library on PYTHONPATH when True) for the commands that need it.
GALAXY_SETUP_FUNCTION = r"""_galaxy_setup_environment() {
    if [ "$1" = True ] && [ "$GALAXY_LIB" != None ]; then
        PYTHONPATH="$GALAXY_LIB${PYTHONPATH:+:$PYTHONPATH}"; export PYTHONPATH
    fi
    if [ "$GALAXY_VIRTUAL_ENV" != None ] && [ -f "$GALAXY_VIRTUAL_ENV/bin/activate" ] \
            && [ "$(command -v python)" != "$GALAXY_VIRTUAL_ENV/bin/python" ]; then
        . "$GALAXY_VIRTUAL_ENV/bin/activate"
    fi
}"""


@dataclass(frozen=True)
class GalaxyEnvironment:
    """What the script sets up around the tool besides the client's ``env``: Galaxy's job environment.

    ``tmp_dir`` is a shell word (``$SLURM_TMPDIR/lwr`` expands on the node); unset, the job's own
    ``tmp``. ``dependency_commands`` activate resolved requirements before the command;
    ``notices`` are lines for the job's stderr (an unresolved requirement), never the tool's.
    """

    default_slots: int | None = None
    tmp_dir: str | None = None
    dependency_commands: tuple[str, ...] = ()
    notices: tuple[str, ...] = ()
    instrument_pre: str = ""
    instrument_post: str = ""
    galaxy_virtual_env: str | None = None
    galaxy_lib: str | None = None
    preserve_galaxy_python_environment: bool = False

    def setup_lines(self, directory: JobDirectory) -> list[str]:
        q = shlex.quote
        tmp_dir = f'"{self.tmp_dir}"' if self.tmp_dir else q(str(directory.sub("tmp")))
        virtual_env = q(self.galaxy_virtual_env or "None")
        return [
            f"lwr_default_slots={self.default_slots or ''}",
            SLOTS_STATEMENT,
            f"export _GALAXY_JOB_TMP_DIR={tmp_dir}",
            f"export _GALAXY_JOB_HOME_DIR={q(str(directory.sub('home')))}",
            '[ -d "$_GALAXY_JOB_TMP_DIR" ] || mkdir -p "$_GALAXY_JOB_TMP_DIR"',
            '[ -d "$_GALAXY_JOB_HOME_DIR" ] || mkdir -p "$_GALAXY_JOB_HOME_DIR"',
            'export TMPDIR="$_GALAXY_JOB_TMP_DIR" TMP="$_GALAXY_JOB_TMP_DIR" TEMP="$_GALAXY_JOB_TMP_DIR"',
            GALAXY_SETUP_FUNCTION,
            f"_GALAXY_VIRTUAL_ENV={virtual_env}",
            # A tool that does not ask for Galaxy's Python runs without it; the metadata commands
            # fall back to _GALAXY_VIRTUAL_ENV.
            f"GALAXY_VIRTUAL_ENV={virtual_env if self.preserve_galaxy_python_environment else 'None'}",
            f"GALAXY_LIB={q(self.galaxy_lib or 'None')}",
            f"PRESERVE_GALAXY_ENVIRONMENT={'True' if self.preserve_galaxy_python_environment else 'False'}",
            "export _GALAXY_VIRTUAL_ENV GALAXY_VIRTUAL_ENV GALAXY_LIB PRESERVE_GALAXY_ENVIRONMENT",
            *(f"echo {q(line)} >&2" for line in self.notices),
        ]


@dataclass(frozen=True)
class JobScript:
    command_line: str
    env: list[EnvItem] = field(default_factory=list)
    galaxy: GalaxyEnvironment = field(default_factory=GalaxyEnvironment)

    def render(self, directory: JobDirectory) -> str:
        q = shlex.quote
        lwr_dir = directory.internal
        galaxy = self.galaxy
        python_setup = (
            ['_galaxy_setup_environment "$PRESERVE_GALAXY_ENVIRONMENT"']
            if galaxy.preserve_galaxy_python_environment
            else []
        )
        lines = [
            "#!/bin/bash",
            "# Written by lwr. Runs one job; records streams, times and exit code beside it.",
            f"lwr_dir={q(str(lwr_dir))}",
            # A local launcher takes the run lock itself and hands it over (no flock process).
            f'case "${{{RUN_LOCK_FD_VARIABLE}:-}}" in',
            f'    ""|*[!0-9]*) exec 9>"$lwr_dir/{layout.RUN_LOCK}"',
            f"        flock -n 9 || {{ echo 'lwr: this job is already running' >&2; exit {ALREADY_LAUNCHED_STATUS}; }};;",
            f'    *) exec 9>&"${RUN_LOCK_FD_VARIABLE}"-;;',
            "esac",
            f"unset {RUN_LOCK_FD_VARIABLE}",
            # noclobber makes '>' an exclusive create: the launch guard without forking mkdir.
            f'if ! {{ set -C; : > "$lwr_dir/{layout.LAUNCH_GUARD}"; }} 2>/dev/null; then '
            f"echo 'lwr: this job was launched before; not running it twice' >&2; exit {ALREADY_LAUNCHED_STATUS}; fi",
            "set +C",
            f'echo $$ > "$lwr_dir/{layout.PID_FILE}"',
            f'echo "${{EPOCHREALTIME:-$(date +%s)}}" > "$lwr_dir/{layout.STARTED_AT}"',
            *galaxy.setup_lines(directory),
            *(item.export_line() for item in self.env),
            *python_setup,
            galaxy.instrument_pre,
            f"cd {q(str(directory.working))} || exit 1",
            "(",
            *galaxy.dependency_commands,
            self.command_line,
            f') > "$lwr_dir/{layout.TOOL_STDOUT}" 2> "$lwr_dir/{layout.TOOL_STDERR}" 9>&-',
            "lwr_rc=$?",
            galaxy.instrument_post,
            f'echo "${{EPOCHREALTIME:-$(date +%s)}}" > "$lwr_dir/{layout.ENDED_AT}"',
            # One write of a few bytes: a reader sees no code or the whole code, never part of it.
            f'echo $lwr_rc > "$lwr_dir/{layout.EXIT_CODE}"',
            "exit $lwr_rc",
            "",
        ]
        return "\n".join(lines)


def write_job_script(
    directory: JobDirectory,
    command_line: str,
    env: Iterable[EnvItem],
    galaxy: GalaxyEnvironment | None = None,
) -> str:
    """Write ``lwr/job.sh`` (executable) and return its path."""
    from lwr.core.atomic import write_bytes_atomically

    path = directory.internal_file(layout.SCRIPT_NAME)
    script = JobScript(command_line, list(env), galaxy or GalaxyEnvironment())
    write_bytes_atomically(path, script.render(directory).encode(), durable=False)
    path.chmod(0o755 & ~layout.current_umask())  # it exports the job's environment: private under lwr's umask
    return str(path)
