"""``egg:lwr#http``: Paste's threaded HTTP server, with TLS from Python's own ``ssl`` module.

Paste's server takes ``ssl_pem`` only through pyOpenSSL's long-removed ``tsafe`` module, so
``egg:Paste#http`` cannot serve TLS with a current pyOpenSSL. This runner accepts every option
``egg:Paste#http`` does and adds working TLS: ``ssl_pem`` is a PEM file holding the
certificate (chain) and the private key.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

from paste import httpserver

log = logging.getLogger(__name__)


def tls_context(ssl_pem: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(ssl_pem)
    return context


_INTEGER_KEYS = ("port", "socket_timeout", "threadpool_workers", "request_queue_size")
_BOOLEAN_KEYS = ("use_threadpool", "daemon_threads")


def paste_serve_arguments(options: dict[str, Any]) -> dict[str, Any]:
    """Convert ini strings the way ``egg:Paste#http`` does, for ``paste.httpserver.serve``."""
    from paste.deploy.converters import asbool

    arguments: dict[str, Any] = {}
    pool: dict[str, Any] = {}
    for key, value in options.items():
        if key in _INTEGER_KEYS:
            arguments[key] = int(value)
        elif key in _BOOLEAN_KEYS:
            arguments[key] = asbool(value)
        elif key.startswith("threadpool_"):
            pool[key[len("threadpool_"):]] = int(value) if str(value).isdigit() else value
        else:
            arguments[key] = value
    arguments["threadpool_options"] = pool
    return arguments


def server_runner(wsgi_app: Any, global_conf: dict[str, Any] | None = None, **kwargs: Any) -> None:
    """PasteDeploy server runner (``use = egg:lwr#http``)."""
    ssl_pem = kwargs.pop("ssl_pem", None)
    if not ssl_pem:
        httpserver.server_runner(wsgi_app, global_conf, **kwargs)
        return
    context = tls_context(ssl_pem)
    server = httpserver.serve(wsgi_app, start_loop=False, **paste_serve_arguments(kwargs))
    # The handshake happens on the first read, in the worker thread, not in the accept loop.
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    host, port = server.server_address[:2]
    print(f"serving on https://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
