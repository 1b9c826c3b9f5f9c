"""A strict JSON reader for files users write: any input gives a value or one `JsonError`.

Python's `json` is not a safe boundary on its own: deep nesting raises RecursionError, an
integer of more than 4300 digits raises a bare ValueError, NaN and Infinity are accepted,
duplicate keys are silently resolved (the last wins), and a UTF-8 BOM is refused. A linear scan
runs first and finds every one of these with its line and column, so `json` only ever sees
input it handles; hooks on `json` check the same things again in case the scan misses one.
Pure: no I/O, so the reader of bytes decides how much to read (at most `MAX_BYTES` + 1).
"""

from __future__ import annotations

import codecs
import json
import math
import re
from typing import TypeAlias

from jcp.model.errors import JcpError

# A ConfigMap or a Secret holds at most 1 MiB of data in all (etcd's object limit), so a file
# read from one can never be larger; anything larger is not what Kubernetes mounted.
MAX_BYTES = 1024 * 1024
# jcp's documents are two or three levels deep; 64 leaves room without nearing the recursion
# limit of the C parser, however deep the caller's stack already is.
MAX_DEPTH = 64
# Digits (and for a float, its '.', 'e' and exponent) in one number. No number in jcp's documents
# needs more; Python refuses int() of more than 4300 digits.
MAX_NUMBER_CHARS = 100

JsonValue: TypeAlias = bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"] | None

# One token of interest outside strings. A string is skipped whole (an unterminated one runs to
# the end of the input), so brackets, numbers and constants inside strings are never counted.
# Numbers are tokens only when they could be a problem: too long, or with an exponent (without
# one, 100 digits cannot overflow a double). The lookahead lets the regex engine skip quickly
# over everything else (whitespace, short numbers, separators).
_TOKEN = re.compile(
    r"""
    (?=["\[\]{}\-0-9IN])
    (?:
      "(?P<string>[^"\\]*(?:\\.[^"\\]*)*)(?:"|\Z)
    | (?P<open>[\[{])
    | (?P<close>[\]}])
    | (?P<constant>-?Infinity|NaN)
    | (?<![0-9.eE+-])(?P<number>-?[0-9][0-9.]{LONG,}[0-9.eE+-]*|-?[0-9][0-9.]*[eE][0-9.eE+-]*)
    )
    """.replace("LONG", str(MAX_NUMBER_CHARS)),
    re.DOTALL | re.VERBOSE,
)
_KEY_FOLLOWS = re.compile(r"[ \t\r\n]*:")
_ONCE = "a key may appear only once in an object"
_NOT_A_NUMBER = "not a JSON number (NaN and Infinity are not allowed)"
_LONG_NUMBER = f"number longer than {MAX_NUMBER_CHARS} digits"
_DOUBLE = "too large for a double"


class JsonError(JcpError):
    """Input that is not JSON jcp accepts; says what and where, never a value unless asked.

    `key` (a duplicate key) is kept apart from the message so that a reader of secrets can
    leave it out: see `redacted()`.
    """

    def __init__(
        self,
        what: str,
        *,
        line: int | None = None,
        column: int | None = None,
        detail: str | None = None,
        key: str | None = None,
    ) -> None:
        self.what = what
        self.line = line
        self.column = column
        self.detail = detail
        self.key = key
        super().__init__(self._text(show_key=True))

    def _text(self, *, show_key: bool) -> str:
        text = self.what
        if show_key and self.key is not None:
            text += f" {shown(self.key)}"
        if self.line is not None and self.column is not None:
            text += f" at line {self.line} column {self.column}"
        if self.detail:
            text += f": {self.detail}"
        return text

    def redacted(self) -> str:
        """The message without any text taken from the input (for secrets)."""
        return self._text(show_key=False)


def position(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of OFFSET in TEXT, counted the way `json` counts them."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - text.rfind("\n", 0, offset)


def shown(text: str, limit: int = 40) -> str:
    """TEXT quoted for a message: escaped (no control characters reach a terminal), and cut."""
    cut = text if len(text) <= limit else text[:limit] + "..."
    return json.dumps(cut)


def decode(data: bytes, *, limit: int = MAX_BYTES) -> str:
    """UTF-8 text of DATA, with a leading BOM (as Windows editors write it) dropped."""
    if len(data) > limit:
        raise _too_large(limit)
    skipped = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[skipped:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = skipped + exc.start
        line = data.count(b"\n", skipped, offset) + 1
        start = max(data.rfind(b"\n", skipped, offset) + 1, skipped)
        column = len(data[start:offset].decode("utf-8")) + 1
        raise JsonError(
            "not UTF-8 text",
            detail=f"invalid byte sequence at byte offset {offset} (line {line} column {column})",
        ) from None


def _too_large(limit: int) -> JsonError:
    return JsonError(f"larger than {_size(limit)}, the most a ConfigMap or Secret can hold")


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):g} MiB" if n >= 1024 * 1024 else f"{n} bytes"


