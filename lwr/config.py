"""The one place that reads configuration: server.ini's ``[app:main]`` and job_managers.ini.

Everything else receives the typed settings built here. A misspelled key, a value of the
wrong type or an unknown manager type raises :class:`ConfigError` naming the file, the
section, the key and what was expected; nothing is silently defaulted.
"""

from __future__ import annotations

import configparser
import dataclasses
import difflib
import logging.config
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from lwr.config_amqp import AmqpSettings
from lwr.core.manager import as_bool as parse_bool
from lwr.errors import ConfigError
from lwr.managers import manager_class
from lwr.protocol.names import DEFAULT_MANAGER
from lwr.protocol.redact import redact

DEFAULT_MANAGER_NAME = DEFAULT_MANAGER
APP_SECTION = "app:main"

_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``1048576``, ``512M``, ``4G``, ``1TiB`` to bytes."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError("expected a size in bytes, optionally with K, M, G or T")
    number, unit = match.groups()
    exponent = "kmgt".index(unit.lower()) + 1 if unit else 0
    return int(number) * 1024**exponent


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """``90``, ``30s``, ``45m``, ``2h``, ``7d``, ``2w`` to seconds; ``0`` means off."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError("expected a duration such as 2h or 7d (units s, m, h, d, w)")
    number, unit = match.groups()
    return float(number) * _DURATION_UNITS[unit.lower()]


def parse_free_disk(text: str) -> tuple[int, float]:
    """``min_free_disk``: ``10G`` (bytes) or ``5%`` (of the filesystem) as (bytes, percent)."""
    stripped = text.strip()
    if stripped.endswith("%"):
        try:
            percent = float(stripped[:-1])
        except ValueError:
            raise ValueError("expected a size such as 10G or a percentage such as 5%") from None
        if not 0 <= percent <= 100:
            raise ValueError("a percentage must be between 0 and 100")
        return (0, percent)
    try:
        return (parse_size(stripped), 0.0)
    except ValueError:
        raise ValueError("expected a size such as 10G or a percentage such as 5%") from None


def parse_port(text: str) -> int:
    port = int(text)
    if not 0 < port < 65536:
        raise ValueError("a port must be between 1 and 65535")
    return port


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def parse_list(text: str) -> list[str]:
    """Comma- or newline-separated values."""
    return [item.strip() for item in re.split(r"[,\n]", text) if item.strip()]


def parse_positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def parse_assign_ids(text: str) -> str:
    if text not in ("galaxy", "uuid"):
        raise ValueError("expected galaxy or uuid")
    return text


#: The broker URL schemes lwr's AMQP transport speaks (kombu's py-amqp transport).
AMQP_SCHEMES = ("amqp", "amqps", "pyamqp")


def parse_amqp_url(text: str) -> str:
    """``amqp://user:password@host:5672/vhost`` (``;``-separated for failover); empty: HTTP only."""
    for url in filter(None, (part.strip() for part in text.split(";"))):
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme not in AMQP_SCHEMES:
            raise ValueError(f"{scheme or 'no'} scheme, lwr speaks only AMQP to a broker")
    return text.strip()


def parse_cert_reqs(text: str) -> str:
    if text not in (
        "cert_none",
        "cert_optional",
        "cert_required",
        "CERT_NONE",
        "CERT_OPTIONAL",
        "CERT_REQUIRED",
    ):
        raise ValueError("expected cert_none, cert_optional or cert_required")
    return text.lower()


@dataclass(frozen=True)
class _Key:
    parse: Callable[[str], Any]
    expected: str


