"""A tool's validators: what command lines and config files a public lwr accepts for it.

The syntax is the original LWR's (``<validators>`` in a Galaxy tool's XML)::

    <validators>
      <command_validator>
        <tool_wrapper name="wrapper.py"/>          a file of the tool's directory, staged as a tool file
        <literal value="--mode"/>                  exactly this text
        <regex>fast|slow</regex>                   a regular expression (the administrator's)
        <parameter name="--in"><input/></parameter>  "--in VALUE" or "--in=VALUE"
        <input/> <output/> <output from_work_dir="out.txt"/>  a path of the job's inputs / outputs
        <configfile name="script"/>                the job's config file of that name
        <integer/> <float/>
        <group separate_by=",">...</group>         children joined by a separator ("" by default)
      </command_validator>
      <configfile_validator name="script">...</configfile_validator>
    </validators>

Children of a container are separated by ``separate_by`` (``*spaces*``, the default, is one or
more spaces; ``*whitespace*`` spaces or tabs; anything else, that text). Every element takes
``min``/``max`` (repetitions, default 1; an element with ``min="0"`` may be absent together
with its separator) and ``single_quote``/``double_quote`` (``true`` wraps
it in quotes). The whole command or file must match.

Two things make this stricter than a regular expression over a string. A path element matches
only a plain relative path inside its directory (letters, digits, ``_ + . , = @ -``; no ``.``
or ``..`` segment), never "anything after the directory". And a command line is accepted only
if it is one simple command a shell runs as written (:func:`shell_words`): no ``;``, ``&``,
``|``, redirection, substitution, expansion, newline or variable assignment anywhere, whatever
an administrator's ``<regex>`` lets through.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from xml.etree.ElementTree import Element

from lwr.errors import BadRequest

#: A plain relative path: segments of safe characters, none of them "." or "..".
_SEGMENT = r"(?!\.\.?(?:/|$|[ \t'\"]))[A-Za-z0-9_+.,=@-]+"
SAFE_RELATIVE_PATH = rf"{_SEGMENT}(?:/{_SEGMENT})*"
_FLOAT = r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
_SEPARATORS = {"*spaces*": " +", "*whitespace*": "[ \t]+"}


class ValidatorSyntaxError(ValueError):
    """A validator that cannot be compiled (unknown element, bad regex, bad count)."""


@dataclass(frozen=True)
class JobPaths:
    """The job's directories, as the command line names them (the setup reply's paths)."""

    job_directory: Path

    def sub(self, name: str) -> str:
        return str(self.job_directory / name)


@dataclass(frozen=True)
class Validator:
    """A compiled ``command_validator`` or ``configfile_validator``."""

    element: Element

    def regex(self, paths: JobPaths) -> str:
        return _container(self.element, paths, "*spaces*")

    def matches(self, text: str, paths: JobPaths) -> bool:
        return re.fullmatch(self.regex(paths), text) is not None


def compile_validator(element: Element) -> Validator:
    """Check the validator's syntax now (against an example job), so a bad one stops lwr at start-up."""
    validator = Validator(element)
    try:
        re.compile(validator.regex(JobPaths(Path("/example/job"))))
    except re.error as error:
        raise ValidatorSyntaxError(f"the validator's regular expression does not compile: {error}") from None
    return validator


def _container(element: Element, paths: JobPaths, default_separator: str) -> str:
    """The children joined by the separator; an optional child (``min="0"``) takes its separator with it."""
    separator = element.get("separate_by", default_separator)
    joiner = _SEPARATORS.get(separator, re.escape(separator))
    regex, leading = "", True
    for child in element:
        part, optional = _element(child, paths, joiner)
        if leading:
            regex += f"(?:{part}{joiner})?" if optional else part
            leading = optional
        else:
            regex += f"(?:{joiner}{part})?" if optional else f"{joiner}{part}"
    return regex


def _element(element: Element, paths: JobPaths, joiner: str) -> tuple[str, bool]:
    """The element's regex, and whether it may be absent (``min="0"``)."""
    build = _ELEMENTS.get(str(element.tag))
    if build is None:
        raise ValidatorSyntaxError(
            f"unknown validator element <{element.tag}>; expected one of {', '.join(sorted(_ELEMENTS))}"
        )
    regex = build(element, paths)
    if _true(element.get("single_quote")):
        regex = f"'{regex}'"
    if _true(element.get("double_quote")):
        regex = f'"{regex}"'
    try:
        least, most = int(element.get("min", "1")), int(element.get("max", "1"))
    except ValueError:
        raise ValidatorSyntaxError(f"<{element.tag}> min and max must be integers") from None
    if most < 1 or least < 0 or least > most:
        raise ValidatorSyntaxError(f"<{element.tag}> needs 0 <= min <= max and max >= 1")
    if most > 1:
        regex = f"(?:{regex})(?:{joiner}(?:{regex})){{{max(least - 1, 0)},{most - 1}}}"
    return regex, least == 0


