"""Each manager option's default is written once, in its Option table."""

from __future__ import annotations

import ast
import inspect
import warnings
from pathlib import Path

import pytest

import lwr.config
from lwr.managers import MANAGER_TYPES, manager_class
from lwr.managers.condor import CondorManager

ROOT = Path(__file__).resolve().parents[2]


def _classes():
    return [pytest.param(manager_class(name), id=name) for name in sorted(MANAGER_TYPES)]


@pytest.mark.parametrize("cls", _classes())
def test_empty_settings_give_the_table_defaults(cls):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # unqueued
        manager = cls("m", {}, None)
    try:
        for key, option in cls.options.items():
            assert manager.settings[key] == option.default, key
        assert cls.settings_with_defaults({}) == {key: option.default for key, option in cls.options.items()}
    finally:
        manager.shutdown()


@pytest.mark.parametrize("cls", _classes())
def test_given_settings_win_over_defaults(cls):
    option_key = next(iter(cls.options))
    filled = cls.settings_with_defaults({option_key: "given", "submit_extra": "kept"})
    assert filled[option_key] == "given" and filled["submit_extra"] == "kept"


def _option_lookups_with_default(path: Path, option_names: set[str]) -> list[str]:
    """``x.get("<option>", default)`` calls: a default repeated outside the Option table."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("get", "setdefault")
            and len(node.args) == 2
            and isinstance(node.args[0], ast.Constant)
            and node.args[0].value in option_names
        ):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} {ast.unparse(node)}")
    return found


def test_no_option_default_is_repeated_in_manager_modules_or_config():
    names = {key for type_name in MANAGER_TYPES for key in manager_class(type_name).options}
    paths = {Path(inspect.getfile(manager_class(type_name))) for type_name in MANAGER_TYPES}
    paths |= set((ROOT / "lwr" / "managers").rglob("*.py")) | {Path(lwr.config.__file__)}
    repeated = [hit for path in sorted(paths) for hit in _option_lookups_with_default(path, names)]
    assert repeated == []


def test_the_default_manager_runs_at_the_table_defaults():
    (default,) = lwr.config.load_manager_settings(None)
    assert default.options == manager_class("queued_python").settings_with_defaults({})
    assert default.options["max_concurrent_jobs"] == 1


def test_condor_manager_options_are_not_submit_commands():
    """``submit_threads`` is the polling pool's size, not a submit-description ``threads`` command."""
    manager = CondorManager("c", {"submit_threads": 2, "submit_request_memory": "4G"}, None)  # type: ignore[arg-type]
    try:
        assert manager.settings["submit_threads"] == 2
        assert manager.submit_settings == {"submit_request_memory": "4G"}
    finally:
        manager.shutdown()


def test_unqueued_keeps_its_galaxy_slots():
    """unqueued used to drop its settings (only its own limit reached the base class), so a
    configured ``galaxy_slots`` was accepted and never used."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        manager = manager_class("unqueued")("m", {"galaxy_slots": 3}, None)
    try:
        assert manager.settings["galaxy_slots"] == 3
        assert manager.limit > 1_000_000
    finally:
        manager.shutdown()
