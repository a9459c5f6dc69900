"""The LLM loop: providers, memory budget and the agent that ties them to the journal."""

from pyclaw_app.agent.agent import (
    Agent,
    CallRecord,
    Reply,
    TurnHooks,
    build_provider,
    user_notice,
)

__all__ = ["Agent", "CallRecord", "Reply", "TurnHooks", "build_provider", "user_notice"]
