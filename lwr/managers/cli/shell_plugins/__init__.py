"""Where queued_cli runs batch commands, by the ``shell_plugin`` name used in job_managers.ini."""

from __future__ import annotations

SHELL_PLUGINS = ("LocalShell", "SecureShell", "ParamikoShell")


def shell_plugin_name(text: str) -> str:
    """Option converter for ``shell_plugin``."""
    name = text.strip()
    if name not in SHELL_PLUGINS:
        raise ValueError("expected one of " + ", ".join(SHELL_PLUGINS))
    return name
