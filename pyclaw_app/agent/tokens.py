"""A cheap, deliberately conservative token estimate shared by the budget and the providers."""

from __future__ import annotations

__all__ = ["estimate_tokens"]


def estimate_tokens(text: str) -> int:
    """About four characters a token for English, and never zero for non-empty text.

    A real tokenizer would need a vocabulary download per model; the budget only
    has to be safely conservative, so a cheap estimate with a per-message
    overhead is enough.
    """
    return (len(text) + 3) // 4 + 4
