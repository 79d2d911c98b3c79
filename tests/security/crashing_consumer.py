"""A process running lwr's real consumer whose handler kills the process on a ``crash`` message,
as a message that crashes lwr would, and hangs on a ``block`` message (printing ``blocking``).
Exits 3 when it crashes, 0 once a ``done`` job's message is handled and settled.

usage: crashing_consumer.py BROKER_URL PERSISTENCE_DIRECTORY
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any

from lwr.config import AppSettings
from lwr.config_amqp import AmqpSettings
from lwr.messaging.consumer import Consumer
from lwr.messaging.deliveries import RedeliveryGuard


class Handler:
    """Stands in for lwr's message handler (same interface)."""

    rejected = 0

    def __init__(self) -> None:
        self.done = threading.Event()

    def handle(
        self, manager: str, name: str, body: dict[str, Any], reply: Any, redelivered: bool = False
    ) -> None:
        if body.get("crash"):
            os._exit(3)
        if body.get("block"):
            print("blocking", file=sys.stderr, flush=True)
            threading.Event().wait()
        if body.get("job_id") == "done":
            self.done.set()


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    url, persistence = sys.argv[1], Path(sys.argv[2])
    settings = AppSettings(
        staging_directory=persistence,
        persistence_directory=persistence,
        managers=(),
        message_queue_url=url,
        amqp=AmqpSettings(heartbeat=0),
    )
    handler = Handler()
    consumer = Consumer(
        url,
        settings,
        ["_default_"],
        handler,  # type: ignore[arg-type]
        acknowledgements=False,
        redeliveries=RedeliveryGuard(persistence / "redeliveries"),
    )
    consumer.start()
    if not handler.done.wait(120):
        return 2
    while consumer._outstanding:  # let the consumer thread settle it
        threading.Event().wait(0.05)
    threading.Event().wait(0.5)
    consumer.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
