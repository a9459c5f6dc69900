"""Which way a piece of text runs, so Arabic and Hebrew messages are laid out right to left.

Flutter lays a paragraph out in the direction of its surroundings (the app is
left to right), not of its content; the views ask here per message. The rule
is Unicode's (UAX #9, P2-P3): the first strong character decides, text inside
isolates does not count, and text with no strong character (digits, emoji,
punctuation) has no direction of its own.
"""

from __future__ import annotations

import unicodedata
from typing import Literal

__all__ = ["FSI", "PDI", "Direction", "base_direction", "is_rtl", "isolate"]

Direction = Literal["ltr", "rtl"]

FSI = "\u2068"  # FIRST STRONG ISOLATE: the enclosed text takes its own first-strong direction
PDI = "\u2069"  # POP DIRECTIONAL ISOLATE: ends it
_ISOLATE_OPENERS = frozenset({"LRI", "RLI", "FSI"})
_RTL_CLASSES = frozenset({"R", "AL"})


def base_direction(text: str) -> Direction | None:
    """The paragraph direction of ``text``; None when no strong character decides it."""
    depth = 0  # open isolates: what is inside them does not decide
    for char in text:
        kind = unicodedata.bidirectional(char)
        if kind in _ISOLATE_OPENERS:
            depth += 1
        elif kind == "PDI":
            depth = max(0, depth - 1)
        elif depth == 0 and kind == "L":
            return "ltr"
        elif depth == 0 and kind in _RTL_CLASSES:
            return "rtl"
    return None


def is_rtl(text: str) -> bool:
    """Whether a control showing ``text`` should lay it out right to left."""
    return base_direction(text) == "rtl"


def isolate(text: str) -> str:
    """``text`` fenced off for a left-to-right line that shows it among other fields.

    Without the fence an Arabic message pulls neighbouring numbers (a latency, a
    chat id) into its right-to-left run and the line reads out of order. Text
    with no right-to-left character comes back unchanged.
    """
    if any(unicodedata.bidirectional(char) in _RTL_CLASSES for char in text):
        return f"{FSI}{text}{PDI}"
    return text
