"""Budgets end to end: a real gateway, local chat and the real Telegram connector against the
fake Bot API, the OpenAI fake (which reports usage tokens) and prices in the provider config.

The guard's clock is injected (the agent's ``now``): a day or a month passes by setting it.
The gateway runs with no tools offered (``agent.tools: []``) and ``reply_tokens: 0`` unless a
test says otherwise, so a call's estimate is its prompt alone and a cap of 150 tokens admits
one long message, whose real usage (about 205 tokens, as the fake counts) then uses it up.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from pyclaw_app.agent import Agent
from pyclaw_app.bus import Bus
from pyclaw_app.config import load_config
from pyclaw_app.control.chat import ask
from pyclaw_app.control.host import GatewayHost
from pyclaw_app.control.local import LocalControlPlane
from pyclaw_app.control.remote import RemoteControlPlane
from pyclaw_app.control.rights import ADMIN_TOKEN_KEY, MONITOR_TOKEN_KEY
from pyclaw_app.gateway import Gateway
from pyclaw_app.model import ChannelState, EventKind
from pyclaw_app.secrets import FileSecretStore
from pyclaw_app.store import Store
from pyclaw_app.store.identities import Account, IdentityStore
from tests.conftest import provider_section
from tests.contract.harness_telegram import TelegramHarness
from tests.fakes.openai_api import FakeOpenAI, FakeReply, FakeToolCall
from tests.support import eventually

LONG = "x" * 400  # estimated at ~111 prompt tokens; the fake bills ~205 for it and its echo
CHANNEL_NOTICE = "This assistant's daily budget for this channel is used up; it resets at 00:00."
PRICES = {"*": {"input": 1000.0, "output": 1000.0}}  # $1 per thousand tokens
WAIT = 20.0


class Clock:
    """The gateway's local time, moved by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 10, 15, 30)

    def __call__(self) -> datetime:
        return self.now


BudgetGateway = Callable[..., Awaitable[Gateway]]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def budget_gateway(tmp_path: Path, fake_llm: FakeOpenAI, clock: Clock
                         ) -> AsyncIterator[BudgetGateway]:
    """Gateways whose agent reads ``clock``; ``budgets`` is the config's section."""
    started: list[tuple[Gateway, Store]] = []

    async def factory(budgets: dict[str, Any], *, channels: dict[str, Any] | None = None,
                      data_dir: Path | None = None, **agent: Any) -> Gateway:
        path = tmp_path / f"pyclaw-{len(started)}.yaml"
        path.write_text(yaml.safe_dump({
            "providers": [provider_section(fake_llm, prices=PRICES)],
            "agent": {"system_prompt": "Be brief.", "tools": [], **agent},
            "budgets": {"reply_tokens": 0, **budgets},
            "channels": channels or {"local": {"type": "local", "rate_limit_per_minute": 0}},
        }), "utf-8")
        config = load_config(path, FileSecretStore(tmp_path / "secrets.json"))
        assert not config.errors, config.errors
        store = await Store(data_dir or tmp_path / "data").open()
        gateway = Gateway(config, store, Bus(), agent=Agent.from_config(config, store, now=clock))
        await gateway.start()
        started.append((gateway, store))
        return gateway

    yield factory
    for gateway, store in reversed(started):
        await gateway.stop()
        await store.close()


_chats = itertools.count(1)


async def say(gateway: Gateway, text: str, *, sender: str = "you", chat: str | None = None,
              channel: str = "local") -> str:
    """Ask in a chat of its own unless ``chat`` is given: no history grows the estimate."""
    chat = chat or f"c{next(_chats)}"
    reply = await ask(gateway, text, channel=channel, chat=chat, sender=sender, timeout=WAIT)
    await gateway.lanes.join()
    return reply


async def log_lines(gateway: Gateway, needle: str) -> list[tuple[str, str, str]]:
    rows = await gateway.store.db.fetchall(
        "SELECT channel, level, message FROM channel_log WHERE message LIKE ? ORDER BY id",
        (f"%{needle}%",))
    return [(r["channel"], r["level"], r["message"]) for r in rows]


async def inbound_rows(gateway: Gateway) -> list[tuple[str, str | None]]:
    rows = await gateway.store.db.fetchall(
        "SELECT status, error FROM messages WHERE direction='in' ORDER BY id")
    return [(r["status"], r["error"]) for r in rows]


# ---- local chat ---------------------------------------------------------------------------------


