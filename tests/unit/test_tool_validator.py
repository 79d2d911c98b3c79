"""The original LWR's validator syntax (lwr/tools/validator.py), table-driven, and its shell check."""

from __future__ import annotations

from pathlib import Path
from xml.etree.ElementTree import fromstring

import pytest

from lwr.errors import BadRequest
from lwr.tools.validator import JobPaths, ValidatorSyntaxError, compile_validator, shell_words

JOB = JobPaths(Path("/srv/lwr/staging/_default_/42"))
IN, OUT, WORK = (
    "/srv/lwr/staging/_default_/42/inputs",
    "/srv/lwr/staging/_default_/42/outputs",
    "/srv/lwr/staging/_default_/42/working",
)
TOOLS, CONFIGS = "/srv/lwr/staging/_default_/42/tool_files", "/srv/lwr/staging/_default_/42/configs"


def validator(body: str, **attributes: str):
    extra = "".join(f' {key}="{value}"' for key, value in attributes.items())
    return compile_validator(fromstring(f"<command_validator{extra}>{body}</command_validator>"))


@pytest.mark.parametrize(
    "body, text, expected",
    [
        ('<literal value="cat"/>', "cat", True),
        ('<literal value="a.b"/>', "axb", False),
        ("<literal>text form</literal>", "text form", True),
        ('<literal value="cat"/><input/>', f"cat {IN}/a.txt", True),
        ('<literal value="cat"/><input/>', f"cat   {IN}/sub/a.txt", True),
        ('<literal value="cat"/><input/>', f"cat {IN}/../x", False),
        ('<literal value="cat"/><input/>', f"cat {IN}/./x", False),
        ('<literal value="cat"/><input/>', f"cat {IN}/", False),
        ('<literal value="cat"/><input/>', f"cat {IN}/a b", False),
        ('<literal value="cat"/><input/>', f"cat {IN}/a;b", False),
        ('<literal value="cat"/><input/>', f"cat {OUT}/a", False),
        ("<output/>", f"{OUT}/o.txt", True),
        ('<output from_work_dir="o.txt"/>', f"{WORK}/o.txt", True),
        ('<output from_work_dir="o.txt"/>', f"{WORK}/p.txt", False),
        ('<tool_wrapper name="w.py"/>', f"{TOOLS}/w.py", True),
        ('<tool_wrapper name="w.py"/>', f"{TOOLS}/x.py", False),
        ('<configfile name="c"/>', f"{CONFIGS}/c", True),
        ('<parameter name="--n"><integer/></parameter>', "--n 5", True),
        ('<parameter name="--n"><integer/></parameter>', "--n=5", True),
        ('<parameter name="--n"><integer/></parameter>', "--n 5x", False),
        ('<parameter name="--f"><float/></parameter>', "--f -1.5e3", True),
        ('<parameter name="--f"><float/></parameter>', "--f 1.2.3", False),
        ("<regex>fast|slow</regex>", "slow", True),
        ('<literal value="x"/><regex>fast|slow</regex>', "x fast", True),
        ('<literal value="x"/><regex>fast|slow</regex>', "x fastslow", False),
        ('<literal value="a" single_quote="true"/>', "'a'", True),
        ('<literal value="a" double_quote="true"/>', '"a"', True),
        ('<literal value="cat"/><input min="1" max="3"/>', f"cat {IN}/a {IN}/b {IN}/c", True),
        ('<literal value="cat"/><input min="1" max="3"/>', f"cat {IN}/a {IN}/b {IN}/c {IN}/d", False),
        ('<literal value="cat"/><integer min="0"/>', "cat", True),  # absent, and its separator with it
        ('<literal value="cat"/><integer min="0"/>', "cat ", False),
        ('<literal value="cat"/><integer min="0"/><input/>', f"cat {IN}/a", True),
        ('<literal value="cat"/><integer min="0"/><input/>', f"cat 3 {IN}/a", True),
        ('<literal value="cat"/><integer min="0"/><input/>', f"cat 3{IN}/a", False),
        ('<integer min="0"/><literal value="x"/>', "x", True),
        ('<integer min="0"/><literal value="x"/>', "4 x", True),
        ('<literal value="cat"/><input min="0" max="2"/>', f"cat {IN}/a {IN}/b", True),
        ('<group separate_by=","><integer/><integer/></group>', "1,2", True),
        ('<group><literal value="a"/><literal value="b"/></group>', "ab", True),
        ('<literal value="a"/><literal value="b"/>', "a\tb", False),
    ],
)
def test_validator_syntax(body, text, expected):
    assert validator(body).matches(text, JOB) is expected


def test_whitespace_separator_never_matches_a_newline():
    check = validator('<literal value="a"/><literal value="b"/>', separate_by="*whitespace*")
    assert check.matches("a \t b", JOB) and not check.matches("a\nb", JOB)


@pytest.mark.parametrize(
    "body",
    [
        "<nonsense/>",
        "<regex>(</regex>",
        '<integer max="0"/>',
        '<integer min="x"/>',
        '<tool_wrapper name="../x"/>',
        '<output from_work_dir="/etc/passwd"/>',
        "<parameter><integer/></parameter>",
    ],
)
def test_bad_validators_are_refused_when_loaded(body):
    with pytest.raises(ValidatorSyntaxError):
        validator(body)


@pytest.mark.parametrize(
    "command, words",
    [
        ("cat a b", ["cat", "a", "b"]),
        ("cat  'a b'  \"c d\"", ["cat", "a b", "c d"]),
        ("cat ''", ["cat", ""]),
        ("cat a'b'c", ["cat", "abc"]),
        ("cat 'a;b' '$(x)' '`y`'", ["cat", "a;b", "$(x)", "`y`"]),
    ],
)
def test_shell_words_of_plain_commands(command, words):
    assert shell_words(command) == words


@pytest.mark.parametrize(
    "command",
    [
        "a; b",
        "a && b",
        "a || b",
        "a | b",
        "a & b",
        "a > f",
        "a < f",
        "a $(b)",
        "a `b`",
        "a $HOME",
        "a ${x}",
        'a "$(b)"',
        'a "`b`"',
        'a "\\"',
        "a\nb",
        "a\rb",
        "a 'b",
        'a "b',
        "a \\; b",
        "a *",
        "a ?",
        "a [x]",
        "a {x,y}",
        "a ~",
        "a ~root",
        "a # c",
        "a !1",
        "X=1 a",
        "(a)",
        "a <(b)",
        "",
        "   ",
        "a\0b",
    ],
)
def test_shell_words_refuse_everything_the_shell_interprets(command):
    with pytest.raises(BadRequest):
        shell_words(command)
