"""The HTTP transport under lwr's client: one pooled ``requests`` session per server.

What it guarantees, so the layers above need not care:

* every request carries the private token (as the ``private_token`` query argument, which lwr and
  Pulsar both accept) and a timeout;
* idempotent calls are retried on connection errors, timeouts and 5xx answers, with capped
  exponential backoff; other calls are sent once;
* uploads stream from the file (never read whole into memory) with a ``Content-Length`` and the
  file's digest: BLAKE3 in ``X-Lwr-Digest`` once the server advertised it
  (``X-Lwr-Accept-Digest``, on every reply of a current lwr), else SHA-256 in ``X-Lwr-Sha256``;
  lwr's server checks it before the file is renamed into place (:mod:`lwr.protocol.digest`);
* downloads stream into a temporary file beside the destination, hashed on the way, and are
  renamed into place only when complete and, if the server sent a digest (lwr does, in the
  first of ``X-Lwr-Want-Digest`` it has; Pulsar does not), only when the digest matches;
* a digest mismatch either way is retried, then raised as :class:`lwr.errors.IntegrityError`;
* an error answer is raised as the :mod:`lwr.errors` class for its status (the server's
  ``{"error": ...}`` message and details kept).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterator, Mapping
from typing import Any, Callable, Union
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

from lwr import __version__, errors
from lwr.client.errors import RemoteError, TransportError, error_class
from lwr.core.atomic import place, temporary_beside
from lwr.digests import ALGORITHMS, BackgroundHash, bytes_digest, file_digest, title
from lwr.protocol.digest import SHA256, format_digest, parse_list, reply_digest, upload_algorithm
from lwr.protocol.names import (
    ACCEPT_DIGEST_HEADER,
    DIGEST_HEADER,
    SHA256_HEADER,
    WANT_DIGEST_HEADER,
    WANT_SHA256_HEADER,
)
from lwr.protocol.ranges import RangeNotSatisfiable, content_range_start
from lwr.protocol.redact import redact
from lwr.protocol.retry import RetryPolicy

log = logging.getLogger(__name__)

#: Read and write size for file bodies: large enough that per-chunk overhead vanishes at loopback speed.
CHUNK_SIZE = 1 << 20

#: Read size of downloads: smaller than uploads' so that little is lost (read again) when a
#: connection drops mid-body, since a partly read chunk is discarded.
DOWNLOAD_CHUNK_SIZE = 256 * 1024

#: Called with the number of bytes just sent or received.
Progress = Callable[[int], None]
Params = Mapping[str, Any]
BodySource = Union[str, bytes]


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_current_umask()


class _FileBody:
    """A file as a request body: sized (so requests sends ``Content-Length``), read in large chunks."""

    def __init__(self, path: str, progress: Progress | None) -> None:
        self._file = open(path, "rb")
        self._size = os.fstat(self._file.fileno()).st_size
        self._progress = progress

    def __len__(self) -> int:
        return self._size

    def read(self, size: int = -1) -> bytes:
        chunk = self._file.read() if size is None or size < 0 else self._file.read(max(size, CHUNK_SIZE))
        if chunk and self._progress is not None:
            self._progress(len(chunk))
        return chunk

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(CHUNK_SIZE):
            yield chunk

    def close(self) -> None:
        self._file.close()


class HttpTransport:
    """Requests to one lwr or Pulsar server (optionally one named manager of it)."""

    def __init__(
        self,
        url: str,
        *,
        private_token: str | None = None,
        manager: str | None = None,
        timeout: tuple[float, float] = (10.0, 300.0),
        retry: RetryPolicy | None = None,
        pool_size: int = 8,
        session: requests.Session | None = None,
        ca_certs: str | None = None,
    ) -> None:
        if "://" not in url:
            url = f"http://{url}"
        base = url.rstrip("/") + "/"
        if manager and "/managers/" not in base:
            base += f"managers/{quote(manager, safe='')}/"
        self.base_url = base
        self.private_token = private_token
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.session = session or requests.Session()
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=pool_size)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = f"lwr-client/{__version__}"
        #: Passed with each request: requests lets REQUESTS_CA_BUNDLE override a session's verify.
        self.ca_certs = ca_certs or None
        #: The digest algorithms the server last advertised (``X-Lwr-Accept-Digest``); None until
        #: a reply named some, and again after one that did not (Pulsar, an older lwr).
        self.server_digests: list[str] | None = None

    def upload_algorithm(self) -> str:
        """The digest algorithm the next upload is sent with: BLAKE3 if the server verifies it."""
        return upload_algorithm(self.server_digests, ALGORITHMS)

    def close(self) -> None:
        self.session.close()

    # -- plain requests -------------------------------------------------------------------------

    def request(
        self,
        method: str,
        route: str,
        params: Params | None = None,
        *,
        body: Callable[[], Any] | bytes | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = False,
        stream: bool = False,
    ) -> requests.Response:
        """Send one call (retried if ``idempotent``) and return the successful response.

        ``body`` may be a factory called once per try, so a file is re-opened for each retry.
        """
        url = self.base_url + route.lstrip("/")
        query = {key: _param(value) for key, value in (params or {}).items() if value is not None}
        if self.private_token:
            query["private_token"] = self.private_token
        attempts = max(1, self.retry.attempts) if idempotent else 1
        for attempt in range(1, max(1, self.retry.attempts) + 1):
            data = body() if callable(body) else body
            try:
                response = self.session.request(
                    method,
                    url,
                    params=query,
                    data=data,
                    headers=dict(headers or {}),
                    timeout=self.timeout,
                    stream=stream,
                    verify=self.ca_certs,
                )
            except requests.exceptions.SSLError as exc:
                if "CERTIFICATE_VERIFY_FAILED" not in str(exc) and attempt < attempts:
                    self._pause(method, route, attempt, redact(str(exc)))
                    continue
                # An untrusted certificate stays untrusted: no retry, and what to do about it.
                hint = (
                    "; the server's certificate is not trusted here: name its CA (or the certificate) "
                    "with --ca-certs FILE"
                    if "CERTIFICATE_VERIFY_FAILED" in str(exc)
                    else ""
                )
                raise TransportError(
                    f"{method} /{route}: {redact(str(exc))}{hint}", url=self.base_url, attempts=attempt
                ) from exc
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt < attempts or (attempt < self.retry.attempts and _never_sent(exc)):
                    self._pause(method, route, attempt, redact(str(exc)))
                    continue
                raise TransportError(
                    f"{method} /{route}: {redact(str(exc))}", url=self.base_url, attempts=attempt
                ) from exc
            finally:
                close = getattr(data, "close", None)
                if close is not None:
                    close()
            self.server_digests = parse_list(response.headers.get(ACCEPT_DIGEST_HEADER)) or None
            if response.status_code >= 500 and attempt < attempts:
                response.close()
                self._pause(method, route, attempt, f"HTTP {response.status_code}")
                continue
            if response.status_code >= 400:
                raise self._error(method, route, response)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def json(self, method: str, route: str, params: Params | None = None, *, idempotent: bool = False) -> Any:
        """A call whose reply is JSON."""
        response = self.request(method, route, params, idempotent=idempotent)
        try:
            return response.json()
        except ValueError as exc:
            raise RemoteError(f"{method} /{route}: reply is not JSON", body=response.text[:200]) from exc

    # -- file bodies ----------------------------------------------------------------------------

    def upload(
        self, route: str, params: Params, source: BodySource, *, progress: Progress | None = None
    ) -> Any:
        """POST a file (a path) or in-memory contents (bytes) with its digest; return the JSON reply.

        A digest mismatch the server reports (or a digest it echoes that differs from ours) is
        retried; the last one raises :class:`lwr.errors.IntegrityError`. An upload sent with an
        algorithm other than SHA-256 that the server did not echo went unchecked (an older server
        answers at that address now) and is sent once more with SHA-256.
        """
        algorithm = self.upload_algorithm()
        if isinstance(source, bytes):
            contents = source

            def body() -> Any:
                if progress is not None:
                    progress(len(contents))
                return contents

            def hexdigest(algorithm: str, remembered: bool = True) -> str:
                return bytes_digest(contents, algorithm)
        else:
            path = source

            def body() -> Any:
                if os.path.getsize(path) == 0:  # a sized-zero stream would be sent chunked
                    return b""
                return _FileBody(path, progress)

            def hexdigest(algorithm: str, remembered: bool = True) -> str:
                return file_digest(path, algorithm, remembered=remembered)

        digest = hexdigest(algorithm)
        attempts = max(1, self.retry.attempts)
        attempt = 0
        while attempt < attempts:
            attempt += 1
            headers = {**_digest_headers(algorithm, digest), "Content-Type": "application/octet-stream"}
            try:
                response = self.request("POST", route, params, body=body, headers=headers, idempotent=True)
                reply = response.json() if response.content.strip() not in (b"", b"OK") else None
                echoed = _echoed_digest(reply, algorithm)
                if echoed is None and algorithm != SHA256:
                    log.warning(
                        "POST /%s: the server did not verify %s; sending it with SHA-256",
                        route,
                        title(algorithm),
                    )
                    algorithm, digest, attempt = SHA256, hexdigest(SHA256), attempt - 1
                    continue
                if echoed and echoed != digest:
                    raise errors.IntegrityError(
                        f"POST /{route}: the server stored a file whose {title(algorithm)} differs from the one sent",
                        algorithm=algorithm,
                        **{f"sent_{algorithm}": digest, f"stored_{algorithm}": echoed},
                    )
                return reply
            except errors.IntegrityError as exc:
                if attempt < attempts:
                    self._pause("POST", route, attempt, exc.message)
                    # The file may have changed under a remembered digest.
                    digest = hexdigest(algorithm, remembered=False)
                    continue
                raise errors.IntegrityError(
                    f"upload of {params.get('name') or params.get('path')} corrupted in transit "
                    f"{attempts} times: {exc.message}",
                    **{algorithm: digest, **exc.details},
                ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def download(
        self,
        route: str,
        params: Params,
        destination: str,
        *,
        progress: Progress | None = None,
        on_size: Callable[[int], Progress | None] | None = None,
    ) -> str:
        """GET a file into ``destination`` atomically; return its hex digest.

        The digest is in the algorithm the server sent one in (BLAKE3 from a current lwr), else
        SHA-256 (an older lwr, or Pulsar, which sends none: then nothing was verified).

        ``on_size`` is called with the body's length (-1 if unknown) and may return a byte counter.
        An interrupted download is resumed where it stopped (``Range``) when the server allows it
        (lwr does; Pulsar sends the whole file again); a corrupted one starts over. The
        destination is never left half-written.
        """
        destination = os.path.abspath(destination)
        directory = os.path.dirname(destination)
        os.makedirs(directory, exist_ok=True)
        # Kept across attempts, so a retry resumes it; placed (not fsynced: the caller's copy) when whole.
        temporary = temporary_beside(destination, ".part")
        attempts = max(1, self.retry.attempts)
        received = 0
        try:
            for attempt in range(1, attempts + 1):
                headers = {WANT_DIGEST_HEADER: ", ".join(ALGORITHMS), WANT_SHA256_HEADER: "1"}
                if received:
                    headers["Range"] = f"bytes={received}-"
                try:
                    response = self.request(
                        "GET", route, params, headers=headers, idempotent=True, stream=True
                    )
                except (RemoteError, RangeNotSatisfiable) as exc:
                    if received and exc.details.get("status") == 416 and attempt < attempts:
                        received = 0  # the file is no longer what we had a part of
                        continue
                    raise
                start = content_range_start(response.headers.get("Content-Range"))
                resumed = received > 0 and response.status_code == 206 and start == received
                if not resumed:
                    received = 0
                algorithm, expected = reply_digest(response.headers, ALGORITHMS) or (SHA256, "")
                if on_size is not None:  # the size is known once the headers are in
                    length = int(response.headers.get("Content-Length") or -1)
                    progress = on_size(length + received if length >= 0 else -1) or progress
                    on_size = None
                try:
                    with BackgroundHash(algorithm=algorithm) as digest, response:
                        if resumed:
                            _hash_prefix(temporary, received, digest)
                        with open(temporary, "ab" if resumed else "wb") as out:
                            for chunk in response.iter_content(DOWNLOAD_CHUNK_SIZE):
                                out.write(chunk)
                                received += len(chunk)
                                digest.update(chunk)
                                if progress is not None:
                                    progress(len(chunk))
                    actual = digest.hexdigest()
                except requests.RequestException as exc:  # cut off mid-body: keep what arrived
                    if attempt < attempts:
                        self._pause("GET", route, attempt, redact(str(exc)))
                        continue
                    raise TransportError(
                        f"GET /{route}: {redact(str(exc))}", url=self.base_url, attempts=attempt
                    ) from exc
                if expected and expected != actual:
                    received = 0
                    mismatch = errors.IntegrityError(
                        f"download of {params.get('name')} does not match the server's {title(algorithm)}",
                        algorithm=algorithm,
                        **{f"expected_{algorithm}": expected, f"actual_{algorithm}": actual},
                    )
                    if attempt < attempts:
                        self._pause("GET", route, attempt, mismatch.message)
                        continue
                    raise errors.IntegrityError(
                        f"{mismatch.message} ({attempts} tries); {destination} was not written",
                        destination=destination,
                        **mismatch.details,
                    )
                place(temporary, destination, durable=False, mode=_FILE_MODE)
                return actual
        finally:
            _unlink(temporary)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- helpers --------------------------------------------------------------------------------

    def _pause(self, method: str, route: str, attempt: int, reason: str) -> None:
        delay = self.retry.delay(attempt)
        log.warning("%s /%s failed (%s); retry %d in %.1fs", method, route, reason, attempt, delay)
        time.sleep(delay)

    def _error(self, method: str, route: str, response: requests.Response) -> errors.LwrError:
        status = response.status_code
        try:
            payload = response.json()
        except ValueError:
            payload = None
        details: dict[str, Any] = {}
        code = None
        if isinstance(payload, dict) and isinstance(payload.get("error"), str):
            message = payload["error"]
            code = payload.get("code")
            details = {key: value for key, value in payload.items() if key not in ("error", "code")}
        else:
            message = _plain_text(response.text) or response.reason or "no message"
        response.close()
        details.setdefault("status", status)
        return error_class(status, code)(f"{method} /{route}: HTTP {status}: {message}", **details)


def _digest_headers(algorithm: str, hexdigest: str) -> dict[str, str]:
    """An upload's digest header: ``X-Lwr-Sha256`` for SHA-256 (every lwr knows it), else ``X-Lwr-Digest``."""
    if algorithm == SHA256:
        return {SHA256_HEADER: hexdigest}
    return {DIGEST_HEADER: format_digest(algorithm, hexdigest)}