#: Every key ``[app:main]`` accepts, with its parser. PasteDeploy's own keys are listed too.
APP_KEYS: dict[str, _Key] = {
    "paste.app_factory": _Key(str, "lwr.app:app_factory"),
    "use": _Key(str, "an egg or package reference"),
    "staging_directory": _Key(str, "a directory path"),
    "persistence_directory": _Key(str, "a directory path"),
    "private_token": _Key(str, "a secret string"),
    "private_key": _Key(str, "a secret string (older name of private_token)"),
    "allow_unauthenticated": _Key(parse_bool, "true or false"),
    "tenants_file": _Key(str, "a path to a file of NAME = TOKEN lines"),
    "job_managers_config": _Key(str, "a path to job_managers.ini"),
    "tool_config_files": _Key(parse_list, "comma-separated Galaxy toolbox XML files"),
    "assign_ids": _Key(parse_assign_ids, "galaxy or uuid"),
    "file_cache_dir": _Key(str, "a directory path"),
    "max_upload_size": _Key(parse_size, "a size such as 50G"),
    "message_queue_url": _Key(
        parse_amqp_url, "an amqp:// or amqps:// URL such as amqp://user:password@host:5672/vhost"
    ),
    "enable_http": _Key(parse_bool, "true or false"),
    "remote_staging_allowed_urls": _Key(parse_list, "comma-separated URL prefixes"),
    "amqp_connect_ssl_ca_certs": _Key(str, "a file path"),
    "amqp_connect_ssl_keyfile": _Key(str, "a file path"),
    "amqp_connect_ssl_certfile": _Key(str, "a file path"),
    "amqp_connect_ssl_cert_reqs": _Key(parse_cert_reqs, "cert_none, cert_optional or cert_required"),
    "amqp_heartbeat": _Key(float, "seconds, a number"),
    "amqp_acknowledge": _Key(parse_bool, "true or false"),
    "amqp_publish_retry_max": _Key(float, "seconds, a number"),
    "min_free_disk": _Key(parse_free_disk, "a size such as 10G or a percentage such as 5%"),
    "retain_complete_jobs": _Key(parse_duration, "a duration such as 2h or 7d, 0 for never"),
    "retain_failed_jobs": _Key(parse_duration, "a duration such as 2h or 7d, 0 for never"),
    "retain_job_records": _Key(parse_duration, "a duration such as 30d, 0 for never"),
    "metrics_port": _Key(parse_port, "a TCP port"),
    "metrics_host": _Key(str, "an address to bind, such as 127.0.0.1"),
    "sentry_dsn": _Key(str, "a Sentry DSN such as https://KEY@sentry.example.org/1"),
    "staging_threads": _Key(parse_positive_int, "a positive integer"),
    "staging_threads_per_host": _Key(parse_positive_int, "a positive integer"),
    "tool_dependency_dir": _Key(str, "a directory path (or none)"),
    "dependency_resolvers_config_file": _Key(
        str, "a path to Galaxy's dependency_resolvers_conf.xml (or .yml)"
    ),
    "job_metrics_config_file": _Key(str, "a path to Galaxy's job_metrics_conf.xml (or .yml), or none"),
    "tmp_dir": _Key(str, "a directory path or shell word such as $SLURM_TMPDIR"),
    "galaxy_home": _Key(str, "the directory of a Galaxy installation"),
    "galaxy_virtual_env": _Key(str, "the directory of Galaxy's virtualenv"),
    "galaxy_config_file": _Key(str, "a path to galaxy.yml"),
    "galaxy_dataset_files_path": _Key(str, "a directory path"),
    "galaxy_datatypes_config_file": _Key(str, "a path to datatypes_conf.xml"),
}

#: Pulsar settings lwr does not take, with what an admin coming from Pulsar should do instead
#: (a "did you mean" would point amqp_publish_retry_max_retries at amqp_publish_retry_max).
PULSAR_SETTINGS: dict[str, str] = {
    "amqp_publish_retry": "lwr always retries publishing, from an on-disk outbox with publisher "
    "confirms; amqp_publish_retry_max bounds the wait between tries",
    "amqp_publish_retry_max_retries": "lwr retries a status update until the broker confirms it "
    "and never drops one after N tries; amqp_publish_retry_max bounds the wait between tries",
    "amqp_publish_retry_interval_start": "amqp_publish_retry_max is lwr's longest wait between tries",
    "amqp_publish_retry_interval_step": "amqp_publish_retry_max is lwr's longest wait between tries",
    "amqp_publish_retry_interval_max": "lwr's name for it is amqp_publish_retry_max (seconds)",
    "amqp_republish_time": "with amqp_acknowledge = true lwr republishes an unacknowledged "
    "update every 30 seconds",
    "amqp_consumer_timeout": "lwr's consumer waits on the broker itself, with heartbeats (amqp_heartbeat)",
    "message_queue_consume": "lwr consumes whenever message_queue_url is set",
    "message_queue_publish": "lwr publishes status updates whenever message_queue_url is set",
    "message_queue_username": "put the user in message_queue_url: amqp://USER:PASSWORD@host:5672/vhost",
    "message_queue_password": "put the password in message_queue_url: amqp://USER:PASSWORD@host:5672/vhost",
    "app_config": "lwr serves a Pulsar app.yml itself (lwr serve -c app.yml), or takes its keys "
    "here in [app:main]",
    "job_directory_mode": "lwr's job directories are its own account's (0700); "
    "queued_external_drmaa hands a job's directory to the job's user",
}

#: The keys announced to clients in the setup reply's ``system_properties`` (Galaxy's remote metadata).
GALAXY_SYSTEM_PROPERTIES = (
    "galaxy_home",
    "galaxy_virtual_env",
    "galaxy_config_file",
    "galaxy_dataset_files_path",
    "galaxy_datatypes_config_file",
)


