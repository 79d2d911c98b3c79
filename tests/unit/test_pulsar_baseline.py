"""The Pulsar baselines of bench/ run Pulsar with the concurrency they claim.

Pulsar ignores manager keys it does not read, so a misspelt one (lwr's ``max_concurrent_jobs``
for Pulsar's ``num_concurrent_jobs``) silently ran every baseline one job at a time. These build
the Pulsar app in-process from the very configuration each harness writes and count its workers.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from mq_jobs import MANAGER, pulsar_app_yml  # noqa: E402
from pulsar_server import PulsarServer, pulsar_concurrency  # noqa: E402


@pytest.mark.parametrize("concurrency", [3, 8])
def test_pulsar_server_config_sets_the_worker_count(tmp_path: Path, concurrency: int) -> None:
    server = PulsarServer(directory=tmp_path, max_concurrent_jobs=concurrency)
    server.write_config()
    assert server.loaded_concurrency() == {"_default_": concurrency}


def test_mq_bench_config_sets_the_worker_count(tmp_path: Path) -> None:
    import json

    app_yml = tmp_path / "app.yml"
    app_yml.write_text(json.dumps(pulsar_app_yml(tmp_path, "memory://", 5)))
    assert pulsar_concurrency(app_conf_path=app_yml) == {MANAGER: 5}
