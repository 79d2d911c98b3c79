"""Batch-system command sets for queued_cli, by the ``job_plugin`` name used in job_managers.ini."""

from __future__ import annotations

from lwr.managers.cli.job_plugins.base import JobPlugin
from lwr.managers.cli.job_plugins.lsf import LsfPlugin
from lwr.managers.cli.job_plugins.slurm import SlurmPlugin
from lwr.managers.cli.job_plugins.torque import PbsProPlugin, TorquePlugin

JOB_PLUGINS: dict[str, type[JobPlugin]] = {
    "Slurm": SlurmPlugin,
    "Torque": TorquePlugin,
    "PBS": PbsProPlugin,
    "LSF": LsfPlugin,
}


def job_plugin_name(text: str) -> str:
    """Option converter for ``job_plugin``."""
    name = text.strip()
    if name not in JOB_PLUGINS:
        raise ValueError("expected one of " + ", ".join(JOB_PLUGINS))
    return name
