"""Fuzz public mode's shell check against a real shell: what it accepts, bash runs as exactly those words.

Attack (issue 8, b/f): a command line that passes lwr's check (``lwr.tools.validator.shell_words``)
but makes the shell do something else: run another command, expand a variable, glob, substitute.
For every generated line the check accepts, bash must see the very words the check saw; and a
line containing any shell metacharacter outside quotes must be refused. Bounded: a few seconds.
"""

from __future__ import annotations

import subprocess

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from lwr.errors import BadRequest
from lwr.tools.validator import shell_words

FUZZ = settings(
    max_examples=250, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)
PIECES = st.sampled_from(
    [
        " ",
        "  ",
        "\t",
        "'",
        '"',
        ";",
        "&",
        "|",
        "$",
        "`",
        "\\",
        "(",
        ")",
        "<",
        ">",
        "*",
        "?",
        "[",
        "]",
        "{",
        "}",
        "~",
        "#",
        "!",
        "=",
        "\n",
        "a",
        "b",
        "-",
        "/",
        ".",
        "x y",
        "$(id)",
        "`id`",
        "${IFS}",
        "&&",
        "||",
        "'$'",
        '"a b"',
        "%",
        ",",
        "@",
        "+",
        ":",
    ]
)
COMMANDS = st.lists(PIECES, min_size=1, max_size=12).map("".join)


def bash_words(command: str) -> list[str]:
    """The words bash passes to a command line made of ``command`` (run through printf)."""
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-c", "printf '%s\\0' start " + command],
        capture_output=True,
        timeout=10,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
    )
    assert result.returncode == 0, result
    return result.stdout.decode().split("\0")[1:-1]


@FUZZ
@given(command=COMMANDS)
def test_accepted_commands_are_the_words_bash_runs(command):
    try:
        words = shell_words("run " + command)
    except BadRequest:
        return
    assert bash_words(command) == words[1:]
