"""The bounded staging pool (lwr/staging/pool.py): global and per-host limits, fairness, backlog."""

from __future__ import annotations

import threading
import time

import pytest

from lwr.staging.pool import StagingPool


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


@pytest.fixture
def pool():
    staging = StagingPool(workers=4, per_host=2)
    yield staging
    staging.shutdown()


def test_a_stalled_host_holds_only_its_share_and_others_flow(pool: StagingPool) -> None:
    stall = threading.Event()
    done: list[str] = []
    for index in range(100):
        pool.submit("stalled:80", f"s{index}", stall.wait)
    for index in range(20):
        pool.submit("healthy:80", f"h{index}", lambda index=index: done.append(f"h{index}"))
    wait_until(lambda: len(done) == 20)
    backlog = pool.backlog()
    assert backlog["hosts"]["stalled:80"] == {"waiting": 98, "running": 2}
    assert backlog["waiting"] == 98 and backlog["running"] == 2
    assert backlog["threads"] <= 4 and backlog["completed"] == 20
    stall.set()
    wait_until(lambda: pool.backlog()["completed"] == 120)
    assert pool.backlog()["hosts"] == {}


def test_never_more_workers_than_configured(pool: StagingPool) -> None:
    running = []
    peak = [0]
    lock = threading.Lock()

    def work() -> None:
        with lock:
            running.append(1)
            peak[0] = max(peak[0], len(running))
        time.sleep(0.02)
        with lock:
            running.pop()

    for index in range(60):
        pool.submit(f"host{index % 6}:80", f"t{index}", work)
    wait_until(lambda: pool.backlog()["completed"] == 60)
    assert peak[0] <= 4 and pool.backlog()["threads"] == 4


def test_hosts_are_served_in_turn(pool: StagingPool) -> None:
    gate = threading.Event()
    order: list[str] = []
    single = StagingPool(workers=1, per_host=1)
    try:
        single.submit("blocker:1", "b", gate.wait)
        for index in range(3):
            single.submit("a:1", f"a{index}", lambda index=index: order.append(f"a{index}"))
        for index in range(3):
            single.submit("b:1", f"b{index}", lambda index=index: order.append(f"b{index}"))
        gate.set()
        wait_until(lambda: len(order) == 6)
        assert order == ["a0", "b0", "a1", "b1", "a2", "b2"]
    finally:
        single.shutdown()


def test_a_failing_task_leaves_the_worker_alive(pool: StagingPool) -> None:
    done = threading.Event()

    def boom() -> None:
        raise RuntimeError("broken")

    pool.submit("h:1", "boom", boom)
    pool.submit("h:1", "after", done.set)
    assert done.wait(5)
    wait_until(lambda: pool.backlog()["failed"] == 1)


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        StagingPool(workers=0)
