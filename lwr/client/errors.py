"""Errors only the client raises, and the one map from a server's error reply back to a class.

An error reply is turned into the class of :mod:`lwr.errors` (or :mod:`lwr.protocol`) that raised
it on the server, by the reply's stable ``code`` (``{"error": ..., "code": "integrity"}`` →
:class:`~lwr.errors.IntegrityError`), so a caller catches the same class whichever side raised
it. A reply without a code (Pulsar, a proxy's page) is mapped by its HTTP status (401 →
:class:`~lwr.errors.Unauthorized`, ...). What is left has no server-side twin: the server could
not be reached at all, or answered with something the protocol does not allow.
"""

from __future__ import annotations

from lwr import errors
from lwr.errors import LwrError
from lwr.protocol.ranges import RangeNotSatisfiable


class TransportError(LwrError):
    """The server could not be reached, timed out, or kept failing with 5xx after the retries."""


class RemoteError(LwrError):
    """The server answered with a status or body the client cannot interpret as a protocol reply."""


class InvalidJob(LwrError):
    """A job description that cannot be staged as given (two inputs with the same name, ...)."""


class MissingInput(LwrError):
    """A file the job description names does not exist on the client."""


class UnsafeName(LwrError):
    """A name the server sent would place a file outside the directory it belongs in."""


class UnsupportedOperation(LwrError):
    """A call the client's transport cannot carry (its ``capabilities`` say so): e.g. ``copy`` over AMQP."""


def _wire_classes() -> dict[str, type[LwrError]]:
    """Every error class that names its own ``code``, by that code."""
    classes = [
        value for value in vars(errors).values() if isinstance(value, type) and issubclass(value, LwrError)
    ]
    classes.append(RangeNotSatisfiable)
    return {cls.code: cls for cls in classes if "code" in vars(cls) and cls is not LwrError}


#: The server's error classes by their wire ``code``.
BY_CODE: dict[str, type[LwrError]] = _wire_classes()
#: For replies without a code (Pulsar's): the class a status most likely means.
BY_STATUS: dict[int, type[LwrError]] = {
    400: errors.BadRequest,
    401: errors.Unauthorized,
    404: errors.NotFound,
    405: errors.MethodNotAllowed,
    409: errors.Conflict,
    413: errors.PayloadTooLarge,
}


def error_class(status: int, code: object = None) -> type[LwrError]:
    """The class to raise for an error reply with HTTP ``status`` and wire ``code`` (if any)."""
    by_code = BY_CODE.get(code) if isinstance(code, str) else None
    if by_code is not None:
        return by_code
    by_status = BY_STATUS.get(status)
    if by_status is not None:
        return by_status
    return TransportError if status >= 500 else RemoteError
