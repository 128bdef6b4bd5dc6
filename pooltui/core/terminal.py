"""Text from elsewhere made safe to print on a terminal.

Anything read from the shared store, a peer or an upstream may carry terminal control sequences (a window
title, a screen clear, an OSC 52 write to the clipboard, a cursor move that hides a line). :func:`printable`
removes every escape sequence and control character before such text is printed or logged; it is the one
place that does, for every command and log line that shows text it did not write itself.
"""

from __future__ import annotations

import re

# ESC-introduced sequences: CSI (ESC [ ... final), OSC/DCS/SOS/PM/APC (ESC ] P X ^ _ ... ended by BEL or ESC \,
# or left unterminated), and two-character escapes (ESC plus one character)
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]?"
    r"|\x1b[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[ -~]?"
    # the 8-bit forms (CSI as U+009B, OSC as U+009D ...)
    r"|\x9b[0-?]*[ -/]*[@-~]?"
    r"|[\x90\x98\x9d\x9e\x9f][^\x07\x9c\x1b]*(?:\x07|\x9c)?"
)
# what is left: C0 and C1 controls, DEL, and the bidirectional overrides that reorder what is shown
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_NEWLINES = re.compile(r"[\r\n\t]+")


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` without escape sequences and control characters; line breaks and tabs become one space
    unless ``keep_newlines`` (then ``\\n`` and ``\\t`` stay, ``\\r`` goes)."""
    text = _ESCAPES.sub("", text)
    if keep_newlines:
        return _CONTROLS.sub("", text)
    return _CONTROLS.sub("", _NEWLINES.sub(" ", text))
