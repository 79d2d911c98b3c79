"""Public-server mode: only the toolbox's tools run, only with command lines and files their validators allow.

Attack (issue 8, b, "Also build" 1): a client with a token tries to run something other than a
validated tool command: an unknown tool, a command line that escapes its validator (``; rm``,
``$(...)``, backticks, newlines, ``&&``, pipes, redirections, quotes, ``..``), an environment that
runs code, tool files that differ from the server's, config files that carry commands. Every
attempt runs against a real lwr process and leaves a marker file if any code of the attacker ran.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from http_helpers import Http
from server import TOKEN

CAT_XML = """<tool id="cat1" version="1.0">
  <command>python3 $__tool_directory__/cat.py $input1 $output1</command>
  <validators>
    <command_validator>
      <literal value="python3"/>
      <tool_wrapper name="cat.py"/>
      <parameter name="--lines" min="0"><integer/></parameter>
      <input/>
      <output/>
    </command_validator>
  </validators>
</tool>
"""
CAT_PY = b"import shutil, sys\nshutil.copyfile(sys.argv[-2], sys.argv[-1])\n"
HEAD_XML = """<tool id="head1" version="2.0">
  <validators>
    <command_validator><literal value="bash"/><configfile name="script"/></command_validator>
    <configfile_validator name="script">
      <literal value="head"/><parameter name="-n"><integer/></parameter><input/>
    </configfile_validator>
  </validators>
</tool>
"""
TOOLBOX = """<toolbox tool_path="tools">
  <tool file="cat/cat.xml"/>
  <section id="text" name="Text"><tool file="head/head.xml"/></section>
