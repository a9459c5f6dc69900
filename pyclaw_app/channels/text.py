"""Cutting a reply into parts a platform accepts, measured the way the platform counts."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["split_text", "utf16_len"]


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def utf8_len(text: str) -> int:
    """Bytes of UTF-8: how Webex, WeChat and WeCom measure a message."""
    return len(text.encode("utf-8", "surrogatepass"))


_BOUNDARIES: tuple[tuple[str, ...], ...] = (
    ("\n\n",),
    ("\n",),
    (". ", "! ", "? ", "。", "！", "？"),
    (" ", "\t"),
)


def split_text(text: str, limit: int, length: Callable[[str], int] = len) -> list[str]:
    """Split ``text`` into parts no longer than ``limit`` whose concatenation is ``text``.

    Cuts prefer paragraph, then line, then sentence, then word boundaries and
    fall back to a hard cut (never inside a surrogate pair). Separators stay on
    the end of the part before the cut, so ``"".join(parts) == text`` always.
    """
    if limit < 2:
        raise ValueError("limit must be at least 2")
    parts: list[str] = []
    rest = text
    while length(rest) > limit:
        window = _prefix_within(rest, limit, length)
        cut = _best_cut(window)
        parts.append(rest[:cut])
        rest = rest[cut:]
    if rest or not parts:
        parts.append(rest)
    return parts


def _prefix_within(text: str, limit: int, length: Callable[[str], int]) -> str:
    """Longest prefix of ``text`` whose platform length is within ``limit``."""
    if length is len:
        return text[:limit]
    lo, hi = 0, min(len(text), limit)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if length(text[:mid]) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo]


def _best_cut(window: str) -> int:
    floor = len(window) // 4  # a cut that leaves a tiny part is worse than a word cut
    for seps in _BOUNDARIES:
        best = max((window.rfind(s) + len(s) for s in seps if window.rfind(s) > 0), default=-1)
        if best > floor:
            return best
    return max(len(window), 1)
