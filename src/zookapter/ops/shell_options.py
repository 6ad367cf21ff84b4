"""Command-line words: zkCli's line tokenizer and the option grammar of its commands.

zkCli splits a line on blanks, keeping `"..."` and `'...'` as one word without the quotes
(a quote inside a word is an ordinary character). Each command then parses its words with
Apache commons-cli's DefaultParser, whose rules scripts depend on, so they are mirrored here:

- options may come anywhere, before or after the positional words;
- `-sw` is `-s -w`; `-v3` and `-v 3` both give `-v` the value 3; a value may be a negative
  number, but any other word starting with `-` is an option (`set /a -1` is an error);
- `--` ends the options;
- mutually exclusive groups (setquota's `-n|-b|-N|-B`), possibly required.

Errors carry commons-cli's exception class and message, because zkCli prints the exception
itself: `org.apache.commons.cli.UnrecognizedOptionException: Unrecognized option: -x`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_WORD = re.compile(r"""\s*([^"']\S*|"[^"]*"|'[^']*')\s*""")
_QUOTED = re.compile(r"""^(['"])(.*)\1$""")
_NEGATIVE_NUMBER = re.compile(r"^-\d+(\.\d+)?$")


def split_line(line: str) -> list[str]:
    """ZooKeeperMain.MyCommandOptions.parseCommand's tokenizer."""
    words = []
    for m in _WORD.finditer(line):
        word = m.group(1)
        quoted = _QUOTED.match(word)
        words.append(quoted.group(2) if quoted else word)
    return words


@dataclass(frozen=True)
class Opt:
    """One option: its name (usually a letter), whether it takes a value, its help text."""
    name: str
    has_arg: bool = False
    description: str = ""


@dataclass(frozen=True)
class Grammar:
    """The options of a command; `group` names options of which at most one may be given
    (`group_required`: exactly one)."""
    options: tuple[Opt, ...] = ()
    group: tuple[str, ...] = ()
    group_required: bool = False

    def find(self, name: str) -> Opt | None:
        for opt in self.options:
            if opt.name == name:
                return opt
        return None


@dataclass
class Parsed:
    """The options found (name -> value, None for flags) and the other words, the command
    name first (commons-cli's CommandLine)."""
    values: dict[str, str | None] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)

    def has(self, name: str) -> bool:
        return name in self.values

    def value(self, name: str) -> str | None:
        return self.values.get(name)


class ParseError(Exception):
    """A commons-cli ParseException; str() is what zkCli prints."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"org.apache.commons.cli.{kind}: {message}")


class _Parser:
    def __init__(self, grammar: Grammar) -> None:
        self.grammar = grammar
        self.result = Parsed()
        self.pending: Opt | None = None  # an option still waiting for its value
        self.selected: str | None = None  # the option chosen from the group

    def parse(self, words: list[str]) -> Parsed:
        rest = iter(words)
        for word in rest:
            if word == "--":
                self._close_pending()
                self.result.args.extend(rest)
                break
            self._word(word)
        self._close_pending()
        if self.grammar.group_required and self.selected is None:
            names = ", ".join(f"-{n} {self.grammar.find(n).description}"  # type: ignore[union-attr]
                              for n in self.grammar.group)
            raise ParseError("MissingOptionException", f"Missing required option: [{names}]")
        return self.result

    def _word(self, word: str) -> None:
        if self.pending is not None and (not self._is_option(word)
                                         or _NEGATIVE_NUMBER.match(word)):
            self.result.values[self.pending.name] = word
            self.pending = None
        elif word.startswith("-") and word != "-":
            self._option_word(word)
        else:
            self._close_pending()
            self.result.args.append(word)

    def _is_option(self, word: str) -> bool:
        if not word.startswith("-") or word == "-":
            return False
        name = word[1:]
        return self.grammar.find(name) is not None or self.grammar.find(name[:1]) is not None

    def _option_word(self, word: str) -> None:
        name = word[1:]
        opt = self.grammar.find(name)
        if opt is not None:
            self._take(opt)
            return
        prefix = self._longest_prefix(name)
        if prefix is not None and prefix.has_arg:
            self._take(prefix)
            self.result.values[prefix.name] = name[len(prefix.name):]
            self.pending = None
            return
        self._concatenated(word)

    def _longest_prefix(self, name: str) -> Opt | None:
        for end in range(len(name) - 1, 0, -1):
            opt = self.grammar.find(name[:end])
            if opt is not None:
                return opt
        return None

    def _concatenated(self, word: str) -> None:
        for i in range(1, len(word)):
            opt = self.grammar.find(word[i])
            if opt is None:
                raise ParseError("UnrecognizedOptionException", f"Unrecognized option: {word}")
            self._take(opt)
            if opt.has_arg and i + 1 < len(word):
                self.result.values[opt.name] = word[i + 1:]
                self.pending = None
                return

    def _take(self, opt: Opt) -> None:
        self._close_pending()
        if opt.name in self.grammar.group:
            if self.selected is not None and self.selected != opt.name:
                raise ParseError(
                    "AlreadySelectedException",
                    f"The option '{opt.name}' was specified but an option from this group "
                    f"has already been selected: '{self.selected}'")
            self.selected = opt.name
        self.result.values[opt.name] = None
        if opt.has_arg:
            self.pending = opt

    def _close_pending(self) -> None:
        if self.pending is not None:
            raise ParseError("MissingArgumentException",
                             f"Missing argument for option: {self.pending.name}")


def parse_words(grammar: Grammar, words: list[str]) -> Parsed:
    """Parse a command's words (the command name included, kept as args[0])."""
    return _Parser(grammar).parse(words)
