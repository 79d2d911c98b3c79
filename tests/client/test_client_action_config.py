"""Loading and validating the file action config: every error names index, key and expectation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lwr.client.action_config import load_action_config, parse_action_config
from lwr.errors import ConfigError

SAMPLE_YAML = r"""
default_file_action: copy
paths:
  - path: /galaxy/tools
    action: none
  - glob: /data/**/*.bam
    action: copy
  - path: .*/dataset_\d+\.dat
    match_type: regex
    action: remote_copy
    path_types: input, output
  - path: /galaxy/indices
    path_types: unstructured
    depth: "2"
  - path: /shared/refs
    path_types: [unstructured]
    action: rewrite
    source_directory: /shared/refs
    destination_directory: /mnt/refs
  - action: transfer
    path_types: "*any*"
"""


def test_loads_the_lwr_actions_yaml_format(tmp_path: Path) -> None:
    path = tmp_path / "lwr_actions.yaml"
    path.write_text(SAMPLE_YAML)
    config = load_action_config(path)
    assert config.default_action == "copy"
    kinds = [(rule.match_type, rule.action, rule.depth) for rule in config.paths]
    assert kinds == [
        ("prefix", "none", 0),
        ("glob", "copy", 0),
        ("regex", "remote_copy", 0),
        ("prefix", "transfer", 2),
        ("prefix", "rewrite", 0),
        ("path_type_only", "transfer", 0),
    ]
    assert config.paths[2].path_types == {"input", "output"}
    assert "unstructured" in config.paths[5].path_types
    assert "unstructured" not in config.paths[0].path_types
    assert [rule.index for rule in config.unstructured_rules()] == [3, 4]


def test_json_and_override_of_default(tmp_path: Path) -> None:
    path = tmp_path / "actions.json"
    path.write_text(json.dumps({"default_action": "none", "paths": [{"path": "/x", "action": "copy"}]}))
    assert load_action_config(path).default_action == "none"
    assert load_action_config(path, default_action="transfer").default_action == "transfer"
    assert load_action_config(None).default_action == "transfer"


def test_to_dict_is_what_pulsar_reads() -> None:
    config = parse_action_config(
        {"paths": [{"path": "/shared", "action": "rewrite", "source_directory": "/shared",
                    "destination_directory": "/mnt"}]}
    )  # fmt: skip
    as_dict = config.to_dict()
    assert as_dict["default_action"] == "transfer"
    entry = as_dict["paths"][0]
    assert entry["path"] == "/shared"
    assert entry["match_type"] == "prefix"
    assert entry["source_directory"] == "/shared"
    assert set(entry["path_types"].split(",")) >= {"input", "output"}


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"paths": [{"path": "/a"}, {"path": "/b", "match_type": "globb"}]},
         "paths[1].match_type: expected one of prefix, glob, regex, path_type_only; got 'globb'"),
        ({"paths": [{"path": "/a", "action": "teleport"}]},
         "paths[0].action: expected one of none, transfer, copy, remote_transfer, remote_copy, rewrite, message; "
         "got 'teleport'"),
        ({"paths": [{"path": "/a", "action": "rewrite", "source_directory": "/a"}]},
         "paths[0].destination_directory: required (action 'rewrite') but missing"),
        ({"paths": [{"path": "/a", "depth": -1}]}, "paths[0].depth: expected a whole number >= 0; got -1"),
        ({"paths": [{"path": "/a", "depth": "two"}]}, "paths[0].depth: expected a whole number >= 0; got 'two'"),
        ({"paths": [{"path": "/a", "path_types": "input,outptu"}]},
         "paths[0].path_types: expected comma-separated path types among input,"),
        ({"paths": [{"path": "/a", "paths_types": "input"}]}, "paths[0].paths_types: unknown key; expected one of"),
        ({"paths": [{"path": 7}]}, "paths[0].path: expected a non-empty path or pattern; got 7"),
        ({"paths": {"path": "/a"}}, "paths: expected a list of path entries"),
        ({"default_action": "teleport"}, "default_action: expected one of none, transfer"),
        ({"pathz": []}, "pathz: unknown key"),
        (["not", "a", "mapping"], "(top level): expected a value of type object"),
        ({"paths": [{"path": "/a"}, {"path": "/b"}, {"regex": "(unclosed"}]},
         "paths[2].regex: expected a regular expression; missing ), unterminated subpattern"),
        ({"paths": [{"path": "/a", "glob": "/b/*"}]}, "paths[0]: expected only one of path, glob, regex; got path, glob"),
        ({"paths": [{"glob": "/b/*", "match_type": "regex"}]}, "paths[0].match_type: expected 'glob' for a glob entry"),
        ({"paths": [{"match_type": "glob", "action": "copy"}]}, "paths[0].path: required by match_type 'glob'"),
    ],
)  # fmt: skip
def test_schema_errors_name_index_key_and_expectation(config: object, expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_action_config(config, name="actions.yml")
    assert expected in raised.value.message
    assert raised.value.message.startswith("actions.yml: ")


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text("paths: [\n")
    with pytest.raises(ConfigError, match="bad.yml: not valid YAML"):
        load_action_config(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_action_config(tmp_path / "absent.yml")


def test_every_problem_is_listed() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_action_config({"paths": [{"action": "x"}, {"depth": "y"}]})
    assert len(raised.value.details["problems"]) == 2


def test_the_shipped_sample_is_valid() -> None:
    sample = Path(__file__).resolve().parents[2] / "lwr" / "client" / "lwr_actions.yaml.sample"
    config = load_action_config(sample)
    assert [rule.action for rule in config.paths] == [
        "none", "copy", "remote_copy", "transfer", "rewrite", "remote_transfer",
    ]  # fmt: skip
    assert config.paths[1].match_type == "glob" and config.paths[5].match_type == "path_type_only"
