"""Unexpected errors to Sentry (``sentry_dsn``), tagged with the job and manager they concern.

lwr already logs every unexpected error once, with its traceback, where it is caught (the
web app's 500 path, the MQ consumer, staging, observers). Sentry's logging integration turns
those ERROR records into events; the code that logs passes ``extra={"job_id": ..., "manager":
...}`` and :func:`tag_job` lifts them into tags, so an admin filters by job or manager. Nothing
else in lwr knows Sentry exists.
"""

from __future__ import annotations

import logging
from typing import Any

from lwr import __version__
from lwr.errors import ConfigError

#: Log-record extras that become Sentry tags.
TAGS = ("job_id", "manager", "incident")


def tag_job(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    """``before_send``: the job id and manager a log record named become the event's tags."""
    extra = event.get("extra") or {}
    tags = event.setdefault("tags", {})
    for key in TAGS:
        value = extra.get(key)
        if value is not None and key not in tags:
            tags[key] = str(value)
    return event


def init_sentry(dsn: str, source: str) -> None:
    """Start reporting (process-wide: the SDK has one client); ``source`` names the config file."""
    try:
        import sentry_sdk
        from sentry_sdk.integrations.logging import LoggingIntegration
    except ImportError:
        raise ConfigError(
            f"{source}: [app:main] sentry_dsn is set but the sentry-sdk package is not installed "
            "(pip install 'lwr[sentry]')",
            file=source,
            key="sentry_dsn",
            expected="sentry-sdk installed",
        ) from None
    try:
        sentry_sdk.init(
            dsn=dsn,
            release=f"lwr@{__version__}",
            integrations=[LoggingIntegration(level=logging.INFO, event_level=logging.ERROR)],
            before_send=tag_job,  # type: ignore[arg-type]
            send_default_pii=False,
            traces_sample_rate=0.0,
        )
    except Exception as error:  # noqa: BLE001 - the SDK raises its own BadDsn and others
        raise ConfigError(
            f"{source}: [app:main] sentry_dsn = {dsn!r}: {error}",
            file=source,
            key="sentry_dsn",
            expected="a Sentry DSN such as https://KEY@sentry.example.org/1",
        ) from None


def flush_sentry(timeout: float = 2.0) -> None:
    """Send what is queued before the process exits."""
    try:
        import sentry_sdk
    except ImportError:
        return
    client = sentry_sdk.get_client()
    if client.is_active():
        client.flush(timeout=timeout)
