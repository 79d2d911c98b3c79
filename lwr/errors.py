"""The one exception hierarchy of lwr.

Every error lwr raises on purpose derives from :class:`LwrError`. Transports map
these to replies in one place each (``lwr.web.app`` for HTTP status codes and the
stable ``code`` of each class, the messaging consumer for MQ), so callers raise what
they mean and never build responses themselves.
"""

from __future__ import annotations

from typing import Any


class LwrError(Exception):
    """Root of every error lwr raises deliberately."""

    #: HTTP status a transport should answer with; 500 for server-side faults.
    http_status = 500
    #: Stable name of the error on the wire (``{"error": ..., "code": ...}``): clients map it back
    #: to this class (``lwr.client.errors``) instead of reading the message. Each class sets its own.
    code = "internal"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def as_dict(self) -> dict[str, Any]:
        """The JSON body a client sees: ``{"error": ..., **details, "code": ...}`` (the class's code wins)."""
        return {"error": self.message, **self.details, "code": self.code}


class ConfigError(LwrError):
    """A configuration file is wrong; the message names file, section, key and what was expected."""

    code = "config"


class BadRequest(LwrError):
    """A missing or malformed parameter, or a client-supplied name that escapes its directory."""

    code = "bad_request"
    http_status = 400


class Unauthorized(LwrError):
    """The private token was missing or wrong."""

    code = "unauthorized"
    http_status = 401


class NotFound(LwrError):
    """Unknown job, manager, route or output file."""

    code = "not_found"
    http_status = 404


class MethodNotAllowed(LwrError):
    """The path exists but not with that HTTP method."""

    code = "method_not_allowed"
    http_status = 405


class Conflict(LwrError):
    """The request contradicts the job's state (for example submitting a job twice)."""

    code = "conflict"
    http_status = 409


class RequestTimeout(LwrError):
    """The client stopped sending its request head or body for longer than the server waits."""

    code = "request_timeout"
    http_status = 408


class LengthRequired(LwrError):
    """An upload whose length the server cannot know (a chunked body the HTTP server does not decode)."""

    code = "length_required"
    http_status = 411


class PayloadTooLarge(LwrError):
    """An upload is larger than the configured limit."""

    code = "payload_too_large"
    http_status = 413


class UriTooLong(LwrError):
    """The request line is longer than the server reads (``max_request_line``)."""

    code = "uri_too_long"
    http_status = 414


class HeadersTooLarge(LwrError):
    """The request headers are more or larger than the server reads (``max_headers``, ``max_header_size``)."""

    code = "headers_too_large"
    http_status = 431


class NotImplementedByServer(LwrError):
    """A request feature the server does not implement (a Transfer-Encoding other than chunked)."""

    code = "not_implemented"
    http_status = 501


class ServiceUnavailable(LwrError):
    """The server is too busy to take the request now (too many large heads at once); retry later."""

    code = "unavailable"
    http_status = 503


class HttpVersionNotSupported(LwrError):
    """A request in an HTTP version other than 1.x."""

    code = "http_version_not_supported"
    http_status = 505


class IntegrityError(LwrError):
    """A transferred file does not match the checksum or length it was sent with."""

    code = "integrity"
    http_status = 400


class ManagerError(LwrError):
    """A job manager (local queue, batch system, DRMAA) failed to do what was asked."""

    code = "manager"


class DependencyError(LwrError):
    """The dependency resolvers failed (not: found nothing) for a job's requirements; the job is refused."""

    code = "dependency"


class StagingError(LwrError):
    """Server-side staging (fetching inputs, pushing outputs) failed."""

    code = "staging"


class InsufficientStorage(LwrError):
    """The staging filesystem is below ``min_free_disk``: a new job is refused before any staging."""

    code = "insufficient_storage"
    http_status = 507


class Forbidden(LwrError):
    """The caller is known but not allowed: an admin route without the admin token, a tool or command
    line a public lwr refuses."""

    code = "forbidden"
    http_status = 403


class AlreadyRunning(LwrError):
    """Another lwr holds the lock of this pid file."""

    code = "already_running"
