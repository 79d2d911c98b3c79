"""lwr's client: run jobs on an lwr (or Pulsar) server over HTTP. See docs/client.md.

The pieces, from the wire up: :mod:`lwr.client.http` (HTTP session), :mod:`lwr.client.transports`
(HTTP and AMQP behind one contract), :mod:`lwr.client.client` (the one client; :func:`open_client`),
:mod:`lwr.client.action_config` and :mod:`lwr.client.actions` (which file goes how), :mod:`lwr.client.staging` and :mod:`lwr.client.collect` (a job's files in and
out), :mod:`lwr.client.cache` (the server's input cache), :mod:`lwr.client.check` and
:mod:`lwr.client.cli` (the commands).
"""

from __future__ import annotations

from lwr.client.action_config import ActionConfig, load_action_config, parse_action_config
from lwr.client.cache import InputCache
from lwr.client.client import JobConfig, LaunchRequest, LwrClient, open_client
from lwr.client.collect import Collected, collect_outputs
from lwr.client.staging import JobDescription, StagedJob, StagingObserver, stage_and_submit

__all__ = [
    "ActionConfig",
    "Collected",
    "InputCache",
    "JobConfig",
    "JobDescription",
    "LaunchRequest",
    "LwrClient",
    "StagedJob",
    "StagingObserver",
    "collect_outputs",
    "load_action_config",
    "open_client",
    "parse_action_config",
    "stage_and_submit",
]
