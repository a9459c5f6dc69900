"""The budget guard: an LLM call that would cross a daily or monthly cap is not made.

Spend is read from ``llm_calls`` once, when the guard first checks (the day's and
the month's tokens and cost per channel and sender, in one range scan), and is
then kept up to date in memory from every call the agent records. A check is a
few dictionary lookups, never a query, however long the table grows. A call in
flight holds its estimate until it is recorded, so concurrent turns cannot
together overshoot a cap that each of them alone would respect.

The estimate is the prompt's tokens as the history budget counts them plus
``reply_tokens``, priced at the turn's first model. Days and months are the
gateway's local time, as the Usage view counts them; a new period starts at
zero without a query. The owner is told once per cap and period (the
exception's ``tell_owner``), the person on every refused message.

A *person* is every account linked into one identity (``/link``): their cap counts
the spend of all their accounts on every channel, so a person capped on Telegram is
capped on Slack too. Spend is still counted per account (channel and sender) in
memory; which accounts are one person is asked of the identity store at each check
(an indexed lookup of the sending account, its identity and accounts: links change
at any time, from chat, the CLI or another instance, and must count at once). Only
when per-person caps are configured; an account never linked is a person of one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from pyclaw_app.agent.failover import Link
from pyclaw_app.agent.providers.base import ChatMessage, ToolSpec
from pyclaw_app.agent.tokens import estimate_tokens
from pyclaw_app.budgets import BudgetConfig, Cap, Caps
from pyclaw_app.errors import ProviderError
from pyclaw_app.model import Inbound
from pyclaw_app.store.identities import Identity, IdentityStore
from pyclaw_app.store.usage import UsageLog

__all__ = ["BudgetExceeded", "BudgetGuard", "CapStatus", "Limit", "Scope", "estimate_prompt"]

Period = Literal["daily", "monthly"]
Unit = Literal["cost", "tokens"]
PERIODS: tuple[Period, ...] = ("daily", "monthly")
MAX_PEOPLE_SHOWN = 20
"""Per-person caps in the status: the people nearest their cap, not everyone who wrote."""
_SPECIFIC = {"overall": 0, "channel": 1, "person": 2}
_NO_CAPS = Caps()


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose spend a cap counts: everyone, one channel, one sender on one channel, or one
    linked person (``identity``) over all their ``accounts``."""

    kind: Literal["overall", "channel", "person"]
    channel: str = ""
    sender: str = ""
    identity: int = 0
    """The linked person's identity id; 0 for one account on one channel."""
    accounts: tuple[tuple[str, str], ...] = ()
    """The linked person's accounts (channel, sender), whose spend the cap adds up."""

    @property
    def members(self) -> tuple[Scope, ...]:
        """The per-account scopes whose spend this scope is (itself, unless linked)."""
        if not self.identity:
            return (self,)
        return tuple(Scope("person", ch, s) for ch, s in self.accounts)


@dataclass(slots=True)
class _Spend:
    tokens: int = 0
    cost: float = 0.0

    def of(self, unit: Unit) -> float:
        return self.cost if unit == "cost" else self.tokens


@dataclass(frozen=True, slots=True)
class Limit:
    """One cap: a scope, a period and a unit with its limit."""

    scope: Scope
    period: Period
    unit: Unit
    limit: float

    @property
    def key(self) -> str:
        s = self.scope
        who = f"identity:{s.identity}" if s.identity else f"{s.channel}:{s.sender}"
        return f"{s.kind}:{who}/{self.period}/{self.unit}"


@dataclass(frozen=True, slots=True)
class CapStatus:
    """A cap with what its period has spent so far, for the Usage view."""

    scope: str
    channel: str
    sender: str
    sender_name: str
    period: Period
    unit: Unit
    spent: float
    limit: float
    resets_at: float
    """Epoch seconds of the next period's start."""


class BudgetExceeded(ProviderError):
    """The call was not made: it would cross ``limit``. ``notice`` is for the person,
    ``owner_notice`` for the owner (said when ``tell_owner``: once per cap and period)."""

    def __init__(self, limit: Limit, used: float, need: float, resets: datetime,
                 sender_name: str, *, tell_owner: bool) -> None:
        self.limit = limit
        self.tell_owner = tell_owner
        self.resets = resets
        label = _label(limit.scope, sender_name)
        when = f"{resets:%Y-%m-%d %H:%M}"
        self.notice = _person_notice(limit, resets, used_up=used >= limit.limit)
        self.owner_notice = (
            f"budget reached: the {limit.period} {limit.unit} cap of {label} "
            f"({_amount(limit.unit, limit.limit)}) is used up; {_whose(limit.scope)} are "
            f"refused until {when}. Raise it under budgets: in the config to allow more.")
        super().__init__(
            f"over budget: {label} {limit.period} {limit.unit} cap "
            f"{_amount(limit.unit, limit.limit)} ({_amount(limit.unit, used)} spent, this call "
            f"~{_amount(limit.unit, need)}); resets {when}", provider="budget",
            retryable=False)


