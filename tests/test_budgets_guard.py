"""The budget guard on its own (real SQLite): periods, the one starting query, the config.

End-to-end behaviour through channels is in ``test_budgets.py``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from pyclaw_app.agent import user_notice
from pyclaw_app.agent.budget import (
    BudgetExceeded,
    BudgetGuard,
    _next_start,
    _start,
    estimate_prompt,
)
from pyclaw_app.agent.failover import Link
from pyclaw_app.agent.providers import ChatMessage, OfflineProvider, ToolCall
from pyclaw_app.agent.tools import builtin_tools
from pyclaw_app.budgets import BudgetConfig
from pyclaw_app.config import ModelPrice, load_config, save_config
from pyclaw_app.model import Address, Inbound
from pyclaw_app.secrets import FileSecretStore
from pyclaw_app.store import Store
from pyclaw_app.store.identities import Account, IdentityStore
from pyclaw_app.store.usage import SpendRow, UsageLog

LINK = Link(OfflineProvider("pyclaw.yaml"), "m", prices={"*": ModelPrice(input=1000, output=0)})


def inbound(channel: str = "tg", sender: str = "1") -> Inbound:
    return Inbound(address=Address(channel, sender), platform_id=f"{time.monotonic_ns()}",
                   text="hi", sender_id=sender, sender_name=f"name {sender}")


class CountingUsage(UsageLog):
    """Counts the starting queries: the guard must not read the table per message."""

    loads = 0

    async def spend_since(self, since: float, today: float) -> list[SpendRow]:
        self.loads += 1
        return await super().spend_since(since, today)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store(tmp_path / "data").open()
    try:
        yield opened
    finally:
        await opened.close()


def guard(store: Store, clock: list[datetime], **budgets: object) -> BudgetGuard:
    return BudgetGuard(BudgetConfig.model_validate({"reply_tokens": 0, **budgets}),
                       CountingUsage(store.db), clock=lambda: clock[0])


async def admit(g: BudgetGuard, message: Inbound, tokens: int = 10) -> None:
    async with g.hold(message, tokens, LINK):
        g.charge(message, tokens, tokens / 1000)


# ---- periods ------------------------------------------------------------------------------------

local_times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1))


@given(local_times)
def test_every_moment_lies_in_its_day_and_month(now: datetime) -> None:
    for period in ("daily", "monthly"):
        start, end = _start(now, period), _next_start(now, period)
        assert start <= now < end
        assert (start.hour, start.minute, start.second, end.hour, end.minute) == (0, 0, 0, 0, 0)
    assert _next_start(now, "daily") - _start(now, "daily") == timedelta(days=1)
    month_start, month_end = _start(now, "monthly"), _next_start(now, "monthly")
    assert month_start.day == 1 and month_end.day == 1
    assert 28 <= (month_end - month_start).days <= 31


def test_the_year_turns() -> None:
    assert _next_start(datetime(2026, 12, 31, 23, 59), "monthly") == datetime(2027, 1, 1)
    assert _next_start(datetime(2026, 12, 31, 23, 59), "daily") == datetime(2027, 1, 1)


async def test_an_aware_clock_counts_in_the_gateways_local_time(store: Store) -> None:
    """The agent's default clock is aware; periods are still the local zone's."""
    aware = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    g = guard(store, [aware], overall={"daily": {"tokens": 5}})
    with pytest.raises(BudgetExceeded) as refused:
        await admit(g, inbound())
    local = aware.astimezone().replace(tzinfo=None)
    assert refused.value.resets == _next_start(local, "daily")


# ---- the check ---------------------------------------------------------------------------------


async def test_spend_is_read_once_then_kept_in_memory(store: Store) -> None:
    clock = [datetime(2026, 3, 10, 9, 0)]
    g = guard(store, clock, channels={"tg": {"daily": {"tokens": 10_000}}},
              each_person={"monthly": {"cost": 100.0}})
    for n in range(200):
        await admit(g, inbound(sender=str(n % 7)))
    clock[0] += timedelta(days=40)  # new day and month: zero again, still no query
    await admit(g, inbound())
    assert isinstance(g.usage, CountingUsage) and g.usage.loads == 1
    spent = {(s.scope, s.sender, s.period): s.spent for s in await g.status()}
    assert spent[("channel", "", "daily")] == 10  # only the call of the new day
    assert g.usage.loads == 1


async def test_linked_accounts_are_one_person_in_flight_too(store: Store) -> None:
    """Ann on tg and on slack shares one cap, holds included; Bob, unlinked, has his own."""
    clock = [datetime(2026, 3, 10, 9, 0)]
    g = guard(store, clock, each_person={"daily": {"tokens": 25}})
    await IdentityStore(store.db).link(Account("tg", "1", "Ann"), Account("slack", "U1"))
    await admit(g, inbound("tg", "1"), 10)
    async with g.hold(inbound("slack", "U1"), 10, LINK):  # 20 of Ann's 25, one in flight
        with pytest.raises(BudgetExceeded) as refused:
            await admit(g, inbound("tg", "1"), 10)
        await admit(g, inbound("tg", "2"), 20)  # Bob: his own cap
    limit = refused.value.limit
    assert limit.scope.accounts == (("slack", "U1"), ("tg", "1")) and limit.scope.identity
    assert "person Ann (slack U1, tg 1)" in refused.value.owner_notice
    assert "(all your linked accounts together)" in refused.value.notice
    people = {(s.sender, s.sender_name): s.spent for s in await g.status()}
    assert people == {("slack U1, tg 1", "Ann"): 10, ("2", "name 2"): 20}

    g.reconfigure(BudgetConfig.model_validate({"each_person": {"daily": {"tokens": 100}},
                                               "reply_tokens": 0}))
    await admit(g, inbound("slack", "U1"), 10)  # raised at once; the 10 spent still count
    assert {s.sender: s.spent for s in await g.status()}["slack U1, tg 1"] == 20
    g.reconfigure(BudgetConfig())
    assert not g.active and await g.status() == []
    g.reconfigure(BudgetConfig.model_validate({"each_person": {"daily": {"tokens": 100}},
                                               "reply_tokens": 0}))
    await admit(g, inbound("tg", "1"), 10)
    assert isinstance(g.usage, CountingUsage) and g.usage.loads == 2  # counted afresh


async def test_the_starting_query_is_a_range_scan_of_the_ts_index(store: Store) -> None:
    """With many calls in the table, the one query a guard makes on start reads only the
    period's rows through ``llm_calls_ts``."""
    now = time.time()
    stamps = [now - 86400 * 90 + i * 388 for i in range(20_000)]  # 90 days, the last ~4 h ago

    def fill(conn: object) -> None:
        rows = [(ts, None, "tg", "p", "m", 10, 5, 1.0, 0.001, None) for ts in stamps]
        conn.executemany(  # type: ignore[attr-defined]
            "INSERT INTO llm_calls (ts, message_id, channel, provider, model, input_tokens,"
            " output_tokens, latency_ms, cost, error) VALUES (?,?,?,?,?,?,?,?,?,?)", rows)

    await store.db.write(fill)
    plan = await store.db.fetchall(
        "EXPLAIN QUERY PLAN SELECT c.channel, COALESCE(m.sender_id, '') AS sender,"
        " c.ts >= ? AS today, SUM(c.cost) FROM llm_calls c"
        " LEFT JOIN messages m ON m.id = c.message_id WHERE c.ts >= ?"
        " GROUP BY c.channel, sender, today", (now, now))
    details = " | ".join(r["detail"] for r in plan)
    assert "USING INDEX llm_calls_ts" in details or "USING COVERING INDEX llm_calls_ts" in details
    assert "SCAN c" not in details.replace("SCAN c USING", "")  # never the whole table
    rows = await store.usage.spend_since(now - 86400 * 30, now - 86400)
    month = sum(r.tokens for r in rows)
    today = sum(r.tokens for r in rows if r.today)
    assert month == 15 * sum(1 for ts in stamps if ts >= now - 86400 * 30)
    assert today == 15 * sum(1 for ts in stamps if ts >= now - 86400)
    assert 0 < today < month


