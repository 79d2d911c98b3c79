"""The input cache: a file staged once by a client is reused for its next jobs.

Entries are keyed, as in the Pulsar protocol, by the client's address and the file's path on
the client (``/cache`` routes). One client claims an entry (an atomic ``mkdir``), uploads it,
and the upload is renamed into place; concurrent jobs asking for the same file see it as
not ready until then and never read half of it. A claim whose upload never arrived expires.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from lwr.errors import BadRequest, NotFound

CLAIM_EXPIRY_SECONDS = 600.0
_TOKEN = re.compile(r"^[0-9a-f]{64}$")


def cache_token(ip: str, path: str) -> str:
    return hashlib.sha256(f"IP:{ip}:{path}".encode()).hexdigest()


class FileCache:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)

    def _entry(self, token: str) -> Path:
        if not _TOKEN.match(token):
            raise BadRequest("malformed cache token", cache_token=token)
        return self.directory / token

    def status(self, ip: str, path: str) -> dict[str, Any]:
        token = cache_token(ip, path)
        return {"token": token, "ready": self._entry(token).is_file()}

    def claim(self, ip: str, path: str) -> bool:
        """True if the caller should upload the file (it holds the claim); false if someone has or does."""
        token = cache_token(ip, path)
        if self._entry(token).is_file():
            return False
        claim = self.directory / f"{token}.claim"
        try:
            os.mkdir(claim)
            return True
        except FileExistsError:
            try:
                expired = time.time() - claim.stat().st_mtime > CLAIM_EXPIRY_SECONDS
            except FileNotFoundError:
                expired = True
            if expired:
                os.utime(claim) if claim.exists() else os.mkdir(claim)
                return True
            return False

    def insert_target(self, ip: str, path: str) -> Path:
        return self._entry(cache_token(ip, path))

    def mark_ready(self, ip: str, path: str) -> None:
        claim = self.directory / f"{cache_token(ip, path)}.claim"
        try:
            os.rmdir(claim)
        except FileNotFoundError:
            pass

    def copy_to(self, token: str, target: Path) -> dict[str, Any]:
        """Copy a cached file to a job's staging path, atomically."""
        source = self._entry(token)
        if not source.is_file():
            raise NotFound("no cached file for this token", cache_token=token)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".cache", dir=target.parent)
        os.close(fd)
        try:
            shutil.copyfile(source, temp_name)
            os.replace(temp_name, target)
        except BaseException:
            if os.path.exists(temp_name):
                os.unlink(temp_name)
            raise
        return {"path": str(target), "size": target.stat().st_size}
