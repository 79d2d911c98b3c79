"""Errors only the client raises, rooted in :class:`lwr.errors.LwrError` like every other lwr error.

An answer from the server is turned into the class of :mod:`lwr.errors` whose ``http_status`` it
carries (401 → :class:`~lwr.errors.Unauthorized`, 404 → :class:`~lwr.errors.NotFound`, ...), so a
caller catches the same class whichever side raised it. What is left has no server-side twin:
the server could not be reached at all, or answered with something the protocol does not allow.
"""

from __future__ import annotations

from lwr.errors import LwrError


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