async def test_the_most_lasting_cap_is_the_one_reported(store: Store) -> None:
    clock = [datetime(2026, 3, 10, 9, 0)]
    g = guard(store, clock, overall={"daily": {"tokens": 5}, "monthly": {"tokens": 5}},
              each_person={"daily": {"tokens": 5}})
    with pytest.raises(BudgetExceeded) as refused:
        await admit(g, inbound())
    assert refused.value.limit.period == "monthly"
    g = guard(store, clock, overall={"daily": {"tokens": 5}}, each_person={"daily": {"tokens": 5}})
    with pytest.raises(BudgetExceeded) as refused:
        await admit(g, inbound())
    assert refused.value.limit.scope.kind == "person"  # same reset: the closest to the person


async def test_a_zero_cap_refuses_everything_and_the_owner_is_told_once(store: Store) -> None:
    g = guard(store, [datetime(2026, 3, 10)], channels={"tg": {"daily": {"cost": 0}}})
    told = []
    for _ in range(3):
        with pytest.raises(BudgetExceeded) as refused:
            await admit(g, inbound())
        told.append(refused.value.tell_owner)
        assert user_notice(refused.value) == refused.value.notice
        assert not refused.value.retryable
    assert told == [True, False, False]
    await admit(g, inbound(channel="other"))  # other channels are not capped


