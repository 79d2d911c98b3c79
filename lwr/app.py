"""The application factory: the one place where lwr's parts are wired together."""

from __future__ import annotations

import atexit
import functools
import logging
import os
from collections.abc import Mapping
from typing import Any

from lwr import __version__
from lwr.auth import load_credentials
from lwr.config import AppSettings, ManagerSettings, load_app_settings
from lwr.core.dependencies import ToolDependencies
from lwr.core.file_cache import FileCache
from lwr.core.galaxy_job import GalaxyJobSetup
from lwr.core.job_metrics import JobInstrumentation
from lwr.core.jobs import JobService, ManagerFactory
from lwr.core.retention import Retention
from lwr.errors import ConfigError
from lwr.managers import manager_class
from lwr.messaging.transport import HttpDisabledApp, MessagingTransport
from lwr.observability.metrics import LwrMetrics, MetricsMiddleware
from lwr.observability.sentry import flush_sentry, init_sentry
from lwr.staging.hooks import ServerStaging
from lwr.tools.policy import ToolPolicy
from lwr.tools.toolbox import load_toolbox
from lwr.web.admin import AdminApi
from lwr.web.app import LwrWebApp
from lwr.web.status_page import StatusPage

log = logging.getLogger(__name__)


class LwrApplication:
    """A running lwr: the job service, its transports, and how to stop them.

    ``start=False`` builds everything but touches no job and binds nothing: a server
    replacing another (``lwr serve --restart``) starts only once the old one has released
    the jobs (and the metrics port).
    """

    def __init__(self, settings: AppSettings, start: bool = True) -> None:
        self.settings = settings
        if settings.sentry_dsn:
            init_sentry(settings.sentry_dsn, settings.source)
        credentials = load_credentials(settings)
        policy = ToolPolicy(load_toolbox(settings.tool_config_files)) if settings.tool_config_files else None
        if policy is not None:
            log.info(
                "public mode: only the %d tools of %s may run",
                len(policy.toolbox.tools),
                ", ".join(map(str, settings.tool_config_files)),
            )
        self.service = JobService(
            settings,
            manager_factories(settings),
            staging_hooks=ServerStaging(settings),
            galaxy=galaxy_job_setup(settings),
            launch_policy=policy,
        )
        self.file_cache = FileCache(settings.file_cache_dir) if settings.file_cache_dir else None
        self.messaging: MessagingTransport | None = None
        if settings.message_queue_url:
            # Attached before recovery (its observer hears recovered jobs), started after it.
            self.messaging = MessagingTransport(self.service, settings)
        self.metrics = LwrMetrics(self.service, self.messaging)
        self.service.observers.append(self.metrics)
        self.retention = Retention(
            self.service,
            settings.retain_complete_jobs,
            settings.retain_failed_jobs,
            settings.retain_job_records,
        )
        self._stopped = False
        admin = AdminApi(self.service, self.metrics, self.messaging)
        web = LwrWebApp(
            self.service,
            credentials,
            settings.max_upload_size,
            self.file_cache,
            extensions=[admin, StatusPage(self.service, self.messaging)],
            job_api=settings.enable_http,
        )
        self.web: Any = MetricsMiddleware(web, self.metrics)
        if not settings.enable_http:
            if self.messaging is None:
                log.warning("enable_http = false and no message_queue_url: this lwr cannot accept jobs")
            self.web = MetricsMiddleware(AdminOrElse(web, HttpDisabledApp(__version__)), self.metrics)
        self._metrics_server: Any = None
        if start:
            self.start()

    def start(self) -> None:
        """Recover and re-attach the jobs on disk, start the managers, then consume messages."""
        settings = self.settings
        self.service.start()
        if self.messaging is not None:
            self.messaging.start()
        self.retention.start()
        if settings.metrics_port:
            from prometheus_client import start_http_server

            self._metrics_server, _thread = start_http_server(
                settings.metrics_port, settings.metrics_host, registry=self.metrics.registry
            )
            log.info("metrics on http://%s:%d/metrics", settings.metrics_host, settings.metrics_port)
        log.info(
            "lwr started: staging %s, job records %s, managers %s",
            settings.staging_directory,
            settings.persistence_directory,
            ", ".join(f"{manager.name} ({manager.type})" for manager in settings.managers),
        )

    def release(self) -> None:
        """Hand the jobs to a successor process: stop consuming (waiting for the messages being
        handled), stop the managers (the jobs keep running) and record nothing more; the
        successor recovers and re-attaches every job."""
        self._stop(release=True)

    def shutdown(self) -> None:
        self._stop(release=False)

    def _stop(self, release: bool) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.retention.stop()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
        if self.messaging is not None:
            self.messaging.stop(wait=release)
        if release:
            self.service.release()
        else:
            self.service.shutdown()
        active = sum(1 for record in self.service.records() if not record.state.is_final)
        log.info(
            "lwr %s: %d unfinished jobs left as they are (they keep running), re-attached by the %s",
            "released its jobs" if release else "stopped",
            active,
            "new server" if release else "next start",
        )
        if self.settings.sentry_dsn:
            flush_sentry()


