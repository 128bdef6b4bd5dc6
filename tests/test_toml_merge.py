"""Merging new config values into the user's TOML: the data comes out exactly, the comments stay."""

from __future__ import annotations

import tomllib

from hypothesis import given, settings
from hypothesis import strategies as st

from pooltui.store.toml_merge import dumps_merged

ORIGINAL = """# my pools
[providers.a]   # first
kind = "openai"   # the dialect
cooldown_s = 30   # seconds

# keys below
[[providers.a.keys]]
label = "x"   # the old one
secret = "env:X"

[[providers.a.keys]]
label = "y"
secret = "env:Y"   # from CI
"""

names = st.sampled_from(["kind", "cooldown_s", "strategy", "note", "extra_setting"])
scalars = st.one_of(st.integers(-5, 5), st.booleans(), st.text("abc xyz#\"'", max_size=6),
                    st.floats(allow_nan=False, allow_infinity=False, width=32))
key_tables = st.lists(st.fixed_dictionaries({"label": st.sampled_from(["x", "y", "z", "w"]),
                                             "secret": st.sampled_from(["env:X", "env:Y", "keyring:a/z"])}),
                      max_size=4, unique_by=lambda d: d["label"])


@settings(max_examples=150, deadline=None)
@given(fields=st.dictionaries(names, scalars, max_size=4), tables=key_tables)
def test_the_merged_text_reads_back_as_exactly_the_new_data(fields, tables) -> None:
    provider = dict(fields)
    if tables:
        provider["keys"] = tables
    data = {"providers": {"a": provider}}
    text = dumps_merged(ORIGINAL, data)
    assert tomllib.loads(text) == data
    if provider.get("kind") == "openai" and {t["label"] for t in tables} >= {"y"}:
        assert 'secret = "env:Y"   # from CI' in text or 'secret = "env:Y"' in text


def test_unchanged_values_keep_their_comments_and_moved_tables_take_theirs_along() -> None:
    data = tomllib.loads(ORIGINAL)
    keys = data["providers"]["a"]["keys"]
    data["providers"]["a"]["keys"] = [keys[1], keys[0]]
    data["providers"]["a"]["cooldown_s"] = 45
    text = dumps_merged(ORIGINAL, data)
    assert text.startswith("# my pools\n[providers.a]   # first\nkind = \"openai\"   # the dialect\n")
    assert "cooldown_s = 45   # seconds" in text
    assert text.index('label = "y"') < text.index('label = "x"   # the old one')
    assert 'secret = "env:Y"   # from CI' in text
    assert tomllib.loads(text) == data
