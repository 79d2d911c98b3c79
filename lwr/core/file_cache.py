"""The input cache: a file staged once by a client is reused for its next jobs.

Clients name an entry as in the Pulsar protocol, by an address (``ip``) and the file's path on
the client (``/cache`` routes); lwr keeps every tenant's names apart (:mod:`lwr.auth`), so no
tenant can read, claim or replace another's entry whatever ``ip`` it sends. The bytes live once,
under the SHA-256 lwr computes itself while they arrive (``blobs/<sha256>``); a name only points
at a digest. A tenant's name is written only by an upload for which that tenant holds the
claim (``PUT /cache`` answered true): an insert without a claim is refused. One client claims
an entry (an atomic ``mkdir``); concurrent jobs asking for the same file see it as not ready
until its upload was hashed and renamed into place. A claim whose upload never arrived expires.

Layout under ``file_cache_dir``::

    blobs/<sha256>                    the bytes, named by their digest
    tenants/<tenant key>/<token>      the digest an entry points at
    tenants/<tenant key>/<token>.claim  a claim (a directory), while its upload is under way
    incoming/                         uploads being received
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lwr.core.atomic import Guard, atomic_file, place, write_bytes_atomically
from lwr.digests import file_sha256
from lwr.errors import BadRequest, Conflict, NotFound

CLAIM_EXPIRY_SECONDS = 600.0
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def cache_token(ip: str, path: str) -> str:
    """The token a client sees for one of its names; meaningful only within its own tenant."""
    return hashlib.sha256(f"IP:{ip}\0{path}".encode("utf-8", "surrogateescape")).hexdigest()


def _tenant_key(tenant: str) -> str:
    return hashlib.sha256(f"tenant:{tenant}".encode()).hexdigest()[:32]


class FileCache:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.blobs = directory / "blobs"
        self.incoming = directory / "incoming"
        for folder in (self.blobs, self.incoming, directory / "tenants"):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)

    # --- names ------------------------------------------------------------------------------------
    def _names(self, tenant: str) -> Path:
        folder = self.directory / "tenants" / _tenant_key(tenant)
        folder.mkdir(exist_ok=True, mode=0o700)
        return folder

    @staticmethod
    def _checked(token: str) -> str:
        if not _HEX64.match(token):
            raise BadRequest("malformed cache token", cache_token=token)
        return token

    def _digest(self, tenant: str, token: str) -> str | None:
        try:
            digest = (self._names(tenant) / self._checked(token)).read_text().strip()
        except FileNotFoundError:
            return None
        return digest if _HEX64.match(digest) and (self.blobs / digest).is_file() else None

    # --- the protocol -----------------------------------------------------------------------------
    def status(self, tenant: str, ip: str, path: str) -> dict[str, Any]:
        token = cache_token(ip, path)
        return {"token": token, "ready": self._digest(tenant, token) is not None}

    def claim(self, tenant: str, ip: str, path: str) -> bool:
        """True if the caller should upload the file (it holds the claim); false if someone has or does."""
        token = cache_token(ip, path)
        if self._digest(tenant, token) is not None:
            return False
        claim = self._names(tenant) / f"{token}.claim"
        try:
            os.mkdir(claim, 0o700)
            return True
        except FileExistsError:
            try:
                expired = time.time() - claim.stat().st_mtime > CLAIM_EXPIRY_SECONDS
            except FileNotFoundError:
                expired = True
            if expired:
                os.utime(claim) if claim.exists() else os.mkdir(claim, 0o700)
                return True
            return False

    def insert(
        self, tenant: str, ip: str, path: str, receive: Callable[[Path], dict[str, Any]]
    ) -> dict[str, Any]:
        """Receive the claimed upload with ``receive(target)``, store it under its digest, point the name at it."""
        token = cache_token(ip, path)
        names = self._names(tenant)
        claim = names / f"{token}.claim"
        if not claim.is_dir():
            raise Conflict(
                "no claim for this cache entry: ask PUT /cache first, and upload only if it answers true",
                path=path,
            )
        upload = Path(tempfile.mkdtemp(prefix="in.", dir=self.incoming)) / "body"
        try:
            reply = receive(upload)
            digest = file_sha256(upload, remembered=False)
            blob = self.blobs / digest
            if not blob.is_file():
                place(upload, blob, durable=False)
            write_bytes_atomically(names / token, digest.encode(), durable=False)
        finally:
            shutil.rmtree(upload.parent, ignore_errors=True)
        try:
            os.rmdir(claim)
        except FileNotFoundError:
            pass
        stored: dict[str, Any] = {"path": path, "size": reply.get("size"), "sha256": digest}
        if "digest" in reply:  # the digest the upload was verified with (lwr's client checks it)
            stored["digest"] = reply["digest"]
        return stored

    def copy_to(self, tenant: str, token: str, target: Path, guard: Guard | None = None) -> dict[str, Any]:
        """Copy one of the tenant's cached files to a job's staging path, atomically (the rename
        under ``guard``)."""
        digest = self._digest(tenant, token)
        if digest is None:
            raise NotFound("no cached file for this token", cache_token=token)
        target.parent.mkdir(parents=True, exist_ok=True)
        with (
            open(self.blobs / digest, "rb") as source,
            atomic_file(target, durable=False, suffix=".cache", guard=guard) as out,
        ):
            shutil.copyfileobj(source, out)
        return {"path": str(target), "size": target.stat().st_size, "sha256": digest}
