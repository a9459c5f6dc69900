"""The ``budgets:`` section: daily and monthly caps of cost and tokens.

Caps apply to everything together (``overall``), to one channel's total
(``channels``), and to each person, a sender on a channel (``each_person``, with
``people`` for named exceptions). Days and months are the gateway's local
time, as the Usage view counts them. The guard that enforces these lives in
:mod:`pyclaw_app.agent.budget`; this module is only the config model, so
``config.py`` can import it without importing the agent.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["BudgetConfig", "Cap", "Caps"]


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

    def is_empty(self) -> bool:
        """No cap anywhere: the guard has nothing to check and reads nothing."""
        return (_none(self.overall) and _none(self.each_person)
                and all(_none(c) for c in self.channels.values())
                and all(c is None or _none(c) for who in self.people.values()
                        for c in who.values()))


def _none(caps: Caps) -> bool:
    return caps.daily is None and caps.monthly is None