def _echoed_digest(reply: Any, algorithm: str) -> str | None:
    """The hex digest in ``algorithm`` an upload's reply says the server stored, if it says one."""
    if not isinstance(reply, dict):
        return None
    named, _, hexdigest = str(reply.get("digest") or "").partition("=")
    if named.strip().lower() == algorithm and hexdigest.strip():
        return hexdigest.strip().lower()
    if algorithm == SHA256 and reply.get("sha256"):
        return str(reply["sha256"]).strip().lower()
    return None


def _hash_prefix(path: str, length: int, digest: BackgroundHash) -> None:
    """Feed the first ``length`` bytes already on disk to ``digest`` (a resumed download)."""
    with open(path, "rb") as handle:
        while length > 0:
            chunk = handle.read(min(CHUNK_SIZE, length))
            if not chunk:
                raise OSError(f"{path} is shorter than the {length} bytes expected")
            digest.update(chunk)
            length -= len(chunk)


def _never_sent(exc: Exception) -> bool:
    """Did the request fail before reaching the server (so even a non-idempotent call may be resent)?"""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError)


def _plain_text(body: str) -> str:
    """An error page's gist: an HTML page's title and text, without the markup."""
    text = body.strip()
    if text.startswith("<"):
        text = re.sub(r"<title>.*?</title>|<[^>]+>", " ", text, flags=re.S | re.I)
    return " ".join(text.split())[:300]


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
