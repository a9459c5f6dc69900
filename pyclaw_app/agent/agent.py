"""Agent v1: one reply per inbound message, from history in SQLite and one provider.

Failures are turned into a short notice for the user (what went wrong, that
the message is kept) while the full error goes to the channel log; the caller
marks the journal row ``failed`` so it can be retried.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pyclaw_app.agent.memory import build_prompt
from pyclaw_app.agent.providers import (
    DeltaCallback,
    OfflineProvider,
    OpenAICompatProvider,
    Provider,
)
from pyclaw_app.config import Config
from pyclaw_app.errors import ProviderError
from pyclaw_app.model import Inbound
from pyclaw_app.store.journal import Journal
from pyclaw_app.store.usage import UsageLog

__all__ = ["Agent", "CallRecord", "Reply", "TurnHooks", "build_provider", "user_notice"]


@dataclass(frozen=True, slots=True)
class Reply:
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
    on_call: Callable[[CallRecord], None] | None = field(default=None)
    on_log: Callable[[str, str], None] | None = field(default=None)
    """(level, message) for the channel log: compaction, tool calls, failover."""


def build_provider(config: Config) -> Provider:
    """The configured provider (by ``agent.provider`` or the first), else the offline one."""
    wanted = config.agent.provider
    chosen = next((p for p in config.providers if wanted in (None, p.name)), None)
    if chosen is None:
        return OfflineProvider(str(config.path) if config.path else "pyclaw.yaml")
    return OpenAICompatProvider(
        name=chosen.name, model=chosen.model, base_url=chosen.base_url,
        api_key=chosen.api_key.get_secret_value() if chosen.api_key else None,
        timeout=chosen.timeout, max_retries=chosen.max_retries)


def describe_attachments(inbound: Inbound) -> str:
    """Tell the model what arrived when the user sent media without words."""
    kinds = ", ".join(a.kind + (f" ({a.name})" if a.name else "") for a in inbound.attachments)
    return f"[The user sent {kinds} without any text. You cannot see it; say so briefly.]"


class Agent:
    def __init__(self, provider: Provider, journal: Journal, usage: UsageLog, *,
                 system_prompt: str, history_tokens: int) -> None:
        self.provider = provider
        self.journal = journal
        self.usage = usage
        self.system_prompt = system_prompt
        self.history_tokens = history_tokens

    async def reply(self, inbound: Inbound, journal_id: int,
                    hooks: TurnHooks | None = None) -> Reply:
        """Ask the provider; raises ProviderError (already worded for the channel log).

        Every call is recorded in ``llm_calls`` and reported through ``hooks.on_call``.
        """
        hooks = hooks or TurnHooks()
        text = inbound.text if inbound.text.strip() else describe_attachments(inbound)
        history = await self.journal.history(inbound.address.key, before_id=journal_id)
        messages = build_prompt(self.system_prompt, history, text, self.history_tokens)
        started = time.perf_counter()
        try:
            completion = await self.provider.complete(messages, hooks.on_delta)
            if not completion.text.strip():
                raise ProviderError(f"{self.provider.name} returned an empty reply",
                                    provider=self.provider.name, retryable=True)
        except ProviderError as exc:
            self._record(inbound, journal_id, hooks, CallRecord(
                self.provider.name, self.provider.model,
                latency_ms=(time.perf_counter() - started) * 1000, error=str(exc)))
            raise
        latency = (time.perf_counter() - started) * 1000
        self._record(inbound, journal_id, hooks, CallRecord(
            self.provider.name, completion.model, completion.input_tokens,
            completion.output_tokens, latency))
        return Reply(completion.text, self.provider.name, completion.model,
                     completion.input_tokens, completion.output_tokens, latency)

    def _record(self, inbound: Inbound, journal_id: int, hooks: TurnHooks,
                call: CallRecord) -> None:
        self.usage.record(message_id=journal_id, channel=inbound.address.channel,
                          provider=call.provider, model=call.model,
                          input_tokens=call.input_tokens, output_tokens=call.output_tokens,
                          latency_ms=call.latency_ms, cost=call.cost, error=call.error)
        if hooks.on_call is not None:
            hooks.on_call(call)

    async def close(self) -> None:
        await self.provider.close()


def user_notice(error: ProviderError) -> str:
    """What the person in the chat reads when no answer could be made."""
    if error.status in (401, 403):
        reason = "the AI provider rejected pyclaw's API key"
    elif error.status == 429:
        reason = "the AI provider is rate-limiting us"
    elif error.status is not None and error.status >= 500:
        reason = "the AI provider had an internal error"
    else:
        reason = "the AI provider could not be reached"
    return (f"Sorry, I can't answer right now: {reason}. Your message is saved and can be "
            "retried; the details are in pyclaw's channel log.")
