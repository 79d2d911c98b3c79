"""Fixtures for the message-queue tests: a private vhost, a job files endpoint, an MQ-mode lwr."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mq_fixtures import files_endpoint, listener, mq_server, vhost  # noqa: E402, F401
