"""One table of file-action rule cases, run against the client's and the server's decision.

The client decides what to stage from its parsed action config; the server decides what to
deliver from the same config as it arrives on the wire (``remote_staging.action_mapper``). Both
must agree on every row.
"""

from __future__ import annotations

import pytest

from lwr.client.action_config import parse_action_config
from lwr.client.actions import resolve
from lwr.staging.actions import ActionMapper

CASES = [
    # (paths entries, default action, path, path type, expected action)
    ([{"path": "/data", "action": "remote_copy"}], "transfer", "/data/x.dat", "output", "remote_copy"),
    ([{"path": "/data", "action": "remote_copy"}], "transfer", "/data", "output", "remote_copy"),
    # a prefix matches on segment boundaries: /data is not /database
    ([{"path": "/data", "action": "remote_copy"}], "transfer", "/database/x.dat", "output", "transfer"),
    ([{"path": "/data/", "action": "remote_copy"}], "transfer", "/database/x.dat", "output", "transfer"),
    # dot segments cannot walk a path into (or out of) a prefix
    ([{"path": "/data", "action": "remote_copy"}], "transfer", "/data/../etc/passwd", "output", "transfer"),
    ([{"path": "/data", "action": "remote_copy"}], "transfer", "/other/../data/x", "output", "remote_copy"),
    ([{"path": "/data", "action": "remote_copy"}], "transfer", "//data//x", "output", "remote_copy"),
    # glob and regex
    ([{"path": "/g/*.bam", "match_type": "glob", "action": "copy"}], "transfer", "/g/a.bam", "input", "copy"),
    (
        [{"path": "/g/*.bam", "match_type": "glob", "action": "copy"}],
        "transfer",
        "/g/a.BAM",
        "input",
        "transfer",
    ),
    (
        [{"path": r".*/dataset_\d+\.dat", "match_type": "regex", "action": "remote_transfer"}],
        "transfer",
        "/files/dataset_12.dat",
        "output",
        "remote_transfer",
    ),
    # path types: the default entry types, *any*, an explicit list
    ([{"path": "/u", "action": "transfer"}], "transfer", "/u/ref.fa", "unstructured", "none"),
    (
        [{"path": "/u", "action": "transfer", "path_types": "*any*"}],
        "none",
        "/u/ref.fa",
        "unstructured",
        "transfer",
    ),
    ([{"path": "/u", "action": "copy", "path_types": "input"}], "transfer", "/u/x", "output", "transfer"),
    (
        [{"match_type": "path_type_only", "path_types": "output", "action": "remote_transfer"}],
        "transfer",
        "/any/where",
        "output",
        "remote_transfer",
    ),
    # first match wins
    (
        [{"path": "/a", "action": "copy"}, {"path": "/a/b", "action": "none"}],
        "transfer",
        "/a/b/c",
        "input",
        "copy",
    ),
    # the default applies to default types only; none becomes copy for the job's own directories
    ([], "none", "/w/out", "output_workdir", "copy"),
    ([], "none", "/in/x", "input", "none"),
    ([], "remote_transfer", "/in/x", "input", "remote_transfer"),
]


@pytest.mark.parametrize("paths,default,path,path_type,expected", CASES)
def test_client_and_server_agree(paths, default, path, path_type, expected):
    config = parse_action_config({"default_action": default, "paths": paths})
    client_action = resolve(config, path, path_type).action
    server_action = ActionMapper(config.to_dict()).action_type(path, path_type)
    raw_server_action = ActionMapper({"default_action": default, "paths": paths}).action_type(path, path_type)
    assert (client_action, server_action, raw_server_action) == (expected, expected, expected)
