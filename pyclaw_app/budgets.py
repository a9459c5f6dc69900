"""The ``budgets:`` section: daily and monthly caps of cost and tokens.

Caps apply to everything together (``overall``), to one channel's total
(``channels``), and to each person (``each_person``, with ``people`` for named
exceptions): a sender on a channel, or every account linked into one person
(``/link``) together. Days and months are the gateway's local time, as the Usage
view counts them. The guard that enforces these lives in
:mod:`pyclaw_app.agent.budget`; this module is only the config model, so
``config.py`` can import it without importing the agent.

The control panel's budgets form edits the caps as a flat list, one :class:`CapRow`
per scope, period and unit (``rows_of`` / ``config_of``): a list is what a person
adds to and removes from, where the nested YAML shape is what reads well in a file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["BudgetConfig", "Cap", "CapRow", "Caps", "RowError", "config_of", "rows_of"]

RowScope = Literal["overall", "channel", "each_person", "person"]
Period = Literal["daily", "monthly"]
Unit = Literal["cost", "tokens"]
PERIODS: tuple[Period, ...] = ("daily", "monthly")
UNITS: tuple[Unit, ...] = ("cost", "tokens")


class Cap(BaseModel):
    """What one period may spend: a cost, a number of tokens, or both (whichever is reached
    first)."""

    model_config = ConfigDict(extra="forbid")

    cost: float | None = Field(
        None, ge=0, description="US dollars, computed from the providers' prices "
        "(a provider without prices costs $0 and never reaches a cost cap)")
    tokens: int | None = Field(None, ge=0, description="Input plus output tokens")

    @model_validator(mode="after")
    def _something(self) -> Cap:
        if self.cost is None and self.tokens is None:
            raise ValueError("a cap needs cost, tokens or both")
        return self


class Caps(BaseModel):
    """A daily and a monthly cap; either may be left out."""

    model_config = ConfigDict(extra="forbid")

    daily: Cap | None = Field(None, description="Resets every day at 00:00, gateway local time")
    monthly: Cap | None = Field(
        None, description="Resets on the first of each month at 00:00, gateway local time")


class BudgetConfig(BaseModel):
    """Spending caps, checked before every LLM call: a call that would cross one is not made,
    and the person is told when the cap resets."""

    model_config = ConfigDict(extra="forbid")

    overall: Caps = Field(default_factory=Caps,
                          description="Every channel and person together")
    channels: dict[str, Caps] = Field(
        default_factory=dict, description="Per channel name: that channel's total")
    each_person: Caps = Field(
        default_factory=Caps, description="Every person (a sender on a channel) on their own")
    people: dict[str, dict[str, Caps | None]] = Field(
        default_factory=dict, description="Channel name -> sender id -> caps that replace "
        "each_person for that person (null for no personal cap)")
    reply_tokens: int = Field(
        256, ge=0, description="Reply tokens assumed when a call is checked (the prompt is "
        "estimated from its text); a call whose estimate would cross a cap is refused")

    @field_validator("people")
    @classmethod
    def _no_caps_is_null(cls, people: dict[str, dict[str, Caps | None]]
                         ) -> dict[str, dict[str, Caps | None]]:
        """``{}`` means the same as null, and is kept as null: a save drops empty mappings,
        which would otherwise put the person back under each_person."""
        return {channel: {sender: None if caps is None or _none(caps) else caps
                          for sender, caps in who.items()} for channel, who in people.items()}

    def has_person_caps(self) -> bool:
        """Whether any cap counts one person's spend (each_person or a named one)."""
        return not _none(self.each_person) or any(
            c is not None and not _none(c) for who in self.people.values() for c in who.values())

    def is_empty(self) -> bool:
        """No cap anywhere: the guard has nothing to check and reads nothing."""
        return (_none(self.overall) and _none(self.each_person)
                and all(_none(c) for c in self.channels.values())
                and all(c is None or _none(c) for who in self.people.values()
                        for c in who.values()))


def _none(caps: Caps) -> bool:
    return caps.daily is None and caps.monthly is None


# ---- the budgets form: one row per cap ------------------------------------------------------
_ESSENTIAL = {"group": "essentials"}