@dataclass(frozen=True)
class ManagerSettings:
    name: str
    type: str
    options: dict[str, Any] = field(default_factory=dict)
    #: The file that configured it, named in the errors its manager raises when it is built.
    source: str = "<defaults>"


@dataclass(frozen=True)
class AppSettings:
    """Typed ``[app:main]`` settings, paths made absolute against the config file's directory."""

    staging_directory: Path
    persistence_directory: Path
    managers: tuple[ManagerSettings, ...]
    private_token: str | None = None
    #: Explicit opt-in to serve without any token (lwr warns at every start).
    allow_unauthenticated: bool = False
    #: One token per tenant (a shared lwr, assign_ids = uuid); see lwr.auth.
    tenants_file: Path | None = None
    #: Public-server mode: the toolbox files naming the only tools that may run (lwr.tools).
    tool_config_files: tuple[Path, ...] = ()
    assign_ids: str = "galaxy"
    file_cache_dir: Path | None = None
    max_upload_size: int | None = None
    message_queue_url: str | None = None
    enable_http: bool = True
    remote_staging_allowed_urls: tuple[str, ...] = ()
    #: Server-side staging: transfers at once in all, and per remote host (lwr.staging.pool).
    staging_threads: int = 16
    staging_threads_per_host: int = 4
    #: The ``amqp_*`` keys, typed (lwr.config_amqp).
    amqp: AmqpSettings = field(default_factory=AmqpSettings)
    #: (bytes, percent of the filesystem) the staging directory must keep free; (0, 0) is off.
    min_free_disk: tuple[int, float] = (0, 0.0)
    #: Seconds after which an ended job's directory is removed (0: never).
    retain_complete_jobs: float = 0.0
    retain_failed_jobs: float = 0.0
    retain_job_records: float = 0.0
    #: A separate listener for ``/metrics`` (unset: only the main port's token-protected route).
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    sentry_dsn: str | None = None
    #: Galaxy's dependency resolution; both unset: requirements are reported unresolved.
    tool_dependency_dir: Path | None = None
    dependency_resolvers_config_file: Path | None = None
    #: Galaxy's job metrics plugins; unset: the ``core`` plugin; ``none``: no instrumentation.
    job_metrics_config_file: Path | None = None
    job_metrics_enabled: bool = True
    tmp_dir: str | None = None
    #: galaxy_home, galaxy_virtual_env, ...: absolute paths, announced in system_properties.
    galaxy: dict[str, str] = field(default_factory=dict)
    source: str = "<defaults>"


#: `` ; note`` or `` # note`` after a value: an inline comment, which ini files do not have (the
#: text stays in the value: a path or a submit line silently wrong).
_INLINE_COMMENT = re.compile(r"\s[;#]")


#: Keys whose values are secrets: never repeated in a message.
_SECRET_KEYS = frozenset({"private_token", "private_key", "sentry_dsn"})


def shown(key: str, raw: str) -> str:
    """A value as a message may repeat it: secrets masked, URL passwords redacted."""
    return "'***'" if key in _SECRET_KEYS else redact(repr(raw))


def refuse_inline_comment(where: str, key: str, raw: str, source: str, section: str | None) -> None:
    """An ini value that carries an inline comment is refused, naming the key."""
    if _INLINE_COMMENT.search(raw):
        raise ConfigError(
            f"{where} {key} = {shown(key, raw)}: ini files have no inline comments, so the "
            "comment would be part of the value; put it on a line of its own",
            file=source,
            section=section,
            key=key,
            expected="the value alone on its line",
        )


def _reason(error: ValueError, expected: str) -> str:
    """A parser's own reason, when it says more than the key's ``expected`` text (Python's
    ``invalid literal for int()`` and the parser's own "expected ..." say nothing more)."""
    text = str(error)
    if not text or text.startswith(("invalid literal", "could not convert", "expected ")):
        return ""
    return f"{text}; "


def parse_keys(
    local_conf: Mapping[str, Any],
    keys: Mapping[str, _Key],
    where: str,
    source: str,
    section: str | None,
    unknown_context: str = "",
    hints: Mapping[str, str] | None = None,
    ini: bool = True,
) -> dict[str, Any]:
    """Each key of a section parsed by its table entry; an unknown key or a bad value is a
    :class:`ConfigError` naming the file, the section, the key and what was expected.
    ``hints``: keys lwr refuses with a reason of their own (Pulsar's)."""
    values: dict[str, Any] = {}
    for key, raw in local_conf.items():
        spec = keys.get(key)
        if spec is None and hints and key in hints:
            raise ConfigError(
                f"{where} '{key}' is a Pulsar setting lwr does not take: {hints[key]}",
                file=source,
                section=section,
                key=key,
                expected=sorted(keys),
            )
        if spec is not None and isinstance(raw, str) and ini:
            refuse_inline_comment(where, key, raw, source, section)
        if spec is None:
            raise ConfigError(
                f"{where} unknown key '{key}'{did_you_mean(key, keys)}{unknown_context}; expected one of "
                f"{', '.join(sorted(keys))}",
                file=source,
                section=section,
                key=key,
                expected=sorted(keys),
            )
        try:
            values[key] = spec.parse(str(raw))
        except ValueError as error:
            raise ConfigError(
                f"{where} {key} = {shown(key, str(raw))}: {_reason(error, spec.expected)}"
                f"expected {spec.expected}",
                file=source,
                section=section,
                key=key,
                expected=spec.expected,
            ) from None
    return values


