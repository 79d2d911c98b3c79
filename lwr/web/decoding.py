"""Where HTTP input becomes Python values: the one place it is decoded, strictly and bounded.

Every byte a client controls passes through here before any handler sees it: the path and the
query string are decoded as strict UTF-8 (a client-named file is created under that name), each
parameter appears once and holds no NUL, and a JSON parameter is parsed with bounded size and
depth. Anything else is :class:`~lwr.errors.BadRequest`, so a hostile request costs one 400
and one log line instead of a traceback from deep inside a handler.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from lwr.errors import BadRequest, LengthRequired

#: Most query parameters a request may carry (a submit has about ten).
MAX_PARAMETERS = 64
#: Deepest nesting of a JSON parameter (Galaxy's deepest, dependency descriptions, is about 5).
MAX_JSON_DEPTH = 32


def wsgi_bytes(text: str) -> bytes:
    """A WSGI "native string" back to the bytes the client sent (PEP 3333: ISO-8859-1)."""
    return text.encode("latin-1", "replace")


def decode_path(environ: dict[str, Any]) -> str:
    """The request path, which is ASCII in every route of lwr (job ids and manager names are).

    Servers disagree on what PATH_INFO holds for bytes that are not ASCII (PEP 3333's Latin-1,
    or UTF-8 already decoded with U+FFFD for bad bytes, as Paste does), so anything else is
    refused rather than guessed at.
    """
    path = environ.get("PATH_INFO") or "/"
    if not path.isascii():
        raise BadRequest("the request path is not ASCII (job ids and manager names are)")
    if "\0" in path:
        raise BadRequest("the request path contains a NUL character")
    return path or "/"


def printable_path(environ: dict[str, Any]) -> str:
    """The path for a log line, whatever bytes it holds."""
    return wsgi_bytes(environ.get("PATH_INFO") or "/").decode("utf-8", "backslashreplace")


def _unquote(raw: bytes) -> str:
    """One form-encoded name or value (``+`` is a space) as strict UTF-8."""
    return urllib.parse.unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")


def decode_query(environ: dict[str, Any]) -> dict[str, str]:
    """The query string as one value per name; repeated names, bad UTF-8 and NULs are refused.

    Split here, on bytes: ``parse_qsl`` given bytes fails on any value outside ASCII (it encodes
    what it decoded back to ASCII), which refused every non-ASCII file name.
    """
    raw = wsgi_bytes(environ.get("QUERY_STRING") or "")
    fields = [field for field in raw.split(b"&") if field]
    if len(fields) > MAX_PARAMETERS:
        raise BadRequest(f"more than {MAX_PARAMETERS} query parameters")
    query: dict[str, str] = {}
    for field in fields:
        raw_name, _, raw_value = field.partition(b"=")
        try:
            name, value = _unquote(raw_name), _unquote(raw_value)
        except UnicodeDecodeError:
            raise BadRequest("a query parameter is not valid UTF-8") from None
        if "\0" in name or "\0" in value:
            raise BadRequest(f"query parameter {name!r} contains a NUL character", parameter=name)
        if name in query:
            raise BadRequest(f"query parameter {name!r} is given more than once", parameter=name)
        query[name] = value
    return query


def decode_json(raw: str, name: str) -> Any:
    """A JSON parameter, refused (400) if it is not JSON or nests deeper than :data:`MAX_JSON_DEPTH`."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise BadRequest(
            f"parameter '{name}' nests deeper than {MAX_JSON_DEPTH} levels", parameter=name
        ) from None
    except ValueError:
        raise BadRequest(f"parameter '{name}' is not valid JSON", parameter=name) from None
    if json_depth(value) > MAX_JSON_DEPTH:
        raise BadRequest(f"parameter '{name}' nests deeper than {MAX_JSON_DEPTH} levels", parameter=name)
    return value


def json_depth(value: Any) -> int:
    """Nesting depth of decoded JSON, without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_JSON_DEPTH:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


def require_body_length(environ: dict[str, Any]) -> None:
    """Refuse (411) a body whose end the server cannot see: chunked, on a server that does not decode it.

    Paste's server does not decode ``Transfer-Encoding: chunked`` and reports such a body as 0
    bytes; storing that as an empty file with 200 would lose the upload silently. Servers that
    decode it set ``wsgi.input_terminated`` (gunicorn) or the real Content-Length (waitress).
    """
    encoding = (environ.get("HTTP_TRANSFER_ENCODING") or "").strip().lower()
    if not encoding or encoding == "identity" or environ.get("wsgi.input_terminated"):
        return
    if (environ.get("CONTENT_LENGTH") or "").strip() in ("", "0"):
        raise LengthRequired(
            "this server needs a Content-Length for uploads; Transfer-Encoding: chunked is not supported"
        )