async def test_a_channel_cap_refuses_before_the_provider_is_called_and_tells_the_owner_once(
        budget_gateway: BudgetGateway, fake_llm: FakeOpenAI) -> None:
    gateway = await budget_gateway({"channels": {"local": {"daily": {"tokens": 150}}}})
    events = gateway.bus.subscribe()
    assert await say(gateway, LONG) == f"Echo: {LONG}"
    assert len(fake_llm.requests) == 1
    for text in ("one more", "and another"):
        assert await say(gateway, text) == CHANNEL_NOTICE
    assert len(fake_llm.requests) == 1  # the refused messages never reached the provider

    statuses = await inbound_rows(gateway)
    assert [s for s, _ in statuses] == ["replied", "skipped", "skipped"]
    assert all("over budget: channel local daily tokens cap 150 tokens" in (e or "")
               for _, e in statuses[1:])
    refused = await log_lines(gateway, "not answered: over budget")
    assert len(refused) == 2 and all(c == "local" for c, _, _ in refused)
    told = await log_lines(gateway, "budget reached")
    assert len(told) == 1  # once per cap and period, not once per message
    assert told[0][:2] == ("local", "warning")
    assert "daily tokens cap of channel local (150 tokens)" in told[0][2]
    assert "until 2026-03-11 00:00" in told[0][2]
    batch = await events.get_batch(1000, timeout=0.1)
    warnings = [e for e in batch if e.kind == EventKind.LOG and e.data["level"] == "warning"
                and "budget reached" in e.data["message"]]
    assert len(warnings) == 1  # the live event the Dashboard and Logs show
    skipped = [e for e in batch if e.kind == EventKind.MESSAGE_SKIPPED]
    assert [e.data["notice"] for e in skipped] == [CHANNEL_NOTICE, CHANNEL_NOTICE]
    assert all("over budget" in e.data["reason"] for e in skipped)


async def test_the_next_day_answers_again(budget_gateway: BudgetGateway, fake_llm: FakeOpenAI,
                                          clock: Clock) -> None:
    gateway = await budget_gateway({"channels": {"local": {"daily": {"cost": 0.15}}}})
    assert await say(gateway, LONG) == f"Echo: {LONG}"
    refused = await say(gateway, "more")
    assert refused == CHANNEL_NOTICE
    clock.now = datetime(2026, 3, 11, 0, 0, 1)  # just past local midnight
    assert await say(gateway, "good morning") == "Echo: good morning"
    assert len(fake_llm.requests) == 2
    assert await say(gateway, LONG) == f"Echo: {LONG}"  # the new day has room for one more
    assert await say(gateway, "and now?") == CHANNEL_NOTICE
    assert len(await log_lines(gateway, "budget reached")) == 2  # told again: a new period


async def test_a_monthly_cap_outlasts_the_day_and_resets_with_the_month(
        budget_gateway: BudgetGateway, fake_llm: FakeOpenAI, clock: Clock) -> None:
    clock.now = datetime(2026, 3, 31, 22, 0)
    gateway = await budget_gateway({"overall": {"monthly": {"tokens": 150}}})
    assert await say(gateway, LONG) == f"Echo: {LONG}"
    notice = "This assistant's monthly budget is used up; it resets on 1 April at 00:00."
    assert await say(gateway, "more") == notice
    told = await log_lines(gateway, "budget reached")
    assert len(told) == 1 and told[0][0] == "gateway"  # an overall cap is the gateway's
    clock.now = datetime(2026, 4, 1, 0, 0)
    assert await say(gateway, "new month") == "Echo: new month"
    assert len(fake_llm.requests) == 2


async def test_a_daily_cap_inside_a_monthly_one_does_not_promise_tomorrow(
        budget_gateway: BudgetGateway, clock: Clock) -> None:
    gateway = await budget_gateway({"overall": {"daily": {"tokens": 150},
                                                "monthly": {"tokens": 160}}})
    assert await say(gateway, LONG) == f"Echo: {LONG}"
    clock.now += timedelta(days=1)  # the daily cap would allow it; the month does not
    assert await say(gateway, "more") == (
        "This assistant's monthly budget is used up; it resets on 1 April at 00:00.")


