"""The .sample files document every option, and every option they show is real."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

from lwr.config import APP_KEYS, load_app_settings

ROOT = Path(__file__).resolve().parents[2]
PASTE_KEYS = {"paste.app_factory", "use", "private_key"}  # private_key: the old alias, described in prose


def sample_app_keys() -> dict[str, str]:
    """Keys of [app:main] in server.ini.sample, set or commented out, with their sample values."""
    text = (ROOT / "server.ini.sample").read_text()
    section = text.split("\n[app:main]", 1)[1].split("\n[loggers]", 1)[0]
    found = {}
    for line in section.splitlines():
        match = re.match(r"^#?([a-z_.]+) = ?(.*)$", line)
        if match:
            found[match.group(1)] = match.group(2).replace("%%", "%")  # as PasteDeploy reads it
    return found


def test_every_app_key_is_documented_in_the_sample():
    documented = set(sample_app_keys())
    assert set(APP_KEYS) - PASTE_KEYS - {"use"} <= documented, set(APP_KEYS) - documented


def test_every_sample_value_is_valid(tmp_path):
    values = {
        key: value for key, value in sample_app_keys().items() if value and key != "job_managers_config"
    }
    for key in (
        "dependency_resolvers_config_file",
        "job_metrics_config_file",
        "tool_config_files",
    ):  # must exist
        (tmp_path / values[key]).touch()
    settings = load_app_settings(values, str(tmp_path / "server.ini"))
    assert settings.private_token == "change_me"


def test_sample_server_ini_loads_as_is(tmp_path):
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "server.ini.sample")
    settings = load_app_settings(dict(parser.items("app:main")), str(tmp_path / "server.ini"))
    assert settings.managers[0].name == "_default_"
    assert parser.get("server:main", "port") == "8913"


def test_job_managers_sample_default_section_loads():
    from lwr.config import load_manager_settings

    managers = load_manager_settings(ROOT / "job_managers.ini.sample")
    assert [(m.name, m.type, m.options["max_concurrent_jobs"]) for m in managers] == [
        ("_default_", "queued_python", 1)
    ]


def test_every_commented_manager_in_the_sample_is_valid(tmp_path):
    """Uncomment each example section of job_managers.ini.sample: every key must be accepted."""
    from lwr.config import load_manager_settings
    from lwr.managers import MANAGER_TYPES, manager_class

    lines = []
    for line in (ROOT / "job_managers.ini.sample").read_text().splitlines():
        if re.match(r"^#\[manager:", line) or re.match(r"^#[a-z_+]+ ?=", line):
            lines.append(line[1:])
        elif not line.startswith("#"):
            lines.append(line)
    path = tmp_path / "job_managers.ini"
    path.write_text("\n".join(lines) + "\n")
    managers = load_manager_settings(path)
    assert {m.type for m in managers} == set(MANAGER_TYPES)
    for manager in managers:
        documented = {line.split("=")[0].strip() for line in lines}
        missing = set(manager_class(manager.type).options) - documented
        assert not missing, (manager.type, missing)


def test_every_sample_line_uncommented_survives_pastedeploy_reading(tmp_path):
    """Uncommenting any [app:main] example must not break PasteDeploy's % interpolation."""
    from lwr.config import check_ini_syntax

    text = (ROOT / "server.ini.sample").read_text()
    head, app = text.split("\n[app:main]", 1)
    app, tail = app.split("\n[loggers]", 1)
    uncommented = re.sub(r"^#([a-z_.]+ =)", r"\1", app, flags=re.MULTILINE)
    path = tmp_path / "server.ini"
    path.write_text(f"{head}\n[app:main]{uncommented}\n[loggers]{tail}")
    check_ini_syntax(str(path))


def _ini_examples() -> list[tuple[str, str]]:
    """The ```ini blocks of README.md, SECURITY.md and docs/*.md, each with the file it is in."""
    documents = [ROOT / "README.md", ROOT / "SECURITY.md", *sorted((ROOT / "docs").glob("*.md"))]
    return [
        (document.name, block)
        for document in documents
        for block in re.findall(r"```ini\n(.*?)```", document.read_text(), re.S)
    ]


def test_every_ini_example_in_the_docs_loads_as_written(tmp_path):
    """An admin copies these: an inline '; comment' (ini files have none) stayed in the value,
    making helper_python, shell_known_hosts or a condor submit_* line silently wrong."""
    from lwr.config import SERVER_KEYS, load_manager_settings, parse_keys

    assert _ini_examples()
    for name, block in _ini_examples():
        parser = configparser.ConfigParser(interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read_string(block)
        managers = [section for section in parser.sections() if section.startswith("manager:")]
        if managers:
            path = tmp_path / "job_managers.ini"
            path.write_text(
                "".join(f"[{s}]\n" + "".join(f"{k} = {v}\n" for k, v in parser.items(s)) for s in managers)
            )
            load_manager_settings(path)
        for section, keys in (("app:main", APP_KEYS), ("server:main", SERVER_KEYS)):
            if parser.has_section(section):
                values = {k: v.replace("%%", "%") for k, v in parser.items(section)}
                parse_keys(values, keys, f"{name} [{section}]", name, section)
        for section in parser.sections():
            for key, value in parser.items(section):
                assert not re.search(r"\s[;#]", value), f"{name} [{section}] {key}: an inline comment"
