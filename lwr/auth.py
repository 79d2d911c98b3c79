"""Who is calling: private tokens, tenants, and the token lwr makes for itself on first start.

lwr runs commands for whoever holds a token, so there is no configuration in which a local
user can reach it without one unless the administrator says so (``allow_unauthenticated =
true``, announced with a WARNING at every start). With no token configured, lwr generates a
random one on first start into ``<persistence_directory>/private_token`` (mode 0600, private to
lwr's account) and uses it from then on; the log says where it is.

Every accepted token names a *tenant*: ``private_token`` (or the generated token) is the tenant
``default``; ``tenants_file`` adds one token per tenant (a shared lwr with ``assign_ids =
uuid``). Jobs and cache entries belong to the tenant that made them; no tenant sees another's.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

from lwr.config import AppSettings
from lwr.errors import ConfigError, Unauthorized

log = logging.getLogger(__name__)

#: The tenant of ``private_token``, of the generated token, of open mode and of MQ jobs.
DEFAULT_TENANT = "default"
#: Name of the generated token's file, in the persistence directory.
TOKEN_FILE_NAME = "private_token"
#: The placeholders of the samples a site copies (lwr's change_me and CHANGE-ME, Pulsar's
#: changemeinproduction), compared without case, - or _: a server started with one is as open as
#: one without.
PLACEHOLDER_TOKENS = frozenset({"changeme", "changemeinproduction"})
MIN_TOKEN_LENGTH = 8

_TENANT_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True)
class Credentials:
    """The accepted tokens, each with its tenant; ``open`` means no token is needed (opt-in)."""

    tokens: tuple[tuple[bytes, str], ...] = ()
    open: bool = False
    token_file: Path | None = field(default=None, compare=False)

    def identify(self, sent: str | None) -> str:
        """The tenant a request's token names; :class:`Unauthorized` if it names none."""
        if self.open:
            return DEFAULT_TENANT
        tenant = None
        if sent:
            candidate = sent.encode("utf-8", "surrogateescape")
            for token, name in self.tokens:  # every token is compared: the time does not tell which
                if hmac.compare_digest(candidate, token) and tenant is None:
                    tenant = name
        if tenant is None:
            raise Unauthorized("missing or wrong private token")
        return tenant


def _own_copy(source: str) -> str:
    """Where an admin sets a key: server.ini, not the server.ini.sample a fresh clone serves."""
    if source.endswith(".sample"):
        copy = source[: -len(".sample")]
        return f"{copy} (copy {os.path.basename(source)} to {os.path.basename(copy)} first)"
    return source


def check_private_file(path: Path, what: str) -> None:
    """A file holding tokens must be a regular file of lwr's own account, unreadable by others."""
    try:
        info = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found", file=str(path)) from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{path}: {what} is not a regular file", file=str(path), expected="a regular file")
    if info.st_uid != os.geteuid():
        raise ConfigError(
            f"{path}: {what} belongs to uid {info.st_uid}, not to lwr's account ({os.geteuid()})",
            file=str(path),
            expected="owned by lwr's account",
        )
    if info.st_mode & 0o077:
        raise ConfigError(
            f"{path}: {what} has mode {stat.S_IMODE(info.st_mode):04o}; other users can read it. "
            f"Run: chmod 600 {path}",
            file=str(path),
            expected="mode 0600",
        )


def check_token(token: str, where: str) -> str:
    if re.sub(r"[-_]", "", token.lower()) in PLACEHOLDER_TOKENS or len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(
            f"{where}: private token {token!r} is a placeholder or shorter than {MIN_TOKEN_LENGTH} "
            "characters; choose a long random one (or remove it: lwr then generates one)",
            file=where,
            key="private_token",
            expected=f"at least {MIN_TOKEN_LENGTH} characters",
        )
    return token


