"""Which native-specification options a job plugin passes on: an allow-list of option *forms*.

A native specification (from job_managers.ini or a client's ``submit_native_specification``)
is split into words and handed to the submit command. A word the command reads as a positional
argument would become the job script (``sbatch … /tmp/evil.sh <lwr's script>``), and an
option lwr sets itself (stdout, stderr, working directory, job name, ``--wrap``…) would
replace lwr's. So every word must be an option in one of these forms, and none may name a
reserved option:

* ``--name=value`` or ``--name`` (a flag); ``--name value`` only for long options the plugin
  lists as always taking a value. A long name that abbreviates a reserved one (getopt accepts
  ``--outp`` for ``--output``) is reserved too; long names compare case-insensitively.
* ``-x value`` only when ``x`` always takes a value, ``-xVALUE`` likewise; any other short option
  stands alone (``-Q``). Clusters such as ``-Qo/x`` are refused (getopt would read ``-o /x``).
* For LSF, whose options are words (``-cwd``, ``-oo``), ``-word value`` when the word takes a value.

The value lists are deliberately short: an option lwr believed took a value but the command
reads as a flag would let the "value" through as a positional argument.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lwr.errors import BadRequest

_LONG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_SHORT_NAME = re.compile(r"^[A-Za-z0-9]$")
_WORD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class OptionGrammar:
    """How one submit command reads its options, and which ones lwr reserves for itself."""

    #: Short (one-letter) options lwr sets; case-sensitive, as getopt is.
    reserved_short: frozenset[str] = frozenset()
    #: Long options lwr sets (without ``--``); also refused when abbreviated.
    reserved_long: frozenset[str] = frozenset()
    #: Short options that always take a value.
    short_values: frozenset[str] = frozenset()
    #: Long options that always take a value (may be given as ``--name value``).
    long_values: frozenset[str] = frozenset()
    #: LSF: single-dash options are whole words (``-cwd``); ``reserved_short``/``short_values`` hold words.
    word_options: bool = False

    def check(self, words: list[str], origin: str) -> list[str]:
        """``words`` unchanged if every one is an allowed option or its value; else :class:`BadRequest`."""
        index = 0
        while index < len(words):
            word = words[index]
            takes_value = self._option(word, origin)
            if takes_value:
                if index + 1 >= len(words):
                    raise BadRequest(f"{origin}: option {word} needs a value", option=word)
                index += 1
            index += 1
        return words

    def _option(self, word: str, origin: str) -> bool:
        """Check one option word; True if the next word is its value."""
        if word.startswith("--") and not self.word_options:
            name, equals, _value = word[2:].partition("=")
            if not _LONG_NAME.match(name):
                raise BadRequest(
                    f"{origin}: {word!r} is not an option (only --name, --name=value, -x, -x value)",
                    option=word,
                )
            lowered = name.lower()
            if any(reserved.startswith(lowered) for reserved in self.reserved_long):
                raise BadRequest(
                    f"{origin}: option --{name} is set by lwr itself and may not be given", option=word
                )
            return not equals and lowered in self.long_values
        if not word.startswith("-") or word == "-":
            raise BadRequest(
                f"{origin}: {word!r} is not an option; positional arguments would replace lwr's job script",
                option=word,
            )
        if self.word_options:
            name = word[1:]
            if not _WORD_NAME.match(name):
                raise BadRequest(f"{origin}: {word!r} is not an option", option=word)
            if name in self.reserved_short:
                raise BadRequest(
                    f"{origin}: option -{name} is set by lwr itself and may not be given", option=word
                )
            return name in self.short_values
        letter, attached = word[1:2], word[2:]
        if not _SHORT_NAME.match(letter):
            raise BadRequest(f"{origin}: {word!r} is not an option", option=word)
        if letter in self.reserved_short:
            raise BadRequest(
                f"{origin}: option -{letter} is set by lwr itself and may not be given", option=word
            )
        if attached:
            if letter not in self.short_values:
                raise BadRequest(
                    f"{origin}: {word!r}: -{letter} takes no value here; give options one at a time",
                    option=word,
                )
            return False
        return letter in self.short_values
