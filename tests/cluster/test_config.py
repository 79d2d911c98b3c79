"""job_managers.ini sections for the cluster managers, read by lwr.config into typed settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from lwr.config import load_manager_settings
from lwr.errors import ConfigError

SAMPLE = """
[manager:slurm]
type = queued_cli
job_plugin = Slurm
shell_plugin = SecureShell
shell_hostname = login.example.org
shell_username = galaxy
shell_private_key = /etc/lwr/id_ed25519
shell_port = 2222
native_specification = -p short --mem=4G
min_polling_interval = 2.5

[manager:torque]
type = queued_cli
job_plugin = Torque

[manager:sge]
type = queued_drmaa
native_specification = -q all.q
export_environment = false

[manager:as_user]
type = queued_external_drmaa
production = false

[manager:condor]
type = queued_condor
submit_universe = vanilla
submit_request_memory = 4096
submit_requirements = OpSys == "LINUX"
submit_rank = Memory
submit_+ProjectName = "galaxy"
"""


def settings_of(tmp_path: Path, text: str) -> dict[str, dict]:
    path = tmp_path / "job_managers.ini"
    path.write_text(text)
    return {manager.name: dict(manager.options) for manager in load_manager_settings(path)}


def test_every_cluster_option_is_typed(tmp_path: Path) -> None:
    found = settings_of(tmp_path, SAMPLE)
    assert found["slurm"]["shell_port"] == 2222
    assert found["slurm"]["min_polling_interval"] == 2.5
    assert found["slurm"]["native_specification"] == "-p short --mem=4G"
    assert found["torque"]["job_plugin"] == "Torque"
    assert found["torque"]["min_polling_interval"] == 1.0
    assert found["sge"]["export_environment"] is False
    assert found["as_user"]["production"] is False
    assert (
        found["condor"]["submit_+projectname"] == '"galaxy"'
    )  # ini keys are case-insensitive, as ClassAd names are
    assert found["condor"]["submit_requirements"] == 'OpSys == "LINUX"'


@pytest.mark.parametrize(
    "section",
    [
        "[manager:x]\ntype = queued_cli\njob_plugin = PBSPro\n",
        "[manager:x]\ntype = queued_cli\nshell_plugin = Telnet\n",
        "[manager:x]\ntype = queued_cli\nshell_port = 70000\n",
        "[manager:x]\ntype = queued_cli\nshell_hostname = -oProxyCommand=sh\n",
        "[manager:x]\ntype = queued_cli\nshell_username = a b\n",
        "[manager:x]\ntype = queued_cli\nmin_polling_interval = 0\n",
        "[manager:x]\ntype = queued_drmaa\nsubmit_universe = vanilla\n",
        "[manager:x]\ntype = queued_external_drmaa\nproduction = maybe\n",
    ],
)
def test_bad_values_are_refused_with_the_key(tmp_path: Path, section: str) -> None:
    with pytest.raises(ConfigError):
        settings_of(tmp_path, section)