</toolbox>
"""


@pytest.fixture
def public(make_server, tmp_path):
    tools = tmp_path / "config" / "tools"
    (tools / "cat").mkdir(parents=True)
    (tools / "head").mkdir()
    (tools / "cat" / "cat.xml").write_text(CAT_XML)
    (tools / "cat" / "cat.py").write_bytes(CAT_PY)
    (tools / "head" / "head.xml").write_text(HEAD_XML)
    (tmp_path / "config" / "toolbox.xml").write_text(TOOLBOX)
    server = make_server(
        "public",
        app_options={"private_token": TOKEN, "tool_config_files": str(tmp_path / "config" / "toolbox.xml")},
    )
    return server


@pytest.fixture
def http(public):
    return Http(public.url, TOKEN)


def cat_job(http: Http, job_id: str) -> dict:
    config = http.setup(job_id, tool_id="cat1", tool_version="1.0")
    assert http.upload(job_id, "cat.py", CAT_PY, "tool").status == 200
    assert http.upload(job_id, "in.txt", b"public data\n").status == 200
    return config


def good_command(config: dict) -> str:
    return (
        f"python3 {config['tools_directory']}/cat.py --lines 3 {config['inputs_directory']}/in.txt "
        f"{config['outputs_directory']}/out.txt"
    )


def test_a_validated_tool_runs(http):
    config = cat_job(http, "ok1")
    assert http.submit("ok1", good_command(config)).status == 200
    status = http.wait_complete("ok1")
    assert status["status"] == "complete" and status["returncode"] == 0, status
    assert (
        http.request("GET", "/jobs/ok1/files", {"name": "out.txt", "type": "output"}).body == b"public data\n"
    )


def test_unknown_tools_are_refused_at_setup(http, public):
    for params in ({"tool_id": "evil"}, {}, {"tool_id": "cat1", "tool_version": "9.9"}):
        reply = http.request("POST", "/jobs", {"job_id": "unknown", **params})
        assert reply.status == 403 and "toolbox" in reply.json()["error"], reply
    reply = http.submit("implicit", "true", setup_params=json.dumps({"tool_id": "evil"}))
    assert reply.status == 403
    assert not (public.staging / "_default_" / "unknown").exists()


#: Ways to make the shell run something else; "{M}" is the marker file's path.
ESCAPES = [
    " ; touch {M}",
    ";touch {M}",
    " && touch {M}",
    " || touch {M}",
    " | tee {M}",
    " & touch {M}",
    " > {M}",
    " 2>{M}",
    "\ntouch {M}",
    "\rtouch {M}",
    " $(touch {M})",
    "$(touch {M})",
    " `touch {M}`",
    " '$(touch {M})'x",
    ' "$(touch {M})"',
    " ${{IFS}}touch${{IFS}}{M}",
    " $'\\x3b'touch {M}",
    " <(touch {M})",
    " \\; touch {M}",
    " #; touch {M}",
]


def test_command_lines_that_escape_the_validator_are_refused(http, tmp_path):
    marker = tmp_path / "pwned"
    config = cat_job(http, "esc")
    for escape in ESCAPES:
        reply = http.submit("esc", good_command(config) + escape.format(M=marker))
        assert reply.status == 403, (escape, reply)
        assert "refused by this public lwr" in reply.json()["error"]
    # Never queued: the valid submit after them is the first that runs.
    assert http.submit("esc", good_command(config)).status == 200
    assert http.wait_complete("esc")["status"] == "complete"
    assert not marker.exists()


def test_paths_and_words_that_escape_the_validator_are_refused(http, tmp_path):
    marker = tmp_path / "pwned"
    config = cat_job(http, "paths")
    tools, inputs, outputs = (
        config["tools_directory"],
        config["inputs_directory"],
        config["outputs_directory"],
    )
    hostile = [
        f"python3 {tools}/cat.py {inputs}/../../../../etc/passwd {outputs}/out.txt",
        f"python3 {tools}/cat.py {inputs}/./in.txt {outputs}/../tool_files/cat.py",
        f"python3 {tools}/cat.py {inputs}/in.txt;touch$IFS{marker} {outputs}/out.txt",
        f"python3 {tools}/cat.py {inputs}/in.txt {outputs}/out.txt {marker}",
        f"python3 {tools}/cat.py {inputs}/in.txt {marker}",
        f"python3 {tools}/cat.py {inputs}/in.txt {outputs}/out.txt --lines 3",
        f"python3 {tools}/cat.py --lines 3 --lines 4 {inputs}/in.txt {outputs}/out.txt",
        f"python3 {tools}/cat.py --lines=3 {inputs}/in.txt {outputs}/out.txt extra",
        f"python3  {tools}/cat.py {inputs}/in.txt\t{outputs}/out.txt",
        f"python3 {tools}/other.py {inputs}/in.txt {outputs}/out.txt",
        f'python3 -c \'open("{marker}","w")\' {tools}/cat.py {inputs}/in.txt {outputs}/out.txt',
        f"PYTHONSTARTUP={inputs}/in.txt python3 {tools}/cat.py {inputs}/in.txt {outputs}/out.txt",
        f"python3 {tools}/cat.py --lines 3x {inputs}/in.txt {outputs}/out.txt",
        f"python3 {tools}/cat.py {inputs}/in.txt",
        f"touch {marker}",
    ]
    accepted = [command for command in hostile if http.submit("paths", command).status != 403]
    assert accepted == []
    assert not marker.exists()
    # The validator's optional parameter may be left out, or given in either form.
    for job_id, lines in (("opt1", ""), ("opt2", "--lines=2 ")):
        config = cat_job(http, job_id)
        command = (
            f"python3 {config['tools_directory']}/cat.py {lines}{config['inputs_directory']}/in.txt "
            f"{config['outputs_directory']}/out.txt"
        )
        assert http.submit(job_id, command).status == 200, command
        assert http.wait_complete(job_id)["status"] == "complete"


def test_environment_that_runs_code_is_refused(http, tmp_path):
    marker = tmp_path / "pwned"
    config = cat_job(http, "env")
    for env in (
        [{"name": "BASH_ENV", "value": f"{config['inputs_directory']}/in.txt"}],
        [{"name": "LD_PRELOAD", "value": "/tmp/evil.so"}],
        [{"name": "GALAXY_SLOTS", "value": f"$(touch {marker})", "raw": True}],
        [{"name": "GALAXY_SLOTS", "value": f"1; touch {marker}"}],
    ):
        reply = http.submit("env", good_command(config), env=json.dumps(env))
        assert reply.status == 403, (env, reply)
    assert (
        http.submit(
            "env", good_command(config), env=json.dumps([{"name": "GALAXY_SLOTS", "value": "2"}])
        ).status
        == 200
    )
    assert http.wait_complete("env")["status"] == "complete"
    assert not marker.exists()


def test_tool_files_must_be_the_servers_copies(http, tmp_path):
    marker = tmp_path / "pwned"
    config = http.setup("tf1", tool_id="cat1")
    http.upload("tf1", "cat.py", f"open({str(marker)!r}, 'w')\n".encode(), "tool")
    http.upload("tf1", "in.txt", b"x")
    reply = http.submit("tf1", good_command(config))
    assert reply.status == 403 and "differs" in reply.json()["error"]
    config = cat_job(http, "tf2")
    http.upload("tf2", "extra.sh", b"touch pwned\n", "tool")
    assert http.submit("tf2", good_command(config)).status == 403
    time.sleep(0.5)
    assert not marker.exists()


def head_job(http: Http, job_id: str, script: bytes) -> tuple[dict, str]:
    config = http.setup(job_id, tool_id="head1")
    assert http.upload(job_id, "in.txt", b"one\ntwo\nthree\n").status == 200
    assert http.upload(job_id, "script", script, "config").status == 200
    return config, f"bash {config['configs_directory']}/script"


def test_config_files_are_checked_against_their_validator(http, tmp_path):
    marker = tmp_path / "pwned"
    config = http.setup("probe", tool_id="head1")
    inputs = config["inputs_directory"].replace("/probe/", "/{job}/")
    cases = {
        "cfg-ok": (f"head -n 2 {inputs}/in.txt\n", 200),
        "cfg-semicolon": (f"head -n 2 {inputs}/in.txt; touch {marker}\n", 403),
        "cfg-newline": (f"head -n 2 {inputs}/in.txt\ntouch {marker}\n", 403),
        "cfg-subst": (f"head -n $(touch {marker}) {inputs}/in.txt\n", 403),
        "cfg-path": (f"head -n 2 {inputs}/../../../../etc/passwd\n", 403),
    }
    for job_id, (script, expected) in cases.items():
        _, command = head_job(http, job_id, script.replace("{job}", job_id).encode())
        reply = http.submit(job_id, command)
        assert reply.status == expected, (job_id, reply)
    status = http.wait_complete("cfg-ok")
    assert status["status"] == "complete" and status["stdout"] == "one\ntwo\n", status
    config, command = head_job(http, "cfg-unvalidated", b"head -n 1 x\n")
    assert http.upload("cfg-unvalidated", "other", b"anything", "config").status == 200
    assert http.submit("cfg-unvalidated", command).status == 403
    assert not marker.exists()


def test_a_broken_toolbox_stops_lwr_at_startup(make_server, tmp_path):
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "t.xml").write_text('<tool id="t"><validators/></tool>')
    (tmp_path / "toolbox.xml").write_text('<toolbox tool_path="tools"><tool file="t.xml"/></toolbox>')
    with pytest.raises(RuntimeError, match="command_validator"):
        make_server(
            "broken", app_options={"private_token": TOKEN, "tool_config_files": str(tmp_path / "toolbox.xml")}
        )
    os.unlink(tmp_path / "toolbox.xml")