class AdminOrElse:
    """With the HTTP job API off: the admin routes still answer, everything else goes to ``fallback``."""

    def __init__(self, admin: LwrWebApp, fallback: Any) -> None:
        self.admin = admin
        self.fallback = fallback

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "") or "/"
        if path.rstrip("/") != "/healthz" and self.admin.serves(environ.get("REQUEST_METHOD", "GET"), path):
            return self.admin(environ, start_response)
        return self.fallback(environ, start_response)


def manager_factories(settings: AppSettings) -> dict[str, ManagerFactory]:
    """One factory per ``[manager:NAME]``: its class from the registry, its validated options."""
    return {manager.name: functools.partial(_build_manager, manager) for manager in settings.managers}


def _build_manager(manager: ManagerSettings, listener: Any) -> Any:
    """A manager's own checks (a native_specification, a condor submit line) name the file too."""
    try:
        return manager_class(manager.type)(manager.name, manager.options, listener)
    except ConfigError as error:
        if error.details.get("file"):
            raise
        raise ConfigError(
            f"{manager.source}: {error.message}", **{**error.details, "file": manager.source}
        ) from None


def galaxy_job_setup(settings: AppSettings) -> GalaxyJobSetup:
    """Galaxy's job environment from server.ini: resolvers and metrics plugins load (and fail) here."""
    return GalaxyJobSetup(
        ToolDependencies(
            settings.tool_dependency_dir, settings.dependency_resolvers_config_file, settings.source
        ),
        JobInstrumentation(settings.job_metrics_config_file, settings.job_metrics_enabled, settings.source),
        galaxy=settings.galaxy,
        tmp_dir=settings.tmp_dir,
    )


def settings_of_section(global_conf: Mapping[str, Any], local_conf: Mapping[str, Any]) -> AppSettings:
    """The validated settings of an ``[app:main]`` section as PasteDeploy hands it over."""
    source = global_conf.get("__file__", "<defaults>")
    return load_app_settings(local_conf, source, here=global_conf.get("here"))


def run_application(settings: AppSettings, start: bool = True) -> LwrApplication:
    """The application of validated settings, from server.ini or a Pulsar app.yml alike."""
    # Everything lwr creates is its own alone (job scripts export the job's environment); managers
    # that hand job directories to other users open what those need, nothing more.
    os.umask(0o077)
    application = LwrApplication(settings, start=start)
    atexit.register(application.shutdown)
    return application


def build_application(
    global_conf: Mapping[str, Any], local_conf: Mapping[str, Any], start: bool = True
) -> LwrApplication:
    """The application of an ``[app:main]`` section."""
    return run_application(settings_of_section(global_conf, local_conf), start=start)


def app_factory(global_conf: Mapping[str, Any], **local_conf: Any) -> Any:
    """PasteDeploy entry point (``paste.app_factory = lwr.app:app_factory``)."""
    return build_application(global_conf, local_conf).web