async def test_a_person_cap_leaves_other_people_answered(
        budget_gateway: BudgetGateway, fake_llm: FakeOpenAI) -> None:
    gateway = await budget_gateway({"each_person": {"daily": {"tokens": 150}},
                                    "people": {"local": {"boss": None}}})
    assert await say(gateway, LONG, sender="alice") == f"Echo: {LONG}"
    assert await say(gateway, "hi", sender="alice") == (
        "Your daily budget with this assistant is used up; it resets at 00:00.")
    assert await say(gateway, "hi", sender="bob", chat="bob") == "Echo: hi"
    for text in (LONG, LONG, "still here"):  # named in people with null: no personal cap
        assert (await say(gateway, text, sender="boss", chat="boss")).startswith("Echo: ")
    assert len(fake_llm.requests) == 5
    told = await log_lines(gateway, "budget reached")
    assert len(told) == 1 and "local sender alice" in told[0][2]


async def test_an_overall_cap_covers_every_channel(
        budget_gateway: BudgetGateway, fake_llm: FakeOpenAI) -> None:
    gateway = await budget_gateway(
        {"overall": {"daily": {"cost": 0.15}}},
        channels={"local": {"type": "local"}, "desk": {"type": "local"}})
    assert await say(gateway, LONG) == f"Echo: {LONG}"
    assert await say(gateway, "hi", channel="desk") == (
        "This assistant's daily budget is used up; it resets at 00:00.")
    assert len(fake_llm.requests) == 1


async def test_the_reply_allowance_refuses_a_call_that_would_cross(
        budget_gateway: BudgetGateway, fake_llm: FakeOpenAI) -> None:
    """Nothing spent yet, but prompt plus the assumed reply would cross the cap."""
    gateway = await budget_gateway({"channels": {"local": {"daily": {"tokens": 150}}},
                                    "reply_tokens": 200})
    assert await say(gateway, "hello") == (
        "This assistant's daily budget for this channel has too little left for this message; "
        "it resets at 00:00.")
    assert fake_llm.requests == []


async def test_calls_in_flight_hold_their_estimate(
        budget_gateway: BudgetGateway, fake_llm: FakeOpenAI) -> None:
    """Two conversations at once, each within the cap alone but not together: one is
    refused before its call, instead of both being made."""
    fake_llm.latency = 0.3
    gateway = await budget_gateway({"channels": {"local": {"daily": {"tokens": 200}}}})
    first, second = await asyncio.gather(say(gateway, LONG, chat="a"),
                                         say(gateway, LONG, chat="b", sender="other"))
    assert sorted([first == f"Echo: {LONG}", second == f"Echo: {LONG}"]) == [False, True]
    assert CHANNEL_NOTICE.replace("is used up", "has too little left for this message") in (
        first, second)
    assert len(fake_llm.requests) == 1


async def test_spend_survives_a_restart(budget_gateway: BudgetGateway, fake_llm: FakeOpenAI,
                                        tmp_path: Path) -> None:
    caps = {"channels": {"local": {"daily": {"tokens": 150}}}}
    gateway = await budget_gateway(caps, data_dir=tmp_path / "kept")
    assert await say(gateway, LONG) == f"Echo: {LONG}"
    await gateway.stop()
    again = await budget_gateway(caps, data_dir=tmp_path / "kept")
    assert await say(again, "after the restart") == CHANNEL_NOTICE
    assert len(fake_llm.requests) == 1


async def test_the_usage_figures_show_spent_against_each_cap(
        budget_gateway: BudgetGateway, tmp_path: Path) -> None:
    gateway = await budget_gateway({
        "overall": {"monthly": {"cost": 5.0}},
        "channels": {"local": {"daily": {"cost": 1.0, "tokens": 10_000}}},
        "each_person": {"daily": {"tokens": 5_000}}})
    plane = LocalControlPlane(gateway, FileSecretStore(tmp_path / "plane-secrets.json"))
    before = {(b.scope, b.period, b.unit): b for b in await plane.budgets()}
    assert set(before) == {("overall", "monthly", "cost"), ("channel", "daily", "cost"),
                           ("channel", "daily", "tokens")}  # no person has spent yet
    assert all(b.spent == 0 for b in before.values())

    await say(gateway, LONG, sender="alice")
    await say(gateway, "hello", sender="bob", chat="bob")
    calls = await eventually(lambda: gateway.store.db.fetchall(
        "SELECT c.cost, c.input_tokens + c.output_tokens AS tokens, m.sender_id FROM llm_calls c"
        " JOIN messages m ON m.id = c.message_id"))
    cost = sum(c["cost"] for c in calls)
    assert cost > 0
    rows = await plane.budgets()
    by_key = {(b.scope, b.sender, b.period, b.unit): b for b in rows}
    overall = by_key[("overall", "", "monthly", "cost")]
    assert overall.spent == pytest.approx(cost) and overall.limit == 5.0
    assert overall.resets_at == datetime(2026, 4, 1).timestamp()
    daily = by_key[("channel", "", "daily", "tokens")]
    assert daily.spent == sum(c["tokens"] for c in calls) and daily.limit == 10_000
    assert daily.resets_at == datetime(2026, 3, 11).timestamp() and daily.channel == "local"
    alice = by_key[("person", "alice", "daily", "tokens")]
    assert alice.spent == sum(c["tokens"] for c in calls if c["sender_id"] == "alice")
    assert alice.sender_name == "alice" and alice.limit == 5_000
    assert [b.sender for b in rows if b.scope == "person"] == ["alice", "bob"]  # most first


