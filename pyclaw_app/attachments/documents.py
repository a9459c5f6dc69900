"""Documents made into prompt text: plain text, Markdown and PDF, within a token budget.

A document longer than the budget is cut at a line (or page) boundary and the model is
told how much it got, so it can say so instead of pretending it read everything. PDF
text comes from ``pypdf`` (pure Python, an optional extra): without it a PDF is reported
as unreadable with the command that fixes that.
"""

from __future__ import annotations

import io

__all__ = ["DocumentError", "estimate_tokens", "pdf_text", "plain_text"]

CHARS_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    """The agent's estimate (``agent/tokens.py``), repeated here because the agent imports
    this package, not the other way round."""
    return (len(text) + 3) // CHARS_PER_TOKEN + 4


class DocumentError(Exception):
    """The document cannot be read; the message says why, for the sender."""


def _clip(text: str, tokens: int) -> tuple[str, bool]:
    """``text`` cut to about ``tokens`` at a line boundary, and whether it was cut."""
    if estimate_tokens(text) <= tokens:
        return text, False
    cut = text[:tokens * CHARS_PER_TOKEN]
    while cut and estimate_tokens(cut) > tokens:
        cut = cut[:len(cut) * 9 // 10]
    line_end = cut.rfind("\n")
    if line_end > len(cut) // 2:
        cut = cut[:line_end]
    return cut, True


def plain_text(name: str, data: bytes, tokens: int) -> str:
    """A text or Markdown file as the model reads it."""
    text = data.decode("utf-8", "replace").replace("\r\n", "\n").strip()
    if not text:
        raise DocumentError(f"{name or 'the file'} is empty")
    body, cut = _clip(text, tokens)
    label = name or "a text file"
    head = f"[the user sent the document {label}; its text follows]"
    tail = (f"\n[... the rest of {label} was left out: it is longer than the "
            f"{tokens:,} tokens a document may take]" if cut else "")
    return f"{head}\n{body}{tail}"


def pdf_text(name: str, data: bytes, tokens: int) -> str:
    """A PDF's text, page by page until the budget is spent. Runs in a worker thread
    (``asyncio.to_thread``): pypdf is CPU-bound."""
    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError:
        raise DocumentError("reading PDF files needs pypdf (pip install pypdf)") from None
    label = name or "a PDF"
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentError(f"{label} is protected with a password")
        total = len(reader.pages)
        pages: list[str] = []
        left = tokens
        cut = False
        for number, page in enumerate(reader.pages, 1):
            text = (page.extract_text() or "").strip()
            if not text:
                continue
            piece, cut = _clip(f"--- page {number} ---\n{text}", left)
            if piece.strip():
                pages.append(piece)
            left -= estimate_tokens(piece)
            if cut or left <= 0:
                cut = cut or number < total
                break
    except DocumentError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise DocumentError(f"{label} is not a PDF pypdf can read ({exc})") from exc
    if not pages:
        raise DocumentError(f"{label} has no text layer (a scan?); pyclaw reads no "
                            "pictures of text in PDFs")
    head = f"[the user sent the PDF {label} ({total} page{'s' if total != 1 else ''}); " \
           "its text follows]"
    tail = (f"\n[... the rest of {label} was left out: it is longer than the {tokens:,} "
            "tokens a document may take]" if cut else "")
    return head + "\n" + "\n".join(pages) + tail
