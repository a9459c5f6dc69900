"""A mail body as the text a person wrote: HTML read as text, quoted history cut.

Pure functions on ``str`` that never raise. HTML goes through the stdlib
``html.parser`` (no regex over markup, entities decoded by the parser): ``script``,
``style`` and ``head`` are dropped, block elements become line breaks. The quoted history
a mail client appends below (or above) a reply is cut: lines starting with ``>``, an
"On <date>, <someone> wrote:" line and everything after it, Outlook's "-----Original
Message-----" / "From: ... Sent: ..." block, and the signature after the RFC 3676
separator ``-- ``.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

__all__ = ["cut_quoted", "html_to_text"]

_BLOCKS = frozenset({
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "fieldset",
    "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header",
    "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "tr", "ul",
})
_HIDDEN = frozenset({"head", "script", "style", "template", "title"})
_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link",
                   "meta", "source", "track", "wbr"})


class _TextOf(HTMLParser):
    """Collects the text of an HTML document, with line breaks where blocks end."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self.hidden += 1
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in _BLOCKS and tag not in _VOID:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(re.sub(r"[ \t\r\n\f]+", " ", data))


def html_to_text(html: str) -> str:
    """The readable text of an HTML mail body; never raises."""
    parser = _TextOf()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # noqa: BLE001 - html.parser is lenient; an unforeseen failure reads as no text
        return ""
    lines = (line.strip() for line in "".join(parser.parts).split("\n"))
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


_WROTE = re.compile(
    r"^\s*(On\b.{0,300}\bwrote|Am\b.{0,300}\bschrieb|Le\b.{0,300}\bécrit|El\b.{0,300}"
    r"\bescribió)\s*:\s*$", re.IGNORECASE | re.DOTALL)
_ORIGINAL = re.compile(r"^\s*(-{2,}\s*Original Message\s*-{2,}|_{10,}|-{5,}\s*Forwarded "
                       r"message\s*-{5,})\s*$", re.IGNORECASE)
_OUTLOOK_FROM = re.compile(r"^\s*\*?From:\*?\s.+", re.IGNORECASE)
_OUTLOOK_NEXT = re.compile(r"^\s*\*?(Sent|Date|To|Subject):\*?\s", re.IGNORECASE)


def cut_quoted(text: str) -> str:
    """``text`` without the quoted history and signature below (or above) it.

    If cutting would leave nothing (a mail that is all quote), the text is kept as it was:
    the person then meant the quote."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    for i, line in enumerate(lines):
        if line == "-- " or (i > 0 and line.rstrip() == "--"):
            break
        if _ORIGINAL.match(line):
            break
        if _OUTLOOK_FROM.match(line) and any(_OUTLOOK_NEXT.match(n) for n in lines[i + 1:i + 4]):
            break
        two = f"{line} {lines[i + 1]}" if i + 1 < len(lines) else line
        if _WROTE.match(line) or (len(line) < 200 and _WROTE.match(two)
                                  and line.lstrip().lower().startswith(("on ", "am ", "le ",
                                                                        "el "))):
            break
        if line.lstrip().startswith(">"):
            continue
        kept.append(line)
    cut = "\n".join(kept).strip()
    return cut or text.strip()
