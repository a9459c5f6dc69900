"""The LLM loop: providers, failover, memory budget, tools, commands, and the agent."""

from pyclaw_app.agent.agent import (
    Agent,
    CallRecord,
    Reply,
    TurnHooks,
    build_chain,
    build_provider,
    user_notice,
)
from pyclaw_app.agent.failover import CircuitBreaker, Failover, Link

__all__ = ["Agent", "CallRecord", "CircuitBreaker", "Failover", "Link", "Reply", "TurnHooks",
           "build_chain", "build_provider", "user_notice"]
