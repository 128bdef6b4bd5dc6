"""A few top-level fields of a large JSON request body (its model, whether it streams) read without parsing the
whole body: the top-level object's keys are walked, the named ones' values parsed, every other value skipped over
(its strings and brackets matched by C-speed scanners, nothing built). On any body ``json.loads`` reads as an
object, the values are the ones ``json.loads`` gives (the last of repeated keys); a body that is not one JSON object
gives None, and the caller parses it whole (as it does a body dense with small strings and brackets, which
json.loads reads faster)."""

from __future__ import annotations

import json
import re
from json.decoder import scanstring  # type: ignore[attr-defined]
from typing import Any

_WS = re.compile(r"[ \t\n\r]*")
_STRUCTURE = re.compile(r'["\[\]{}]')  # inside a container: the next string or bracket
_DECODER = json.JSONDecoder()
#: the walk gives up (the caller parses the body whole) past one string or bracket per this many characters: a body
#: of many small strings is parsed faster by json.loads's C scanner than walked in Python
CHARS_PER_STEP = 1024


def peek_fields(body: bytes, names: frozenset[str], chars_per_step: int = CHARS_PER_STEP) -> dict[str, Any] | None:
    """The values of the top-level keys of ``body`` named in ``names`` (those present), or None when ``body`` is
    not a UTF-8 JSON object or is denser than one string or bracket per ``chars_per_step`` characters (its caller
    parses it whole, and gets json.loads's own answer)."""
    try:
        text = body.decode("utf-8")
        return _fields(text, names, len(text) // chars_per_step + 64)
    except (UnicodeDecodeError, ValueError, IndexError, _Dense):
        return None


def _fields(text: str, names: frozenset[str], budget: int) -> dict[str, Any] | None:
    ws = _past_spaces
    pos = ws(text, 0)
    if text[pos] != "{":
        return None
    pos = ws(text, pos + 1)
    found: dict[str, Any] = {}
    if text[pos] == "}":
        pos += 1
    else:
        while True:
            if text[pos] != '"':
                return None
            key, pos = scanstring(text, pos + 1, True)
            pos = ws(text, pos)
            if text[pos] != ":":
                return None
            pos = ws(text, pos + 1)
            if key in names or text[pos] not in "{[":
                value, pos = _DECODER.raw_decode(text, pos)
                if key in names:
                    found[key] = value
            else:
                pos, budget = _skip_container(text, pos, budget)
            pos = ws(text, pos)
            if text[pos] == ",":
                pos = ws(text, pos + 1)
                continue
            if text[pos] != "}":
                return None
            pos += 1
            break
    return found if ws(text, pos) == len(text) else None


def _past_spaces(text: str, pos: int) -> int:
    found = _WS.match(text, pos)
    return found.end() if found is not None else pos


def _skip_container(text: str, pos: int, budget: int) -> tuple[int, int]:
    """Past the object or array that opens at ``pos``, and the steps left of ``budget`` (one per string, escaped
    quote or bracket met; ValueError when it never closes, ``_Dense`` when the budget runs out)."""
    depth = 0
    search, find = _STRUCTURE.search, text.find
    while True:
        found = search(text, pos)  # the gaps between strings are short: the regex walks them only
        if found is None:
            raise ValueError("unclosed")
        pos = found.end()
        mark = text[pos - 1]
        budget -= 1
        if budget < 0:
            raise _Dense()
        if mark == '"':  # a string's end found by str.find, not walked
            while True:
                end = find('"', pos)
                if end < 0:
                    raise ValueError("unclosed string")
                slash = end - 1
                while text[slash] == "\\":
                    slash -= 1
                pos = end + 1
                if (end - 1 - slash) % 2 == 0:  # an even run of backslashes before it: it closes the string
                    break
                budget -= 1  # an escaped quote: a step too
                if budget < 0:
                    raise _Dense()
        elif mark in "{[":
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                return pos, budget


class _Dense(Exception):
    """The body has too many small strings and brackets for the walk to beat a whole parse."""
