"""Telegram's HTML parse mode, checked roughly the way the Bot API checks it.

The real server rejects unknown or unbalanced tags and bare ``<`` with
"Bad Request: can't parse entities: ..."; a bare ``&`` that does not start a
supported entity is kept as text. Messages are measured after this parsing,
so the fake records (and limits) the visible text. Rules from
https://core.telegram.org/bots/api#html-style.
"""

from __future__ import annotations

import re

__all__ = ["HtmlParseError", "visible_text"]

_TAGS = frozenset({
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a",
    "tg-emoji", "code", "pre", "blockquote",
})
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY = re.compile(r"&(?:#(\d{1,7})|#[xX]([0-9a-fA-F]{1,6})|(lt|gt|amp|quot));")
_TAG_NAME = re.compile(r"^/?\s*([A-Za-z][A-Za-z0-9-]*)")


class HtmlParseError(ValueError):
    """The text after "can't parse entities: " in Telegram's error description."""


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8", "surrogatepass"))


def visible_text(source: str) -> str:
    """What the user would see: tags removed, entities decoded; raises HtmlParseError."""
    out: list[str] = []
    stack: list[str] = []
    i = 0
    while i < len(source):
        ch = source[i]
        if ch == "&":
            match = _ENTITY.match(source, i)
            if match is None:
                out.append("&")
                i += 1
                continue
            dec, hexa, named = match.groups()
            if named:
                out.append(_NAMED[named])
            else:
                code = int(dec) if dec else int(hexa, 16)
                if not 0 < code <= 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                    raise HtmlParseError(f"Unsupported HTML entity at byte offset "
                                         f"{_byte_offset(source, i)}")
                out.append(chr(code))
            i = match.end()
            continue
        if ch != "<":
            out.append(ch)
            i += 1
            continue
        end = source.find(">", i)
        if end < 0:
            raise HtmlParseError(f"Unclosed start tag at byte offset {_byte_offset(source, i)}")
        body = source[i + 1 : end]
        name_match = _TAG_NAME.match(body)
        name = name_match.group(1).lower() if name_match else ""
        if body.startswith("/"):
            if not stack:
                raise HtmlParseError(f"Unexpected end tag at byte offset {_byte_offset(source, i)}")
            if name != stack[-1]:
                raise HtmlParseError(
                    f"Unmatched end tag at byte offset {_byte_offset(source, i)}, "
                    f'expected "</{stack[-1]}>", found "</{name}>"'
                )
            stack.pop()
        else:
            if name not in _TAGS:
                shown = name or body[:1]
                raise HtmlParseError(
                    f'Unsupported start tag "{shown}" at byte offset {_byte_offset(source, i)}'
                )
            if name == "span" and 'class="tg-spoiler"' not in body:
                raise HtmlParseError(
                    f'Tag "span" must have class "tg-spoiler" at byte offset '
                    f"{_byte_offset(source, i)}"
                )
            stack.append(name)
        i = end + 1
    if stack:
        raise HtmlParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1]}"')
    return "".join(out)
