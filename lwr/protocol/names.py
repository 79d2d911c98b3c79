"""Names the Pulsar protocol (and lwr's additions to it) fixes on the wire."""

from __future__ import annotations

#: The manager a client addresses when it names none (``/jobs``, not ``/managers/NAME/jobs``).
DEFAULT_MANAGER = "_default_"

#: Status strings a finished job is reported with; any other status means the job is still active.
FINAL_STATUSES = frozenset({"complete", "failed", "cancelled", "lost"})

#: The query argument Pulsar's client sends its token in.
TOKEN_ARGUMENT = "private_token"
#: lwr's own header for the token (``Authorization: Bearer`` is also accepted).
TOKEN_HEADER = "X-Lwr-Token"
#: A file's SHA-256, sent with uploads and (when asked for) downloads, checked before a rename.
SHA256_HEADER = "X-Lwr-Sha256"
#: Asks lwr's server to send :data:`SHA256_HEADER` with a download (hashing costs it a read).
WANT_SHA256_HEADER = "X-Lwr-Want-Sha256"
#: A file's digest in any algorithm, ``<algorithm>=<hex>`` (:mod:`lwr.protocol.digest`): on an
#: upload (instead of :data:`SHA256_HEADER`) and on a download's reply.
DIGEST_HEADER = "X-Lwr-Digest"
#: The algorithms a client accepts for a download's :data:`DIGEST_HEADER`, most preferred first.
WANT_DIGEST_HEADER = "X-Lwr-Want-Digest"
#: On every reply of lwr's server: the algorithms it verifies in :data:`DIGEST_HEADER`.
ACCEPT_DIGEST_HEADER = "X-Lwr-Accept-Digest"
