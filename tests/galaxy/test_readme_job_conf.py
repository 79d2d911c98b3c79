"""README's Galaxy examples are the configuration the Galaxy tests run (no Galaxy needed here)."""

from __future__ import annotations

from galaxy_cases import write_tool_copies
from galaxy_job_conf import (
    MQ_RUNNER,
    REST_RUNNER,
    TRANSPORTS,
    Backend,
    job_conf_for,
    readme_job_conf,
    readme_job_conf_xml,
    xml_as_yaml,
)


def test_readme_job_conf_xml_says_what_its_job_conf_yml_says() -> None:
    assert xml_as_yaml(readme_job_conf_xml()) == readme_job_conf()


def test_readme_job_conf_has_the_destinations_the_tests_instantiate() -> None:
    conf = readme_job_conf()
    assert conf["runners"][REST_RUNNER]["load"] == "galaxy.jobs.runners.pulsar:PulsarRESTJobRunner"
    assert conf["runners"][MQ_RUNNER]["load"] == "galaxy.jobs.runners.pulsar:PulsarMQJobRunner"
    environments = conf["execution"]["environments"]
    assert set(TRANSPORTS) <= set(environments)
    assert environments["remote_slurm"]["submit_native_specification"] == "--cpus-per-task=2"


def test_the_tests_job_conf_is_readmes_with_only_the_addresses_replaced(tmp_path) -> None:
    readme = readme_job_conf()
    backend = Backend(
        "lwr", "http://127.0.0.1:1/", "t0ken", "amqp://guest:guest@127.0.0.1:5672/v", "/jobs/_default_"
    )
    _, mapping = write_tool_copies(tmp_path)
    conf = job_conf_for([backend], mapping)
    environments = conf["execution"]["environments"]
    for name, transport in TRANSPORTS.items():
        expected = dict(readme["execution"]["environments"][name])
        for key, value in (
            ("url", backend.url),
            ("private_token", backend.private_token),
            ("jobs_directory", backend.jobs_directory),
        ):
            if key in expected:
                expected[key] = value
        if expected["runner"] == MQ_RUNNER:
            expected["runner"] = f"{MQ_RUNNER}_lwr"
        assert environments[f"lwr_{transport}"] == expected
    assert conf["runners"][f"{MQ_RUNNER}_lwr"] == {
        **readme["runners"][MQ_RUNNER],
        "amqp_url": backend.amqp_url,
    }
    assert {tool["id"]: tool["environment"] for tool in conf["tools"]} == {
        **{tool["id"]: tool["environment"] for tool in readme["tools"]},
        **mapping,
    }
