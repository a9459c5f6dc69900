"""LLM providers: OpenAI-compatible endpoints, Anthropic, and the built-in offline one."""

from __future__ import annotations

from pyclaw_app.agent.providers.anthropic import AnthropicProvider
from pyclaw_app.agent.providers.base import (
    ChatMessage,
    Completion,
    DeltaCallback,
    Provider,
    ToolCall,
    ToolSpec,
)
from pyclaw_app.agent.providers.offline import OfflineProvider
from pyclaw_app.agent.providers.openai_compat import OpenAICompatProvider

__all__ = ["AnthropicProvider", "ChatMessage", "Completion", "DeltaCallback", "OfflineProvider",
           "OpenAICompatProvider", "Provider", "ToolCall", "ToolSpec"]
