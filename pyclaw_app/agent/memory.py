"""Fit a conversation into the model's budget: system prompt and newest turns always win."""

from __future__ import annotations

from collections.abc import Sequence

from pyclaw_app.agent.providers.base import ChatMessage
from pyclaw_app.store.journal import HistoryTurn

__all__ = ["build_prompt", "estimate_tokens"]


def estimate_tokens(text: str) -> int:
    """About four characters a token for English, and never zero for non-empty text.

    A real tokenizer would need a vocabulary download per model; the budget only
    has to be safely conservative, so a cheap estimate with a per-message
    overhead is enough.
    """
    return (len(text) + 3) // 4 + 4


def build_prompt(system: str, history_newest_first: Sequence[HistoryTurn], user_text: str,
                 budget_tokens: int) -> list[ChatMessage]:
    """System prompt + as many past turns (newest first) as fit + the new user message."""
    used = estimate_tokens(system) + estimate_tokens(user_text)
    kept: list[ChatMessage] = []
    for turn in history_newest_first:
        cost = estimate_tokens(turn.text)
        if used + cost > budget_tokens:
            break
        used += cost
        kept.append(ChatMessage(turn.role, turn.text))
    kept.reverse()
    # A history starting with an assistant turn confuses some chat templates.
    while kept and kept[0].role == "assistant":
        kept.pop(0)
    return [ChatMessage("system", system), *kept, ChatMessage("user", user_text)]
