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

import re
import threading
from pathlib import Path
from typing import Any

from lwr.errors import ConfigError

#: The ``core`` plugin's clock reading (``date +"%s" > file``, run before and after every tool).
_DATE_SECONDS = re.compile(r'(?m)^date \+"%s"(?= >)')
#: The same line from bash's own clock: ``date`` is a process (a millisecond or more a job, twice);
#: ``printf %(...)T`` (bash 4.2) is not. An older shell falls back to ``date``.
_BUILTIN_SECONDS = "{ printf '%(%s)T\\n' -1 2>/dev/null || date +\"%s\"; }"


def without_date_forks(commands: str) -> str:
    """``commands`` with each ``date +"%s" > file`` of Galaxy's ``core`` plugin read from bash's clock.

    Only that exact command is rewritten: whatever else a plugin writes runs as Galaxy wrote it.
    """
    return _DATE_SECONDS.sub(lambda _: _BUILTIN_SECONDS, commands)


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
            without_date_forks(instrumenter.pre_execute_commands(metadata_directory) or ""),
            without_date_forks(instrumenter.post_execute_commands(metadata_directory) or ""),
        )