async def test_without_budgets_nothing_is_read(store: Store) -> None:
    g = guard(store, [datetime(2026, 3, 10)])
    await admit(g, inbound())
    assert not g.active and await g.status() == []
    assert isinstance(g.usage, CountingUsage) and g.usage.loads == 0


def test_the_prompt_estimate_counts_tools_and_their_calls() -> None:
    plain = [ChatMessage("system", "Be brief."), ChatMessage("user", "x" * 400)]
    assert estimate_prompt(plain) == 7 + 104
    assert estimate_prompt(plain, builtin_tools().specs()) > estimate_prompt(plain)
    asked = [*plain, ChatMessage("assistant", "", tool_calls=(
        ToolCall("c1", "calculate", {"expression": "1" * 40}),))]
    arguments = len('{"expression": ""}') + 40
    assert estimate_prompt(asked) == estimate_prompt(plain) + 4 + (arguments + 3) // 4 + 4


# ---- config -------------------------------------------------------------------------------------


def test_the_budgets_section_loads_saves_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "pyclaw.yaml"
    section = {"overall": {"monthly": {"cost": 20.0}},
               "channels": {"local": {"daily": {"cost": 1.5, "tokens": 100000}}},
               "each_person": {"daily": {"tokens": 20000}},
               "people": {"local": {"owner": {}}}}
    path.write_text("# my budgets\n" + yaml.safe_dump({"budgets": section}), "utf-8")
    secrets = FileSecretStore(tmp_path / "secrets.json")
    cfg = load_config(path, secrets)
    assert not cfg.errors and not cfg.warnings
    assert cfg.budgets.channels["local"].daily is not None
    assert cfg.budgets.channels["local"].daily.cost == 1.5
    cfg.budgets.overall.monthly.cost = 25.0  # type: ignore[union-attr]
    save_config(cfg, secrets)
    text = path.read_text("utf-8")
    assert text.startswith("# my budgets") and "reply_tokens" not in text  # defaults stay out
    again = load_config(path, secrets)
    assert again.budgets.overall.monthly is not None and again.budgets.overall.monthly.cost == 25
    assert again.budgets.model_dump() == cfg.budgets.model_dump()


def test_bad_budgets_are_errors_with_a_line_and_unknown_channels_a_warning(
        tmp_path: Path) -> None:
    path = tmp_path / "pyclaw.yaml"
    path.write_text("budgets:\n  channels:\n    local:\n      daily: {}\n", "utf-8")
    cfg = load_config(path)
    assert [str(e) for e in cfg.errors] == [
        f"{path}:4 [budgets.channels.local.daily]: Value error, a cap needs cost, tokens or "
        "both"]
    assert cfg.budgets.is_empty()  # the section is off; the rest of the config still loads
    path.write_text("budgets:\n  channels:\n    telegarm:\n      daily: {cost: 1}\n", "utf-8")
    cfg = load_config(path)
    assert not cfg.errors
    assert [str(w) for w in cfg.warnings] == [
        f"{path}:3 [budgets.channels.telegarm]: no channel is called 'telegarm': this budget "
        "applies to nothing"]
    path.write_text("budgets:\n  overall:\n    daily: {cost: -1}\n", "utf-8")
    assert "budgets.overall.daily.cost" in str(load_config(path).errors[0])


def test_every_budget_field_has_a_description() -> None:
    from pyclaw_app.budgets import Cap, Caps

    for model in (BudgetConfig, Caps, Cap):
        for name, info in model.model_fields.items():
            assert info.description, f"{model.__name__}.{name}"


_caps = st.fixed_dictionaries({}, optional={
    "daily": st.fixed_dictionaries({"cost": st.floats(0, 1e4)}, optional={
        "tokens": st.integers(0, 10**9)}),
    "monthly": st.fixed_dictionaries({"tokens": st.integers(0, 10**9)})})
_names = st.text("abcxyz019:@._-", min_size=1, max_size=8)


@given(st.fixed_dictionaries({}, optional={
    "overall": _caps, "each_person": _caps,
    "channels": st.dictionaries(_names, _caps, max_size=3),
    "people": st.dictionaries(_names, st.dictionaries(_names, _caps | st.none(), max_size=3),
                              max_size=2),
    "reply_tokens": st.integers(0, 10_000)}))
def test_what_a_save_writes_reads_back_the_same(section: dict[str, object]) -> None:
    """The saved form (defaults left out) means what was loaded: a person exempted with {}
    or null stays exempted."""
    loaded = BudgetConfig.model_validate(section)
    saved = yaml.safe_load(yaml.safe_dump(loaded.model_dump(mode="json", exclude_defaults=True)))
    again = BudgetConfig.model_validate(saved or {})
    assert again == loaded
    for channel, people in loaded.people.items():
        for sender, caps in people.items():
            assert caps is None or caps.daily is not None or caps.monthly is not None, (
                channel, sender)