# ---- Telegram -----------------------------------------------------------------------------------


async def dm(harness: TelegramHarness, gateway: Gateway, chat: str, text: str) -> None:
    pid = await harness.inject_message(chat, text)

    async def settled() -> bool:
        row = await gateway.store.db.fetchone(
            "SELECT status FROM messages WHERE direction='in' AND platform_id=?", (pid,))
        return row is not None and row["status"] in ("replied", "skipped", "failed")

    await eventually(settled, timeout=WAIT)
    await gateway.lanes.join()


async def test_telegram_channel_and_person_caps(
        telegram: TelegramHarness, budget_gateway: BudgetGateway, fake_llm: FakeOpenAI) -> None:
    """Through the real connector: a person's cap refuses one private chat while another is
    answered, then the channel's cap refuses everyone; no refused message costs a call."""
    gateway = await budget_gateway(
        {"channels": {"telegram": {"daily": {"tokens": 400}}},
         "each_person": {"daily": {"tokens": 150}}},
        channels={"telegram": {"type": "telegram", "dm_policy": "open",
                               "rate_limit_per_minute": 0, **telegram.channel_config()}})
    await eventually(lambda: gateway.channels["telegram"].state == ChannelState.ONLINE,
                     timeout=WAIT)
    # in a private chat the chat is the person
    alice, bob, carol = telegram.chat(0), telegram.chat(1), telegram.chat(2)
    await dm(telegram, gateway, alice, LONG)
    await dm(telegram, gateway, alice, "more please")
    assert telegram.visible(alice) == [
        f"Echo: {LONG}", "Your daily budget with this assistant is used up; it resets at 00:00."]
    await dm(telegram, gateway, bob, LONG)  # bob's own cap is untouched: answered
    assert telegram.visible(bob) == [f"Echo: {LONG}"]
    assert len(fake_llm.requests) == 2
    await dm(telegram, gateway, carol, "and me?")  # ~410 tokens on the channel: over 400
    assert telegram.visible(carol) == [CHANNEL_NOTICE]
    assert len(fake_llm.requests) == 2
    statuses = await inbound_rows(gateway)
    assert [s for s, _ in statuses] == ["replied", "skipped", "replied", "skipped"]
    told = await log_lines(gateway, "budget reached")
    assert [c for c, _, _ in told] == ["telegram", "telegram"]  # alice's cap, the channel's


