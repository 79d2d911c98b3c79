"""Request heads parsed within limits; every refusal carries its status."""

from __future__ import annotations

import pytest

from lwr.web.http_request import HeadError, Limits, check_partial, parse_head

LIMITS = Limits(max_request_line=64, max_headers=3, max_header_size=128)


def test_a_plain_head():
    head = parse_head(
        b"POST /jobs/a%20b/files?name=x HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\nX-A: 1", Limits()
    )
    assert (head.method, head.path, head.query, head.version) == ("POST", "/jobs/a b/files", "name=x", (1, 1))
    assert head.content_length == 12 and not head.chunked and head.keep_alive
    assert head.header("x-a") == "1"


def test_absolute_form_target_and_http10_keep_alive():
    head = parse_head(b"GET http://example.org/healthz?x HTTP/1.0\r\nConnection: keep-alive", Limits())
    assert head.path == "/healthz" and head.query == "x" and head.keep_alive
    assert not parse_head(b"GET / HTTP/1.0", Limits()).keep_alive
    assert not parse_head(b"GET / HTTP/1.1\r\nConnection: close", Limits()).keep_alive


@pytest.mark.parametrize(
    "data, status",
    [
        (b"GET /" + b"a" * 70 + b" HTTP/1.1", 414),
        (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 3 + b"X: y", 431),
        (b"GET / HTTP/1.1\r\nX: " + b"y" * 130, 431),
        (b"GET / HTTP/3.0", 505),
        (b"GET / HTTP/1.1 extra", 400),
        (b"GET /\x01 HTTP/1.1", 400),
        (b"GET * HTTP/1.1", 400),
        (b"G(T / HTTP/1.1", 400),
        (b"GET / HTTP/1.1\r\nBad Name: x", 400),
        (b"GET / HTTP/1.1\r\n folded", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: -1", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked", 501),
        (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked", 400),
    ],
)
def test_refusals(data, status):
    with pytest.raises(HeadError) as raised:
        parse_head(data, LIMITS)
    assert raised.value.status == status


def test_partial_heads_are_refused_before_they_end():
    check_partial(b"GET /" + b"a" * 50, LIMITS)
    with pytest.raises(HeadError) as raised:
        check_partial(b"GET /" + b"a" * 70, LIMITS)
    assert raised.value.status == 414
    with pytest.raises(HeadError) as raised:
        check_partial(b"GET / HTTP/1.1\r\n" + b"y" * 300, LIMITS)
    assert raised.value.status == 431
