"""The message-queue fixtures every MQ test package uses: a private vhost, a job files endpoint,
a status listener and an MQ-mode lwr. Import them into a conftest.py to use them."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from mq_helpers import FilesEndpoint, StatusListener, Vhost


@pytest.fixture
def vhost() -> Iterator[Vhost]:
    host = Vhost()
    yield host
    host.delete()


@pytest.fixture
def files_endpoint() -> Iterator[FilesEndpoint]:
    endpoint = FilesEndpoint()
    yield endpoint
    endpoint.stop()


@pytest.fixture
def listener(vhost: Vhost) -> Iterator[StatusListener]:
    status_listener = StatusListener(vhost.url)
    yield status_listener
    status_listener.stop()


@pytest.fixture
def mq_server(
    make_server: Callable[..., object], vhost: Vhost, files_endpoint: FilesEndpoint
) -> Callable[..., object]:
    """``mq_server(**app_options)``: an lwr consuming the test's vhost, allowed to reach the files endpoint."""

    def make(name: str = "lwr", job_managers_ini: str | None = None, **app_options: str) -> object:
        options = {
            "message_queue_url": vhost.url,
            "remote_staging_allowed_urls": files_endpoint.base,
            "amqp_heartbeat": "10",
            "amqp_publish_retry_max": "2",
            **app_options,
        }
        return make_server(name, app_options=options, job_managers_ini=job_managers_ini)

    return make