def load_app_settings(
    local_conf: Mapping[str, Any], source: str, here: str | None = None, section: str | None = APP_SECTION
) -> AppSettings:
    """Validate ``[app:main]`` (as PasteDeploy hands it over) and the job_managers.ini it names.

    ``section`` names where the keys came from in messages (``None``: a YAML file's top level).
    """
    where = f"{source}: [{section}]" if section else f"{source}:"
    base = Path(here or os.path.dirname(os.path.abspath(source)) if source != "<defaults>" else os.getcwd())
    values = parse_keys(
        local_conf, APP_KEYS, where, source, section, hints=PULSAR_SETTINGS, ini=section is not None
    )
    if str(values.get("persistence_directory", "")).strip() == "__none__":
        raise ConfigError(
            f"{where} persistence_directory = '__none__': Pulsar's way to keep no job records is "
            "not an option in lwr (its records are what recovers jobs after a restart); name a "
            "directory, or remove the key for files/persisted_data",
            file=source,
            section=section,
            key="persistence_directory",
            expected=APP_KEYS["persistence_directory"].expected,
        )

    def path(key: str, default: str | None) -> Path | None:
        value = values.get(key) or default  # an empty value (the sample's "key =") is unset
        if value is None:
            return None
        return (base / os.path.expanduser(value)).resolve()

    staging = path("staging_directory", "files/staging")
    persistence = path("persistence_directory", "files/persisted_data")
    assert staging is not None and persistence is not None

    def existing_file(key: str) -> Path | None:
        found = path(key, None)
        if found is not None and not found.is_file():
            raise ConfigError(
                f"{where} {key} = {values[key]!r}: no such file ({found})",
                file=source,
                section=section,
                key=key,
                expected=APP_KEYS[key].expected,
            )
        return found

    amqp = AmqpSettings.from_values(values)
    private_token = values.get("private_token", values.get("private_key")) or None
    _refuse_contradictions(
        source, values, private_token is not None, bool(values.get("tenants_file")), section
    )
    managers_path = existing_file("job_managers_config")
    tenants_file = existing_file("tenants_file")
    tool_config_files = tuple(
        (base / os.path.expanduser(item)).resolve() for item in values.get("tool_config_files", ())
    )
    for tool_config_file in tool_config_files:
        if not tool_config_file.is_file():
            raise ConfigError(
                f"{where} tool_config_files: no such file {tool_config_file}",
                file=source,
                section=section,
                key="tool_config_files",
                expected=APP_KEYS["tool_config_files"].expected,
            )

    metrics_disabled = str(values.get("job_metrics_config_file", "")).strip().lower() == "none"
    # Galaxy resolves nothing without a base directory: a resolvers file alone gets Pulsar's default.
    dependency_dir = (
        None
        if str(values.get("tool_dependency_dir", "")).lower() == "none"
        else path(
            "tool_dependency_dir", "dependencies" if values.get("dependency_resolvers_config_file") else None
        )
    )
    galaxy = {key: str(path(key, None)) for key in GALAXY_SYSTEM_PROPERTIES if values.get(key)}
    return AppSettings(
        staging_directory=staging,
        persistence_directory=persistence,
        managers=load_manager_settings(managers_path),
        private_token=private_token,
        allow_unauthenticated=values.get("allow_unauthenticated", False),
        tenants_file=tenants_file,
        tool_config_files=tool_config_files,
        assign_ids=values.get("assign_ids", "galaxy"),
        file_cache_dir=path("file_cache_dir", None),
        max_upload_size=values.get("max_upload_size"),
        message_queue_url=values.get("message_queue_url") or None,
        enable_http=values.get("enable_http", True),
        remote_staging_allowed_urls=tuple(values.get("remote_staging_allowed_urls", ())),
        staging_threads=values.get("staging_threads", 16),
        staging_threads_per_host=values.get("staging_threads_per_host", 4),
        amqp=amqp,
        min_free_disk=values.get("min_free_disk", (0, 0.0)),
        retain_complete_jobs=values.get("retain_complete_jobs", 0.0),
        retain_failed_jobs=values.get("retain_failed_jobs", 0.0),
        retain_job_records=values.get("retain_job_records", 0.0),
        metrics_port=values.get("metrics_port"),
        metrics_host=values.get("metrics_host", "127.0.0.1"),
        sentry_dsn=values.get("sentry_dsn") or None,
        tool_dependency_dir=dependency_dir,
        dependency_resolvers_config_file=existing_file("dependency_resolvers_config_file"),
        job_metrics_config_file=None if metrics_disabled else existing_file("job_metrics_config_file"),
        job_metrics_enabled=not metrics_disabled,
        tmp_dir=values.get("tmp_dir") or None,
        galaxy=galaxy,
        source=source,
    )


