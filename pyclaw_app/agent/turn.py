"""The values a turn hands back to the gateway, and the hooks through which it watches one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyclaw_app.agent.providers.base import DeltaCallback

if TYPE_CHECKING:
    from pyclaw_app.agent.tools.registry import FileSender

__all__ = ["CallRecord", "Reply", "TurnHooks"]


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer to one inbound message.

    Tokens are the turn's totals over every successful call (tool rounds,
    compaction); ``provider``/``model`` name the one that wrote the answer
    (``"command"`` and ``""`` for a command handled without the LLM).
    """

    text: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    latency_ms: float


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One provider call, successful or not (a turn may make several: tools, failover)."""

    provider: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    latency_ms: float = 0.0
    cost: float = 0.0
    error: str | None = None


@dataclass(slots=True)
class TurnHooks:
    """How the gateway watches a turn without the agent knowing about the bus."""

    on_delta: DeltaCallback | None = None
    """Each streamed text chunk, in order. ``Reply.text`` equals the concatenation of the
    chunks streamed since the last ``on_restart`` (or since the start)."""
    on_call: Callable[[CallRecord], None] | None = field(default=None)
    on_log: Callable[[str, str], None] | None = field(default=None)
    """(level, message) for the channel log: compaction, tool calls, failover."""
    on_restart: Callable[[], None] | None = field(default=None)
    """Text streamed so far is discarded: a call failed mid-stream and another one answers,
    or the model wrote a preamble before calling tools. A live view clears its partial
    reply; without this hook the view simply shows the discarded text before the answer."""
    files: FileSender | None = field(default=None)
    """Sends files to this message's conversation (the ``send_file`` tool); None: none can
    be sent from this turn."""