def generated_token(path: Path) -> tuple[str, bool]:
    """The token in ``path``, made (random, mode 0600) if there is none; and whether it was made now."""
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        check_private_file(path, "the generated private token file")
        text = path.read_text().strip()
        if not text:
            raise ConfigError(
                f"{path}: the generated private token file is empty; delete it to make a new token",
                file=str(path),
            ) from None
        return text, False
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return token, True


def load_tenants(path: Path) -> list[tuple[str, str]]:
    """``tenants_file``: one ``NAME = TOKEN`` a line; ``#`` comments; names and tokens unique."""
    check_private_file(path, "tenants_file")
    tenants: list[tuple[str, str]] = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        # the error names neither line nor token: no secret is repeated
        raise ConfigError(f"{path}: cannot read the tenants_file: {error}", file=str(path)) from None
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, token = (part.strip() for part in line.partition("="))
        where = f"{path}:{number}"
        if not sep or not _TENANT_NAME.match(name):
            raise ConfigError(
                f"{where}: expected NAME = TOKEN with NAME of letters, digits, '.', '_', '-'",
                file=str(path),
                line=number,
                expected="NAME = TOKEN",
            )
        if name == DEFAULT_TENANT:
            raise ConfigError(
                f"{where}: tenant name '{DEFAULT_TENANT}' is reserved for private_token",
                file=str(path),
                line=number,
            )
        check_token(token, where)
        if any(name == known or token == other for known, other in tenants):
            raise ConfigError(
                f"{where}: tenant '{name}' or its token appears twice", file=str(path), line=number
            )
        tenants.append((name, token))
    if not tenants:
        raise ConfigError(
            f"{path}: tenants_file names no tenant", file=str(path), expected="NAME = TOKEN lines"
        )
    return tenants


def load_credentials(settings: AppSettings) -> Credentials:
    """Build the credentials lwr starts with, and say at start-up how clients authenticate."""
    if settings.allow_unauthenticated:
        log.warning(
            "WARNING: allow_unauthenticated = true in %s: lwr accepts requests WITHOUT A TOKEN; any "
            "local user or anyone reaching this port can run commands as this account. Set a "
            "private_token (or remove allow_unauthenticated) unless this network is trusted.",
            settings.source,
        )
        return Credentials(open=True)
    tokens: list[tuple[bytes, str]] = []
    token_file = None
    if settings.private_token:
        tokens.append((check_token(settings.private_token, settings.source).encode(), DEFAULT_TENANT))
        _warn_if_readable(settings.source)
    if settings.tenants_file is not None:
        for name, token in load_tenants(settings.tenants_file):
            if token == settings.private_token:
                raise ConfigError(
                    f"{settings.tenants_file}: tenant '{name}' has the private_token of "
                    f"{settings.source}; every tenant needs a token of its own",
                    file=str(settings.tenants_file),
                )
            tokens.append((token.encode(), name))
        log.info(
            "%d tenants from %s", len(tokens) - (1 if settings.private_token else 0), settings.tenants_file
        )
    if not tokens:
        token_file = settings.persistence_directory / TOKEN_FILE_NAME
        token, made = generated_token(token_file)
        tokens.append((token.encode(), DEFAULT_TENANT))
        log.warning(
            "%s private token in %s (mode 0600). Clients must send it: Galaxy's destination "
            "private_token = (the file's contents); lwr check --private-token-file %s; pulsar-check "
            '--private_token "$(cat %s)". To choose your own, set private_token in %s.',
            "No private_token configured: generated a" if made else "Using the generated",
            token_file,
            token_file,
            token_file,
            _own_copy(settings.source),
        )
    return Credentials(tokens=tuple(tokens), token_file=token_file)


def _warn_if_readable(source: str) -> None:
    try:
        mode = os.stat(source).st_mode
    except OSError:
        return
    if mode & 0o044:
        log.warning(
            "%s holds the private token and is readable by other users (mode %04o); chmod 600 it",
            source,
            stat.S_IMODE(mode),
        )
