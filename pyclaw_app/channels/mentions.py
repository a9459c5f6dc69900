"""How a group message addressed to the bot reads once it reaches the model: one rule for
every channel, so the assistant does not answer differently on Slack and on Telegram.

1. The bot's own mention where people put an address (at the start: "@bot hi", "@bot, hi";
   or at the end: "what time is it @bot?") addressed the platform, not the assistant, and is
   removed. Inside a sentence ("ask @bot about it") it is part of what was said and stays,
   written the way the user saw it.
2. Every other mention, channel link and custom emoji reads as the user saw it (``@name``,
   ``#channel``, ``:emoji:``), never as platform markup (``<@U123>``). A connector calls
   :func:`addressed_text` on the text as the platform sent it (the bot's mention is then
   matched exactly, by id) and renders the rest with :func:`render_markup`.
3. A message that is only the bot's mention is a call for attention, not noise: it is
   answered, and the model reads the mention itself (``@bot``) rather than an empty text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from itertools import islice

__all__ = ["addressed_spans", "addressed_text", "render_markup", "utf16_span"]

_AFTER_ADDRESS = r"(?:\s*[,:;.!?-]+\s*|\s+|$)"
"""What may follow an address at the start: "@bot, hi", "@bot: hi", "@bot hi"."""
_BEFORE_END = r"[\s,.!?;:]*"


def addressed_text(text: str, mention: str | re.Pattern[str], *, bot_name: str) -> str:
    """``text`` with the bot's ``mention`` (a regex matching one mention as it appears in
    ``text``) removed at its start or end (rule 1), or ``@bot_name`` when nothing else was
    said (rule 3). ``text`` without such a mention comes back unchanged."""
    pattern = mention if isinstance(mention, re.Pattern) else re.compile(mention)
    body = pattern.pattern
    flags = pattern.flags
    rest = re.sub(rf"\A\s*(?:{body}){_AFTER_ADDRESS}", "", text, count=1, flags=flags)
    if rest == text:
        rest = _cut_trailing(text, body, flags)
    if rest == text:
        return text
    if not rest.strip():
        return f"@{bot_name}" if bot_name else text.strip()
    return rest


def addressed_spans(text: str, spans: Iterable[tuple[int, int]]) -> str:
    """:func:`addressed_text` for platforms that say where the bot's mentions are
    (``text[start:end]`` slices) rather than how they are written (LINE, Google Chat): each
    span becomes a marker (a private-use character the text lacks) matched exactly, and
    each marker that stays becomes that mention again, which is also what a message of only
    the mention reads as."""
    kept: list[tuple[int, int]] = []
    for start, end in sorted(set(spans)):
        if not kept or start >= kept[-1][1]:  # overlapping spans: the first one counts
            kept.append((start, end))
    used = set(text)
    free = list(islice((c for c in map(chr, range(0xE000, 0xF900)) if c not in used),
                       len(kept)))
    if not kept or len(free) < len(kept):  # none, or a text holding every such character
        return text
    markers = {marker: text[start:end] for marker, (start, end) in zip(free, kept, strict=True)}
    marked = text
    for marker, (start, end) in reversed(list(zip(markers, kept, strict=True))):
        marked = marked[:start] + marker + marked[end:]
    name = next(iter(markers.values())).strip().removeprefix("@")
    said = addressed_text(marked, f"[{''.join(markers)}]", bot_name=name)
    for marker, shown in markers.items():
        said = said.replace(marker, shown)
    return said


def utf16_span(text: str, index: object, length: object) -> tuple[int, int] | None:
    """A platform's UTF-16 ``index``/``length`` (how LINE, Google Chat and Telegram count)
    as a ``text[start:end]`` slice, or None when they are not counts inside ``text``."""
    if not (_count(index) and _count(length)) or length == 0:
        return None
    units = text.encode("utf-16-le", "surrogatepass")
    if 2 * (index + length) > len(units):
        return None
    start = len(units[:2 * index].decode("utf-16-le", "ignore"))
    return start, len(units[:2 * (index + length)].decode("utf-16-le", "ignore"))


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _cut_trailing(text: str, body: str, flags: int) -> str:
    """"what time is it @bot?" -> "what time is it?": the closing punctuation stays."""
    match = re.search(rf"(?:\A|\s+)(?:{body})({_BEFORE_END})\Z", text, flags=flags)
    if match is None:
        return text
    return text[:match.start()] + match.group(1).strip()


def render_markup(text: str, markup: re.Pattern[str],
                  readable: Callable[[re.Match[str]], str | None]) -> str:
    """Replace each match of a platform's ``markup`` with what ``readable`` says the user saw
    (``None`` keeps the markup as it is, for a form the connector cannot name)."""

    def one(match: re.Match[str]) -> str:
        shown = readable(match)
        return match.group(0) if shown is None else shown

    return markup.sub(one, text)
