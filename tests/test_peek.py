"""The model and stream fields of a large request body read without parsing it whole (proxy/peek.py): the same
values as json.loads on every JSON object, None on anything else."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from pooltui.proxy.peek import peek_fields

NAMES = frozenset({"model", "stream", "stream_options"})
KEYS = st.one_of(st.sampled_from([*sorted(NAMES), "messages", "mode", "models", "Model"]), st.text(max_size=8))
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                    st.text(alphabet=st.characters(codec="utf-8"), max_size=20))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(KEYS, inner, max_size=4)), max_leaves=20)


def expected(body: bytes) -> dict[str, object]:
    return {k: v for k, v in json.loads(body).items() if k in NAMES}


@settings(max_examples=400, deadline=None)
@given(members=st.lists(st.tuples(KEYS, VALUES), max_size=8), ascii_only=st.booleans(),
       spaced=st.sampled_from(["", " ", "\n  ", "\t"]))
def test_the_fields_are_json_loads_own_on_any_object(members, ascii_only, spaced) -> None:
    """Repeated keys (the last wins), escaped keys, nested look-alikes, any spacing: as json.loads reads them."""
    sep = f",{spaced}"
    body = ("{" + spaced + sep.join(f"{json.dumps(k, ensure_ascii=ascii_only)}{spaced}:{spaced}"
                                    f"{json.dumps(v, ensure_ascii=ascii_only)}" for k, v in members)
            + spaced + "}" + spaced).encode()
    assert peek_fields(body, NAMES, chars_per_step=1) == expected(body)


@given(value=VALUES)
def test_anything_but_an_object_is_left_to_a_whole_parse(value) -> None:
    if not isinstance(value, dict):
        assert peek_fields(json.dumps(value).encode(), NAMES, chars_per_step=1) is None


def test_a_large_body_is_walked_past_its_messages() -> None:
    """A megabyte of tool results before the model: the values json.loads gives, the messages never parsed."""
    messages = [{"role": "tool", "tool_call_id": f"c{i}", "content": '"a quote" and \\ ' + "def f(x):\n" * 5000}
                for i in range(20)]
    body = json.dumps({"messages": messages, "model": "gpt-4o", "stream": True,
                       "stream_options": {"include_usage": True}, "user": "u"}).encode()
    assert peek_fields(body, NAMES) == expected(body) == {"model": "gpt-4o", "stream": True,
                                                         "stream_options": {"include_usage": True}}


def test_a_body_dense_with_escaped_quotes_is_left_to_a_whole_parse() -> None:
    """json.loads's C scanner reads it faster than the walk would."""
    body = json.dumps({"messages": [{"role": "user", "content": 'print("x")\n' * 5000}], "model": "m"}).encode()
    assert peek_fields(body, NAMES) is None


def test_an_escaped_key_and_bodies_json_loads_refuses() -> None:
    assert peek_fields(b'{"mod\\u0065l": "m", "stream": false}', NAMES) == {"model": "m", "stream": False}
    for bad in (b'{"model": "m"', b'{"model": "m"} x', b'{"model" "m"}', b"\xff{}", b'\xef\xbb\xbf{"model": "m"}',
                b'{"messages": [1, 2, {"a": "b"}', b'{"messages": ["unclosed]}'):
        assert peek_fields(bad, NAMES) is None, bad
