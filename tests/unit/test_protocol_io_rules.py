"""The shared pure rules for I/O: byte ranges, the retry policy, the credential redactor."""

from __future__ import annotations

import pytest

from lwr.protocol.ranges import (
    RangeNotSatisfiable,
    content_range,
    content_range_start,
    parse_range,
    unsatisfiable_range,
)
from lwr.protocol.redact import redact, safe_url
from lwr.protocol.retry import Backoff, RetryPolicy


@pytest.mark.parametrize(
    "header, expected",
    [
        (None, None),
        ("", None),
        ("bytes=10-", (10, 99)),
        ("bytes=0-9", (0, 9)),
        ("bytes=-10", (90, 99)),
        ("bytes=90-200", (90, 99)),
        ("bytes=-500", (0, 99)),
        ("bytes=1-2,5-6", None),
        ("items=1-2", None),
        ("bytes=-", None),
        (" bytes=5- ", (5, 99)),
    ],
)
def test_parse_range(header: str | None, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=-0", "bytes=50-10"])
def test_unsatisfiable_ranges(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable) as raised:
        parse_range(header, 100)
    assert raised.value.http_status == 416


@pytest.mark.parametrize(
    "header, start",
    [
        ("bytes 10-99/100", 10),
        ("bytes 0-0/1", 0),
        ("bytes */100", -1),
        ("", -1),
        (None, -1),
        ("junk", -1),
    ],
)
def test_content_range_start(header: str | None, start: int) -> None:
    assert content_range_start(header) == start


def test_content_range_round_trip() -> None:
    assert content_range_start(content_range(10, 99, 100)) == 10
    assert unsatisfiable_range(100) == "bytes */100"


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "GET http://h/jobs?private_token=s3cr3t&x=1 failed",
            "GET http://h/jobs?private_token=***&x=1 failed",
        ),
        ("amqp://guest:guest@127.0.0.1:5672/vhost", "amqp://guest:***@127.0.0.1:5672/vhost"),
        ("'private_token=abc')", "'private_token=***')"),
        ("http://host/path", "http://host/path"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_safe_url_drops_the_query_and_the_password() -> None:
    assert (
        safe_url("https://u:pw@galaxy/api/jobs/1/files?job_key=k&path=/x")
        == "https://u:***@galaxy/api/jobs/1/files"
    )


def test_retry_policy_doubles_up_to_its_cap_with_bounded_jitter() -> None:
    policy = RetryPolicy(attempts=10, backoff=0.5, cap=4.0)
    for retry, nominal in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0), (200, 4.0)]:
        assert 0.8 * nominal <= policy.delay(retry) <= nominal
    assert not policy.gives_up_after(9) and policy.gives_up_after(10)
    assert not RetryPolicy(attempts=0).gives_up_after(10_000)


def test_backoff_counts_failures_and_resets() -> None:
    backoff = Backoff(RetryPolicy(attempts=0, backoff=0.5, cap=4))
    delays = [backoff.next() for _ in range(8)]
    assert delays[0] <= 0.5 and all(d <= 4 for d in delays) and delays[-1] >= 3.2
    backoff.reset()
    assert backoff.next() <= 0.5
