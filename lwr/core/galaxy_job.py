"""Galaxy's job environment for one job: what its script sets up besides the tool's command.

Gathers, for :func:`lwr.core.job_script.write_job_script`, the pieces a Galaxy admin expects from
any Pulsar server: requirements resolved here (:mod:`lwr.core.dependencies`), job metrics
(:mod:`lwr.core.job_metrics`), the slots default of a local manager (``galaxy_slots``), the tmp
directory, and Galaxy's own Python for the tools and metadata commands that need it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from lwr.core.dependencies import ToolDependencies, validate_description
from lwr.core.job_directory import JobDirectory
from lwr.core.job_metrics import JobInstrumentation
from lwr.core.job_script import GalaxyEnvironment
from lwr.core.manager import as_bool

#: The setup parameter (HTTP setup query, MQ ``setup_params``) asking for Galaxy's Python in the tool.
PRESERVE_PYTHON = "preserve_galaxy_python_environment"


def wants_galaxy_python(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    try:
        return as_bool(str(value)) if value not in (None, "") else False
    except ValueError:
        return False


class GalaxyJobSetup:
    """Builds each job's :class:`GalaxyEnvironment`; ``app.py`` makes it from the server's settings.

    ``galaxy`` holds galaxy_home, galaxy_virtual_env, ... (announced in system_properties).
    """

    def __init__(
        self,
        dependencies: ToolDependencies | None = None,
        instrumentation: JobInstrumentation | None = None,
        galaxy: Mapping[str, str] | None = None,
        tmp_dir: str | None = None,
    ) -> None:
        self.dependencies = dependencies or ToolDependencies(None, None)
        self.instrumentation = instrumentation or JobInstrumentation(None)
        self.galaxy = dict(galaxy or {})
        self.tmp_dir = tmp_dir
        galaxy_home = self.galaxy.get("galaxy_home")
        self.galaxy_lib = os.path.join(galaxy_home, "lib") if galaxy_home else None

    def system_properties(self) -> dict[str, str]:
        """What the setup reply announces: the path separator and where Galaxy is installed here."""
        return {"separator": "/", **self.galaxy}

    def environment(
        self,
        directory: JobDirectory,
        dependencies_description: Any,
        preserve_python: Any,
        manager_settings: Mapping[str, Any],
    ) -> GalaxyEnvironment:
        """Raises ``BadRequest`` for a malformed ``dependencies_description``."""
        activation = self.dependencies.activation(
            validate_description(dependencies_description), str(directory.path)
        )
        before, after = self.instrumentation.commands(str(directory.metadata))
        return GalaxyEnvironment(
            default_slots=manager_settings.get("galaxy_slots"),
            tmp_dir=self.tmp_dir,
            dependency_commands=activation.commands,
            notices=activation.notices,
            instrument_pre=before,
            instrument_post=after,
            galaxy_virtual_env=self.galaxy.get("galaxy_virtual_env"),
            galaxy_lib=self.galaxy_lib,
            preserve_galaxy_python_environment=wants_galaxy_python(preserve_python),
        )
