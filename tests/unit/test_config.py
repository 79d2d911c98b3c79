from __future__ import annotations

import os

import pytest

from lwr.config import DEFAULT_MANAGER_NAME, load_app_settings, load_manager_settings, parse_size
from lwr.errors import ConfigError


def test_defaults(tmp_path):
    settings = load_app_settings({}, str(tmp_path / "server.ini"))
    assert settings.staging_directory == tmp_path / "files" / "staging"
    assert settings.persistence_directory == tmp_path / "files" / "persisted_data"
    assert settings.private_token is None and settings.assign_ids == "galaxy"
    assert [(m.name, m.type, m.options) for m in settings.managers] == [
        (DEFAULT_MANAGER_NAME, "queued_python", {"max_concurrent_jobs": 1, "galaxy_slots": None})
    ]


def test_private_key_is_the_old_name_of_private_token(tmp_path):
    assert load_app_settings({"private_key": "k"}, str(tmp_path / "s.ini")).private_token == "k"
    assert (
        load_app_settings({"private_token": "t", "private_key": "k"}, str(tmp_path / "s.ini")).private_token
        == "t"
    )


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"stagingdirectory": "x"}, "unknown key 'stagingdirectory'"),
        ({"assign_ids": "seq"}, "expected galaxy or uuid"),
        ({"max_upload_size": "lots"}, "max_upload_size"),
        ({"enable_http": "maybe"}, "true or false"),
        ({"retain_job_records": "soon"}, "retain_job_records = 'soon'"),
        ({"retain_job_records": "30d"}, "retain_job_records forgets the records of jobs whose directories"),
        # Pulsar's settings: refused with what to do instead, not a "did you mean" that misleads
        ({"amqp_publish_retry_max_retries": "5"}, "never drops one after N tries"),
        ({"amqp_publish_retry": "true"}, "always retries publishing"),
        ({"message_queue_username": "galaxy"}, "amqp://USER:PASSWORD@"),
        ({"persistence_directory": "__none__"}, "recovers jobs after a restart"),
    ],
)
def test_app_errors(tmp_path, options, fragment):
    with pytest.raises(ConfigError, match=fragment) as caught:
        load_app_settings(options, str(tmp_path / "server.ini"))
    assert "server.ini" in caught.value.message and "[app:main]" in caught.value.message


@pytest.mark.parametrize(
    "text, size", [("100", 100), ("1K", 1024), ("4G", 4 << 30), ("2MiB", 2 << 20), ("1t", 1 << 40)]
)
def test_parse_size(text, size):
    assert parse_size(text) == size


def test_managers_file(tmp_path):
    path = tmp_path / "job_managers.ini"
    path.write_text(
        "[manager:a]\ntype = queued_python\nmax_concurrent_jobs = *\n\n[manager:b]\ntype = unqueued\n"
    )
    managers = load_manager_settings(path)
    assert [(m.name, m.type) for m in managers] == [("a", "queued_python"), ("b", "unqueued")]
    assert managers[0].options["max_concurrent_jobs"] == os.cpu_count()


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("[manager:a]\ntype = nope\n", "unknown manager type"),
        ("[manager:a]\ntype = queued_python\nfoo = 1\n", "unknown key 'foo'"),
        ("[manager:a]\ntype = queued_python\nmax_concurrent_jobs = 0\n", "positive integer"),
        ("[other]\ntype = queued_python\n", "[manager:NAME]"),
        ("", "no [manager:NAME]"),
        ("not an ini", "cannot parse"),
    ],
)
def test_manager_errors(tmp_path, text, fragment):
    path = tmp_path / "job_managers.ini"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_manager_settings(path)
    assert fragment in caught.value.message and str(path) in caught.value.message


def test_galaxy_environment_keys(tmp_path):
    (tmp_path / "resolvers.xml").write_text("<dependency_resolvers/>")
    settings = load_app_settings(
        {
            "dependency_resolvers_config_file": "resolvers.xml",
            "galaxy_home": "gx",
            "job_metrics_config_file": "none",
            "tmp_dir": "$SLURM_TMPDIR",
        },
        str(tmp_path / "server.ini"),
    )
    assert settings.dependency_resolvers_config_file == tmp_path / "resolvers.xml"
    assert (
        settings.tool_dependency_dir == tmp_path / "dependencies"
    )  # Pulsar's default beside a resolvers file
    assert settings.galaxy == {"galaxy_home": str(tmp_path / "gx")}
    assert not settings.job_metrics_enabled and settings.tmp_dir == "$SLURM_TMPDIR"
    assert load_app_settings({}, str(tmp_path / "server.ini")).tool_dependency_dir is None


@pytest.mark.parametrize("key", ["dependency_resolvers_config_file", "job_metrics_config_file"])
def test_missing_galaxy_config_file_names_the_key(tmp_path, key):
    with pytest.raises(ConfigError, match=f"server.ini: \\[app:main\\] {key} = 'nope.xml': no such file"):
        load_app_settings({key: "nope.xml"}, str(tmp_path / "server.ini"))