def _refuse_contradictions(
    source: str, values: dict[str, Any], token: bool, tenants: bool, section: str | None = APP_SECTION
) -> None:
    """Refuse settings that contradict each other (open mode with tokens, tenants without uuid ids, ...)."""
    where = f"{source}: [{section}]" if section else f"{source}:"
    if values.get("allow_unauthenticated") and (token or tenants):
        raise ConfigError(
            f"{where} allow_unauthenticated = true contradicts private_token / tenants_file; remove one",
            file=source,
            section=section,
            key="allow_unauthenticated",
            expected="false when a token is set",
        )
    if values.get("retain_job_records") and not (
        values.get("retain_complete_jobs") or values.get("retain_failed_jobs")
    ):
        raise ConfigError(
            f"{where} retain_job_records forgets the records of jobs whose directories retention "
            "removed, and retain_complete_jobs and retain_failed_jobs are both unset (directories "
            "kept for ever): set one of them, or remove retain_job_records",
            file=source,
            section=section,
            key="retain_job_records",
            expected="retain_complete_jobs or retain_failed_jobs set as well",
        )
    if tenants and values.get("assign_ids", "galaxy") != "uuid":
        raise ConfigError(
            f"{where} tenants_file needs assign_ids = uuid (with client-chosen "
            "job ids, tenants would collide on each other's ids)",
            file=source,
            section=section,
            key="assign_ids",
            expected="uuid",
        )


def load_manager_settings(path: Path | None) -> tuple[ManagerSettings, ...]:
    """Managers from job_managers.ini; with no file, one ``_default_`` queued_python at its
    defaults (max_concurrent_jobs = 1)."""
    if path is None:
        options = manager_class("queued_python").settings_with_defaults({})
        return (ManagerSettings(DEFAULT_MANAGER_NAME, "queued_python", options),)
    source = str(path)
    if not path.is_file():
        raise ConfigError(f"{source}: job managers file not found", file=source)
    parser = configparser.ConfigParser(interpolation=None, default_section="__no_defaults__")
    try:
        parser.read(path)
    except configparser.Error as error:
        raise ConfigError(f"{source}: cannot parse: {error}", file=source) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{source}: cannot read: {error}", file=source) from None
    managers = []
    for section in parser.sections():
        if not section.startswith("manager:") or not section[len("manager:") :].strip():
            raise ConfigError(
                f"{source}: section [{section}] is not [manager:NAME]",
                file=source,
                section=section,
                expected="[manager:NAME]",
            )
        name = section[len("manager:") :].strip()
        items = dict(parser.items(section))
        for alias, own in PULSAR_MANAGER_ALIASES.items():  # a Pulsar site's job_managers.ini
            if alias in items:
                if own in items:
                    raise ConfigError(
                        f"{source}: [{section}] {own} is given twice ({alias} is Pulsar's name for it)",
                        file=source,
                        section=section,
                        key=alias,
                    )
                items[own] = items.pop(alias)
        managers.append(_manager_settings(source, section, name, items))
    if not managers:
        raise ConfigError(
            f"{source}: no [manager:NAME] section", file=source, expected="at least one manager"
        )
    return tuple(managers)


#: A manager's name is a directory under staging_directory, a URL segment (/managers/NAME) and part
#: of its AMQP queue names (pulsar_NAME__setup): one plain word.
_MANAGER_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")


