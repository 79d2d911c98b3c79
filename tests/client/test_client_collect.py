"""Which outputs come back, and where, from a final status reply (a fake client: no network)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lwr.client.action_config import parse_action_config
from lwr.client.collect import collect_outputs
from lwr.client.errors import UnsafeName
from lwr.client.staging import JobDescription


class FakeClient:
    """Records downloads and copies; writes the server name as the file's contents."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, str]] = []

    def download(self, job_id: str, name: str, file_type: str, destination: str, **_: Any) -> str:
        self.calls.append(("download", name, file_type, destination))
        Path(destination).parent.mkdir(parents=True, exist_ok=True)
        Path(destination).write_text(name)
        return "digest"

    def copy_out(self, job_id: str, name: str, file_type: str, destination: str) -> None:
        self.calls.append(("copy", name, file_type, destination))


def description(tmp_path: Path) -> JobDescription:
    return JobDescription(
        command_line="true",
        job_id="1",
        outputs=[str(tmp_path / "data" / "dataset_1.dat"), str(tmp_path / "data" / "dataset_2.dat")],
        working_directory=str(tmp_path / "working"),
        metadata_directory=str(tmp_path / "metadata"),
        working_directory_outputs=[("result.txt", str(tmp_path / "data" / "dataset_2.dat")),
                                   ("results_dir", str(tmp_path / "data" / "collection"))],
        version_file=str(tmp_path / "data" / "VERSION"),
    )  # fmt: skip


STATUS = {
    "status": "complete",
    "outputs_directory_contents": ["dataset_1.dat", "dataset_1_files/extra/a.txt", "COMMAND_VERSION", "other.dat"],
    "working_directory_contents": [
        "result.txt", "results_dir/x.txt", "results_dir/sub/y.txt", "galaxy.json", "named.txt", "scratch.tmp",
        "primary_7_out.txt",
    ],
    "metadata_directory_contents": ["metadata_results", "tool_stdout", "random.log"],
    "realized_dynamic_file_sources": [
        {"type": "galaxy", "path": "galaxy.json", "contents": json.dumps([{"filename": "named.txt"}])}
    ],
}  # fmt: skip


def test_collects_what_galaxy_would(tmp_path: Path) -> None:
    client = FakeClient()
    collected = collect_outputs(client, "1", description(tmp_path), parse_action_config({}), STATUS)  # type: ignore[arg-type]
    assert collected.ok, collected.failures
    got = {
        (name, file_type, str(Path(destination).relative_to(tmp_path)))
        for _, name, file_type, destination in client.calls
    }
    assert got == {
        ("result.txt", "output_workdir", "data/dataset_2.dat"),
        ("results_dir/x.txt", "output_workdir", "data/collection/x.txt"),
        ("results_dir/sub/y.txt", "output_workdir", "data/collection/sub/y.txt"),
        ("dataset_1.dat", "output", "data/dataset_1.dat"),
        ("dataset_1_files/extra/a.txt", "output", "data/dataset_1_files/extra/a.txt"),
        ("COMMAND_VERSION", "output", "data/VERSION"),
        ("galaxy.json", "output_workdir", "working/galaxy.json"),
        ("named.txt", "output_workdir", "working/named.txt"),  # named by galaxy.json
        ("primary_7_out.txt", "output_workdir", "working/primary_7_out.txt"),
        ("metadata_results", "output_metadata", "metadata/metadata_results"),
        ("tool_stdout", "output_metadata", "metadata/tool_stdout"),
    }  # fmt: skip


def test_actions_decide_how_outputs_come_back(tmp_path: Path) -> None:
    config = parse_action_config(
        {"paths": [{"path": str(tmp_path / "data"), "action": "copy", "path_types": "output,output_workdir"},
                   {"path": str(tmp_path / "metadata"), "action": "remote_transfer", "path_types": "output_metadata"}]}
    )  # fmt: skip
    client = FakeClient()
    collect_outputs(client, "1", description(tmp_path), config, STATUS)  # type: ignore[arg-type]
    kinds = {(kind, name) for kind, name, _, _ in client.calls}
    assert ("copy", "dataset_1.dat") in kinds and ("copy", "result.txt") in kinds
    assert ("download", "galaxy.json") in kinds  # working directory default: transfer
    assert not any(name == "metadata_results" for _, name in kinds)  # the server pushes it itself


def test_names_leading_out_of_their_directory_are_refused(tmp_path: Path) -> None:
    hostile = {
        "status": "complete",
        "outputs_directory_contents": ["dataset_1_files/../../../escaped_extra"],
        "working_directory_contents": [
            "dataset_9_files/../../../escaped_dynamic",
            "results_dir/../../escaped",
        ],
        "metadata_directory_contents": [],
    }
    client = FakeClient()
    collected = collect_outputs(client, "1", description(tmp_path), parse_action_config({}), hostile)  # type: ignore[arg-type]
    assert client.calls == []
    assert len(collected.failures) == 3
    assert all(isinstance(error, UnsafeName) for _, error in collected.failures)