def test_galaxy_slots_option(tmp_path):
    path = tmp_path / "job_managers.ini"
    path.write_text("[manager:a]\ntype = queued_python\ngalaxy_slots = 4\n[manager:b]\ntype = unqueued\n")
    assert [m.options["galaxy_slots"] for m in load_manager_settings(path)] == [4, None]
    path.write_text("[manager:a]\ntype = queued_python\ngalaxy_slots = 0\n")
    with pytest.raises(ConfigError, match="galaxy_slots = '0': expected a positive integer"):
        load_manager_settings(path)


def test_an_empty_value_is_unset_as_the_sample_shows_it(tmp_path):
    """server.ini.sample shows ``#tenants_file =``: uncommented as is, it is not the directory."""
    settings = load_app_settings(
        {"tenants_file": "", "job_managers_config": ""}, str(tmp_path / "server.ini")
    )
    assert settings.tenants_file is None and settings.managers[0].name == "_default_"


@pytest.mark.parametrize("name", ["../elsewhere", "slurm/gpu", "a b", ".hidden"])
def test_a_manager_name_that_is_no_plain_word_is_refused(tmp_path, name):
    """The name is a directory under staging_directory: [manager:../elsewhere] put job
    directories beside it, and slurm/gpu one no /managers/NAME URL could reach."""
    path = tmp_path / "job_managers.ini"
    path.write_text(f"[manager:{name}]\ntype = queued_python\n")
    with pytest.raises(ConfigError, match="cannot name a manager") as caught:
        load_manager_settings(path)
    assert caught.value.details["section"] == f"manager:{name}"


@pytest.mark.parametrize(
    "text, key",
    [
        ("[manager:u]\ntype = queued_python\ngalaxy_slots = 4   ; threads per job\n", "galaxy_slots"),
        (
            '[manager:c]\ntype = queued_condor\nsubmit_+Project = "galaxy"  ; accounting\n',
            "submit_+project",
        ),  # configparser lowercases keys
        (
            "[manager:s]\ntype = queued_cli\nshell_known_hosts = /etc/lwr/known_hosts # the key\n",
            "shell_known_hosts",
        ),
    ],
)
def test_an_inline_comment_in_job_managers_ini_is_refused_not_kept_in_the_value(tmp_path, text, key):
    path = tmp_path / "job_managers.ini"
    path.write_text(text)
    with pytest.raises(ConfigError, match="no inline comments") as caught:
        load_manager_settings(path)
    assert caught.value.details["key"] == key


def test_an_inline_comment_in_app_main_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="no inline comments") as caught:
        load_app_settings({"tmp_dir": "/scratch   ; node-local"}, str(tmp_path / "server.ini"))
    assert caught.value.details["key"] == "tmp_dir" and "[app:main]" in caught.value.message


def test_a_hash_inside_an_app_yml_value_is_the_value(tmp_path):
    """YAML strips its own comments; what is left is meant."""
    from lwr.config import load_app_yaml

    path = tmp_path / "app.yml"
    path.write_text('tmp_dir: "/scratch #1"\n')
    settings, _ = load_app_yaml(path)
    assert settings.tmp_dir == "/scratch #1"


def test_a_pulsar_job_managers_ini_keeps_its_concurrency(tmp_path):
    """Pulsar reads num_concurrent_jobs (lwr's app.yml accepted it, its job_managers.ini did not)."""
    path = tmp_path / "job_managers.ini"
    path.write_text("[manager:_default_]\ntype = queued_python\nnum_concurrent_jobs = 4\n")
    assert load_manager_settings(path)[0].options["max_concurrent_jobs"] == 4
    path.write_text("[manager:a]\ntype = queued_python\nnum_concurrent_jobs = 4\nmax_concurrent_jobs = 2\n")
    with pytest.raises(ConfigError, match="given twice"):
        load_manager_settings(path)


def test_a_bad_value_says_what_was_expected_once(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_app_settings({"retain_failed_jobs": "two weeks"}, str(tmp_path / "server.ini"))
    assert caught.value.message.count("expected") == 1, caught.value.message
    assert "a duration such as 2h or 7d, 0 for never" in caught.value.message


def test_job_managers_ini_and_app_yml_saved_in_latin1_are_named(tmp_path):
    from lwr.config import load_app_yaml

    path = tmp_path / "job_managers.ini"
    path.write_bytes(b"# \xe9quipe\n[manager:a]\ntype = queued_python\n")
    with pytest.raises(ConfigError, match="job_managers.ini: cannot read"):
        load_manager_settings(path)
    yml = tmp_path / "app.yml"
    yml.write_bytes(b"# \xe9quipe\nstaging_directory: s\n")
    with pytest.raises(ConfigError, match="app.yml: cannot read"):
        load_app_yaml(yml)
