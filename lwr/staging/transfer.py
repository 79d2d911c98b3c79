"""Moving bytes for server-side staging: streamed, retried with backoff, placed atomically.

Downloads go to a temporary file beside the destination and are renamed into place only
when complete, so a file that exists is whole (which is how a restarted job knows what it
already has). Uploads are streamed as ``multipart/form-data`` (field ``file``, what
Galaxy's job files API expects) from a generator, so memory stays bounded whatever the
size. Redirects are followed by hand, each target checked against the allow-list first.

Checking and connecting are two separate steps with one hand-over: :meth:`UrlPolicy.check_url`
returns a :class:`CheckedUrl`, and :class:`PinnedHttp` (the only code here that opens
connections) accepts nothing else. It connects to the address that was checked, sends the
name in ``Host`` and uses it for SNI and the certificate check, ignores proxy variables and
``.netrc``, keeps no cookies and never follows a redirect by itself.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO, Callable
from urllib.parse import urljoin

import requests
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool

from lwr.core.atomic import atomic_file, place
from lwr.errors import StagingError
from lwr.protocol import multipart
from lwr.protocol.redact import safe_url
from lwr.protocol.retry import RetryPolicy
from lwr.staging.allow_list import CheckedUrl, UrlPolicy, UrlRefused

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
#: Downloads are read in smaller pieces: an interrupted read loses at most one piece.
DOWNLOAD_CHUNK = 64 * 1024
MAX_REDIRECTS = 5
#: (connect, read) timeouts in seconds.
TIMEOUT = (10, 300)
_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class _Retryable(StagingError):
    """A failure worth trying again (connection trouble, 5xx, 429)."""


class _PinnedAdapter(HTTPAdapter):
    """Connects to the address in the request URL; for HTTPS, verifies the certificate against
    the name in the ``Host`` header (and sends it as SNI), not against the address."""

    def get_connection_with_tls_context(
        self,
        request: requests.PreparedRequest,
        verify: Any,
        proxies: Mapping[str, str] | None = None,
        cert: Any = None,
    ) -> HTTPConnectionPool:
        host_params, pool_kwargs = self.build_connection_pool_key_attributes(request, verify, cert)
        name = str(request.headers.get(_NAME_HEADER, ""))
        kwargs: dict[str, Any] = dict(pool_kwargs)
        if host_params["scheme"] == "https" and name:
            kwargs.update(server_hostname=name, assert_hostname=name)
        return self.poolmanager.connection_from_host(**host_params, pool_kwargs=kwargs)

    def add_headers(self, request: requests.PreparedRequest, **kwargs: Any) -> None:
        request.headers.pop(_NAME_HEADER, None)  # only for choosing the pool; never sent


#: Carries the checked name from :class:`PinnedHttp` to :class:`_PinnedAdapter` (removed before sending).
_NAME_HEADER = "X-Lwr-Tls-Name"


class PinnedHttp:
    """Sends one request for a :class:`CheckedUrl` to the address that was checked."""

    def __init__(self, verify: bool | str = True, connections: int = 10) -> None:
        #: True (the system's CA bundle, via certifi) or the path of a CA bundle.
        self.verify = verify
        # up to ``connections`` kept-alive sockets per host, one per staging worker (urllib3's
        # default of 10 would open and drop a socket per transfer above that)
        self.adapter = _PinnedAdapter(pool_connections=connections, pool_maxsize=connections)

    def send(
        self,
        checked: CheckedUrl,
        method: str,
        body: Iterable[bytes] | None = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """The response (redirects are returned, not followed); ``requests`` errors propagate."""
        all_headers = {"User-Agent": "lwr", **(headers or {}), "Host": checked.host_header}
        if checked.scheme == "https" and not checked.host_is_address:
            all_headers[_NAME_HEADER] = checked.host
        prepared = requests.Request(method, checked.address_url, headers=all_headers, data=body).prepare()
        return self.adapter.send(prepared, stream=stream, timeout=TIMEOUT, verify=self.verify, proxies={})

    def close(self) -> None:
        self.adapter.close()


class Transfers:
    """Downloads and uploads under one :class:`UrlPolicy`, with retries."""

    def __init__(
        self,
        policy: UrlPolicy,
        attempts: int = 5,
        backoff: float = 1.0,
        backoff_max: float = 30.0,
        http: PinnedHttp | None = None,
    ) -> None:
        self.policy = policy
        self.attempts = attempts
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.retry = RetryPolicy(attempts=attempts, backoff=backoff, cap=backoff_max)
        self.http = http or PinnedHttp()

    # --- retries ---------------------------------------------------------------------------------
    def _retrying(self, description: str, attempt_once: Callable[[], None]) -> None:
        for attempt in range(1, self.retry.attempts + 1):
            try:
                attempt_once()
                return
            except _Retryable as error:
                if self.retry.gives_up_after(attempt):
                    raise StagingError(
                        f"{description} failed after {attempt} attempts: {error.message}"
                    ) from None
                delay = self.retry.delay(attempt)
                log.warning(
                    "%s failed (attempt %d of %d): %s; retrying in %.1f s",
                    description,
                    attempt,
                    self.retry.attempts,
                    error.message,
                    delay,
                )
                time.sleep(delay)

    def _request(
        self,
        method: str,
        url: str,
        body: Callable[[], Iterable[bytes]] | None = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """One request, redirects followed by hand, each target checked before it is contacted."""
        for _ in range(MAX_REDIRECTS + 1):
            checked = self.policy.check_url(url)
            try:
                response = self.http.send(
                    checked, method, body() if body is not None else None, headers, stream
                )
            except requests.RequestException as error:
                raise _Retryable(f"{method} {_safe(url)}: {type(error).__name__}: {error}") from None
            if response.is_redirect and "location" in response.headers:
                response.close()
                if method != "GET" and response.status_code not in (307, 308):
                    raise StagingError(
                        f"{method} {_safe(url)} redirected with {response.status_code}; refusing to "
                        "turn an upload into a GET"
                    )
                url = urljoin(url, response.headers["location"])
                continue
            if response.status_code in _RETRY_STATUSES:
                response.close()
                raise _Retryable(f"{method} {_safe(url)}: HTTP {response.status_code}")
            if response.status_code >= 400:
                response.close()
                raise StagingError(
                    f"{method} {_safe(url)}: HTTP {response.status_code}", status=response.status_code
                )
            return response
        raise StagingError(f"{method} {_safe(url)}: more than {MAX_REDIRECTS} redirects")

    # --- downloads -------------------------------------------------------------------------------
    def download(self, url: str, destination: Path, partial: Path | None = None) -> None:
        """Fetch ``url`` into ``destination`` (renamed into place when complete).

        The bytes go to ``partial`` first (default: a dot-file beside ``destination``). A partial
        file left by an interrupted attempt, or by a killed lwr, is resumed with an HTTP range
        request when the server supports it, and restarted otherwise.
        """
        self.policy.check_url(url)
        partial = partial or destination.parent / f".{destination.name}.lwr-partial"
        self._retrying(f"download of {_safe(url)}", lambda: self._download_once(url, destination, partial))

    def _download_once(self, url: str, destination: Path, partial: Path) -> None:
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial.parent.mkdir(parents=True, exist_ok=True)
        offset = partial.stat().st_size if partial.exists() else 0
        headers = {"Range": f"bytes={offset}-", "Accept-Encoding": "identity"} if offset else None
        try:
            response = self._request("GET", url, headers=headers, stream=True)
        except StagingError as error:
            if offset and error.details.get("status") == 416:
                partial.unlink(missing_ok=True)
                raise _Retryable(
                    f"GET {_safe(url)}: cannot resume at byte {offset}; starting again"
                ) from None
            raise
        resumed = (
            offset > 0
            and response.status_code == 206
            and response.headers.get("content-range", "").startswith(f"bytes {offset}-")
        )
        received = 0
        try:
            with response, open(partial, "ab" if resumed else "wb") as handle:
                # A compressed body is decoded on the way, so its length is not the header's.
                expected = (
                    None
                    if response.headers.get("content-encoding")
                    else response.headers.get("content-length")
                )
                try:
                    for chunk in response.iter_content(DOWNLOAD_CHUNK):
                        handle.write(chunk)
                        received += len(chunk)
                except requests.RequestException as error:
                    raise _Retryable(
                        f"GET {_safe(url)}: interrupted after {received} bytes: {error}"
                    ) from None
                if expected is not None and expected.isdigit() and int(expected) != received:
                    raise _Retryable(f"GET {_safe(url)}: got {received} of {expected} bytes")
        except _Retryable:
            raise  # keep the partial file: the next attempt resumes it
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        if resumed:
            log.info("download of %s resumed at byte %d", _safe(url), offset)
        place(partial, destination, durable=True)

    # --- uploads ---------------------------------------------------------------------------------
    def upload(self, url: str, source: Path | BinaryIO, name: str | None = None) -> None:
        """POST ``source`` (a path, or a file lwr opened safely) to ``url`` as a multipart form
        with one field, ``file``."""
        self.policy.check_url(url)
        if isinstance(source, Path):
            if not source.is_file():
                raise StagingError(f"output {source.name} does not exist", path=str(source))
            with open(source, "rb") as handle:
                self.upload(url, handle, source.name)
            return
        label = name or "output"
        self._retrying(f"upload of {label} to {_safe(url)}", lambda: self._upload_once(url, source, label))

    def _upload_once(self, url: str, source: BinaryIO, name: str) -> None:
        boundary = uuid.uuid4().hex
        head, tail = multipart.form_head(boundary, name), multipart.form_tail(boundary)
        size = os.fstat(source.fileno()).st_size

        def body() -> Iterator[bytes]:
            yield head
            source.seek(0)
            remaining = size
            while remaining > 0:
                chunk = source.read(min(CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk
            yield tail

        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        length = len(head) + size + len(tail)
        response = self._request("POST", url, body=lambda: _SizedBody(body(), length), headers=headers)
        response.close()

    # --- local copies (remote_copy) --------------------------------------------------------------
    def copy_in(self, source: str, destination: Path) -> None:
        """``remote_copy`` of an input, durably: see :meth:`copy_out`."""
        real = self.policy.check_path(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        with open(real, "rb") as src, atomic_file(destination, durable=True, suffix=".part") as dst:
            shutil.copyfileobj(src, dst, CHUNK)

    def copy_out(self, source: Path | BinaryIO, destination: str) -> None:
        """``remote_copy`` of an output, durably (fsynced, like :meth:`copy_in`: once reported done,
        the job directory, its other copy, may be cleaned), and into the directory that was checked
        (held by a descriptor and checked again once opened), never through the name given."""
        real = Path(self.policy.check_path(destination))
        try:
            real.parent.mkdir(parents=True, exist_ok=True)
            parent = os.open(real.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as error:
            raise StagingError(
                f"cannot write remote_copy destination {destination}: {error.strerror}", path=destination
            ) from None
        try:
            opened = os.readlink(f"/proc/self/fd/{parent}")
            if Path(self.policy.check_path(os.path.join(opened, real.name))) != Path(opened) / real.name:
                raise UrlRefused(
                    f"remote_copy path {destination} changed while it was checked", path=destination
                )
            temporary = f".{real.name}.{uuid.uuid4().hex}.part"
            fd = os.open(
                temporary,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o666,
                dir_fd=parent,
            )
            try:
                with os.fdopen(fd, "wb") as dst:
                    if isinstance(source, Path):
                        with open(source, "rb") as src:
                            shutil.copyfileobj(src, dst, CHUNK)
                    else:
                        source.seek(0)
                        shutil.copyfileobj(source, dst, CHUNK)
                    dst.flush()
                    os.fsync(dst.fileno())
                os.replace(temporary, real.name, src_dir_fd=parent, dst_dir_fd=parent)
                os.fsync(parent)
            except BaseException:
                try:
                    os.unlink(temporary, dir_fd=parent)
                except FileNotFoundError:
                    pass
                raise
        finally:
            os.close(parent)


_safe = safe_url


__all__ = ["Transfers", "UrlRefused"]


class _SizedBody:
    """A streamed body of known length: requests then sends Content-Length, not chunked encoding."""

    def __init__(self, chunks: Iterator[bytes], length: int) -> None:
        self._chunks = chunks
        self._length = length

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def __len__(self) -> int:
        return self._length
