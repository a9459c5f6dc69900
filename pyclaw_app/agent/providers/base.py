"""What the agent needs from an LLM provider, and nothing more.

Messages and tool calls are kept in one neutral shape here; each provider
translates them to its wire format (OpenAI ``tool_calls``/``role: tool``,
Anthropic ``tool_use``/``tool_result`` blocks) in one place, so a turn can
start on one provider and fail over to another in the middle of a tool loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pyclaw_app.attachments.types import ImageInput

__all__ = ["ChatMessage", "Completion", "DeltaCallback", "Provider", "ToolCall", "ToolSpec",
           "sized", "with_notes"]

DeltaCallback = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The model asked to run ``name`` with ``arguments`` (already parsed from JSON)."""

    id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    """Why the arguments could not be read (invalid JSON): the tool then reports it back."""


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool as offered to the model: ``parameters`` is a JSON Schema object."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: str  # "system" | "user" | "assistant" | "tool"
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    """Set on an assistant message that asked for tools."""
    tool_call_id: str | None = None
    """Set on a ``tool`` message: which call this is the result of."""
    is_error: bool = False
    """A ``tool`` result that reports a failure (Anthropic's ``is_error``)."""
    images: tuple[ImageInput, ...] = ()
    """Pictures of a ``user`` message: image input for a provider that takes it, each
    one's ``note`` appended to the text for one that does not."""


def with_notes(message: ChatMessage) -> str:
    """The message's text with a line per picture, for a model that takes no images."""
    return "\n".join(p for p in (message.content, *(i.note for i in message.images)) if p)


def sized(message: ChatMessage, limit: int) -> tuple[str, tuple[ImageInput, ...]]:
    """The message's text, with a note for each picture over ``limit`` bytes (what the API
    refuses: the whole call would fail), and the pictures that fit."""
    kept = tuple(i for i in message.images if len(i.data) <= limit)
    notes = [i.note for i in message.images if len(i.data) > limit]
    return "\n".join(p for p in (message.content, *notes) if p), kept


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    model: str
    input_tokens: int
    output_tokens: int
    tool_calls: tuple[ToolCall, ...] = ()
    stop_reason: str = "stop"


class Provider(Protocol):
    name: str
    model: str
    """The model used when the caller names none."""

    async def complete(self, messages: Sequence[ChatMessage],
                       on_delta: DeltaCallback | None = None, *, model: str | None = None,
                       tools: Sequence[ToolSpec] = (), allow_tools: bool = True,
                       max_tokens: int | None = None,
                       temperature: float | None = None) -> Completion:
        """Stream a reply, calling ``on_delta`` per text chunk; raise ProviderError on failure.

        ``tools`` are offered to the model; ``allow_tools=False`` keeps them declared (the
        history may hold tool calls) but tells the model to answer in text. ``temperature``
        None leaves the endpoint's default.
        """
        ...

    async def list_models(self) -> list[str]:
        """Model ids the endpoint offers; raise ProviderError when it cannot tell."""
        ...

    async def close(self) -> None: ...
