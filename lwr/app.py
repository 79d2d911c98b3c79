"""The application factory: the one place where lwr's parts are wired together."""

from __future__ import annotations

import atexit
import logging
from collections.abc import Mapping
from typing import Any

from lwr.config import AppSettings, load_app_settings
from lwr.core.file_cache import FileCache
from lwr.core.jobs import JobService
from lwr.web.app import LwrWebApp

log = logging.getLogger(__name__)


class LwrApplication:
    """A running lwr: the job service, its transports, and how to stop them."""

    def __init__(self, settings: AppSettings) -> None:
        self.settings = settings
        self.service = JobService(settings)
        self.file_cache = FileCache(settings.file_cache_dir) if settings.file_cache_dir else None
        self.messaging: Any = None
        if settings.message_queue_url:
            from lwr.messaging.consumer import start_messaging

            self.messaging = start_messaging(self.service, settings)
        self.service.start()
        self.web = LwrWebApp(self.service, settings.private_token, settings.max_upload_size, self.file_cache)
        log.info("lwr started: staging %s, managers %s", settings.staging_directory, ", ".join(self.service.managers))

    def shutdown(self) -> None:
        if self.messaging is not None:
            self.messaging.stop()
        self.service.shutdown()


def app_factory(global_conf: Mapping[str, Any], **local_conf: Any) -> LwrWebApp:
    """PasteDeploy entry point (``paste.app_factory = lwr.app:app_factory``)."""
    source = global_conf.get("__file__", "<defaults>")
    settings = load_app_settings(local_conf, source, here=global_conf.get("here"))
    application = LwrApplication(settings)
    atexit.register(application.shutdown)
    return application.web
