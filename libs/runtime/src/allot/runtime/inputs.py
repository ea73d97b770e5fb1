"""What PostgreSQL can store, checked on raw request input before any model or query sees it (pure).

Every HTTP API of Allot refuses, with a 422 naming the field:
- an integer outside PostgreSQL's bigint (-2^63 … 2^63-1): no column or jsonb number Allot stores holds more
  (fields stored in a 32-bit ``int`` column carry their own tighter bound in their model);
- a string (value or object key) with a control character (U+0000-U+001F except tab, line feed and carriage
  return; U+007F): PostgreSQL text cannot hold NUL at all, and the others are never meant in names, ids or
  reasons; or with a lone surrogate (not encodable as UTF-8).

The same walk covers JSON bodies, query strings and path parameters; the first problems (at most
``MAX_PROBLEMS``) are reported, each with its dotted field path (``members.0.name``) as 422s name fields.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final

BIGINT_MIN: Final = -(2**63)
BIGINT_MAX: Final = 2**63 - 1
INT_MIN: Final = -(2**31)
INT_MAX: Final = 2**31 - 1
MAX_PROBLEMS: Final = 20

_BAD_CHAR = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def string_problem(text: str) -> str | None:
    """Why ``text`` cannot be accepted (None when it can)."""
    found = _BAD_CHAR.search(text)
    if found is None:
        return None
    char = found.group()
    if char == "\x00":
        return "must not contain NUL (U+0000) characters"
    if "\ud800" <= char <= "\udfff":
        return f"must not contain a lone surrogate (U+{ord(char):04X})"
    return f"must not contain control characters (found U+{ord(char):04X})"


def integer_problem(value: int) -> str | None:
    """Why integer ``value`` cannot be stored (None when it fits a bigint)."""
    if BIGINT_MIN <= value <= BIGINT_MAX:
        return None
    return f"must be between {BIGINT_MIN} and {BIGINT_MAX} (a 64-bit integer), got {value}"


def _field(path: tuple[str | int, ...]) -> str:
    return ".".join(str(p) for p in path) or "body"


def unstorable(value: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str, str]]:
    """Every (field, message) in a parsed JSON value that PostgreSQL cannot store (see the module doc)."""
    problems: list[tuple[str, str]] = []
    _walk(value, path, problems)
    return problems


def _walk(value: Any, path: tuple[str | int, ...], out: list[tuple[str, str]]) -> None:
    if len(out) >= MAX_PROBLEMS:
        return
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return
    if isinstance(value, int):
        problem = integer_problem(value)
        if problem:
            out.append((_field(path), problem))
    elif isinstance(value, str):
        problem = string_problem(value)
        if problem:
            out.append((_field(path), problem))
    elif isinstance(value, dict):
        for key, item in value.items():
            key_problem = string_problem(str(key))
            if key_problem:
                shown = str(key).encode("unicode_escape", "backslashreplace").decode("ascii")
                out.append((_field((*path, shown)), f"field name {key_problem}"))
                continue
            _walk(item, (*path, str(key)), out)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _walk(item, (*path, i), out)


def unstorable_params(params: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """(field, message) for query or path parameters whose name or value PostgreSQL cannot store."""
    problems = []
    for name, text in params:
        problem = string_problem(name) or string_problem(text)
        if problem:
            shown = name.encode("unicode_escape", "backslashreplace").decode("ascii")
            problems.append((shown, problem))
    return problems[:MAX_PROBLEMS]
