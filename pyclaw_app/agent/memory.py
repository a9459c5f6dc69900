"""Fit a conversation into the model's budget: system prompt and newest turns always win.

The prompt is the system prompt (with the running summary of older turns,
when there is one), then as many past turns as fit, newest kept first, then
the new message. What does not fit is handed back so the agent can fold it
into the summary (compaction) instead of silently forgetting it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from pyclaw_app.agent.providers.base import ChatMessage
from pyclaw_app.agent.tokens import estimate_tokens
from pyclaw_app.store.journal import HistoryTurn

__all__ = ["Fit", "LongTermMemory", "build_prompt", "estimate_tokens", "fit_history",
           "summary_request", "visible_history", "with_memory", "with_summary"]

SUMMARY_HEADER = "Summary of the earlier conversation:"
MAX_TURN_CHARS_IN_SUMMARY = 2000


@dataclass(frozen=True, slots=True)
class Fit:
    kept: list[HistoryTurn]
    """Oldest first: the turns that go into the prompt."""
    dropped: list[HistoryTurn]
    """Oldest first: the older turns that did not fit."""


def with_summary(system: str, summary: str | None) -> str:
    return f"{system}\n\n{SUMMARY_HEADER}\n{summary}" if summary else system


PERSON_MEMORY_HEADER = ("Long-term memory about this person, from their direct messages with "
                        "you (on every account they linked):")
GROUP_MEMORY_HEADER = "Long-term memory of this group chat:"
MAX_NOTE_CHARS_IN_PROMPT = 500
MAX_SUMMARY_CHARS_IN_PROMPT = 2000


@dataclass(frozen=True, slots=True)
class LongTermMemory:
    """What outlives a conversation: notes, and (for a person) the summaries of their other
    direct conversations. Which of them a turn may see is decided in ``agent/identity.py``."""

    group: bool
    notes: Sequence[tuple[int, str, float]] = ()
    """(id, text, saved at), newest first."""
    summaries: Sequence[tuple[str, str]] = ()
    """(channel, summary) of the person's other direct conversations, newest first."""


def with_memory(system: str, memory: LongTermMemory, budget_tokens: int) -> str:
    """``system`` with the long-term memory after it, newest first, within ``budget_tokens``
    (what does not fit is left out: the tools still find every note)."""
    notes = [f"- (note {note_id}, {_day(saved)}) "
             + text[:MAX_NOTE_CHARS_IN_PROMPT].replace("\n", " ")
             for note_id, text, saved in memory.notes]
    summaries = [f"- on {channel}: {summary[:MAX_SUMMARY_CHARS_IN_PROMPT]}"
                 for channel, summary in memory.summaries]
    header = GROUP_MEMORY_HEADER if memory.group else PERSON_MEMORY_HEADER
    left = budget_tokens - estimate_tokens(header)
    sections: list[str] = []
    for title, items in (("Saved notes (newest first; recall_notes finds older ones):", notes),
                         ("Earlier conversations with them:", summaries)):
        kept: list[str] = []
        cost = estimate_tokens(title)
        for item in items:
            cost += estimate_tokens(item)
            if cost > left:
                break
            kept.append(item)
        if kept:
            sections.append("\n".join((title, *kept)))
            left -= sum(estimate_tokens(line) for line in (title, *kept))
    if not sections:
        return system
    return f"{system}\n\n{header}\n" + "\n".join(sections)


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d")


def visible_history(history_newest_first: Sequence[HistoryTurn],
                    is_command: Callable[[str], bool]) -> list[HistoryTurn]:
    """Oldest first, without commands and the answers to them: pyclaw answered those, not
    the model, and a ``/status`` report in the prompt only distracts it.

    ``history_newest_first`` is :meth:`Journal.history`: whole exchanges, each answer
    before its question, so reversed they alternate question, answer.
    """
    commands = {t.inbound_id for t in history_newest_first
                if t.role == "user" and is_command(t.text)}
    return [t for t in reversed(history_newest_first) if t.inbound_id not in commands]


def fit_history(system: str, turns: Sequence[HistoryTurn], user_text: str,
                budget_tokens: int) -> Fit:
    """Keep the newest turns (oldest first in ``turns``) that fit beside system and message."""
    used = estimate_tokens(system) + estimate_tokens(user_text)
    start = len(turns)
    while start > 0:
        cost = estimate_tokens(turns[start - 1].text)
        if used + cost > budget_tokens:
            break
        used += cost
        start -= 1
    kept, dropped = list(turns[start:]), list(turns[:start])
    # A history starting with an assistant turn confuses some chat templates; and so
    # ``dropped`` is whole exchanges, which is what the summary's end point counts.
    while kept and kept[0].role == "assistant":
        dropped.append(kept.pop(0))
    return Fit(kept, dropped)


def build_prompt(system: str, kept: Sequence[HistoryTurn], user_text: str) -> list[ChatMessage]:
    return [ChatMessage("system", system), *(ChatMessage(t.role, t.text) for t in kept),
            ChatMessage("user", user_text)]


def summary_request(previous: str | None, turns: Sequence[HistoryTurn],
                    budget_tokens: int) -> list[ChatMessage]:
    """The prompt that asks a model to fold ``turns`` into the running summary.

    Long turns are clipped and, if the lot still exceeds the budget, the oldest
    turns are left out: the summary is a memory aid, not a transcript.
    """
    lines = [f"{'User' if t.role == 'user' else 'Assistant'}: "
             f"{t.text[:MAX_TURN_CHARS_IN_SUMMARY]}" for t in turns]
    used = 0
    start = len(lines)
    while start > 0 and used + estimate_tokens(lines[start - 1]) <= budget_tokens:
        used += estimate_tokens(lines[start - 1])
        start -= 1
    transcript = "\n".join(lines[start:])
    earlier = f"Summary so far:\n{previous}\n\n" if previous else ""
    return [
        ChatMessage("system", "You maintain the memory of a chat between a user and an "
                    "assistant. Write a concise summary (at most 200 words) of the facts, "
                    "names, preferences, decisions and open questions worth remembering. "
                    "Write only the summary."),
        ChatMessage("user", f"{earlier}New part of the conversation:\n{transcript}\n\n"
                    "Updated summary:"),
    ]