class CapRow(BaseModel):
    """One cap as the budgets form shows it: whose spend, which period, which unit."""

    model_config = ConfigDict(extra="forbid")

    scope: RowScope = Field(
        "overall", title="Applies to", description="Whose spending the cap counts",
        json_schema_extra={**_ESSENTIAL, "options": {
            "overall": "Everything together", "channel": "One channel's total",
            "each_person": "Every person on their own",
            "person": "One person (replaces every-person caps for them)"}})
    channel: str = Field(
        "", title="Channel", description="The channel's name as the config names it",
        json_schema_extra={**_ESSENTIAL, "shown_when": {"scope": ["channel", "person"]}})
    sender: str = Field(
        "", title="Sender ID", description="The person's sender ID on that channel, as Logs "
        "shows it; accounts linked to it count together",
        json_schema_extra={**_ESSENTIAL, "shown_when": {"scope": ["person"]}})
    period: Period = Field(
        "daily", title="Period", description="Daily caps reset at 00:00, monthly ones on the "
        "first of the month, gateway local time",
        json_schema_extra={**_ESSENTIAL, "options": {"daily": "Daily", "monthly": "Monthly"}})
    unit: Unit = Field(
        "cost", title="Limit in", description="Cost in US dollars (from the providers' prices) "
        "or input plus output tokens",
        json_schema_extra={**_ESSENTIAL, "options": {"cost": "Cost (US dollars)",
                                                     "tokens": "Tokens"}})
    limit: float = Field(
        ..., ge=0, title="Limit", description="Dollars or tokens the period may spend; 0 "
        "refuses every call", json_schema_extra=_ESSENTIAL)

    @model_validator(mode="after")
    def _whole(self) -> CapRow:
        if self.scope in ("channel", "person") and not self.channel.strip():
            raise ValueError("channel: name the channel this cap applies to")
        if self.scope == "person" and not self.sender.strip():
            raise ValueError("sender: give the person's sender ID on that channel")
        if self.unit == "tokens" and self.limit != int(self.limit):
            raise ValueError("limit: a token limit is a whole number")
        return self

    @property
    def who(self) -> tuple[str, str, str]:
        """The cap's owner: (scope, channel, sender), blank where the scope has none."""
        return (self.scope, self.channel.strip() if self.scope in ("channel", "person") else "",
                self.sender.strip() if self.scope == "person" else "")


class RowError(ValueError):
    """A row of the budgets form that cannot be saved; ``index`` and ``field`` place it."""

    def __init__(self, index: int, field: str, message: str) -> None:
        super().__init__(message)
        self.index = index
        self.field = field


def rows_of(config: BudgetConfig) -> list[CapRow]:
    """Every cap of ``config`` as a row (named people with no cap are not caps)."""
    owners: list[tuple[RowScope, str, str, Caps | None]] = [("overall", "", "", config.overall)]
    owners += [("channel", name, "", caps) for name, caps in config.channels.items()]
    owners.append(("each_person", "", "", config.each_person))
    owners += [("person", ch, sender, caps) for ch, who in config.people.items()
               for sender, caps in who.items()]
    rows: list[CapRow] = []
    for scope, channel, sender, caps in owners:
        for period in PERIODS:
            cap = getattr(caps, period) if caps is not None else None
            for unit in UNITS:
                value = getattr(cap, unit) if cap is not None else None
                if value is not None:
                    rows.append(CapRow(scope=scope, channel=channel, sender=sender,
                                       period=period, unit=unit, limit=value))
    return rows


def config_of(rows: Sequence[CapRow], keep: BudgetConfig) -> BudgetConfig:
    """The section the rows describe; ``reply_tokens`` and the named people exempt from a
    personal cap (``null``, which no row shows) come from ``keep``. Two rows for the same
    cap raise RowError on the second."""
    caps: dict[tuple[str, str, str], dict[str, dict[str, float]]] = {}
    for index, row in enumerate(rows):
        period = caps.setdefault(row.who, {}).setdefault(row.period, {})
        if row.unit in period:
            raise RowError(index, "unit", f"another row already sets the {row.period} "
                           f"{row.unit} cap of the same scope: change that one instead")
        period[row.unit] = int(row.limit) if row.unit == "tokens" else row.limit
    built = {who: Caps.model_validate({p: Cap.model_validate(c) for p, c in periods.items()})
             for who, periods in caps.items()}
    people: dict[str, dict[str, Caps | None]] = {
        ch: {s: None for s, c in who.items() if c is None}
        for ch, who in keep.people.items()}
    for (scope, channel, sender), value in built.items():
        if scope == "person":
            people.setdefault(channel, {})[sender] = value
    return BudgetConfig(
        overall=built.get(("overall", "", ""), Caps()),
        channels={ch: c for (scope, ch, _), c in built.items() if scope == "channel"},
        each_person=built.get(("each_person", "", ""), Caps()),
        people={ch: who for ch, who in people.items() if who},
        reply_tokens=keep.reply_tokens)