def estimate_prompt(messages: Sequence[ChatMessage], specs: Sequence[ToolSpec] = ()) -> int:
    """The prompt's tokens as the history budget estimates them, tool calls and the tools'
    schemas included."""
    total = sum(estimate_tokens(m.content) for m in messages)
    total += sum(estimate_tokens(json.dumps(c.arguments, ensure_ascii=False))
                 for m in messages for c in m.tool_calls)
    if specs:
        total += estimate_tokens(json.dumps([s.parameters for s in specs]))
    return total


@dataclass(slots=True)
class _Hold:
    """A call in flight: its estimate counts against every scope until it is recorded."""

    scopes: tuple[Scope, ...]
    tokens: int
    cost: float
    periods: dict[Period, str]


@dataclass(slots=True)
class _Tally:
    """One period's spend per scope; a new period key starts it again at zero."""

    key: str = ""
    spend: dict[Scope, _Spend] = field(default_factory=dict)

    def roll(self, key: str) -> None:
        if key != self.key:
            self.key, self.spend = key, {}

    def add(self, scopes: Iterable[Scope], tokens: int, cost: float) -> None:
        for scope in scopes:
            spend = self.spend.setdefault(scope, _Spend())
            spend.tokens += tokens
            spend.cost += cost


class BudgetGuard:
    def __init__(self, config: BudgetConfig, usage: UsageLog, *,
                 clock: Callable[[], datetime] = datetime.now) -> None:
        self.config = config
        self.usage = usage
        self.clock = clock
        self.active = not config.is_empty()
        self._per_person = config.has_person_caps()
        """Whether any per-person cap exists (else who is linked to whom is never asked)."""
        self._tallies: dict[Period, _Tally] = {p: _Tally() for p in PERIODS}
        self._holds: list[_Hold] = []
        self.identities = IdentityStore(usage.db)
        self._names: dict[tuple[str, str], str] = {}
        self._fixed_limits: dict[str, list[Limit]] = {}
        """Per channel: the overall and channel caps (one entry per channel name)."""
        self._told: set[tuple[str, str]] = set()
        self._loaded = False
        self._lock = asyncio.Lock()

    def reconfigure(self, config: BudgetConfig) -> None:
        """Check against ``config`` from the next call on (the budgets form saved it).

        The spend counted so far is per account, not per cap, so it stays; a guard left
        with no cap stops counting, and so reads the figures again when caps come back.
        """
        self.config = config
        self.active = not config.is_empty()
        self._per_person = config.has_person_caps()
        self._fixed_limits = {}
        if not self.active:
            self._loaded = False
            self._tallies = {p: _Tally() for p in PERIODS}

    # ---- the check --------------------------------------------------------------------------
    @asynccontextmanager
    async def hold(self, inbound: Inbound, prompt_tokens: int, link: Link
                   ) -> AsyncIterator[None]:
        """Around one LLM call: raises BudgetExceeded before it, holds its estimate during it."""
        if not self.active:
            yield
            return
        held = await self._admit(inbound, prompt_tokens + self.config.reply_tokens,
                                 link.cost(prompt_tokens, self.config.reply_tokens))
        try:
            yield
        finally:
            self._holds.remove(held)

    async def _admit(self, inbound: Inbound, tokens: int, cost: float) -> _Hold:
        now = await self._now()
        channel, sender = inbound.address.channel, inbound.sender_id
        if inbound.sender_name:
            self._names[(channel, sender)] = inbound.sender_name
        person = (await self.identities.identity_of(channel, sender)
                  if self._per_person and sender else None)
        crossed: list[tuple[Limit, float, float]] = []
        for limit in self.limits_for(channel, sender, person):
            used = self._used(limit)
            need = cost if limit.unit == "cost" else tokens
            if used >= limit.limit or used + need > limit.limit:
                crossed.append((limit, used, need))
        if crossed:
            limit, used, need = max(crossed, key=lambda c: (
                _next_start(now, c[0].period), _SPECIFIC[c[0].scope.kind]))
            told = (limit.key, self._tallies[limit.period].key)
            first = told not in self._told
            self._told.add(told)
            name = (self._person_name(person) if limit.scope.identity and person is not None
                    else self._names.get((channel, sender), sender))
            raise BudgetExceeded(limit, used, need, _next_start(now, limit.period),
                                 name, tell_owner=first)
        held = _Hold(_scopes(channel, sender), tokens, cost,
                     {p: self._tallies[p].key for p in PERIODS})
        self._holds.append(held)
        return held

    def _used(self, limit: Limit) -> float:
        tally = self._tallies[limit.period]
        members = limit.scope.members
        spent = sum(tally.spend.get(m, _Spend()).of(limit.unit) for m in members)
        held = sum(h.cost if limit.unit == "cost" else h.tokens for h in self._holds
                   if any(m in h.scopes for m in members)
                   and h.periods[limit.period] == tally.key)
        return spent + held

    def _person_name(self, person: Identity) -> str:
        """What the owner reads for a linked person: the identity's name, else the first
        account's latest sender name."""
        return person.name or next((self._names[a.key] for a in person.accounts
                                    if a.key in self._names), "")

    def charge(self, inbound: Inbound, tokens: int, cost: float) -> None:
        """Count a call the agent recorded (before its row reaches SQLite)."""
        if not self.active or not self._loaded or (tokens == 0 and cost == 0):
            return  # before the first check the starting figures will include it
        now = _local(self.clock())
        scopes = _scopes(inbound.address.channel, inbound.sender_id)
        for period in PERIODS:
            tally = self._tallies[period]
            tally.roll(_period_key(now, period))
            tally.add(scopes, tokens, cost)

    def limits_for(self, channel: str, sender: str, person: Identity | None = None
                   ) -> list[Limit]:
        """Every cap that applies to a message from ``sender`` on ``channel``; ``person``,
        the identity the account is linked into, makes the personal cap count all its
        accounts (and a named exception of any of them applies to the person)."""
        cfg = self.config
        out = self._fixed_limits.get(channel)
        if out is None:
            out = self._fixed_limits[channel] = (
                _limits(Scope("overall"), cfg.overall)
                + _limits(Scope("channel", channel), cfg.channels.get(channel, _NO_CAPS)))
        if person is None or len(person.accounts) < 2:
            return out + _limits(Scope("person", channel, sender), self._caps_of(
                [(channel, sender)]))
        accounts = tuple(sorted(a.key for a in person.accounts))
        mine = [(channel, sender), *(a for a in accounts if a != (channel, sender))]
        return out + _limits(Scope("person", identity=person.id, accounts=accounts),
                             self._caps_of(mine))

    def _caps_of(self, accounts: Sequence[tuple[str, str]]) -> Caps:
        """The personal caps of a person with ``accounts``: the first named exception
        (the sending account's first), else each_person."""
        for channel, sender in accounts:
            named = self.config.people.get(channel, {})
            if sender in named:
                return named[sender] or _NO_CAPS
        return self.config.each_person

    # ---- spend so far -----------------------------------------------------------------------
    async def _now(self) -> datetime:
        """Local now, with the starting figures loaded and the periods rolled to it."""
        now = _local(self.clock())
        if not self._loaded:
            async with self._lock:
                if not self._loaded:
                    await self._load(now)
        for period in PERIODS:
            self._tallies[period].roll(_period_key(now, period))
        return now

    async def _load(self, now: datetime) -> None:
        rows = await self.usage.spend_since(_start(now, "monthly").timestamp(),
                                            _start(now, "daily").timestamp())
        day, month = self._tallies["daily"], self._tallies["monthly"]
        day.roll(_period_key(now, "daily"))
        month.roll(_period_key(now, "monthly"))
        for r in rows:
            scopes = _scopes(r.channel, r.sender_id)
            month.add(scopes, r.tokens, r.cost)
            if r.today:
                day.add(scopes, r.tokens, r.cost)
            if r.sender_name:
                self._names[(r.channel, r.sender_id)] = r.sender_name
        self._loaded = True

    async def status(self) -> list[CapStatus]:
        """Every configured cap with its spend: per-person caps for the people who spent the
        most of theirs (at most MAX_PEOPLE_SHOWN per period and unit); linked accounts are
        one person, shown once with their spend added up."""
        if not self.active:
            return []
        now = await self._now()
        cfg = self.config
        linked: dict[tuple[str, str], Scope] = {}
        names: dict[Scope, str] = {}
        if self._per_person:
            for person in await self.identities.list_all():
                if len(person.accounts) < 2:
                    continue
                scope = Scope("person", identity=person.id,
                              accounts=tuple(sorted(a.key for a in person.accounts)))
                names[scope] = self._person_name(person)
                for account in person.accounts:
                    linked[account.key] = scope

        def person_of(channel: str, sender: str) -> Scope:
            return linked.get((channel, sender), Scope("person", channel, sender))

        out: list[CapStatus] = []
        fixed: list[tuple[Scope, Caps | None]] = [(Scope("overall"), cfg.overall)]
        fixed += [(Scope("channel", name), caps) for name, caps in cfg.channels.items()]
        named: set[Scope] = set()
        for ch, people in cfg.people.items():
            for sender, caps in people.items():
                scope = person_of(ch, sender)
                if scope not in named:  # a person named twice: the first names their caps
                    named.add(scope)
                    fixed.append((scope, caps))
        for scope, caps in fixed:
            if caps is not None:
                out += [self._status(limit, now, names) for limit in _limits(scope, caps)]
        for period in PERIODS:
            cap = getattr(cfg.each_person, period)
            if cap is None:
                continue
            people = {person_of(s.channel, s.sender) for s in self._tallies[period].spend
                      if s.kind == "person"} - named
            for unit, value in _units(cap):
                rows = [self._status(Limit(s, period, unit, value), now, names)
                        for s in people]
                rows.sort(key=lambda r: (-r.spent, r.channel, r.sender))
                out += rows[:MAX_PEOPLE_SHOWN]
        return out

    def _status(self, limit: Limit, now: datetime, names: dict[Scope, str]) -> CapStatus:
        s = limit.scope
        spent = sum(self._tallies[limit.period].spend.get(m, _Spend()).of(limit.unit)
                    for m in s.members)
        if s.identity:
            channel = ", ".join(sorted({ch for ch, _ in s.accounts}))
            sender = ", ".join(f"{ch} {who}" for ch, who in s.accounts)
            name = names.get(s, "")
        else:
            channel, sender = s.channel, s.sender
            name = self._names.get((s.channel, s.sender), "")
        return CapStatus(s.kind, channel, sender, name, limit.period, limit.unit, spent,
                         limit.limit, _next_start(now, limit.period).timestamp())


