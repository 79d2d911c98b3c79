"""The application factory: the one place where lwr's parts are wired together."""

from __future__ import annotations

import atexit
import functools
import logging
from collections.abc import Mapping
from typing import Any

from lwr import __version__
from lwr.auth import load_credentials
from lwr.config import AppSettings, load_app_settings
from lwr.core.file_cache import FileCache
from lwr.core.jobs import JobService, ManagerFactory
from lwr.managers import manager_class
from lwr.messaging.transport import HttpDisabledApp, MessagingTransport
from lwr.staging.hooks import ServerStaging
from lwr.tools.policy import ToolPolicy
from lwr.tools.toolbox import load_toolbox
from lwr.web.app import LwrWebApp

log = logging.getLogger(__name__)


class LwrApplication:
    """A running lwr: the job service, its transports, and how to stop them."""

    def __init__(self, settings: AppSettings) -> None:
        self.settings = settings
        credentials = load_credentials(settings)
        policy = ToolPolicy(load_toolbox(settings.tool_config_files)) if settings.tool_config_files else None
        if policy is not None:
            log.info("public mode: only the %d tools of %s may run", len(policy.toolbox.tools),
                     ", ".join(map(str, settings.tool_config_files)))
        self.service = JobService(settings, manager_factories(settings), staging_hooks=ServerStaging(settings),
                                  launch_policy=policy)
        self.file_cache = FileCache(settings.file_cache_dir) if settings.file_cache_dir else None
        self.messaging: MessagingTransport | None = None
        if settings.message_queue_url:
            # Attached before recovery (its observer hears recovered jobs), started after it.
            self.messaging = MessagingTransport(self.service, settings)
        self.service.start()
        if self.messaging is not None:
            self.messaging.start()
        self.web: Any = LwrWebApp(self.service, credentials, settings.max_upload_size, self.file_cache)
        if not settings.enable_http:
            if self.messaging is None:
                log.warning("enable_http = false and no message_queue_url: this lwr cannot accept jobs")
            self.web = HttpDisabledApp(__version__)
        log.info("lwr started: staging %s, managers %s", settings.staging_directory, ", ".join(self.service.managers))

    def shutdown(self) -> None:
        if self.messaging is not None:
            self.messaging.stop()
        self.service.shutdown()


def manager_factories(settings: AppSettings) -> dict[str, ManagerFactory]:
    """One factory per ``[manager:NAME]``: its class from the registry, its validated options."""
    return {manager.name: functools.partial(manager_class(manager.type), manager.name, manager.options)
            for manager in settings.managers}


def app_factory(global_conf: Mapping[str, Any], **local_conf: Any) -> Any:
    """PasteDeploy entry point (``paste.app_factory = lwr.app:app_factory``)."""
    source = global_conf.get("__file__", "<defaults>")
    settings = load_app_settings(local_conf, source, here=global_conf.get("here"))
    application = LwrApplication(settings)
    atexit.register(application.shutdown)
    return application.web
