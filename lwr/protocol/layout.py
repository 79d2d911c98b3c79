"""A job directory's layout, as the protocol fixes it.

The setup reply names each directory (``working_directory``, ``inputs_directory``...); the
client rewrites the command line with them and uploads each file ``type`` into its directory.
Server and clients both take the layout from here.
"""

from __future__ import annotations

#: Each directory key of the setup reply, and its directory relative to the job directory.
SETUP_DIRECTORIES: dict[str, str] = {
    "job_directory": "",
    "working_directory": "working",
    "metadata_directory": "metadata",
    "outputs_directory": "outputs",
    "configs_directory": "configs",
    "tools_directory": "tool_files",
    "inputs_directory": "inputs",
    "unstructured_files_directory": "unstructured",
    "home_directory": "home",
    "tmp_directory": "tmp",
}

#: Where each file ``type`` of the protocol lives, as the setup-reply key naming its directory.
TYPE_DIRECTORY_KEYS: dict[str, str] = {
    "input": "inputs_directory",
    "input_extra": "inputs_directory",
    "input_metadata": "metadata_directory",
    "unstructured": "unstructured_files_directory",
    "config": "configs_directory",
    "tool": "tools_directory",
    "workdir": "working_directory",
    "metadata": "metadata_directory",
    "jobdir": "job_directory",
    "job_directory": "job_directory",
    "output": "outputs_directory",
    "output_workdir": "working_directory",
    "output_metadata": "metadata_directory",
    "output_jobdir": "job_directory",
}

#: Where each file ``type`` lives, relative to the job directory.
TYPE_DIRECTORIES: dict[str, str] = {
    file_type: SETUP_DIRECTORIES[key] for file_type, key in TYPE_DIRECTORY_KEYS.items()
}

OUTPUT_TYPES = frozenset({"output", "output_workdir", "output_metadata", "output_jobdir"})

#: lwr's own directory inside a job directory (job script, streams, exit code, lock).
LWR_SUBDIRECTORY = "lwr"

#: Every directory a new job directory gets.
SUBDIRECTORIES = (*(name for name in SETUP_DIRECTORIES.values() if name), LWR_SUBDIRECTORY)


def setup_layout(job_directory: str, separator: str = "/") -> dict[str, str]:
    """The directory keys of a setup reply for a job living in ``job_directory``."""
    base = job_directory.rstrip(separator) or separator
    return {
        key: f"{base}{separator}{name}" if name else job_directory for key, name in SETUP_DIRECTORIES.items()
    }