# ---- periods: naive local time, so .timestamp() follows the zone's DST rules ----------------
def _local(now: datetime) -> datetime:
    return now if now.tzinfo is None else now.astimezone().replace(tzinfo=None)


def _start(now: datetime, period: Period) -> datetime:
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return day if period == "daily" else day.replace(day=1)


def _next_start(now: datetime, period: Period) -> datetime:
    start = _start(now, period)
    if period == "daily":
        return start + timedelta(days=1)
    return (start + timedelta(days=32)).replace(day=1)


def _period_key(now: datetime, period: Period) -> str:
    # Not strftime: this runs for every check and charge, and formatting is ten times slower.
    return (f"{now.year:04d}-{now.month:02d}-{now.day:02d}" if period == "daily"
            else f"{now.year:04d}-{now.month:02d}")


# ---- caps and words -------------------------------------------------------------------------
def _scopes(channel: str, sender: str) -> tuple[Scope, ...]:
    return Scope("overall"), Scope("channel", channel), Scope("person", channel, sender)


def _units(cap: Cap) -> list[tuple[Unit, float]]:
    out: list[tuple[Unit, float]] = []
    if cap.cost is not None:
        out.append(("cost", cap.cost))
    if cap.tokens is not None:
        out.append(("tokens", cap.tokens))
    return out


