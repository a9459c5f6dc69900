"""The Usage view's Budgets card against a fake plane: each cap with spent of limit and a bar."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import flet as ft

from pyclaw_app.control import BudgetRow, UsageRow
from pyclaw_app.model import Event, EventKind
from tests.ui.fake_plane import FakeControlPlane
from views.usage import UsageView, budget_text

NOW = datetime(2026, 3, 10, 15, 30).timestamp()
MIDNIGHT = datetime(2026, 3, 11).timestamp()
NEXT_MONTH = datetime(2026, 4, 1).timestamp()


def cap(scope: str = "channel", spent: float = 0.5, limit: float = 1.0, *, period: str = "daily",
        unit: str = "cost", channel: str = "telegram", sender: str = "",
        name: str = "") -> BudgetRow:
    return BudgetRow(scope, channel if scope != "overall" else "", sender, name, period, unit,
                     spent, limit, MIDNIGHT if period == "daily" else NEXT_MONTH)


class BudgetPlane(FakeControlPlane):
    def __init__(self, budgets: list[BudgetRow]) -> None:
        super().__init__()
        self.budget_rows = budgets
        self.budget_calls = 0

    async def usage(self, **kwargs: Any) -> list[UsageRow]:
        return []

    async def budgets(self) -> list[BudgetRow]:
        self.budget_calls += 1
        return list(self.budget_rows)


def bars(view: UsageView) -> list[ft.ProgressBar]:
    return [row.controls[1] for row in view.budget_card.rows.controls]


def texts(view: UsageView) -> list[str]:
    out = []
    for row in view.budget_card.rows.controls:
        head, _, when = row.controls
        out.append(" | ".join([head.controls[0].value, head.controls[1].value, when.value]))
    return out


def test_caps_are_worded_for_people() -> None:
    assert budget_text(cap()) == ("Channel telegram · daily", "$0.5000 of $1.00",
                                  "resets at 00:00")
    assert budget_text(cap("overall", 12.5, 50, period="monthly")) == (
        "All channels · monthly", "$12.50 of $50.00", "resets on 1 Apr at 00:00")
    assert budget_text(cap("person", 1234, 5000, unit="tokens", sender="42", name="Alice")) == (
        "Alice on telegram · daily", "1,234 of 5,000 tokens", "resets at 00:00")
    assert budget_text(cap("person", 0, 10, unit="tokens", sender="42"))[0] == (
        "42 on telegram · daily")


async def test_the_card_shows_each_cap_against_its_limit() -> None:
    plane = BudgetPlane([cap("overall", 10, 40, period="monthly"), cap(spent=1.2, limit=1.0),
                         cap("person", 4500, 5000, unit="tokens", sender="7", name="Bob")])
    view = UsageView(plane, wall_clock=lambda: NOW)
    await view.load()
    assert view.budget_card.root.visible
    assert texts(view) == [
        "All channels · monthly | $10.00 of $40.00 | resets on 1 Apr at 00:00",
        "Channel telegram · daily | $1.20 of $1.00 | resets at 00:00",
        "Bob on telegram · daily | 4,500 of 5,000 tokens | resets at 00:00"]
    assert [b.value for b in bars(view)] == [0.25, 1.0, 0.9]  # over the cap: a full bar
    assert [b.color for b in bars(view)] == [ft.Colors.PRIMARY, ft.Colors.ERROR,
                                             ft.Colors.AMBER_700]
    assert bars(view)[1].semantics_label == "Channel telegram · daily: $1.20 of $1.00"


async def test_no_budgets_or_a_plane_without_them_hide_the_card() -> None:
    view = UsageView(BudgetPlane([]), wall_clock=lambda: NOW)
    await view.load()
    assert not view.budget_card.root.visible

    class OlderGateway(BudgetPlane):
        async def budgets(self) -> list[BudgetRow]:
            raise RuntimeError("unknown method 'budgets'")

    view = UsageView(OlderGateway([cap()]), wall_clock=lambda: NOW)
    await view.load()
    assert not view.budget_card.root.visible and not view.error.visible


async def test_the_card_follows_llm_calls_in_the_background() -> None:
    plane = BudgetPlane([cap(spent=0.1)])
    view = UsageView(plane, wall_clock=lambda: NOW)
    await view.load()
    plane.budget_rows = [cap(spent=0.9)]
    view.apply([Event(EventKind.LLM_CALL, "telegram", {})], NOW + 10)
    assert view._reload is not None
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    view.apply([], NOW + 11)
    assert [b.value for b in bars(view)] == [0.9] and plane.budget_calls == 2
