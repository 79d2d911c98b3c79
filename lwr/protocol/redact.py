"""Keeping credentials out of messages and logs: the one redactor for URLs and the text around them."""

from __future__ import annotations

import re

#: ``private_token=...`` in a query string (requests puts the whole URL into its errors).
_TOKEN = re.compile(r"(private_token=)[^&\s'\")]+")
#: The password of ``scheme://user:password@host``.
_PASSWORD = re.compile(r"(\w[\w+.-]*://[^/:@\s]*:)[^@/\s]*@")


def redact(text: str) -> str:
    """``text`` with private tokens and URL passwords replaced by ``***``."""
    return _PASSWORD.sub(r"\1***@", _TOKEN.sub(r"\1***", text))


def safe_url(url: str) -> str:
    """``url`` without its query string (Galaxy's job files URLs carry a job key there) or password."""
    return redact(url.split("?", 1)[0])
