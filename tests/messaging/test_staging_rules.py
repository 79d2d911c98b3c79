"""Server-side staging rules: the URL allow-list and the output actions (no network)."""

from __future__ import annotations

import pytest

from lwr.errors import StagingError
from lwr.staging.actions import ActionMapper, input_actions, output_actions
from lwr.staging.allow_list import UrlPolicy, UrlRefused

PUBLIC = {
    "galaxy.example.org": ["93.184.216.34"],
    "internal.example.org": ["10.1.2.3"],
    "rebound.example.org": ["93.184.216.34", "127.0.0.1"],
    "localhost": ["127.0.0.1", "::1"],
}


def resolver(host: str, port: int) -> list[str]:
    return PUBLIC[host]


POLICY = UrlPolicy(
    [
        "https://galaxy.example.org/api/jobs/",
        "http://127.0.0.1:8080/files",
        "https://internal.example.org/",
        "https://rebound.example.org/",
        "http://localhost:9000/",
        "file:///data/galaxy/",
    ],
    resolver=resolver,
)


@pytest.mark.parametrize(
    "url",
    [
        "https://galaxy.example.org/api/jobs/12/files?job_key=k&path=/x",
        "https://GALAXY.example.org:443/api/jobs/",
        "http://127.0.0.1:8080/files?path=/tmp/x",
        "http://127.0.0.1:8080/files/sub",
        "http://localhost:9000/anything",
    ],
)
def test_allowed_urls(url):
    POLICY.check_url(url)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://galaxy.example.org/api/jobs/1", "not allowed"),  # scheme differs
        ("https://galaxy.example.org:8443/api/jobs/1", "not allowed"),  # port differs
        ("https://galaxy.example.org/api/users", "not allowed"),  # path outside the prefix
        ("https://galaxy.example.org/api/jobsX", "not allowed"),  # no '/' boundary
        ("https://galaxy.example.org.evil.com/api/jobs/", "not allowed"),  # host is not a string prefix
        ("https://evil.com/?https://galaxy.example.org/api/jobs/", "not allowed"),
        ("http://127.0.0.1:8081/files", "not allowed"),
        ("http://169.254.169.254/latest/meta-data", "not allowed"),
        ("ftp://galaxy.example.org/api/jobs/1", "not an http"),
        ("file:///etc/passwd", "not an http"),
        ("https://internal.example.org/x", "non-public address 10.1.2.3"),
        ("https://rebound.example.org/x", "non-public address 127.0.0.1"),
    ],
)
def test_refused_urls(url, why):
    with pytest.raises(UrlRefused, match=why):
        POLICY.check_url(url)


def test_remote_copy_paths(tmp_path):
    policy = UrlPolicy([f"file://{tmp_path}/allowed"])
    (tmp_path / "allowed").mkdir()
    (tmp_path / "allowed" / "x").write_text("x")
    assert policy.check_path(str(tmp_path / "allowed" / "x")) == str((tmp_path / "allowed" / "x").resolve())
    (tmp_path / "allowed" / "escape").symlink_to("/etc")
    for path in (
        "/etc/passwd",
        str(tmp_path / "allowed" / ".." / "other"),
        str(tmp_path / "allowed" / "escape"),
        "relative/path",
    ):
        with pytest.raises(UrlRefused):
            policy.check_path(path)


def test_bad_allow_list_entry():
    with pytest.raises(ValueError):
        UrlPolicy(["galaxy.example.org"])


def test_input_actions():
    actions = input_actions(
        {
            "setup": [
                {
                    "name": "d.dat",
                    "type": "input",
                    "action": {"action_type": "remote_transfer", "url": "https://g/x"},
                },
                {
                    "name": "c.txt",
                    "type": "config",
                    "action": {"action_type": "message", "contents": "hello"},
                },
                {
                    "name": "i.fa",
                    "type": "input",
                    "action": {
                        "action_type": "remote_copy",
                        "source": {"path": "/d/i.fa"},
                        "path": "/d/i.fa",
                    },
                },
            ]
        }
    )
    assert [(a.kind, a.name, a.url, a.path, a.contents) for a in actions] == [
        ("remote_transfer", "d.dat", "https://g/x", None, None),
        ("message", "c.txt", None, None, "hello"),
        ("remote_copy", "i.fa", None, "/d/i.fa", None),
    ]
    for bad in (
        {"name": "x", "type": "input", "action": {"action_type": "remote_rsync_transfer"}},
        {"name": None, "type": "input", "action": {"action_type": "remote_transfer", "url": "u"}},
        {"name": "x", "type": "input", "action": {"action_type": "remote_transfer"}},
    ):
        with pytest.raises(StagingError):
            input_actions({"setup": [bad]})


