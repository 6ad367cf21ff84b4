"""JAAS login configuration files, as the server reads them for SASL.

Mirrors the JDK's ``sun.security.provider.ConfigFile`` (the default
``javax.security.auth.login.Configuration``): its ``java.io.StreamTokenizer`` set-up, the
grammar ``Name { module.Class flag key=value ...; ... };`` with ``//`` and ``/* */`` comments
and ``"..."``/``'...'`` quoted tokens, and ``${prop}`` expansion (``PropertyExpander``) in
option values and in the file's location. `section_credentials` / `server_credentials`
collect the DIGEST-MD5 user database as ZooKeeper's ``SaslServerCallbackHandler`` does: every
``user_<name>="<password>"`` option of every login module of the server section
(``zookeeper.sasl.serverconfig``, default ``Server``).
"""

from __future__ import annotations

import os
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

__all__ = [
    "CONTROL_FLAGS",
    "DEFAULT_SERVER_SECTION",
    "USER_PREFIX",
    "JaasError",
    "LoginModuleEntry",
    "expand_properties",
    "load_jaas_file",
    "parse_jaas",
    "section_credentials",
    "server_credentials",
]

DEFAULT_SERVER_SECTION = "Server"
USER_PREFIX = "user_"


class JaasError(ValueError):
    """A JAAS configuration file that does not parse (Java: ``SecurityException``)."""


# --- JAAS configuration --------------------------------------------------------------------------

CONTROL_FLAGS = ("required", "requisite", "sufficient", "optional")


@dataclass(frozen=True)
class LoginModuleEntry:
    """One ``module.Class flag key=value ...;`` line of a JAAS section."""

    module: str
    flag: str  # lower case: required | requisite | sufficient | optional
    options: dict[str, str] = field(default_factory=dict)


# Token kinds of the JDK's StreamTokenizer set-up for JAAS files.
_WORD, _QUOTED, _NUMBER, _CHAR, _EOF = "word", "quoted", "number", "char", "eof"
_WORD_EXTRA = "$_-*"
_NUMERIC_START = "0123456789.-"
_QUOTE_ESCAPES = {"a": "\x07", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t",
                  "v": "\x0b"}


def _is_alpha(c: str) -> bool:
    o = ord(c)
    return ("a" <= c <= "z") or ("A" <= c <= "Z") or c in _WORD_EXTRA or 160 <= o <= 255 \
        or o >= 256


def _is_word_part(c: str) -> bool:
    return _is_alpha(c) or c in "0123456789."


@dataclass
class _Token:
    kind: str
    text: str
    line: int


def _tokenize(text: str) -> list[_Token]:
    """Split like ``java.io.StreamTokenizer`` as the JDK's JAAS ``ConfigFile`` configures it."""
    out: list[_Token] = []
    i, n, line = 0, len(text), 1
    while i < n:
        c = text[i]
        if c == "\n" or (c == "\r"):
            line += 1
            if c == "\r" and i + 1 < n and text[i + 1] == "\n":
                i += 1
            i += 1
            continue
        if ord(c) <= 32:
            i += 1
            continue
        if c == "/":
            nxt = text[i + 1] if i + 1 < n else ""
            if nxt == "*":
                end = text.find("*/", i + 2)
                if end < 0:
                    break  # an unterminated comment runs to the end of the file
                line += text.count("\n", i, end)
                i = end + 2
                continue
            # "//" and (since '/' is also a comment character) a lone '/' comment to EOL
            while i < n and text[i] not in "\r\n":
                i += 1
            continue
        if c in "\"'":
            quote, i, buf = c, i + 1, []
            while i < n and text[i] != quote and text[i] not in "\r\n":
                ch = text[i]
                if ch == "\\" and i + 1 < n:
                    i += 1
                    e = text[i]
                    if e in "01234567":
                        digits = e
                        limit = 3 if e <= "3" else 2
                        while len(digits) < limit and i + 1 < n and text[i + 1] in "01234567":
                            i += 1
                            digits += text[i]
                        buf.append(chr(int(digits, 8)))
                    else:
                        buf.append(_QUOTE_ESCAPES.get(e, e))
                    i += 1
                    continue
                buf.append(ch)
                i += 1
            if i < n and text[i] == quote:
                i += 1
            out.append(_Token(_QUOTED, "".join(buf), line))
            continue
        if c == "-" and not (i + 1 < n and text[i + 1] in "0123456789."):
            out.append(_Token(_CHAR, c, line))  # a '-' that starts no number is ordinary
            i += 1
            continue
        if c in _NUMERIC_START:
            j = i + 1
            while j < n and (text[j].isdigit() or text[j] == "."):
                j += 1
            out.append(_Token(_NUMBER, text[i:j], line))
            i = j
            continue
        if _is_alpha(c):
            j = i + 1
            while j < n and _is_word_part(text[j]):
                j += 1
            out.append(_Token(_WORD, text[i:j], line))
            i = j
            continue
        out.append(_Token(_CHAR, c, line))
        i += 1
    out.append(_Token(_EOF, "", line))
    return out


_SYSTEM_DEFAULTS: dict[str, Callable[[], str]] = {
    "/": lambda: os.sep,
    "file.separator": lambda: os.sep,
    "path.separator": lambda: os.pathsep,
    "line.separator": lambda: os.linesep,
    "user.home": lambda: os.path.expanduser("~"),
    "user.dir": os.getcwd,
    "user.name": lambda: os.environ.get("USER", ""),
    "java.io.tmpdir": lambda: "/tmp",
}


