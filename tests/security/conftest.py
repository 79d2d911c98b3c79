"""Fixtures of the security tests (the network ones live in net_helpers.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from net_helpers import listener, mq_server, vhost  # noqa: E402, F401