def _manager_settings(source: str, section: str, name: str, items: dict[str, str]) -> ManagerSettings:
    if not _MANAGER_NAME.match(name):
        raise ConfigError(
            f"{source}: [{section}] {name!r} cannot name a manager: it is a directory under "
            "staging_directory, a URL segment and part of queue names; expected letters, digits, "
            "_, . and - (not starting with .)",
            file=source,
            section=section,
            expected="a name of letters, digits, _, . and -",
        )
    type_name = items.pop("type", None)
    if type_name is None:
        raise ConfigError(
            f"{source}: [{section}] is missing key 'type'", file=source, section=section, key="type"
        )
    try:
        cls = manager_class(type_name)
    except ConfigError as error:
        raise ConfigError(
            f"{source}: [{section}] type = {type_name!r}: unknown manager type"
            f"{did_you_mean(type_name, error.details['expected'])}; expected one of "
            f"{', '.join(error.details['expected'])}",
            file=source,
            section=section,
            key="type",
            expected=error.details["expected"],
        ) from None
    options: dict[str, Any] = {}
    for key, raw in items.items():
        if not section.startswith("managers."):  # app.yml has comments of its own
            refuse_inline_comment(f"{source}: [{section}]", key, raw, source, section)
        option = cls.options.get(key)
        if option is None:
            if any(key.startswith(prefix) for prefix in cls.option_prefixes):
                options[key] = raw
                continue
            allowed = sorted(cls.options) + [f"{prefix}*" for prefix in cls.option_prefixes]
            raise ConfigError(
                f"{source}: [{section}] unknown key '{key}' for type {type_name}"
                f"{did_you_mean(key, allowed)}; expected one of "
                f"{', '.join(allowed) or '(no options)'}",
                file=source,
                section=section,
                key=key,
                expected=allowed,
            )
        try:
            options[key] = option.kind(raw)
        except ValueError as error:
            expected = option.expected or str(error)
            raise ConfigError(
                f"{source}: [{section}] {key} = {raw!r}: expected {expected}",
                file=source,
                section=section,
                key=key,
                expected=expected,
            ) from None
    return ManagerSettings(
        name=name, type=type_name, options=cls.settings_with_defaults(options), source=source
    )


SERVER_SECTION = "server:main"


def parse_seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError("expected a positive number of seconds")
    return value


def parse_positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("expected a positive integer")
    return value


#: Every key ``[server:main]`` accepts with ``use = egg:lwr#http`` (other servers read their own).
SERVER_KEYS: dict[str, _Key] = {
    "use": _Key(str, "egg:lwr#http"),
    "host": _Key(str, "an address to listen on, such as 127.0.0.1 or 0.0.0.0"),
    "port": _Key(parse_port, "a TCP port number (1 to 65535)"),
    "ssl_pem": _Key(str, "a PEM file with the certificate chain and the private key"),
    "threadpool_workers": _Key(parse_positive, "a positive integer (requests served at once)"),
    "request_queue_size": _Key(parse_positive, "a positive integer (listen backlog)"),
    "max_connections": _Key(parse_positive, "a positive integer (open client connections)"),
    "header_timeout": _Key(parse_seconds, "seconds, a positive number"),
    "idle_timeout": _Key(parse_seconds, "seconds, a positive number"),
    "body_timeout": _Key(parse_seconds, "seconds, a positive number"),
    "max_request_line": _Key(parse_size, "a size such as 256K"),
    "max_header_size": _Key(parse_size, "a size such as 64K"),
    "max_headers": _Key(parse_positive, "a positive integer"),
    "drain_timeout": _Key(parse_seconds, "seconds, a positive number"),
}


@dataclass(frozen=True)
class ServerSettings:
    """Typed ``[server:main]`` settings of lwr's own HTTP server (``egg:lwr#http``).

    Timeouts bound what a client that never finishes can hold: ``header_timeout`` from the
    first byte (or the connection) to the end of the request head, ``idle_timeout`` between
    requests on a kept-alive connection, ``body_timeout`` of silence while a body arrives (per
    read, so a 4 GiB upload that keeps moving never times out).
    """

    host: str = "127.0.0.1"
    port: int = 8913
    ssl_pem: str | None = None
    threadpool_workers: int = 16
    request_queue_size: int = 128
    max_connections: int = 1000
    header_timeout: float = 10.0
    idle_timeout: float = 60.0
    body_timeout: float = 300.0
    #: Galaxy's Pulsar client sends a whole submit (command line, env, staging) in the query string.
    max_request_line: int = 256 * 1024
    max_header_size: int = 65536
    max_headers: int = 100
    drain_timeout: float = 600.0
    source: str = "<defaults>"


def load_server_settings(local_conf: Mapping[str, Any], source: str, ini: bool = True) -> ServerSettings:
    """Validate ``[server:main]`` as PasteDeploy hands it to ``egg:lwr#http`` (``ini=False``:
    app.yml's ``server:`` mapping)."""
    values = parse_keys(
        local_conf,
        SERVER_KEYS,
        f"{source}: [{SERVER_SECTION}]",
        source,
        SERVER_SECTION,
        unknown_context=" for use = egg:lwr#http",
        ini=ini,
    )
    values.pop("use", None)
    if values.get("ssl_pem"):
        base = os.path.dirname(os.path.abspath(source)) if source != "<defaults>" else os.getcwd()
        values["ssl_pem"] = os.path.join(base, values["ssl_pem"])
        if not os.path.isfile(values["ssl_pem"]):
            raise ConfigError(
                f"{source}: [{SERVER_SECTION}] ssl_pem = {values['ssl_pem']!r}: file not found; "
                "expected a PEM file with the certificate chain and the private key",
                file=source,
                section=SERVER_SECTION,
                key="ssl_pem",
                expected=SERVER_KEYS["ssl_pem"].expected,
            )
    else:
        values.pop("ssl_pem", None)
    return ServerSettings(**values, source=source)


