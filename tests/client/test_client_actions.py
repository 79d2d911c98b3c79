"""Staging actions as pure functions: table-driven, no network."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lwr.client import actions
from lwr.client.action_config import parse_action_config

CONFIG = parse_action_config(
    {
        "default_action": "transfer",
        "paths": [
            {"path": "/opt/galaxy", "action": "none"},
            {"path": "/galaxy/data", "action": "transfer"},
            {"glob": "/cool/bamfiles/**/*.bam", "action": "copy"},
            {"path": r".*/dataset_\d+\.dat", "match_type": "regex", "action": "remote_copy"},
            {"path": "/indices", "path_types": "unstructured", "depth": 2, "action": "transfer"},
            {"path": "/shared", "path_types": "unstructured,input", "action": "rewrite",
             "source_directory": "/shared", "destination_directory": "/mnt/shared"},
            {"path": "/anywhere", "path_types": "*any*", "action": "copy"},
            {"action": "remote_transfer", "path_types": "output_metadata"},
        ],
    }
)  # fmt: skip


@pytest.mark.parametrize(
    ("path", "path_type", "action", "rule_index"),
    [
        ("/opt/galaxy/tools/cat.py", "input", "none", 0),
        ("/opt/galaxy", "input", "none", 0),
        ("/opt/galaxyfoo/x", "input", "transfer", None),  # a prefix is a directory, not a string prefix
        ("/galaxy/data/files/000/dataset_1.dat", "input", "transfer", 1),  # first match wins
        ("/cool/bamfiles/projectA/s1/p3.bam", "input", "copy", 2),
        ("/cool/bamfiles/projectA/s1/p3.bam.bai", "input", "transfer", None),
        ("/old/galaxy/data/dataset_10245.dat", "input", "remote_copy", 3),
        ("/old/galaxy/data/dataset_10245.dat", "unstructured", "none", None),  # unstructured: default none
        ("/indices/bwa/hg19.fa", "unstructured", "transfer", 4),
        ("/indices/bwa/hg19.fa", "input", "transfer", None),  # entry limited to unstructured
        ("/shared/refs/a.txt", "input", "rewrite", 5),
        ("/shared/refs/a.txt", "output", "transfer", None),
        ("/anywhere/x", "unstructured", "copy", 6),
        ("/anywhere/x", "output", "copy", 6),
        ("/somewhere/metadata_out", "output_metadata", "remote_transfer", 7),  # path_type_only entry
        (
            "/opt/galaxy/job/working/x",
            "workdir",
            "copy",
            0,
        ),  # none becomes copy for the job's own directories
        ("/opt/galaxy/job/metadata/x", "output_metadata", "copy", 0),
        ("/galaxy/data/x", "output_workdir", "transfer", 1),
    ],
)
def test_resolve(path: str, path_type: str, action: str, rule_index: int | None) -> None:
    resolved = actions.resolve(CONFIG, path, path_type)
    assert resolved.action == action
    assert (resolved.rule.index if resolved.rule else None) == rule_index


@pytest.mark.parametrize(
    ("default", "path_type", "expected"),
    [
        ("transfer", "input", "transfer"),
        ("none", "input", "none"),
        ("none", "workdir", "copy"),
        ("copy", "unstructured", "none"),
        ("remote_copy", "output", "remote_copy"),
    ],
)
def test_default_action(default: str, path_type: str, expected: str) -> None:
    config = parse_action_config({}, default_action=default)
    assert actions.resolve(config, "/x/y", path_type).action == expected


@pytest.mark.parametrize(
    ("path", "source", "destination", "expected"),
    [
        ("/shared/refs/a.txt", "/shared", "/mnt/shared", "/mnt/shared/refs/a.txt"),
        ("/shared", "/shared", "/mnt/shared", "/mnt/shared"),
        ("/shared/", "/shared/", "/mnt", "/mnt/"),
        ("/sharedx/a", "/shared", "/mnt/shared", None),
        ("/other/a", "/shared", "/mnt", None),
    ],
)
def test_rewrite_path(path: str, source: str, destination: str, expected: str | None) -> None:
    assert actions.rewrite_path(path, source, destination) == expected


RENAMES = {
    "/data/in": "/srv/job/inputs/in",
    "/data/input": "/srv/job/inputs/input",
    "/w": "/srv/job/working",
    "/data/out.dat": "/tmp/data/out.dat/moved",  # the new path contains an old one: no second rewrite
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cat /data/in", "cat /srv/job/inputs/in"),
        ("cat /data/input", "cat /srv/job/inputs/input"),  # longest match, not /data/in + "put"
        ("cat '/data/in' \"/data/input\"", "cat '/srv/job/inputs/in' \"/srv/job/inputs/input\""),
        ("--in=/data/in,/data/input", "--in=/srv/job/inputs/in,/srv/job/inputs/input"),
        ("cd /w/sub && ls /w", "cd /srv/job/working/sub && ls /srv/job/working"),
        ("/x/data/in /data/in2 /data/in.bai", "/x/data/in /data/in2 /data/in.bai"),  # not inside other paths
        ("> /data/out.dat", "> /tmp/data/out.dat/moved"),
        ("no paths here", "no paths here"),
    ],
)
def test_rewrite_text(text: str, expected: str) -> None:
    assert actions.rewrite_text(text, RENAMES) == expected


@pytest.mark.parametrize(
    ("entry", "text", "found"),
    [
        ({"path": "/indices"}, "bwa /indices/bwa/hg19.fa --x='/indices/y' /indicesz/n", ["/indices/bwa/hg19.fa", "/indices/y"]),
        ({"glob": "/data/*.fa"}, "a /data/x.fa b /data/y.fq '/data/sub/z.fa'", ["/data/x.fa", "/data/sub/z.fa"]),
        ({"regex": r"/data/dataset_\d+\.dat"}, "x /data/dataset_1.dat /data/dataset_x.dat", ["/data/dataset_1.dat"]),
    ],
)  # fmt: skip
def test_reference_patterns(entry: dict[str, str], text: str, found: list[str]) -> None:
    rule = parse_action_config({"paths": [{**entry, "path_types": "unstructured"}]}).paths[0]
    pattern = rule.reference_pattern()
    assert pattern is not None
    assert actions.find_references([text], pattern) == found


def test_find_references_in_several_texts_keeps_first_appearance_order() -> None:
    pattern = re.compile(r"/d/\w+")
    assert actions.find_references(["/d/b /d/a", "/d/a /d/c"], pattern) == ["/d/b", "/d/a", "/d/c"]


def test_referenced_under() -> None:
    text = 'python /tools/cat/cat.py "/tools/cat/lib/x.R" /tools/other'
    assert actions.referenced_under([text], "/tools/cat") == ["/tools/cat/cat.py", "/tools/cat/lib/x.R"]


@pytest.mark.parametrize(
    ("path", "depth", "expected"),
    [("/a/b/c/d.fa", 0, "/a/b/c/d.fa"), ("/a/b/c/d.fa", 1, "/a/b/c"), ("/a/b/c/d.fa", 2, "/a/b")],
)
def test_enclosing_directory(path: str, depth: int, expected: str) -> None:
    assert actions.enclosing_directory(path, depth) == expected


def test_files_to_stage_with_depth(tmp_path: Path) -> None:
    (tmp_path / "idx" / "bwa").mkdir(parents=True)
    (tmp_path / "idx" / "seq").mkdir()
    for name in ("bwa/hg19.fa", "bwa/hg19.fa.fai", "seq/hg19.2bit"):
        (tmp_path / "idx" / name).write_text(name)
    reference = str(tmp_path / "idx" / "bwa" / "hg19.fa")
    prefix = actions.unique_prefix(reference)

    assert actions.files_to_stage(reference, 0) == {reference: f"{prefix}/hg19.fa"}
    assert actions.files_to_stage(reference, 1) == {
        str(tmp_path / "idx" / "bwa" / "hg19.fa"): f"{prefix}/hg19.fa",
        str(tmp_path / "idx" / "bwa" / "hg19.fa.fai"): f"{prefix}/hg19.fa.fai",
    }
    assert sorted(actions.files_to_stage(reference, 2).values()) == [
        f"{prefix}/bwa/hg19.fa",
        f"{prefix}/bwa/hg19.fa.fai",
        f"{prefix}/seq/hg19.2bit",
    ]
    directory = str(tmp_path / "idx" / "seq")
    assert actions.files_to_stage(directory, 0) == {
        str(tmp_path / "idx" / "seq" / "hg19.2bit"): f"{actions.unique_prefix(directory)}/seq/hg19.2bit"
    }


def test_unique_prefix_differs_by_path() -> None:
    assert actions.unique_prefix("/a/x.fa") != actions.unique_prefix("/b/x.fa")
    assert re.fullmatch(r"\w+", actions.unique_prefix("/a/x.fa"))
