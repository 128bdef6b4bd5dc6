"""Write new values into a TOML document without losing what the user wrote around them.

The config is validated as plain data; saving merges that data into the document parsed from the file
(tomlkit), so unchanged values keep their formatting and comments, changed values keep their trailing
comment, removed keys go, new keys are appended, and arrays of tables (a provider's keys) are matched
by ``label`` so a key's table keeps its comments wherever it moves.
"""

from __future__ import annotations

from typing import Any

import tomlkit
from tomlkit.items import AoT, Item, Table


def _plain(item: Any) -> Any:
    return item.unwrap() if hasattr(item, "unwrap") else item


def _keep_trivia(old: Any, new: Item) -> Item:
    """The new value carries the old one's trailing comment and indentation."""
    trivia = getattr(old, "trivia", None)
    if trivia is not None and hasattr(new, "trivia"):
        new.trivia.indent = trivia.indent
        new.trivia.comment_ws = trivia.comment_ws
        new.trivia.comment = trivia.comment
        new.trivia.trail = trivia.trail
    return new


def _is_tables(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def merge(table: Any, new: dict[str, Any]) -> None:
    """Make ``table`` (a tomlkit document or table) hold exactly ``new``, touching only what differs."""
    for key in [k for k in table if k not in new]:
        del table[key]
    for key, value in new.items():
        if key not in table:
            table[key] = _new_item(value)
            continue
        old = table[key]
        if isinstance(value, dict) and isinstance(old, dict):
            merge(old, value)
        elif _is_tables(value) and isinstance(old, AoT):
            _merge_tables(old, value)
        elif not _same(_plain(old), value):
            table[key] = _keep_trivia(old, tomlkit.item(_tidy(value)))


def _same(a: Any, b: Any) -> bool:
    """Equal values of one type; 30 and 30.0 count as the same setting (what the user wrote stays)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


def _tidy(value: Any) -> Any:
    """30.0 is written as 30, as a person would."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _new_item(value: Any, in_new_array: bool = False) -> Any:
    if isinstance(value, dict):
        table = tomlkit.table()
        merge(table, value)
        if not in_new_array and not any(isinstance(v, dict) for v in value.values()):
            table.add(tomlkit.nl())  # a blank line before whatever follows, as in a hand-written file
        return table
    if _is_tables(value):
        aot = tomlkit.aot()
        for entry in value:
            aot.append(_new_item(entry, in_new_array=True))
        return aot
    return tomlkit.item(_tidy(value))


def _merge_tables(aot: AoT, values: list[dict[str, Any]]) -> None:
    """An array of tables matched by ``label``: each table keeps its comments, the order follows ``values``."""
    by_label: dict[Any, Table] = {}
    for table in aot:
        by_label.setdefault(_plain(table.get("label")), table)
    ordered: list[Table] = []
    for value in values:
        table = by_label.pop(value.get("label"), None)
        if table is None:
            table = _new_item(value)
        else:
            merge(table, value)
        ordered.append(table)
    if [id(t) for t in aot] == [id(t) for t in ordered]:
        return
    while len(aot):
        del aot[0]
    for table in ordered:
        aot.append(table)


def dumps_merged(original: str, data: dict[str, Any]) -> str:
    """``original`` TOML text with ``data`` merged in (a new document when there was no text)."""
    if not original.strip():
        doc = tomlkit.document()
        merge(doc, data)
        return tomlkit.dumps(doc).rstrip("\n") + "\n"
    doc = tomlkit.parse(original)
    merge(doc, data)
    return tomlkit.dumps(doc)