def check_ini_syntax(ini_path: str) -> None:
    """Read server.ini as PasteDeploy will (``%`` interpolation, ``%(here)s``, strict sections and
    keys) and turn what would be its traceback into a :class:`ConfigError` naming the key.

    A literal ``%`` (``min_free_disk = 5%``, a %-encoded password in ``message_queue_url``) is
    the usual cause: PasteDeploy reads ``%`` as the start of a reference such as ``%(here)s``.
    """
    here = os.path.dirname(os.path.abspath(ini_path))
    parser = configparser.ConfigParser(defaults={"here": here, "__file__": os.path.abspath(ini_path)})
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # PasteDeploy keeps case
    try:
        with open(ini_path) as handle:
            parser.read_file(handle)
    except (configparser.DuplicateOptionError, configparser.DuplicateSectionError) as error:
        key = getattr(error, "option", None)
        what = f"key '{key}'" if key else "the section"
        raise ConfigError(
            f"{ini_path}: [{error.section}] {what} is given twice (line {error.lineno}); keep one",
            file=ini_path,
            section=error.section,
            key=key,
            expected="each section and key once",
        ) from None
    except configparser.MissingSectionHeaderError as error:
        raise ConfigError(
            f"{ini_path}: line {error.lineno} {error.line.strip()!r} comes before any [section]; "
            "expected [server:main] or [app:main] above it",
            file=ini_path,
            expected="a [section] header first",
        ) from None
    except configparser.Error as error:
        raise ConfigError(f"{ini_path}: cannot parse: {error}", file=ini_path) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{ini_path}: cannot read: {error}", file=ini_path) from None
    # PasteDeploy interpolates only the sections it loads; logging's [formatter_*] keep their %(name)s.
    for section in (name for name in parser.sections() if ":" in name):
        for key in parser.options(section):
            try:
                parser.get(section, key)
            except configparser.InterpolationError:
                raw = parser.get(section, key, raw=True)
                raise ConfigError(
                    f"{ini_path}: [{section}] {key} = {shown(key, raw)}: '%' starts a reference such as "
                    "%(here)s in server.ini; write a literal % as %% (min_free_disk = 5%%, "
                    "a password's %40 as %%40)",
                    file=ini_path,
                    section=section,
                    key=key,
                    expected="%% for a literal %, or %(here)s",
                ) from None


def check_server_section(ini_path: str) -> None:
    """Catch a server section that cannot work before PasteDeploy fails obscurely on it."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ini_path)
    section = "server:main"
    if not parser.has_section(section):
        return
    use = parser.get(section, "use", fallback="").strip()
    if parser.get(section, "ssl_pem", fallback="").strip() and use.lower() in ("egg:paste#http", "egg:paste"):
        raise ConfigError(
            f"{ini_path}: [{section}] ssl_pem needs use = egg:lwr#http (Paste's own TLS depends on "
            "a pyOpenSSL module that no longer exists)",
            file=ini_path,
            section=section,
            key="ssl_pem",
            expected="use = egg:lwr#http",
        )
    if use.lower() in ("egg:waitress#main", "egg:waitress"):
        _check_waitress_keys(ini_path, section, parser)


def _check_waitress_keys(ini_path: str, section: str, parser: configparser.ConfigParser) -> None:
    """waitress refuses keys it does not know with a traceback, after lwr recovered its jobs; the
    sample's keys other than host and port are egg:lwr#http's (waitress: threads, backlog, ...)."""
    try:
        from waitress.adjustments import Adjustments
    except ImportError:
        return  # PasteDeploy names the missing package itself
    for key, value in parser.items(section):
        if key == "use" or key in parser.defaults():
            continue
        try:
            Adjustments(**{key: value})
        except ValueError as error:
            lwr_own = ", a key of egg:lwr#http" if key in SERVER_KEYS else ""
            raise ConfigError(
                f"{ini_path}: [{section}] {key} = {value!r}: waitress refuses it ({error}){lwr_own}; "
                "use waitress's own keys (threads, backlog, connection_limit, channel_timeout, ...) "
                "with use = egg:waitress#main",
                file=ini_path,
                section=section,
                key=key,
                expected="a waitress adjustment",
            ) from None


def configure_logging(ini_path: str) -> None:
    """Apply the ``[loggers]``/``[handlers]``/``[formatters]`` sections of server.ini, if any."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ini_path)
    if parser.has_section("loggers"):
        logging.config.fileConfig(
            ini_path,
            defaults={"here": os.path.dirname(os.path.abspath(ini_path))},
            disable_existing_loggers=False,
        )
    else:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


