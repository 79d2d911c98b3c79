from __future__ import annotations

import threading
import time

from lwr.core.end_waiter import EndWaiter


def test_fresh_job_wait_ends_when_the_job_ends():
    waiter = EndWaiter(window=1.0, wait=2.0)
    waiter.submitted("j")
    threading.Timer(0.05, waiter.ended, args=("j",)).start()
    started = time.monotonic()
    assert waiter.wait("j") is True
    assert time.monotonic() - started < 1.0


def test_wait_is_bounded():
    waiter = EndWaiter(window=1.0, wait=0.05)
    waiter.submitted("j")
    started = time.monotonic()
    assert waiter.wait("j") is False
    assert 0.04 <= time.monotonic() - started < 0.5


def test_old_and_unknown_jobs_never_wait():
    waiter = EndWaiter(window=0.01, wait=5.0)
    waiter.submitted("old")
    time.sleep(0.02)
    started = time.monotonic()
    assert waiter.wait("old") is False
    assert waiter.wait("never-submitted") is False
    assert time.monotonic() - started < 0.1


def test_at_most_slots_requests_wait_at_once():
    waiter = EndWaiter(window=5.0, wait=0.3, slots=1)
    waiter.submitted("a")
    waiter.submitted("b")
    blocker = threading.Thread(target=waiter.wait, args=("a",))
    blocker.start()
    time.sleep(0.05)
    started = time.monotonic()
    assert waiter.wait("b") is False
    assert time.monotonic() - started < 0.1
    blocker.join()
