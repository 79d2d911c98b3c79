"""Job managers, by the ``type`` name used in job_managers.ini.

Modules are imported only when a configuration names their type, so a site without DRMAA
or HTCondor never imports those libraries.
"""

from __future__ import annotations

import importlib

from lwr.errors import ConfigError
from lwr.managers.base import Manager

MANAGER_TYPES: dict[str, str] = {
    "queued_python": "lwr.managers.queued_python:QueuedPythonManager",
    "unqueued": "lwr.managers.unqueued:UnqueuedManager",
    "queued_drmaa": "lwr.managers.drmaa:QueuedDrmaaManager",
    "queued_external_drmaa": "lwr.managers.external_drmaa:ExternalDrmaaManager",
    "queued_condor": "lwr.managers.condor:CondorManager",
    "queued_cli": "lwr.managers.cli.manager:CliManager",
}


def manager_class(type_name: str) -> type[Manager]:
    """The class for a manager ``type``; :class:`ConfigError` for an unknown one."""
    try:
        target = MANAGER_TYPES[type_name]
    except KeyError:
        raise ConfigError(f"unknown manager type '{type_name}'", expected=sorted(MANAGER_TYPES)) from None
    module_name, class_name = target.split(":")
    module = importlib.import_module(module_name)
    cls: type[Manager] = getattr(module, class_name)
    return cls