def test_action_mapper_rules():
    mapper = ActionMapper(
        {
            "default_action": "transfer",
            "files_endpoint": "https://g/api/jobs/1/files?job_key=k",
            "paths": [
                {"path": "/shared/", "action": "remote_copy", "path_types": "output"},
                {
                    "path": r".*\.bam$",
                    "match_type": "regex",
                    "action": "remote_transfer",
                    "path_types": "*defaults*",
                },
            ],
        }
    )
    assert mapper.action_type("/shared/out.dat", "output") == "remote_copy"
    assert mapper.action_type("/x/y.bam", "output") == "remote_transfer"
    assert mapper.action_type("/x/y.dat", "output") == "transfer"
    assert mapper.action_type("/x/y", "unstructured") == "none"
    assert mapper.may_need_server()
    assert not ActionMapper({"default_action": "transfer"}).may_need_server()
    assert (
        mapper.url_for("/x/y.bam", "output")
        == "https://g/api/jobs/1/files?job_key=k&path=%2Fx%2Fy.bam&file_type=output"
    )


def test_output_actions_follow_what_the_client_expects():
    staging = {
        "action_mapper": {"default_action": "remote_transfer", "files_endpoint": "https://g/f"},
        "client_outputs": {
            "working_directory": "/c/w",
            "metadata_directory": "/c/m",
            "output_files": ["/c/dataset_1.dat", "/c/dataset_2.dat", "/c/dataset_9.dat"],
            "work_dir_outputs": [["/c/w/out.txt", "/c/dataset_2.dat"], ["/c/w/outdir", "/c/dataset_3.dat"]],
            "version_file": "/c/VERSION",
        },
    }
    contents = {
        "working": ["out.txt", "outdir/a", "outdir/b", "galaxy.json", "ref", "scratch"],
        "outputs": ["dataset_1.dat", "dataset_1_files/extra", "COMMAND_VERSION"],
        "metadata": ["metadata_x"],
        "": [],
    }
    sources = [{"type": "galaxy", "path": "galaxy.json", "contents": '[{"filename": "ref"}]'}]
    actions = output_actions(staging, contents, sources)
    pairs = {(a.type, a.name, a.client_path) for a in actions}
    assert pairs == {
        ("output_workdir", "out.txt", "/c/dataset_2.dat"),
        ("output_workdir", "outdir/a", "/c/dataset_3.dat/a"),
        ("output_workdir", "outdir/b", "/c/dataset_3.dat/b"),
        ("output", "dataset_1.dat", "/c/dataset_1.dat"),
        ("output", "dataset_1_files/extra", "/c/dataset_1_files/extra"),
        ("output", "COMMAND_VERSION", "/c/VERSION"),
        ("output_workdir", "galaxy.json", "/c/w/galaxy.json"),
        ("output_workdir", "ref", "/c/w/ref"),
        ("output_metadata", "metadata_x", "/c/m/metadata_x"),
    }
    assert all(
        a.kind == "remote_transfer" and a.url and a.url.startswith("https://g/f?path=") for a in actions
    )
    local = output_actions({**staging, "action_mapper": {"default_action": "transfer"}}, contents, sources)
    assert local == []


def test_dataset_collector_descriptions_select_discovered_outputs():
    """Galaxy >= 23 sends a tool's discover_datasets as dataset_collector_descriptions, not as
    dynamic_outputs patterns, to a 0.16.0 server: lwr must deliver what they match (regression:
    a Galaxy list collection discovered over AMQP came back empty)."""
    staging = {
        "action_mapper": {"default_action": "remote_transfer", "files_endpoint": "https://g/f"},
        "client_outputs": {
            "working_directory": "/c/w",
            "metadata_directory": "/c/m",
            "output_files": [],
            "dynamic_outputs": [r"(galaxy.json|__instrument_.*|.*\.ec)"],
            "dataset_collector_descriptions": [
                {
                    "discover_via": "pattern",
                    "pattern": r"(?P<name>.*)\.(?P<ext>[^\.]+)?",
                    "directory": "./parts",
                    "recurse": False,
                    "match_relative_path": False,
                },
                {"discover_via": "pattern", "pattern": r"report_(?P<designation>.+)\.txt", "directory": None},
            ],
        },
    }
    contents = {
        "working": [
            "parts/line_a.txt",
            "parts/line_b.txt",
            "partsx/other.txt",
            "scratch",
            "report_1.txt",
            "galaxy.json",
        ],
        "outputs": [],
        "metadata": [],
        "": [],
    }
    names = {a.name for a in output_actions(staging, contents, [])}
    assert names == {"parts/line_a.txt", "parts/line_b.txt", "report_1.txt", "galaxy.json"}


def test_bad_allow_list_is_a_config_error(tmp_path):
    from lwr.config import AppSettings, ManagerSettings
    from lwr.errors import ConfigError
    from lwr.staging.hooks import ServerStaging

    settings = AppSettings(
        staging_directory=tmp_path,
        persistence_directory=tmp_path,
        managers=(ManagerSettings("_default_", "queued_python"),),
        remote_staging_allowed_urls=("galaxy.example.org/api",),
        source="server.ini",
    )
    with pytest.raises(ConfigError, match="remote_staging_allowed_urls"):
        ServerStaging(settings)
