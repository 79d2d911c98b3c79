"""The client's private token: given on the command line, in the environment, or read from a file.

``--private-token-file`` reads the token lwr generates on first start
(``<persistence_directory>/private_token``), so a newcomer's ``lwr check`` works without
copying a secret onto a command line, where every local user could read it in ``ps``.
"""

from __future__ import annotations

import argparse
import os


def add_token_arguments(parser: argparse.ArgumentParser, *, environment: bool = False) -> None:
    """``--private-token`` and ``--private-token-file`` (defaults from LWR_PRIVATE_TOKEN[_FILE] if asked),
    and ``--ca-certs``, the other half of talking to a server over TLS (LWR_CA_CERTS)."""
    parser.add_argument(
        "--private-token",
        "--private_token",
        dest="private_token",
        default=os.environ.get("LWR_PRIVATE_TOKEN") if environment else None,
        help="the server's private token",
    )
    parser.add_argument(
        "--private-token-file",
        "--private_token_file",
        dest="private_token_file",
        metavar="FILE",
        default=os.environ.get("LWR_PRIVATE_TOKEN_FILE") if environment else None,
        help="read the token from FILE, e.g. the server's files/persisted_data/private_token",
    )
    parser.add_argument(
        "--ca-certs",
        "--ca_certs",
        dest="ca_certs",
        metavar="FILE",
        default=os.environ.get("LWR_CA_CERTS") if environment else None,
        help="trust an https:// server's certificate through FILE (its CA, or the certificate "
        "itself); default: the system's CAs (or REQUESTS_CA_BUNDLE)",
    )


def token_from_args(args: argparse.Namespace) -> str | None:
    """The token the options name; ``--private-token`` wins over the file."""
    if getattr(args, "private_token", None):
        return str(args.private_token)
    path = getattr(args, "private_token_file", None)
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            token = handle.read().strip()
    except OSError as error:
        raise SystemExit(f"lwr: cannot read --private-token-file {path}: {error.strerror}") from None
    if not token:
        raise SystemExit(f"lwr: --private-token-file {path} is empty")
    return token
