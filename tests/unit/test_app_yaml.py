"""Pulsar's app.yml read by lwr.config: the keys lwr implements, managers inline, the rest refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from lwr.config import load_app_yaml
from lwr.config_amqp import AmqpSettings
from lwr.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "app.yml"
    path.write_text(text)
    return path


def test_pulsar_app_yml_with_managers_inline(tmp_path):
    settings, server = load_app_yaml(
        write(
            tmp_path,
            """
staging_directory: staging
private_token: s3cret
assign_ids: uuid
remote_staging_allowed_urls: [https://a.example/, https://b.example/]
amqp_acknowledge: true
managers:
  _default_:
    num_concurrent_jobs: 2
  slurm:
    type: queued_cli
    job_plugin: Slurm
    min_polling_interval: 0.5
server:
  port: 9001
""",
        )
    )
    assert settings.staging_directory == tmp_path / "staging" and settings.private_token == "s3cret"
    assert settings.assign_ids == "uuid" and settings.amqp == AmqpSettings(acknowledge=True)
    assert settings.remote_staging_allowed_urls == ("https://a.example/", "https://b.example/")
    default, slurm = settings.managers
    assert (default.name, default.type, default.options["max_concurrent_jobs"]) == (
        "_default_",
        "queued_python",
        2,
    )
    assert (slurm.type, slurm.options["job_plugin"], slurm.options["min_polling_interval"]) == (
        "queued_cli",
        "Slurm",
        0.5,
    )
    assert (server.host, server.port) == ("127.0.0.1", 9001)


def test_empty_app_yml_is_lwr_defaults(tmp_path):
    settings, server = load_app_yaml(write(tmp_path, ""))
    assert [(m.name, m.type) for m in settings.managers] == [("_default_", "queued_python")]
    assert server.port == 8913


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("object_store_config_file: os.xml\n", "'object_store_config_file' is not a setting lwr implements"),
        ("conda_auto_init: true\n", "'conda_auto_init' is not a setting lwr implements"),
        ("staging_dir: x\n", "did you mean 'staging_directory'"),
        ("managers:\n  m:\n    type: queued_python\n    tmp_dir: /x\n", "[managers.m] unknown key 'tmp_dir'"),
        ("managers:\n  m:\n    num_concurrent_jobs: 1\n    max_concurrent_jobs: 2\n", "given twice"),
        ("managers:\n  m:\n    type: kubernetes\n", "unknown manager type"),
        ("managers: {}\njob_managers_config: j.ini\n", "keep one"),
        ("assign_ids: sequential\n", "app.yml: assign_ids = 'sequential'"),
        ("dependency_resolution:\n  resolvers: []\n", "'dependency_resolution' is not a setting"),
        ("- a list\n", "mapping of settings at the top level"),
        # Pulsar's own app.yml.sample settings: each refused with what lwr does instead
        ("amqp_publish_retry_max_retries: 5\n", "a Pulsar setting lwr does not take"),
        ("amqp_republish_time: 30\n", "republishes an unacknowledged update every 30 seconds"),
        ("job_directory_mode: 0777\n", "a Pulsar setting lwr does not take"),
        ("persistence_directory: __none__\n", "recovers jobs after a restart"),
        ("server:\n  prot: 1\n", "unknown key 'prot'"),
    ],
)
def test_what_lwr_does_not_implement_is_refused_by_name(tmp_path, text, fragment):
    with pytest.raises(ConfigError) as error:
        load_app_yaml(write(tmp_path, text))
    assert fragment in error.value.message and "app.yml" in error.value.message


def test_the_sample_loads(tmp_path):
    path = tmp_path / "app.yml"
    path.write_text((ROOT / "app.yml.sample").read_text())
    settings, _ = load_app_yaml(path)
    assert settings.managers[0].options["max_concurrent_jobs"] == 1
