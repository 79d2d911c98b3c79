"""Galaxy's job metrics: every job instrumented by Galaxy's own job-metrics plugins, as Pulsar does.

The plugins (``core`` by default: slots, memory, start and end times; the admin's
``job_metrics_config_file`` in Galaxy's format otherwise) give shell commands run before and
after the tool; they write ``__instrument_*`` files into the job's metadata directory, which
the status reply lists and Galaxy's client downloads and collects into ``/api/jobs/{id}/metrics``.

(Not to be confused with lwr's own Prometheus metrics: this module only instruments jobs.)
galaxy-job-metrics is imported on the first job, or at start-up when a config file is named
so that a broken file stops lwr at once.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from lwr.errors import ConfigError


class JobInstrumentation:
    """The commands Galaxy's job-metrics plugins put around a job; nothing when disabled."""

    def __init__(self, config_file: Path | None, enabled: bool = True, source: str = "server.ini") -> None:
        self.config_file = config_file
        self.enabled = enabled
        self.source = source
        self._instrumenter: Any = None
        self._lock = threading.Lock()
        if enabled and config_file is not None:
            self._load()

    def _load(self) -> Any:
        with self._lock:
            if self._instrumenter is None:
                from galaxy.job_metrics import JobMetrics

                try:
                    metrics = JobMetrics(str(self.config_file)) if self.config_file else JobMetrics()
                    # Plugins are only loaded, not checked, until asked for their commands.
                    metrics.default_job_instrumenter.pre_execute_commands("/dev/null")
                except Exception as error:  # noqa: BLE001 - Galaxy's plugin loader raises anything
                    raise ConfigError(
                        f"{self.source}: job_metrics_config_file = {self.config_file}: Galaxy's job "
                        f"metrics refused it: {type(error).__name__}: {error}",
                        file=self.source,
                        key="job_metrics_config_file",
                        expected="Galaxy's job metrics configuration",
                    ) from None
                self._instrumenter = metrics.default_job_instrumenter
            return self._instrumenter

    def commands(self, metadata_directory: str) -> tuple[str, str]:
        """The (before, after) shell commands for a job whose metadata directory is given."""
        if not self.enabled:
            return "", ""
        instrumenter = self._load()
        return (
            instrumenter.pre_execute_commands(metadata_directory) or "",
            instrumenter.post_execute_commands(metadata_directory) or "",
        )