def _limits(scope: Scope, caps: Caps) -> list[Limit]:
    return [Limit(scope, period, unit, value) for period in PERIODS
            if (cap := getattr(caps, period)) is not None for unit, value in _units(cap)]


def _amount(unit: Unit, value: float) -> str:
    if unit == "tokens":
        return f"{int(value):,} tokens"
    return f"${value:,.2f}" if value >= 1 or value == 0 else f"${value:.4f}"


def _label(scope: Scope, sender_name: str) -> str:
    if scope.kind == "overall":
        return "the whole assistant"
    if scope.kind == "channel":
        return f"channel {scope.channel}"
    if scope.identity:
        accounts = ", ".join(f"{ch} {who}" for ch, who in scope.accounts)
        return f"person {sender_name} ({accounts})" if sender_name else f"person {accounts}"
    name = f" ({sender_name})" if sender_name and sender_name != scope.sender else ""
    return f"{scope.channel} sender {scope.sender}{name}"


def _whose(scope: Scope) -> str:
    if scope.identity:
        return "this person's messages on every linked account"
    return {"overall": "all messages", "channel": "messages on this channel",
            "person": "this person's messages"}[scope.kind]


def _person_notice(limit: Limit, resets: datetime, *, used_up: bool) -> str:
    """What the person reads: which budget, and when it resets (the gateway's local time)."""
    when = "at 00:00" if limit.period == "daily" else f"on {resets.day} {resets:%B} at 00:00"
    state = "is used up" if used_up else "has too little left for this message"
    if limit.scope.identity:
        return (f"Your {limit.period} budget with this assistant (all your linked accounts "
                f"together) {state}; it resets {when}.")
    if limit.scope.kind == "person":
        return f"Your {limit.period} budget with this assistant {state}; it resets {when}."
    where = " for this channel" if limit.scope.kind == "channel" else ""
    return f"This assistant's {limit.period} budget{where} {state}; it resets {when}."