def loads(source: bytes | str, *, limit: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> JsonValue:
    """The JSON value of SOURCE (bytes are UTF-8, a BOM is allowed); raises only JsonError."""
    if isinstance(source, bytes):
        text = decode(source, limit=limit)
    else:
        if len(source) > limit:  # characters: never more than the bytes they were read from
            raise _too_large(limit)
        text = source
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate: no file decodes to this
            raise _fail(text, exc.start, "unpaired surrogate character") from None
    text = text.removeprefix("\ufeff")
    if not text.strip(" \t\r\n"):
        raise JsonError("empty", detail="expected a JSON value")
    nul = text.find("\x00")
    if nul >= 0:
        raise _fail(text, nul, "NUL character")
    _scan(text, max_depth)
    try:
        return json.loads(  # type: ignore[no-any-return]
            text,
            parse_float=_float,
            parse_constant=_constant,
            object_pairs_hook=_object,
        )
    except json.JSONDecodeError as exc:
        raise JsonError("invalid JSON", line=exc.lineno, column=exc.colno, detail=exc.msg) from None
    except RecursionError:  # the scan bounds the depth; this is the last line of defence
        raise JsonError(f"nested deeper than {max_depth} levels") from None
    except ValueError:  # likewise: no other ValueError is expected from json with these hooks
        raise JsonError("invalid JSON") from None


def _fail(
    text: str, offset: int, what: str, detail: str | None = None, key: str | None = None
) -> JsonError:
    line, column = position(text, offset)
    return JsonError(what, line=line, column=column, detail=detail, key=key)


def _scan(text: str, max_depth: int) -> None:
    """Find, in one pass, what `json` must not see: too deep, huge or non-finite numbers,
    NaN/Infinity, duplicate keys, strings that are not Unicode. Syntax errors are left to json.
    """
    stack: list[set[str] | None] = []  # per open bracket: the keys seen (None for a list)
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        if kind == "string":
            _string(text, match, stack)
        elif kind == "open":
            if len(stack) >= max_depth:
                raise _fail(text, match.start(), f"nested deeper than {max_depth} levels")
            stack.append(set() if match.group() == "{" else None)
        elif kind == "close":
            if stack:
                stack.pop()
        elif kind == "constant":
            raise _fail(text, match.start(), match.group(), _NOT_A_NUMBER)
        else:
            _number(text, match)


def _string(text: str, match: re.Match[str], stack: list[set[str] | None]) -> None:
    body = match.group("string")
    value = body
    if "\\" in body:
        try:
            value = json.loads(f'"{body}"')
        except ValueError:
            return  # a bad escape: json reports it with its position
        if not _is_unicode(value):
            raise _fail(text, match.start(), "string with an unpaired surrogate escape")
    if not stack or stack[-1] is None or not _KEY_FOLLOWS.match(text, match.end()):
        return
    keys = stack[-1]
    if value in keys:
        raise _fail(text, match.start(), "duplicate key", _ONCE, key=value)
    keys.add(value)


def _is_unicode(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _number(text: str, match: re.Match[str]) -> None:
    token = match.group()
    if len(token.lstrip("-")) > MAX_NUMBER_CHARS:
        raise _fail(text, match.start(), _LONG_NUMBER)
    try:
        finite = math.isfinite(float(token))
    except ValueError:
        return  # not a number json accepts either: json reports it
    if not finite:
        raise _fail(text, match.start(), "number out of range", _DOUBLE)


def _float(token: str) -> float:
    value = float(token)
    if len(token.lstrip("-")) > MAX_NUMBER_CHARS:
        raise JsonError(_LONG_NUMBER)
    if not math.isfinite(value):
        raise JsonError("number out of range", detail=_DOUBLE)
    return value


def _constant(token: str) -> float:
    raise JsonError(token, detail=_NOT_A_NUMBER)


def _object(pairs: list[tuple[str, JsonValue]]) -> dict[str, JsonValue]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise JsonError("duplicate key", detail=_ONCE, key=key)
            seen.add(key)
    return result