def expand_properties(value: str, props: Mapping[str, str] | None = None) -> str:
    """``${name}`` -> system property ``name`` (JDK ``PropertyExpander``); ``${{...}}`` is
    left alone; an unknown property is an error; an unterminated ``${`` stays literal."""
    props = props or {}
    out: list[str] = []
    i = 0
    while True:
        p = value.find("${", i)
        if p < 0:
            out.append(value[i:])
            break
        out.append(value[i:p])
        if value.startswith("${{", p):
            end = value.find("}}", p + 3)
            if end < 0 or end + 2 == len(value):
                out.append(value[p:])
                break
            out.append(value[p:end + 2])
            i = end + 2
            continue
        end = value.find("}", p + 2)
        if end < 0:
            out.append(value[p:])
            break
        name = value[p + 2:end]
        if name in props:
            out.append(props[name])
        elif name in _SYSTEM_DEFAULTS:
            out.append(_SYSTEM_DEFAULTS[name]())
        else:
            raise JaasError(f"unable to expand property {name}")
        i = end + 1
    return "".join(out)


def parse_jaas(text: str, props: Mapping[str, str] | None = None,
               expand: bool = True) -> dict[str, list[LoginModuleEntry]]:
    """Parse a JAAS login configuration into ``{section: [LoginModuleEntry, ...]}``.

    Section and option names are case-sensitive; the control flag is not. Raises
    ``JaasError`` where the JDK's ``ConfigFile`` reports a configuration error (missing
    ``{ } ; =``, a bad control flag, an unquoted numeric token, a section named twice, an
    option value that expands to nothing)."""
    toks = _tokenize(text)
    pos = 0

    def peek(ch: str) -> bool:
        t = toks[pos]
        return t.kind == _CHAR and t.text == ch

    def expect_char(ch: str) -> None:
        nonlocal pos
        t = toks[pos]
        if t.kind == _EOF:
            raise JaasError(f"expected [{ch}], read [end of file]")
        if not (t.kind == _CHAR and t.text == ch):
            raise JaasError(f"Line {t.line}: expected [{ch}], found [{t.text}]")
        pos += 1

    def expect_value(what: str) -> str:
        nonlocal pos
        t = toks[pos]
        if t.kind == _EOF:
            raise JaasError(f"expected [{what}], read [end of file]")
        if t.kind not in (_WORD, _QUOTED):
            raise JaasError(f"Line {t.line}: expected [{what}], found [{t.text}]")
        pos += 1
        return t.text

    sections: dict[str, list[LoginModuleEntry]] = {}
    while toks[pos].kind != _EOF:
        name = expect_value("application name")
        expect_char("{")
        entries: list[LoginModuleEntry] = []
        while not peek("}"):
            module = expect_value("module class name")
            flag_tok = toks[pos]
            flag = expect_value("controlFlag")
            if flag.lower() not in CONTROL_FLAGS:
                raise JaasError(f"Line {flag_tok.line}: Invalid control flag, {flag}")
            options: dict[str, str] = {}
            while not peek(";"):
                key = expect_value("option key")
                expect_char("=")
                vtok = toks[pos]
                value = expect_value("option value")
                if expand and value:
                    value = expand_properties(value, props)
                    if not value:
                        raise JaasError(f"Line {vtok.line}: system property value expanded "
                                        f"to empty value")
                options[key] = value
            pos += 1  # the ';'
            entries.append(LoginModuleEntry(module, flag.lower(), options))
        expect_char("}")
        expect_char(";")
        if name in sections:
            raise JaasError(f"Can not specify multiple entries for {name}")
        sections[name] = entries
    return sections


def _jaas_path(location: str) -> str:
    loc = location.removeprefix("=")  # "==file" overrides
    if loc.startswith("file:"):
        return urllib.request.url2pathname(urllib.parse.urlparse(loc).path)
    return loc


def load_jaas_file(location: str, props: Mapping[str, str] | None = None
                   ) -> dict[str, list[LoginModuleEntry]]:
    """Read and parse the JAAS file named by ``java.security.auth.login.config`` (a path or a
    ``file:`` URL; ``${prop}`` is expanded in it). Raises ``JaasError`` if unreadable."""
    try:
        path = _jaas_path(expand_properties(location, props))
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError as e:
        raise JaasError(f"cannot read JAAS configuration {location}: {e}") from None
    return parse_jaas(text, props)


def section_credentials(entries: list[LoginModuleEntry] | None) -> dict[str, str]:
    """``{user: password}`` from the ``user_<name>`` options of a section's login modules
    (all modules, as ZooKeeper's SaslServerCallbackHandler reads them; later ones win)."""
    creds: dict[str, str] = {}
    for entry in entries or ():
        for key, value in entry.options.items():
            if key.startswith(USER_PREFIX):
                creds[key[len(USER_PREFIX):]] = value
    return creds


def server_credentials(jaas: Mapping[str, list[LoginModuleEntry]],
                       section: str = DEFAULT_SERVER_SECTION) -> dict[str, str] | None:
    """The DIGEST-MD5 user database of ``section``, or None when it is absent or empty."""
    entries = jaas.get(section)
    if not entries:
        return None
    return section_credentials(entries)