# --- Pulsar's app.yml ----------------------------------------------------------------------------
#: Pulsar's names for lwr's manager options.
PULSAR_MANAGER_ALIASES = {"num_concurrent_jobs": "max_concurrent_jobs"}
#: Top-level app.yml keys besides those of ``[app:main]``: managers inline, lwr's HTTP server.
YAML_SECTIONS = ("managers", "server")


def _yaml_scalar(source: str, where: str, key: str, value: Any) -> str:
    """An app.yml value as the ini text lwr's parsers take (YAML has typed scalars and lists)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    if isinstance(value, list) and all(isinstance(item, (int, float, str)) for item in value):
        return ",".join(str(item) for item in value)
    raise ConfigError(
        f"{source}: {where}{key}: expected a single value, got a {type(value).__name__}",
        file=source,
        key=key,
        expected="a string, number, boolean or list of them",
    )


def load_app_yaml(path: Path) -> tuple[AppSettings, ServerSettings]:
    """A Pulsar ``app.yml``: the ``[app:main]`` keys lwr implements, ``managers`` inline (Pulsar's
    ``num_concurrent_jobs`` for ``max_concurrent_jobs``, type ``queued_python`` unless given) and an
    optional ``server`` mapping (the ``[server:main]`` keys of lwr's own server; default
    127.0.0.1:8913). A key lwr does not implement stops lwr with a message naming it."""
    import yaml

    source = str(path)
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ConfigError(f"{source}: cannot read YAML: {error}", file=source) from None
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: expected a mapping of settings at the top level", file=source)
    implemented = sorted(set(APP_KEYS) - {"paste.app_factory", "use"}) + list(YAML_SECTIONS)
    values: dict[str, str] = {}
    for key, value in document.items():
        key = str(key)
        if key in PULSAR_SETTINGS:
            raise ConfigError(
                f"{source}: '{key}' is a Pulsar setting lwr does not take: {PULSAR_SETTINGS[key]}",
                file=source,
                key=key,
                expected=implemented,
            )
        if key not in implemented:
            raise ConfigError(
                f"{source}: '{key}' is not a setting lwr implements{did_you_mean(key, implemented)}; "
                f"lwr serves these app.yml keys: {', '.join(implemented)}",
                file=source,
                key=key,
                expected=implemented,
            )
        if key not in YAML_SECTIONS:
            values[key] = _yaml_scalar(source, "", key, value)
    managers = document.get("managers")
    if managers is not None and "job_managers_config" in document:
        raise ConfigError(
            f"{source}: managers and job_managers_config both name the managers; keep one",
            file=source,
            key="managers",
        )
    settings = load_app_settings(values, source, section=None)
    if managers is not None:
        settings = dataclasses.replace(settings, managers=_yaml_managers(source, managers))
    server = document.get("server") or {}
    if not isinstance(server, dict):
        raise ConfigError(
            f"{source}: server: expected a mapping of [server:main] keys", file=source, key="server"
        )
    server_values = {
        str(key): _yaml_scalar(source, "server.", str(key), value) for key, value in server.items()
    }
    return settings, load_server_settings(server_values, source, ini=False)


def _yaml_managers(source: str, managers: Any) -> tuple[ManagerSettings, ...]:
    if not isinstance(managers, dict) or not managers:
        raise ConfigError(
            f"{source}: managers: expected a mapping of manager names to their options",
            file=source,
            key="managers",
            expected="a mapping",
        )
    result = []
    for name, options in managers.items():
        where = f"managers.{name}"
        if options is None:
            options = {}
        if not isinstance(options, dict):
            raise ConfigError(f"{source}: {where}: expected a mapping of options", file=source, section=where)
        items: dict[str, str] = {"type": "queued_python"}
        for key, value in options.items():
            key = PULSAR_MANAGER_ALIASES.get(str(key), str(key))
            if key in items and key != "type":
                raise ConfigError(
                    f"{source}: {where}: {key} is given twice (num_concurrent_jobs is Pulsar's name "
                    "for max_concurrent_jobs)",
                    file=source,
                    section=where,
                    key=key,
                )
            items[key] = _yaml_scalar(source, f"{where}.", key, value)
        result.append(_manager_settings(source, where, str(name), items))
    return tuple(result)
