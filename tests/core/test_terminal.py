"""Text from elsewhere is stripped of terminal control sequences before it is printed (issue 26)."""

from __future__ import annotations

import pytest

from pooltui.core.terminal import printable

PLANTED = [
    ("host\x1b]0;pwned\x07", "host"),  # window title (OSC, BEL-terminated)
    ("host\x1b]52;c;ZXZpbA==\x1b\\", "host"),  # OSC 52: write the clipboard (ST-terminated)
    ("\x1b[2J\x1b[Hhost", "host"),  # clear the screen, cursor home
    ("ho\x1b[1Ast", "host"),  # cursor up: hide the line above
    ("host\x9b2J", "host"),  # 8-bit CSI
    ("host\x9d0;t\x07", "host"),  # 8-bit OSC
    ("ho\x00st\x7f\x08", "host"),  # NUL, DEL, backspace
    ("a\u202eb", "ab"),  # right-to-left override
    ("line\r\nnext\tcol", "line next col"),
    ("unterminated \x1b]0;title", "unterminated "),
    ("plain text, ünïcode — kept", "plain text, ünïcode — kept"),
]


@pytest.mark.parametrize(("planted", "shown"), PLANTED)
def test_escape_sequences_and_controls_are_stripped(planted: str, shown: str) -> None:
    assert printable(planted) == shown


def test_newlines_can_be_kept() -> None:
    assert printable("a\r\nb\tc\x1b[31m", keep_newlines=True) == "a\nb\tc"