async def test_linked_accounts_on_two_channels_share_one_person_cap(
        telegram: TelegramHarness, budget_gateway: BudgetGateway, fake_llm: FakeOpenAI,
        tmp_path: Path) -> None:
    """Ann's Telegram account and her local chat account are linked: what she spent on
    Telegram counts on the local chat too, the owner is told about Ann, not an account, and
    an unlinked sender keeps a cap of their own. Unlinked again, each account is alone."""
    linked_notice = ("Your daily budget with this assistant (all your linked accounts "
                     "together) is used up; it resets at 00:00.")
    gateway = await budget_gateway(
        {"each_person": {"daily": {"tokens": 150}}},
        channels={"local": {"type": "local", "rate_limit_per_minute": 0},
                  "telegram": {"type": "telegram", "dm_policy": "open",
                               "rate_limit_per_minute": 0, **telegram.channel_config()}})
    await eventually(lambda: gateway.channels["telegram"].state == ChannelState.ONLINE,
                     timeout=WAIT)
    ann = telegram.chat(0)
    identities = IdentityStore(gateway.store.db)
    await identities.link(Account("telegram", ann, "Ann"), Account("local", "ann"))
    await dm(telegram, gateway, ann, LONG)  # ~205 tokens on Telegram: over her 150
    assert telegram.visible(ann) == [f"Echo: {LONG}"]
    assert await say(gateway, "hello from the app", sender="ann") == linked_notice
    await dm(telegram, gateway, ann, "and here?")
    assert telegram.visible(ann)[-1] == linked_notice
    assert await say(gateway, "hi", sender="bob", chat="bob") == "Echo: hi"
    assert len(fake_llm.requests) == 2
    [(channel, level, line)] = await log_lines(gateway, "budget reached")
    assert (channel, level) == ("local", "warning")
    assert f"person Ann (local ann, telegram {ann})" in line
    assert "this person's messages on every linked account are refused" in line

    plane = LocalControlPlane(gateway, FileSecretStore(tmp_path / "plane-secrets.json"))
    people = {b.sender: b for b in await plane.budgets() if b.scope == "person"}
    assert set(people) == {f"local ann, telegram {ann}", "bob"}
    both = people[f"local ann, telegram {ann}"]
    assert (both.sender_name, both.channel) == ("Ann", "local, telegram")
    ann_tokens = await gateway.store.db.fetchone(
        "SELECT SUM(c.input_tokens + c.output_tokens) AS n FROM llm_calls c"
        " JOIN messages m ON m.id = c.message_id WHERE m.sender_id IN ('ann', ?)", (ann,))
    assert ann_tokens is not None and both.spent == ann_tokens["n"] > 150

    assert await identities.unlink("local", "ann")
    assert await say(gateway, "alone again", sender="ann") == "Echo: alone again"
    await dm(telegram, gateway, ann, "still capped?")
    assert telegram.visible(ann)[-1] == (
        "Your daily budget with this assistant is used up; it resets at 00:00.")


async def test_each_call_of_a_turn_is_checked_not_only_the_first(
        budget_gateway: BudgetGateway, fake_llm: FakeOpenAI) -> None:
    """The model writes at length and asks for a tool; that first call uses the cap up, so
    the round that would pass the tool's result back is refused before it is made."""
    def responder(messages: list[dict[str, Any]]) -> str | FakeReply:
        if any(m.get("role") == "tool" for m in messages):
            return "2 + 2 is 4"
        return FakeReply("Let me work that out carefully. " * 25,
                         [FakeToolCall("calculate", {"expression": "2 + 2"})])

    fake_llm.responder = responder
    gateway = await budget_gateway({"channels": {"local": {"daily": {"tokens": 150}}}},
                                   tools=["calculate"])
    assert await say(gateway, "what is 2 + 2?") == CHANNEL_NOTICE
    assert len(fake_llm.requests) == 1
    assert [s for s, _ in await inbound_rows(gateway)] == ["skipped"]


async def test_the_monitor_reads_budgets_over_the_control_api(
        tmp_path: Path, fake_llm: FakeOpenAI) -> None:
    """The Android monitor's read-only token may see spend against each cap."""
    config = tmp_path / "pyclaw.yaml"
    config.write_text(yaml.safe_dump({
        "server": {"port": 0, "control_api": True},
        "providers": [provider_section(fake_llm, prices=PRICES)],
        "budgets": {"channels": {"local": {"daily": {"cost": 2.0}}}}}))
    host = await GatewayHost.start(config, tmp_path / "data")
    try:
        assert host.server is not None
        secrets = host.runtime.secrets
        admin = await RemoteControlPlane(host.server.url, secrets.get(ADMIN_TOKEN_KEY) or ""
                                         ).connect()
        monitor = await RemoteControlPlane(host.server.url,
                                           secrets.get(MONITOR_TOKEN_KEY) or "").connect()
        try:
            assert monitor.read_only
            await admin.chat_send("how much?")
            gateway = host.runtime.gateway
            calls = await eventually(lambda: gateway.store.db.fetchall(
                "SELECT cost FROM llm_calls"))
            [row] = await monitor.budgets()
            assert (row.scope, row.channel, row.period, row.unit, row.limit) == (
                "channel", "local", "daily", "cost", 2.0)
            assert row.spent == pytest.approx(calls[0]["cost"]) and row.spent > 0
        finally:
            await admin.close()
            await monitor.close()
    finally:
        await host.stop()
