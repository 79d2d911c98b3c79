"""The one exception hierarchy of lwr.

Every error lwr raises on purpose derives from :class:`LwrError`. Transports map
these to replies in one place each (``lwr.web.errors`` for HTTP status codes,
the messaging consumer for MQ), so callers raise what they mean and never build
responses themselves.
"""

from __future__ import annotations

from typing import Any


class LwrError(Exception):
    """Root of every error lwr raises deliberately."""

    #: HTTP status a transport should answer with; 500 for server-side faults.
    http_status = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def as_dict(self) -> dict[str, Any]:
        """The JSON body a client sees: ``{"error": ..., **details}``."""
        return {"error": self.message, **self.details}


class ConfigError(LwrError):
    """A configuration file is wrong; the message names file, section, key and what was expected."""


class BadRequest(LwrError):
    """A missing or malformed parameter, or a client-supplied name that escapes its directory."""

    http_status = 400


class Unauthorized(LwrError):
    """The private token was missing or wrong."""

    http_status = 401


class NotFound(LwrError):
    """Unknown job, manager, route or output file."""

    http_status = 404


class MethodNotAllowed(LwrError):
    """The path exists but not with that HTTP method."""

    http_status = 405


class Conflict(LwrError):
    """The request contradicts the job's state (for example submitting a job twice)."""

    http_status = 409


class LengthRequired(LwrError):
    """An upload whose length the server cannot know (a chunked body the HTTP server does not decode)."""

    http_status = 411


class PayloadTooLarge(LwrError):
    """An upload is larger than the configured limit."""

    http_status = 413


class IntegrityError(LwrError):
    """A transferred file does not match the checksum or length it was sent with."""

    http_status = 400


class ManagerError(LwrError):
    """A job manager (local queue, batch system, DRMAA) failed to do what was asked."""


class DependencyError(LwrError):
    """The dependency resolvers failed (not: found nothing) for a job's requirements; the job is refused."""


class StagingError(LwrError):
    """Server-side staging (fetching inputs, pushing outputs) failed."""


class InsufficientStorage(LwrError):
    """The staging filesystem is below ``min_free_disk``: a new job is refused before any staging."""

    http_status = 507


class Forbidden(LwrError):
    """An admin route was asked for without the admin token."""

    http_status = 403


class AlreadyRunning(LwrError):
    """Another lwr holds the lock of this pid file."""
