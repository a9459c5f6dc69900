"""LLM providers: OpenAI-compatible endpoints and the built-in offline one."""

from __future__ import annotations

from pyclaw_app.agent.providers.base import ChatMessage, Completion, DeltaCallback, Provider
from pyclaw_app.agent.providers.offline import OfflineProvider
from pyclaw_app.agent.providers.openai_compat import OpenAICompatProvider

__all__ = ["ChatMessage", "Completion", "DeltaCallback", "OfflineProvider", "OpenAICompatProvider",
           "Provider"]
