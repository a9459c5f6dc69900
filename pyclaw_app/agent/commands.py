"""Chat commands answered before (and without) the LLM: /help, /reset, /model, /status, /usage,
/link and /unlink (one memory for a person's accounts, ``agent/identity.py``).

A command is the first word of a message, case-insensitive, with a Telegram
style ``@botname`` suffix allowed (``/help@my_bot``). Unknown slash-words go to
the model as ordinary text. ``/start`` (what Telegram sends on first contact)
answers like ``/help``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pyclaw_app.agent.conversations import Conversations, ConversationState
from pyclaw_app.agent.failover import Failover, Link
from pyclaw_app.agent.identity import People
from pyclaw_app.errors import ProviderError
from pyclaw_app.model import Inbound
from pyclaw_app.store.journal import Journal
from pyclaw_app.store.usage import UsageLog, UsageTotals

__all__ = ["COMMANDS", "Commands", "ParsedCommand", "decode_choice", "encode_choice",
           "parse_command"]

_log = logging.getLogger(__name__)

COMMANDS: tuple[tuple[str, str], ...] = (
    ("help", "What I can do and the commands I know"),
    ("reset", "Forget this conversation and start fresh"),
    ("model", "Show or choose the AI model: /model [name]"),
    ("status", "Model, failover chain, memory and tools"),
    ("usage", "Tokens and cost of this conversation"),
    ("link", "Link your accounts on other channels: one memory for you"),
    ("unlink", "Stop sharing memory with your other linked accounts"),
)
_ALIASES = {"start": "help"}
MAX_LISTED_MODELS = 25


@dataclass(frozen=True, slots=True)
class ParsedCommand:
    name: str
    argument: str


def parse_command(text: str) -> ParsedCommand | None:
    stripped = text.strip()
    if not stripped.startswith("/"):
        return None
    word, _, rest = stripped.partition(" ")
    name = word[1:].split("@", 1)[0].lower()
    name = _ALIASES.get(name, name)
    if name not in dict(COMMANDS):
        return None
    return ParsedCommand(name, rest.strip())


def encode_choice(provider: str, model: str) -> str:
    return json.dumps([provider, model])


def decode_choice(value: str | None) -> tuple[str, str] | None:
    if not value:
        return None
    try:
        provider, model = json.loads(value)
    except (ValueError, TypeError):
        return None
    return str(provider), str(model)


class Commands:
    def __init__(self, *, journal: Journal, conversations: Conversations, failover: Failover,
                 usage: UsageLog, tool_names: Sequence[str], people: People,
                 profile: str | None = None) -> None:
        self.journal = journal
        self.profile = profile
        """The profile these commands answer in (/status names it); None: no profile."""
        self.people = people
        self.conversations = conversations
        self.failover = failover
        self.usage = usage
        self.tool_names = list(tool_names)

    async def run(self, command: ParsedCommand, inbound: Inbound, journal_id: int) -> str:
        """The answer to ``command``; ``journal_id`` is its own message (where /reset cuts:
        messages a burst brought after it belong to the new conversation)."""
        conv = inbound.address.key
        if command.name == "help":
            return self.help()
        if command.name == "reset":
            await self.journal.reset_conversation(conv, after_id=journal_id)
            await self.conversations.set_fallback_notified(conv, False)
            return "Done: I've forgotten this conversation. Notes you asked me to save are kept."
        if command.name == "link":
            return await self.people.link_command(inbound, command.argument)
        if command.name == "unlink":
            return await self.people.unlink_command(inbound)
        state = await self.conversations.get(conv)
        if command.name == "model":
            return await self.model(conv, state, command.argument)
        if command.name == "status":
            return await self.status(conv, state, inbound)
        return await self.usage_text(conv, inbound)

    def help(self) -> str:
        lines = ["I'm an AI assistant. Write to me normally; these commands work too:"]
        lines += [f"/{name} - {description}" for name, description in COMMANDS]
        if self.tool_names:
            lines.append("I can also use tools: " + ", ".join(self.tool_names) + ".")
        return "\n".join(lines)

    def current_link(self, state: ConversationState) -> Link:
        choice = decode_choice(state.model)
        if choice is not None:
            link = self.failover.link_for(*choice)
            if link is not None:
                return link
        return self.failover.primary

    async def model(self, conv: str, state: ConversationState, argument: str) -> str:
        current = self.current_link(state)
        if not argument:
            chosen = " (chosen with /model)" if decode_choice(state.model) else " (default)"
            lines = [f"Model: {current.key}{chosen}",
                     "Failover chain: " + " -> ".join(
                         link.key for link in self.failover.chain(current))]
            models = await self._list_models(current)
            if models:
                shown = ", ".join(models[:MAX_LISTED_MODELS])
                more = f" and {len(models) - MAX_LISTED_MODELS} more" \
                    if len(models) > MAX_LISTED_MODELS else ""
                lines.append(f"Models on {current.provider.name}: {shown}{more}")
            lines.append("Choose with /model NAME, /model PROVIDER or /model PROVIDER:NAME; "
                         "/model default goes back to the configured one.")
            return "\n".join(lines)
        if argument.lower() in ("default", "reset", "auto"):
            await self.conversations.set_model(conv, None)
            return f"Back to the configured model: {self.failover.primary.key}."
        link = self._resolve(argument, current)
        models = await self._list_models(link)
        if models and link.model not in models:
            return (f"{link.provider.name} has no model {link.model!r}. "
                    f"Known: {', '.join(models[:MAX_LISTED_MODELS])}")
        await self.conversations.set_model(conv, encode_choice(link.provider.name, link.model))
        return f"This conversation now uses {link.key}."

    def _resolve(self, argument: str, current: Link) -> Link:
        by_provider = self.failover.link_for(argument)
        if by_provider is not None:
            return by_provider
        provider, sep, model = argument.partition(":")
        if sep and model and (link := self.failover.link_for(provider, model)) is not None:
            return link
        link = self.failover.link_for(current.provider.name, argument)
        assert link is not None  # current's provider is in the chain by construction
        return link

    async def _list_models(self, link: Link) -> list[str]:
        try:
            return await link.provider.list_models()
        except ProviderError as exc:
            _log.info("listing models failed: %s", exc)
            return []

    async def status(self, conv: str, state: ConversationState, inbound: Inbound) -> str:
        current = self.current_link(state)
        breaker = self.failover.breaker
        links = []
        for link in self.failover.chain(current):
            health = breaker.state(link.key)
            if health == "open":
                health += f", retried in {breaker.resting_for(link.key):.0f}s"
            links.append(f"{link.key} ({health})")
        history = await self.journal.history(conv, before_id=2**62, limit=5_000)
        memory = (f"{len(history)} messages since the last /reset"
                  + ("; older ones are summarised" if state.summary else ""))
        return "\n".join([
            f"Model: {current.key}",
            "Failover chain: " + " -> ".join(links),
            f"Memory: {memory}",
            "Tools: " + (", ".join(self.tool_names) if self.tool_names and current.tools
                         else "none"),
            f"Channel: {inbound.address.channel}",
            *([f"Profile: {self.profile}"] if self.profile else []),
        ])

    async def usage_text(self, conv: str, inbound: Inbound) -> str:
        mine = await self.usage.totals(conv=conv)
        day_start = datetime.now().astimezone().replace(hour=0, minute=0, second=0,
                                                        microsecond=0).timestamp()
        today = await self.usage.totals(since=day_start, channel=inbound.address.channel)
        return "\n".join([f"This conversation: {_describe(mine)}",
                          f"Today on {inbound.address.channel}: {_describe(today)}"])


def _describe(t: UsageTotals) -> str:
    errors = f", {t.errors} failed" if t.errors else ""
    return (f"{t.calls} calls{errors}, {t.input_tokens} tokens in, {t.output_tokens} out, "
            f"${t.cost:.4f}")
