from __future__ import annotations

import hashlib
import io

import pytest

from lwr.errors import BadRequest, IntegrityError, PayloadTooLarge
from lwr.web.transfer import CHUNK_SIZE, RangeNotSatisfiable, iter_file, parse_range, receive_upload


@pytest.mark.parametrize(
    "header, expected",
    [
        (None, None),
        ("bytes=0-9", (0, 9)),
        ("bytes=5-", (5, 99)),
        ("bytes=-10", (90, 99)),
        ("bytes=90-200", (90, 99)),
        ("bytes=-200", (0, 99)),
        ("items=1-2", None),
        ("bytes=1-2,4-5", None),
    ],
)
def test_parse_range(header, expected):
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=5-4", "bytes=-0"])
def test_unsatisfiable(header):
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, 100)


def environ(data: bytes, length: int | None = None) -> dict:
    return {"CONTENT_LENGTH": str(len(data) if length is None else length), "wsgi.input": io.BytesIO(data)}


def test_upload_complete(tmp_path):
    data = b"x" * 3_000_000
    reply = receive_upload(environ(data), tmp_path / "a" / "f", None, hashlib.sha256(data).hexdigest())
    assert (tmp_path / "a" / "f").read_bytes() == data
    assert reply["size"] == len(data) and reply["sha256"] == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("size", [0, 1, 300, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE + 5])
@pytest.mark.parametrize("hashed", [False, True])
def test_uploads_of_every_size_arrive_whole(tmp_path, size, hashed):
    data = bytes(index % 253 for index in range(size))
    digest = hashlib.sha256(data).hexdigest() if hashed else None
    reply = receive_upload(environ(data), tmp_path / "f", None, digest)
    assert (tmp_path / "f").read_bytes() == data and reply["size"] == size
    # An unterminated body (no Content-Length) is read to its end in whole chunks.
    unterminated = {"wsgi.input": io.BytesIO(data), "wsgi.input_terminated": True}
    assert receive_upload(unterminated, tmp_path / "g", None, digest)["size"] == size
    assert (tmp_path / "g").read_bytes() == data


@pytest.mark.parametrize(
    "env, limit, digest, error",
    [
        (environ(b"abc", 10), None, None, BadRequest),
        (environ(b"abc"), 2, None, PayloadTooLarge),
        (environ(b"abc"), None, "0" * 64, IntegrityError),
    ],
)
def test_upload_failures_leave_nothing(tmp_path, env, limit, digest, error):
    with pytest.raises(error):
        receive_upload(env, tmp_path / "f", limit, digest)
    assert list(tmp_path.iterdir()) == []


def test_iter_file(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(bytes(range(256)) * 10000)
    handle = open(path, "rb")
    assert b"".join(iter_file(handle, 10, 5)) == bytes(range(10, 15))
    assert handle.closed


def test_background_hash_matches_and_survives_abandon(tmp_path):
    from lwr.digests import BackgroundHash

    digest = BackgroundHash(depth=2)
    expected = hashlib.sha256()
    for index in range(50):
        chunk = bytes([index]) * 100_000
        digest.update(chunk)
        expected.update(chunk)
    assert digest.hexdigest() == expected.hexdigest()
    abandoned = BackgroundHash(depth=1)
    abandoned.update(b"x" * 10)
    abandoned.abandon()
    abandoned._thread.join(5)
    assert not abandoned._thread.is_alive()


def test_digest_cache_remembers_until_the_file_changes(tmp_path):
    from lwr.digests import DigestCache

    path = tmp_path / "f"
    path.write_bytes(b"one")
    cache = DigestCache()
    assert cache.sha256(path) == hashlib.sha256(b"one").hexdigest()
    cache.remember(path, "feed")
    assert cache.sha256(path) == "feed"
    path.write_bytes(b"two!")
    assert cache.sha256(path) == hashlib.sha256(b"two!").hexdigest()
    cache.remember(path, "cafe")
    assert cache.sha256(path) == "cafe"
    assert cache.sha256(path, remembered=False) == hashlib.sha256(b"two!").hexdigest()
