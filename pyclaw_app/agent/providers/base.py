"""What the agent needs from an LLM provider, and nothing more."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["ChatMessage", "Completion", "DeltaCallback", "Provider"]

DeltaCallback = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    model: str
    input_tokens: int
    output_tokens: int


class Provider(Protocol):
    name: str
    model: str

    async def complete(self, messages: list[ChatMessage],
                       on_delta: DeltaCallback | None = None) -> Completion:
        """Stream a reply, calling ``on_delta`` per text chunk; raise ProviderError on failure."""
        ...

    async def close(self) -> None: ...
