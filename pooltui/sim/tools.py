"""How the simulator answers a request that carries tools, in either dialect.

- tools offered, the tool choice not "none" and the last message the user's own words: ONE call to the tool
  the tool choice names (else the first tool), its arguments built from the schema's required properties;
- the last message carries tool results: text mentioning the first result, ``sim saw: <first 40 chars>``;
- anything else: the usual text (``None``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SAW_PREFIX = "sim saw: "
_BY_TYPE: dict[str, Any] = {"string": "sim", "integer": 1, "number": 1, "boolean": True, "array": [], "null": None}


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]


def value_for(schema: Any) -> Any:
    """A value that satisfies ``schema`` as simply as possible ("sim", 1, true, [], an object of its required)."""
    if not isinstance(schema, dict):
        return "sim"
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        return arguments_for(schema)
    return _BY_TYPE.get(kind, "sim") if isinstance(kind, str) else "sim"


def arguments_for(schema: Any) -> dict[str, Any]:
    """The object of ``schema``'s required properties, each given :func:`value_for` its own schema."""
    if not isinstance(schema, dict):
        return {}
    raw_properties = schema.get("properties")
    properties = raw_properties if isinstance(raw_properties, dict) else {}
    return {name: value_for(properties.get(name)) for name in schema.get("required") or [] if isinstance(name, str)}


def _tools(dialect: str, body: dict[str, Any]) -> list[tuple[str, Any]]:
    """(name, input schema) of each tool offered."""
    out = []
    for tool in body.get("tools") or []:
        if not isinstance(tool, dict):
            continue
        if dialect == "anthropic":
            out.append((str(tool.get("name")), tool.get("input_schema")))
        else:
            raw_function = tool.get("function")
            function = raw_function if isinstance(raw_function, dict) else {}
            out.append((str(function.get("name")), function.get("parameters")))
    return out


def _chosen(dialect: str, choice: Any) -> str | None:
    """The tool name a tool choice forces, ``""`` for "none", ``None`` for no preference."""
    if dialect == "anthropic":
        if not isinstance(choice, dict):
            return None
        return "" if choice.get("type") == "none" else (choice.get("name") if choice.get("type") == "tool" else None)
    if choice == "none":
        return ""
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        return choice["function"].get("name")
    return None


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def tool_result_text(dialect: str, last: dict[str, Any]) -> str | None:
    """The text of the first tool result ``last`` carries, or None when it carries none."""
    if dialect == "openai":
        return _text_of(last.get("content")) if last.get("role") == "tool" else None
    content = last.get("content")
    if last.get("role") != "user" or not isinstance(content, list):
        return None
    results = [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]
    return _text_of(results[0].get("content")) if results else None


def plan(dialect: str, body: dict[str, Any]) -> ToolCall | str | None:
    """What to answer: a :class:`ToolCall`, a text that saw a tool result, or None for the usual text."""
    messages = body.get("messages") or []
    last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
    seen = tool_result_text(dialect, last)
    if seen is not None:
        return SAW_PREFIX + seen[:40]
    tools = _tools(dialect, body)
    chosen = _chosen(dialect, body.get("tool_choice"))
    if not tools or chosen == "" or last.get("role") != "user":
        return None
    name, schema = next(((n, s) for n, s in tools if n == chosen), tools[0])
    return ToolCall(name, arguments_for(schema))
