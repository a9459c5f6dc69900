"""The agent: one reply per inbound message, from history in SQLite through the failover chain.

A turn is: commands first (answered without the LLM); then the system prompt
for the channel, the long-term memory this chat may see (the person's in a direct
message, the group's in a group: ``identity.py``), the conversation's summary and
as many recent turns as fit
the budget (older ones are folded into the summary when they overflow); then
up to ``max_tool_rounds`` rounds of tool calls; then the answer. Every
provider call is recorded in ``llm_calls`` and reported through the hooks.

Streaming contract: ``hooks.on_delta`` gets the text as it is written, and
``Reply.text`` equals everything streamed since the last ``hooks.on_restart``.
A restart happens when streamed text is discarded: a call failed mid-stream
and the retry or fallback writes the answer afresh, or the model wrote a
preamble and then called tools. When a fallback model answered, a one-line
note saying so is streamed at the end of the reply, once per outage of the
conversation's primary model (it is said again after the primary has answered
in between).

Failures leave as :class:`ProviderError`; :func:`user_notice` words them for
the person in the chat, while the full error goes to the channel log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from pyclaw_app.agent.budget import BudgetExceeded, BudgetGuard, estimate_prompt
from pyclaw_app.agent.commands import COMMANDS, Commands, decode_choice, parse_command
from pyclaw_app.agent.conversations import Conversations, ConversationState
from pyclaw_app.agent.failover import Attempt, CircuitBreaker, Failover, Link, Sleep
from pyclaw_app.agent.identity import People
from pyclaw_app.agent.memory import (
    build_prompt,
    fit_history,
    summary_request,
    visible_history,
    with_memory,
    with_summary,
)
from pyclaw_app.agent.profiled import ProfileBook, TurnProfile, select_tools
from pyclaw_app.agent.prompts import render_system_prompt
from pyclaw_app.agent.providers import ChatMessage, OfflineProvider, Provider, ToolSpec
from pyclaw_app.agent.tokens import estimate_tokens
from pyclaw_app.agent.tools import Notes, ToolContext, ToolRegistry, builtin_tools
from pyclaw_app.agent.tools.registry import ToolSource
from pyclaw_app.agent.turn import CallRecord, Reply, TurnHooks
from pyclaw_app.attachments.types import MediaSource
from pyclaw_app.budgets import BudgetConfig
from pyclaw_app.config import AgentConfig, Config, ProviderConfig
from pyclaw_app.errors import ProviderError
from pyclaw_app.model import Inbound
from pyclaw_app.profiles import ProfileConfig, effective
from pyclaw_app.store.journal import HistoryTurn, Journal
from pyclaw_app.store.schedules import ScheduleStore
from pyclaw_app.store.usage import UsageLog

__all__ = ["Agent", "CallRecord", "Reply", "TurnHooks", "build_chain", "build_provider",
           "user_notice"]

_log = logging.getLogger(__name__)

HISTORY_EXCHANGES = 500
SUMMARY_MAX_TOKENS = 512
MIN_BUDGET = 200
MEMORY_SHARE = 4
"""Long-term memory (notes, other conversations' summaries) takes at most 1/4 of the budget."""
LOG_CLIP = 200


def _now() -> datetime:
    return datetime.now().astimezone()


def make_provider(config: ProviderConfig) -> Provider:
    key = config.api_key.get_secret_value() if config.api_key else None
    # Each SDK is imported only when a provider of its kind is configured.
    if config.kind == "anthropic":
        from pyclaw_app.agent.providers.anthropic import AnthropicProvider

        return AnthropicProvider(name=config.name, model=config.model, base_url=config.base_url,
                                 api_key=key, timeout=config.timeout,
                                 max_output_tokens=config.max_output_tokens,
                                 vision=config.takes_images())
    from pyclaw_app.agent.providers.openai_compat import OpenAICompatProvider

    return OpenAICompatProvider(name=config.name, model=config.model, base_url=config.base_url,
                                api_key=key, timeout=config.timeout,
                                vision=config.takes_images())


def _link(provider: Provider, config: ProviderConfig, model: str | None = None) -> Link:
    return Link(provider, model or config.model, max_retries=config.max_retries,
                tools=config.tools,
                max_output_tokens=config.max_output_tokens if config.kind == "anthropic"
                else None,
                context_window=config.context_window, prices=dict(config.prices))


def build_chain(config: Config, *, breaker: CircuitBreaker | None = None,
                sleep: Sleep | None = None, profile: str | None = None,
                instances: dict[str, Provider] | None = None) -> Failover:
    """The failover chain: ``agent.provider`` (or the first provider), then ``agent.fallbacks``;
    with ``profile``, that profile's provider, model and fallbacks over them. Chains given
    the same ``instances`` share their provider clients.

    With no provider configured the chain is the offline provider alone.
    """
    agent = config.agent
    chosen = effective(agent, profile, config.profiles.get(profile or ""), "")
    by_name = {p.name: p for p in config.providers}
    primary = by_name.get(chosen.provider) if chosen.provider else next(
        iter(config.providers), None)
    if primary is None:
        if chosen.provider:
            _log.error("agent.provider %r is not a configured provider", chosen.provider)
        offline = OfflineProvider(str(config.path) if config.path else "pyclaw.yaml")
        return Failover([Link(offline, offline.model, max_retries=0, tools=False)])
    instances = {} if instances is None else instances

    def provider(pc: ProviderConfig) -> Provider:
        if pc.name not in instances:
            instances[pc.name] = make_provider(pc)
        return instances[pc.name]

    links = [_link(provider(primary), primary, chosen.model)]
    for fallback in chosen.fallbacks:
        pc = by_name.get(fallback.provider)
        if pc is None:
            _log.error("fallback provider %r is not configured; skipped", fallback.provider)
            continue
        link = _link(provider(pc), pc, fallback.model)
        if all(existing.key != link.key for existing in links):
            links.append(link)
    breaker = breaker or CircuitBreaker(agent.breaker_failures, agent.breaker_cooldown)
    return Failover(links, breaker=breaker, retry_base=agent.retry_base,
                    retry_max_wait=agent.retry_max_wait, sleep=sleep or asyncio.sleep)


def build_profile_chains(config: Config, default: Failover) -> dict[str, Failover]:
    """A chain for each profile that names its own provider, model or fallbacks. They share
    the default chain's circuit breaker and clients: a failing model rests for everyone. A
    profile naming an unknown provider keeps the default chain (a config error says so)."""
    known = {p.name for p in config.providers}
    instances = dict(default.providers())
    return {name: build_chain(config, breaker=default.breaker, profile=name,
                              instances=instances)
            for name, profile in config.profiles.items()
            if profile.own_chain and (profile.provider is None or profile.provider in known)}


def build_provider(config: Config) -> Provider:
    """Only the primary provider (for callers that want one); :func:`build_chain` for all."""
    wanted = config.agent.provider
    chosen = next((p for p in config.providers if wanted in (None, p.name)), None)
    if chosen is None:
        return OfflineProvider(str(config.path) if config.path else "pyclaw.yaml")
    return make_provider(chosen)


def describe_attachments(inbound: Inbound) -> str:
    """Tell the model what arrived when the user sent media without words."""
    kinds = ", ".join(a.kind + (f" ({a.name})" if a.name else "") for a in inbound.attachments)
    return f"[The user sent {kinds} without any text. You cannot see it; say so briefly.]"


@dataclass
class _Turn:
    """Book-keeping of one turn: its hooks, token totals and what is on screen."""

    inbound: Inbound
    journal_id: int
    hooks: TurnHooks
    profile: TurnProfile
    input_tokens: int = 0
    output_tokens: int = 0
    shown: bool = False

    def log(self, level: str, message: str) -> None:
        if self.hooks.on_log is not None:
            self.hooks.on_log(level, message)
        else:
            _log.log(logging.getLevelNamesMapping().get(level.upper(), logging.INFO), "%s",
                     message)

    def delta(self, text: str) -> None:
        self.shown = True
        if self.hooks.on_delta is not None:
            self.hooks.on_delta(text)

    def restart(self) -> None:
        if self.shown and self.hooks.on_restart is not None:
            self.hooks.on_restart()
        self.shown = False


class Agent:
    """The LLM loop. Build it with :meth:`from_config`; the constructor is for tests and
    embedders that bring their own chain or a single provider."""

    def __init__(self, chain: Failover | Provider, journal: Journal, usage: UsageLog, *,
                 system_prompt: str | None = None, history_tokens: int | None = None,
                 config: AgentConfig | None = None, tools: ToolRegistry | None = None,
                 now: Callable[[], datetime] = _now, budget: BudgetGuard | None = None,
                 tool_source: ToolSource | None = None,
                 media: MediaSource | None = None,
                 profiles: Mapping[str, ProfileConfig] | None = None,
                 chains: Mapping[str, Failover] | None = None) -> None:
        overrides = {k: v for k, v in (("system_prompt", system_prompt),
                                       ("history_tokens", history_tokens)) if v is not None}
        self.config = (config or AgentConfig()).model_copy(update=overrides)
        if not isinstance(chain, Failover):
            chain = Failover([Link(chain, chain.model, max_retries=0,
                                   tools=not isinstance(chain, OfflineProvider))])
        self.failover = chain
        self.journal = journal
        self.usage = usage
        self.conversations = Conversations(journal.db)
        self.people = People(journal.db, clock=lambda: self.now().timestamp())
        """Linked accounts and the long-term memory a turn may see (``agent/identity.py``)."""
        self.schedules = ScheduleStore(journal.db)
        self.tools = tools if tools is not None else select_tools(
            builtin_tools(), self.config.tools, "agent.tools")
        self.tool_source = tool_source
        """Tools beyond ``tools`` that come and go (the gateway's MCP servers)."""
        self.media = media
        """The gateway's attachment pipeline: pictures, voice notes, documents."""
        self.now = now
        self.budget = budget or BudgetGuard(BudgetConfig(), usage)
        self.profiles = ProfileBook(self.config, profiles or {}, chain, chains or {},
                                    tools=self.tools,
                                    available=tools if tools is not None else builtin_tools())
        """Per channel or chat settings; ``chains`` are those of profiles with their own."""
        self._commands: dict[str | None, Commands] = {}

    @classmethod
    def from_config(cls, config: Config, store: _StoreLike,
                    now: Callable[[], datetime] = _now,
                    tool_source: ToolSource | None = None,
                    media: MediaSource | None = None) -> Agent:
        """The agent the gateway runs: chain, prompts, tools, limits and budgets from
        ``config``; ``now`` is the clock of prompts and budget periods."""
        chain = build_chain(config)
        return cls(chain, store.journal, store.usage, config=config.agent, now=now,
                   budget=BudgetGuard(config.budgets, store.usage, clock=now),
                   tool_source=tool_source, media=media, profiles=config.profiles,
                   chains=build_profile_chains(config, chain))

    @staticmethod
    def commands() -> list[tuple[str, str]]:
        """(name, description) of every chat command, for a platform's command menu."""
        return list(COMMANDS)

    async def reply(self, inbound: Inbound, journal_id: int,
                    hooks: TurnHooks | None = None) -> Reply:
        """Answer ``inbound``; raises ProviderError (already worded for the channel log)."""
        turn = _Turn(inbound, journal_id, hooks or TurnHooks(),
                     self.profiles.for_inbound(inbound))
        started = time.perf_counter()
        command = parse_command(inbound.text)
        if command is not None:
            text = await self._commands_for(turn.profile).run(command, inbound, journal_id)
            turn.delta(text)
            return Reply(text, "command", "", 0, 0, (time.perf_counter() - started) * 1000)
        conv = inbound.address.key
        state = await self.conversations.get(conv)
        primary = self._primary(state, turn)
        tools, tools_note = self._turn_tools(inbound, turn.profile)
        specs = tools.specs()
        system = render_system_prompt(turn.profile.system_prompt, {}, inbound, self.now()) \
            + turn.profile.language_note + tools_note
        user_text = inbound.text if inbound.text.strip() else describe_attachments(inbound)
        history = await self.journal.history(conv, before_id=journal_id,
                                             limit=HISTORY_EXCHANGES,
                                             after_id=state.summary_until)
        turns = visible_history(history, lambda t: parse_command(t) is not None)
        budget = self._budget(turn.profile.failover, primary, specs)
        media = None
        if self.media is not None:
            media, turns = await self.media.prepare(inbound, journal_id, turns, turn.log,
                                                    budget // 2)
            if media.nothing_to_answer(inbound.text):
                turn.delta(media.notice)  # only unreadable files: the reason is the answer
                return Reply(media.notice, "attachments", "", 0, 0,
                             (time.perf_counter() - started) * 1000)
            if media.texts or media.images:
                user_text = media.user_text(inbound.text)
        scope = await self.people.scope(inbound)
        system = with_memory(system, await self.people.recall(scope, conv),
                             budget // MEMORY_SHARE)
        summary, kept = await self._fit(turn, state, primary, system, turns, user_text, budget)
        messages = build_prompt(with_summary(system, summary), kept, user_text)
        if media is not None and media.images:
            messages[-1] = replace(messages[-1], images=media.images)
        text, link, fallback = await self._answer(turn, messages, primary, specs, tools,
                                                  self.people.notes_for(scope))
        if fallback and not state.fallback_notified:
            note = (f"\n\n(Answered by {link.key}: {primary.key} is unavailable right now.)")
            turn.delta(note)
            text += note
            await self.conversations.set_fallback_notified(conv, True)
        elif not fallback and state.fallback_notified:
            await self.conversations.set_fallback_notified(conv, False)
        if media is not None and media.problems:
            note = f"\n\n({media.notice})"
            turn.delta(note)
            text += note
        return Reply(text, link.provider.name, link.model, turn.input_tokens,
                     turn.output_tokens, (time.perf_counter() - started) * 1000)

    def _commands_for(self, profile: TurnProfile) -> Commands:
        """The chat commands as this profile sees them (its chain for /model and /status)."""
        commands = self._commands.get(profile.name)
        if commands is None:
            commands = self._commands[profile.name] = Commands(
                journal=self.journal, conversations=self.conversations,
                failover=profile.failover, usage=self.usage,
                tool_names=profile.tools.names(), people=self.people, profile=profile.name)
        return commands

    def _turn_tools(self, inbound: Inbound, profile: TurnProfile) -> tuple[ToolRegistry, str]:
        """The profile's built-in tools plus the tool source's it allows for this turn, and
        a line for the system prompt naming those that are missing right now."""
        if self.tool_source is None or profile.mcp == ():
            return profile.tools, ""
        note = self.tool_source.unavailable_note(inbound, profile.mcp_servers)
        return (profile.tools.extended(profile.mcp_tools(self.tool_source.tools_for(inbound))),
                f"\n\n{note}" if note else "")

    def _primary(self, state: ConversationState, turn: _Turn) -> Link:
        chain = turn.profile.failover
        choice = decode_choice(state.model)
        if choice is None:
            return chain.primary
        link = chain.link_for(*choice)
        if link is None:
            turn.log("warning", f"the model chosen with /model ({choice[0]}:{choice[1]}) is no "
                                "longer configured; using the default")
            return chain.primary
        return link

    def _budget(self, chain: Failover, primary: Link, specs: Sequence[ToolSpec]) -> int:
        """Tokens for system + history + message: the configured budget, or less when a
        model of the chain has a smaller context window than that plus its reply."""
        budget = self.config.history_tokens
        overhead = estimate_tokens(json.dumps([s.parameters for s in specs])) if specs else 0
        for link in chain.chain(primary):
            if link.context_window:
                reply = link.max_output_tokens or 1024
                budget = min(budget, link.context_window - reply - overhead)
        return max(budget, MIN_BUDGET)

    async def _fit(self, turn: _Turn, state: ConversationState, primary: Link, system: str,
                   turns: list[HistoryTurn], user_text: str,
                   budget: int) -> tuple[str | None, list[HistoryTurn]]:
        """The summary and the turns for this prompt, compacting older turns if they overflow.

        Compaction folds into the summary enough old turns that the rest fills about half
        the budget, so it runs once per half-budget of conversation, not on every message.
        """
        fit = fit_history(with_summary(system, state.summary), turns, user_text, budget)
        if not fit.dropped:
            return state.summary, fit.kept
        if not self.config.compaction:
            turn.log("info", f"{len(fit.dropped)} older messages left out of the prompt "
                             "(over the token budget)")
            return state.summary, fit.kept
        half = fit_history(with_summary(system, state.summary), turns, user_text, budget // 2)
        folded = half.dropped
        # A quarter of the budget at most, so the summary plus the turns kept beside it
        # leave room for the conversation to grow before the next compaction.
        summary_tokens = min(SUMMARY_MAX_TOKENS, budget // 4)
        request = summary_request(state.summary, folded, budget)
        try:
            async with self.budget.hold(turn.inbound, estimate_prompt(request), primary):
                answer = await turn.profile.failover.complete(
                    request, primary=primary,
                    on_attempt=lambda a: self._record(turn, a), on_log=turn.log,
                    max_tokens=summary_tokens)
        except ProviderError as exc:
            turn.log("warning", f"could not summarise older messages ({exc}); "
                                f"{len(fit.dropped)} left out of the prompt")
            return state.summary, fit.kept
        # Clipped here too: a server that ignores max_tokens (or a model that echoes its
        # prompt) would otherwise grow the summary with every compaction, until it alone
        # overflows the budget and every message compacts again (seen in bench.soak).
        summary = answer.completion.text.strip()[:summary_tokens * 4]
        await self.conversations.set_summary(turn.inbound.address.key, summary,
                                             folded[-1].inbound_id)
        await self.people.summarised(turn.inbound)
        turn.log("info", f"compacted {len(folded)} older messages into a summary of "
                         f"~{estimate_tokens(summary)} tokens (by {answer.link.key})")
        refit = fit_history(with_summary(system, summary), half.kept, user_text, budget)
        return summary, refit.kept

    async def _answer(self, turn: _Turn, messages: list[ChatMessage], primary: Link,
                      specs: Sequence[ToolSpec], tools: ToolRegistry,
                      notes: Notes) -> tuple[str, Link, bool]:
        """Call the chain, run the tools it asks for, until it answers in text."""
        ctx = ToolContext(turn.inbound, notes, self.now, self.schedules, turn.hooks.files)
        rounds = self.config.max_tool_rounds
        for round_no in range(rounds + 1):
            allow = round_no < rounds
            async with self.budget.hold(turn.inbound, estimate_prompt(messages, specs), primary):
                answer = await turn.profile.failover.complete(
                    messages, primary=primary, on_delta=turn.delta,
                    on_attempt=lambda a: self._record(turn, a), on_log=turn.log, tools=specs,
                    allow_tools=allow, temperature=turn.profile.temperature)
            completion = answer.completion
            if not completion.tool_calls:
                return completion.text, answer.link, answer.fallback
            if not allow:
                break
            turn.restart()
            messages.append(ChatMessage("assistant", completion.text,
                                        tool_calls=completion.tool_calls))
            for call in completion.tool_calls:
                result = await tools.run(call, ctx)
                arguments = json.dumps(call.arguments, ensure_ascii=False)
                turn.log("warning" if result.is_error else "info",
                         f"tool {call.name}({_clip(arguments)}) -> {_clip(result.content)}")
                messages.append(ChatMessage("tool", result.content, tool_call_id=call.id,
                                            is_error=result.is_error))
        turn.log("warning", f"stopped after {rounds} rounds of tool calls without an answer")
        text = (completion.text or f"I used my tools {rounds} times without reaching an answer. "
                "Could you rephrase or narrow the question?")
        if not completion.text:
            turn.restart()
            turn.delta(text)
        return text, answer.link, answer.fallback

    def _record(self, turn: _Turn, attempt: Attempt) -> None:
        call = attempt.record
        if call.error is None:
            turn.input_tokens += call.input_tokens
            turn.output_tokens += call.output_tokens
            self.budget.charge(turn.inbound, call.input_tokens + call.output_tokens, call.cost)
        elif attempt.streamed:
            turn.restart()
        self.usage.record(message_id=turn.journal_id, channel=turn.inbound.address.channel,
                          provider=call.provider, model=call.model,
                          input_tokens=call.input_tokens, output_tokens=call.output_tokens,
                          latency_ms=call.latency_ms, cost=call.cost, error=call.error)
        if turn.hooks.on_call is not None:
            turn.hooks.on_call(call)

    async def close(self) -> None:
        providers = {}
        for chain in self.profiles.failovers():  # profiles' chains share their clients
            providers.update({id(p): p for p in chain.providers().values()})
        for provider in providers.values():
            await provider.close()


class _StoreLike(Protocol):
    """What :meth:`Agent.from_config` needs of :class:`pyclaw_app.store.Store`."""

    journal: Journal
    usage: UsageLog


def _clip(text: str) -> str:
    return text if len(text) <= LOG_CLIP else text[:LOG_CLIP] + "…"


def user_notice(error: ProviderError) -> str:
    """What the person in the chat reads when no answer could be made."""
    if isinstance(error, BudgetExceeded):
        return error.notice
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
