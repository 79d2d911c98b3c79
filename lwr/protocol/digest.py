"""How lwr's client and server agree on a transfer's digest algorithm.

SHA-256 is the protocol's digest (``X-Lwr-Sha256``, what Pulsar's world and every older lwr
know); lwr's own client and server may use a faster one (BLAKE3) instead. The rules:

* **Advertisement.** lwr's server names, on every reply, the algorithms it verifies:
  ``X-Lwr-Accept-Digest: blake3, sha256``. A client remembers the last list it saw from a server;
  before it has seen one, or from a server that sends none (Pulsar, an older lwr), it uses SHA-256.
* **Upload.** The client sends ``X-Lwr-Digest: <algorithm>=<hex>`` in the first of its own
  algorithms the server advertised, or ``X-Lwr-Sha256: <hex>`` for SHA-256 (understood by every
  lwr). The server takes ``X-Lwr-Digest`` if present, else ``X-Lwr-Sha256``; it hashes the body
  as it arrives with that algorithm and refuses a mismatch (400, ``integrity``) before the file is
  renamed into place; an algorithm it does not know, or a malformed value, is refused 400
  (``bad_request``) before a byte is read. Its reply echoes the digest: ``"digest":
  "<algorithm>=<hex>"``, and ``"sha256"`` as before when the algorithm is SHA-256. A client that
  sent another algorithm and sees no ``digest`` echoed knows the upload went unchecked (the server
  was replaced by one that ignores the header) and sends it again with SHA-256.
* **Download.** The client asks ``X-Lwr-Want-Digest: blake3, sha256`` (its preference order)
  and, for older servers, ``X-Lwr-Want-Sha256: 1``. The server answers ``X-Lwr-Digest`` in the
  first wanted algorithm it has (and ``X-Lwr-Sha256`` too when that is SHA-256); with no wanted
  algorithm it knows, only ``X-Lwr-Want-Sha256`` counts. The client verifies ``X-Lwr-Digest`` if
  present, else ``X-Lwr-Sha256``, else nothing (Pulsar).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from lwr.errors import BadRequest
from lwr.protocol.names import DIGEST_HEADER, SHA256_HEADER, WANT_DIGEST_HEADER, WANT_SHA256_HEADER

#: The protocol's own algorithm: the one every server and client has.
SHA256 = "sha256"

_HEX = re.compile(r"^[0-9a-f]{16,256}$")


def format_digest(algorithm: str, hexdigest: str) -> str:
    """The ``X-Lwr-Digest`` value (and the reply's ``digest``): ``<algorithm>=<hex>``."""
    return f"{algorithm}={hexdigest}"


def parse_list(value: str | None) -> list[str]:
    """``"blake3, sha256"`` as ``["blake3", "sha256"]`` (lower case, order kept, blanks dropped)."""
    return [name.strip().lower() for name in (value or "").split(",") if name.strip()]


def parse_digest(value: str, supported: Sequence[str]) -> tuple[str, str]:
    """An ``X-Lwr-Digest`` value as (algorithm, hex); BadRequest if malformed or not ``supported``."""
    algorithm, equals, hexdigest = value.strip().partition("=")
    algorithm, hexdigest = algorithm.strip().lower(), hexdigest.strip().lower()
    if not equals or not algorithm:
        raise BadRequest(f"{DIGEST_HEADER} is not <algorithm>=<hex>", header=DIGEST_HEADER)
    if algorithm not in supported:
        raise BadRequest(
            f"{DIGEST_HEADER} names an algorithm this server does not verify: {algorithm}",
            algorithm=algorithm,
            supported=list(supported),
        )
    if not _HEX.match(hexdigest):
        raise BadRequest(f"{DIGEST_HEADER} has no hex digest after '{algorithm}='", header=DIGEST_HEADER)
    return algorithm, hexdigest


def expected_upload_digest(headers: Mapping[str, str], supported: Sequence[str]) -> tuple[str, str] | None:
    """The (algorithm, hex) an upload must match: ``X-Lwr-Digest`` wins over ``X-Lwr-Sha256``."""
    generic = headers.get(DIGEST_HEADER)
    if generic:
        return parse_digest(generic, supported)
    sha256 = (headers.get(SHA256_HEADER) or "").strip().lower()
    return (SHA256, sha256) if sha256 else None


def download_algorithm(headers: Mapping[str, str], supported: Sequence[str]) -> str | None:
    """The algorithm a download's reply carries a digest in, or None if the client asked for none."""
    for algorithm in parse_list(headers.get(WANT_DIGEST_HEADER)):
        if algorithm in supported:
            return algorithm
    return SHA256 if headers.get(WANT_SHA256_HEADER) else None


def upload_algorithm(advertised: Sequence[str] | None, ours: Sequence[str]) -> str:
    """The client's choice for an upload: its first algorithm the server advertised, else SHA-256."""
    for algorithm in ours:
        if advertised and algorithm in advertised:
            return algorithm
    return SHA256


def reply_digest(headers: Mapping[str, str], ours: Sequence[str]) -> tuple[str, str] | None:
    """The (algorithm, hex) a download's reply promises, if in an algorithm the client has."""
    generic = headers.get(DIGEST_HEADER)
    if generic:
        algorithm, _, hexdigest = generic.strip().partition("=")
        algorithm = algorithm.strip().lower()
        if algorithm in ours and hexdigest.strip():
            return algorithm, hexdigest.strip().lower()
    sha256 = (headers.get(SHA256_HEADER) or "").strip().lower()
    return (SHA256, sha256) if sha256 else None
