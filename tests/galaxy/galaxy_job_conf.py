"""The Galaxy job configuration the tests run: README's ``job_conf.yml``, instantiated per server.

README's "Pointing Galaxy at lwr" section is the source: its ``job_conf.yml`` is read from the
README itself (the fenced block after a marker comment), its placeholder addresses replaced by
the test servers', and each of its remote environments (``remote``, ``remote_mq``,
``remote_slurm``) instantiated once per server Galaxy talks to (lwr, and Pulsar for comparison).
The README's ``job_conf.xml`` is checked to say the same thing (``xml_as_yaml``).
"""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

README = Path(__file__).resolve().parents[2] / "README.md"
YAML_MARKER = "<!-- tests/galaxy/ runs Galaxy with this job_conf.yml"
XML_MARKER = "<!-- tests/galaxy/ checks this job_conf.xml"

#: README environment -> the transport it stands for in the tests' destination ids.
TRANSPORTS = {"remote": "http", "remote_mq": "amqp", "remote_slurm": "slurm"}
#: README runner names of the two Pulsar runners.
REST_RUNNER = "pulsar"
MQ_RUNNER = "pulsar_mq"


def readme_block(marker: str, language: str) -> str:
    """The fenced ``language`` block that follows ``marker`` in README.md."""
    text = README.read_text()
    start = text.index(marker)
    fence = f"```{language}\n"
    begin = text.index(fence, start) + len(fence)
    return text[begin : text.index("```", begin)]


def readme_job_conf() -> dict[str, Any]:
    conf: dict[str, Any] = yaml.safe_load(readme_block(YAML_MARKER, "yaml"))
    return conf


def readme_job_conf_xml() -> ET.Element:
    return ET.fromstring(readme_block(XML_MARKER, "xml"))


def _params(element: ET.Element) -> dict[str, Any]:
    return {param.attrib["id"]: yaml.safe_load(param.text or "") for param in element.findall("param")}


def xml_as_yaml(root: ET.Element) -> dict[str, Any]:
    """A job_conf.xml in job_conf.yml's shape (plugins -> runners, destinations -> environments)."""
    runners = {
        plugin.attrib["id"]: {"load": plugin.attrib["load"], **_params(plugin)}
        for plugin in root.find("plugins") or []
    }
    destinations = root.find("destinations")
    assert destinations is not None
    environments = {
        destination.attrib["id"]: {"runner": destination.attrib["runner"], **_params(destination)}
        for destination in destinations.findall("destination")
    }
    conf: dict[str, Any] = {
        "runners": runners,
        "execution": {"default": destinations.attrib["default"], "environments": environments},
    }
    tools = root.find("tools")
    if tools is not None:
        conf["tools"] = [
            {"id": tool.attrib["id"], "environment": tool.attrib["destination"]}
            for tool in tools.findall("tool")
        ]
    return conf


@dataclass(frozen=True)
class Backend:
    """A server Galaxy sends jobs to, and the addresses README's placeholders stand for."""

    name: str
    url: str
    private_token: str
    amqp_url: str
    #: Where the server keeps the job directories of its ``_default_`` manager.
    jobs_directory: str


def destination(backend: str, transport: str) -> str:
    return f"{backend}_{transport}"


def job_conf_for(backends: list[Backend], tools: dict[str, str]) -> dict[str, Any]:
    """README's job_conf.yml with each remote environment once per backend, and ``tools`` mapped.

    ``tools`` maps a tool id to a destination (``destination(backend, transport)``).
    """
    readme = readme_job_conf()
    conf = copy.deepcopy(readme)
    runners = conf["runners"]
    mq_runner = runners.pop(MQ_RUNNER)
    environments = conf["execution"]["environments"]
    remote = {name: environments.pop(name) for name in TRANSPORTS}
    for backend in backends:
        # One PulsarMQJobRunner per broker: a runner consumes the status updates of one vhost.
        runner_name = f"{MQ_RUNNER}_{backend.name}"
        runners[runner_name] = {**mq_runner, "amqp_url": backend.amqp_url}
        for readme_name, transport in TRANSPORTS.items():
            environment = dict(remote[readme_name])
            for key, value in (
                ("url", backend.url),
                ("private_token", backend.private_token),
                ("jobs_directory", backend.jobs_directory),
            ):
                if key in environment:
                    environment[key] = value
            if environment["runner"] == MQ_RUNNER:
                environment["runner"] = runner_name
            environments[destination(backend.name, transport)] = environment
    conf["tools"] = list(conf.get("tools", [])) + [
        {"id": tool, "environment": env} for tool, env in tools.items()
    ]
    return conf
