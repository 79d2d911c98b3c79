"""The application factory: the one place where lwr's parts are wired together."""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Mapping
from typing import Any

from lwr import __version__
from lwr.config import AppSettings, load_app_settings
from lwr.core.file_cache import FileCache
from lwr.core.jobs import JobService
from lwr.messaging.transport import HttpDisabledApp, MessagingTransport
from lwr.staging.hooks import ServerStaging
from lwr.web.app import LwrWebApp

log = logging.getLogger(__name__)


class LwrApplication:
    """A running lwr: the job service, its transports, and how to stop them."""

    def __init__(self, settings: AppSettings) -> None:
        self.settings = settings
        self.service = JobService(settings)
        self.service.staging_hooks = ServerStaging(settings)
        self.file_cache = FileCache(settings.file_cache_dir) if settings.file_cache_dir else None
        self.messaging: MessagingTransport | None = None
        if settings.message_queue_url:
            # Attached before recovery (its observer hears recovered jobs), started after it.
            self.messaging = MessagingTransport(self.service, settings)
        self.service.start()
        if self.messaging is not None:
            self.messaging.start()
        self.web: Any = LwrWebApp(self.service, settings.private_token, settings.max_upload_size, self.file_cache)
        if not settings.enable_http:
            if self.messaging is None:
                log.warning("enable_http = false and no message_queue_url: this lwr cannot accept jobs")
            self.web = HttpDisabledApp(__version__)
        log.info("lwr started: staging %s, managers %s", settings.staging_directory, ", ".join(self.service.managers))

    def shutdown(self) -> None:
        if self.messaging is not None:
            self.messaging.stop()
        self.service.shutdown()


def app_factory(global_conf: Mapping[str, Any], **local_conf: Any) -> Any:
    """PasteDeploy entry point (``paste.app_factory = lwr.app:app_factory``)."""
    # Everything lwr creates is its own alone (job scripts export the job's environment); managers
    # that hand job directories to other users open what those need, nothing more.
    os.umask(0o077)
    source = global_conf.get("__file__", "<defaults>")
    settings = load_app_settings(local_conf, source, here=global_conf.get("here"))
    application = LwrApplication(settings)
    atexit.register(application.shutdown)
    return application.web