def _true(value: str | None) -> bool:
    return bool(value) and str(value).lower() == "true"


def _text(element: Element, attribute: str = "value") -> str:
    value = element.get(attribute)
    if value is None:
        value = element.text or ""
    return value


def _named(element: Element) -> str:
    name = _text(element, "name").strip()
    if not name or re.fullmatch(SAFE_RELATIVE_PATH, name) is None:
        raise ValidatorSyntaxError(f"<{element.tag}> needs a plain relative name, not {name!r}")
    return name


def _literal(element: Element, paths: JobPaths) -> str:
    return re.escape(_text(element))


def _regex(element: Element, paths: JobPaths) -> str:
    return f"(?:{_text(element)})"


def _parameter(element: Element, paths: JobPaths) -> str:
    name = element.get("name")
    if not name:
        raise ValidatorSyntaxError("<parameter> needs a name")
    return f"{re.escape(name)}(?:=| +)(?:{_container(element, paths, '*spaces*')})"


def _tool_wrapper(element: Element, paths: JobPaths) -> str:
    return re.escape(f"{paths.sub('tool_files')}/{_named(element)}")


def _configfile(element: Element, paths: JobPaths) -> str:
    return re.escape(f"{paths.sub('configs')}/{_named(element)}")


def _input(element: Element, paths: JobPaths) -> str:
    return f"{re.escape(paths.sub('inputs'))}/{SAFE_RELATIVE_PATH}"


def _output(element: Element, paths: JobPaths) -> str:
    from_work_dir = element.get("from_work_dir")
    if from_work_dir:
        if re.fullmatch(SAFE_RELATIVE_PATH, from_work_dir) is None:
            raise ValidatorSyntaxError(
                f"<output from_work_dir> must be a plain relative name, not {from_work_dir!r}"
            )
        return re.escape(f"{paths.sub('working')}/{from_work_dir}")
    return f"{re.escape(paths.sub('outputs'))}/{SAFE_RELATIVE_PATH}"


def _group(element: Element, paths: JobPaths) -> str:
    return f"(?:{_container(element, paths, '')})"


_ELEMENTS: dict[str, Callable[[Element, JobPaths], str]] = {
    "literal": _literal,
    "regex": _regex,
    "parameter": _parameter,
    "tool_wrapper": _tool_wrapper,
    "configfile": _configfile,
    "input": _input,
    "output": _output,
    "integer": lambda element, paths: r"[0-9]+",
    "float": lambda element, paths: _FLOAT,
    "group": _group,
}

#: Outside quotes, these make the shell do something other than run one command with literal words.
_UNQUOTED_SPECIAL = set(";&|<>()$`\\*?[]{}~#!\n\r\0")
#: Inside double quotes the shell still expands these.
_DOUBLE_QUOTED_SPECIAL = set("$`\\!\n\r\0")


def shell_words(command: str) -> list[str]:
    """The words of a command the shell would run literally; :class:`BadRequest` for anything else.

    Refused: command separators and operators, redirections, subshells, every substitution and
    expansion (``$``, backticks, globs, braces, ``~``, history), comments, escapes, newlines,
    unbalanced quotes and a first word with ``=`` (``NAME=value`` would set the environment).
    """
    words: list[str] = []
    word: list[str] = []
    in_word = False
    quote = ""
    for char in command:
        if quote == "'":
            if char == "'":
                quote = ""
            elif char in "\n\r\0":
                raise BadRequest("the command line has a newline or NUL inside quotes")
            else:
                word.append(char)
        elif quote == '"':
            if char == '"':
                quote = ""
            elif char in _DOUBLE_QUOTED_SPECIAL:
                raise BadRequest(
                    f"the command line has {char!r} inside double quotes, which the shell expands"
                )
            else:
                word.append(char)
        elif char in " \t":
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
        elif char in "'\"":
            quote, in_word = char, True
        elif char in _UNQUOTED_SPECIAL:
            raise BadRequest(
                f"the command line has {char!r}, which the shell interprets; a public lwr runs one "
                "plain command",
                character=char,
            )
        else:
            word.append(char)
            in_word = True
    if quote:
        raise BadRequest("the command line has an unbalanced quote")
    if in_word:
        words.append("".join(word))
    if not words:
        raise BadRequest("the command line is empty")
    if "=" in words[0]:
        raise BadRequest("the command line starts with a variable assignment")
    return words
