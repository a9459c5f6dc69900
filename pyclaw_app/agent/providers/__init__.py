"""LLM providers: OpenAI-compatible endpoints, Anthropic, and the built-in offline one.

The two SDK-backed providers are imported on first use (PEP 562): loading a
gateway whose config names only one kind must not import the other's SDK
(anthropic alone is ~80 MB and a second of start-up).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyclaw_app.agent.providers.base import (
    ChatMessage,
    Completion,
    DeltaCallback,
    Provider,
    ToolCall,
    ToolSpec,
)
from pyclaw_app.agent.providers.offline import OfflineProvider

if TYPE_CHECKING:
    from pyclaw_app.agent.providers.anthropic import AnthropicProvider
    from pyclaw_app.agent.providers.openai_compat import OpenAICompatProvider

__all__ = ["AnthropicProvider", "ChatMessage", "Completion", "DeltaCallback", "OfflineProvider",
           "OpenAICompatProvider", "Provider", "ToolCall", "ToolSpec"]

_LAZY = {"AnthropicProvider": "anthropic", "OpenAICompatProvider": "openai_compat"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{module}"), name)
