"""OneBot v11 messages as segment lists, from either wire format; pure, never raising.

An event's ``message`` is an array of segments (``{"type": "at", "data": {"qq": "1"}}``)
or, when the bridge posts the string format (go-cqhttp's default), one string with CQ
codes (``[CQ:at,qq=1]``) amid escaped text (``message/string.md``): ``&`` ``[`` ``]`` are
``&amp;`` ``&#91;`` ``&#93;`` in text, and ``,`` is also ``&#44;`` inside a code's
parameters. A code is read as the spec says: the function name runs from ``[CQ:`` to the
first ``,`` or ``]``, the parameters to the ``]``, split at ``,`` and each at its first
``=``. Both formats come out as the same list, so the rest of the channel reads one shape.
"""

from __future__ import annotations

import re
from typing import Any, TypedDict

__all__ = ["Segment", "parse_cq", "segments", "unescape"]


class Segment(TypedDict):
    type: str
    data: dict[str, Any]


_ENTITIES = {"&amp;": "&", "&#91;": "[", "&#93;": "]", "&#44;": ","}
_ENTITY = re.compile("&amp;|&#91;|&#93;|&#44;")
_CODE = re.compile(r"\[CQ:([^,\]]*)((?:,[^\]]*)?)\]")


def unescape(text: str) -> str:
    """Undo CQ escaping in one pass, so an escaped entity (``&amp;#91;``) stays literal."""
    return _ENTITY.sub(lambda m: _ENTITIES[m.group(0)], text)


def _text(text: str) -> Segment:
    return {"type": "text", "data": {"text": text}}


def parse_cq(message: str) -> list[Segment]:
    """A string-format message as segments; text between codes becomes ``text`` segments
    and a ``[CQ:`` without its closing ``]`` is read as text."""
    out: list[Segment] = []
    pos = 0
    for match in _CODE.finditer(message):
        if match.start() > pos:
            out.append(_text(unescape(message[pos:match.start()])))
        data: dict[str, Any] = {}
        for part in match.group(2)[1:].split(",") if match.group(2) else ():
            key, sep, value = part.partition("=")
            if sep:
                data[key] = unescape(value)
        out.append({"type": match.group(1), "data": data})
        pos = match.end()
    if pos < len(message):
        out.append(_text(unescape(message[pos:])))
    return out


def _segment(item: object) -> Segment | None:
    if not isinstance(item, dict) or not isinstance(item.get("type"), str):
        return None
    data = item.get("data")
    return {"type": item["type"], "data": dict(data) if isinstance(data, dict) else {}}


def segments(message: object) -> list[Segment] | None:
    """The segments of an event's ``message`` in either format (a single segment object is
    allowed too); None when it is neither, so the caller can say the event was unreadable.
    Items of an array that are not segments are left out."""
    if isinstance(message, str):
        return parse_cq(message)
    if isinstance(message, dict):
        one = _segment(message)
        return [one] if one is not None else None
    if isinstance(message, list):
        return [s for s in map(_segment, message) if s is not None]
    return None
