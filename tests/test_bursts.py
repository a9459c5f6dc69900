"""Bursts (``burst: collect``): what one person sends in a row is answered together, once.

End to end through the real Telegram connector (python-telegram-bot) against the fake Bot
API and a real gateway with the OpenAI fake. The settle time is measured on a clock the
test moves (``Bursts.clock``, then ``wake``); a turn is held inside the model call by a
gate on the fake, so "a message arrives while a turn runs" is an order of events, not a
race against a timer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from pyclaw_app.control.local import LocalControlPlane
from pyclaw_app.gateway import Gateway
from pyclaw_app.gateway.bursts import MAX_BURST, take_burst
from pyclaw_app.model import Address, ChannelState, Inbound
from pyclaw_app.secrets import FileSecretStore
from pyclaw_app.store.journal import JournalRow
from tests.conftest import GatewayFactory, StoreFactory, provider_section
from tests.contract.harness_telegram import TelegramHarness
from tests.fakes.openai_api import FakeOpenAI
from tests.stores import ON_EACH_STORE
from tests.support import eventually

CHAT = "1001"
WAIT = 20.0
SETTLE = 30.0
"""Long enough that only the test's clock ends it: a real timer never fires in a test."""

pytestmark = ON_EACH_STORE


@dataclass
class FakeClock:
    t: float = 1000.0

    def __call__(self) -> float:
        return self.t


class GatedOpenAI(FakeOpenAI):
    """The OpenAI fake, with each chat completion held until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.gate.set()
        self.seen: list[dict[str, Any]] = []
        """Every request as it came in, before the gate (``requests`` counts only answered
        ones)."""

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(await request.json())
        await self.gate.wait()
        return await super()._completions(request)


@pytest.fixture
async def llm() -> AsyncIterator[GatedOpenAI]:
    server = GatedOpenAI()
    await server.start()
    try:
        yield server
    finally:
        server.gate.set()
        await server.stop()


async def online(harness: TelegramHarness, llm: FakeOpenAI, make_gateway: GatewayFactory,
                 data_dir: Path, clock: FakeClock | None = None, **section: Any) -> Gateway:
    gateway = await make_gateway({
        "providers": [provider_section(llm)],
        "channels": {"telegram": {"type": "telegram", "dm_policy": "open",
                                  "rate_limit_per_minute": 0, **harness.channel_config(),
                                  **section}}},
        data_dir=data_dir)
    if clock is not None:
        gateway.intake.bursts.clock = clock
    await eventually(lambda: gateway.channels["telegram"].state == ChannelState.ONLINE,
                     timeout=WAIT)
    return gateway


async def inbound_rows(gateway: Gateway) -> list[dict[str, Any]]:
    rows = await gateway.store.db.fetchall(
        "SELECT id, text, platform_id, status, answered_with FROM messages"
        " WHERE direction='in' ORDER BY id")
    return [dict(r) for r in rows]


async def journaled(gateway: Gateway, count: int) -> list[dict[str, Any]]:
    async def enough() -> list[dict[str, Any]] | None:
        rows = await inbound_rows(gateway)
        return rows if len(rows) >= count else None

    rows: list[dict[str, Any]] = await eventually(enough, timeout=WAIT)
    return rows


async def send_all(harness: TelegramHarness, *texts: str) -> list[str]:
    return [await harness.inject_message(CHAT, text) for text in texts]


def users(request: dict[str, Any]) -> list[str]:
    return [str(m["content"]) for m in request["messages"] if m["role"] == "user"]


async def settle_passes(gateway: Gateway, clock: FakeClock, llm: GatedOpenAI) -> None:
    """Move the clock past the settle time until the model is asked. Moved once, it can be
    too early: a message is journaled a moment before its collector hears of it (which
    starts the quiet time again), and the test sees the row in that moment."""
    asked = len(llm.seen)

    def passes() -> bool:
        clock.t += SETTLE
        gateway.intake.bursts.wake()
        return len(llm.seen) > asked

    await eventually(passes, timeout=WAIT, interval=0.05)


async def answered(harness: TelegramHarness, gateway: Gateway, replies: int) -> None:
    await eventually(lambda: len(harness.sent(CHAT)) >= replies, timeout=WAIT)
    await gateway.lanes.join()


async def test_three_messages_in_a_row_get_one_call_and_one_reply_to_the_last(
        telegram: TelegramHarness, llm: GatedOpenAI, make_gateway: GatewayFactory,
        tmp_path: Path) -> None:
    clock = FakeClock()
    gateway = await online(telegram, llm, make_gateway, tmp_path / "data", clock,
                           burst="collect", burst_settle=SETTLE)
    pids = await send_all(telegram, "hi", "can you", "book a table")
    await journaled(gateway, 3)
    assert llm.seen == []  # the chat has not been quiet for the settle time yet

    await settle_passes(gateway, clock, llm)
    await answered(telegram, gateway, 1)
    assert len(llm.seen) == 1
    assert users(llm.seen[0]) == ["hi", "can you", "book a table"]  # each as it was sent
    sent = telegram.sent(CHAT)
    assert len(sent) == 1
    assert sent[0].reply_to == pids[-1]  # quotes the last message of the burst
    assert telegram.visible(CHAT) == ["Echo: book a table"]

    rows = await inbound_rows(gateway)
    last = rows[-1]["id"]
    assert [(r["status"], r["answered_with"]) for r in rows] == [("replied", last)] * 3
    replies = await gateway.store.db.fetchall(
        "SELECT reply_to, status FROM messages WHERE direction='out'")
    assert [(r["reply_to"], r["status"]) for r in replies] == [(last, "sent")]
    logs = await gateway.store.logs.page(channel="telegram", search="in one reply")
    assert logs

    # What Logs and Messages show: every message of the burst answered, by that reply.
    plane = LocalControlPlane(gateway, FileSecretStore(tmp_path / "plane-secrets.json"))
    traffic = await plane.recent_traffic(channel="telegram")
    assert sorted((t.direction, t.status) for t in traffic) == [
        ("in", "replied")] * 3 + [("out", "sent")]
    for row in rows:
        detail = await plane.message_detail(row["id"])
        assert detail is not None and detail.reply is not None
        assert detail.reply.text == "Echo: book a table"

    # The next message sees the burst in its history as it was: three questions, one answer.
    await telegram.inject_message(CHAT, "for two")
    await journaled(gateway, 4)
    await settle_passes(gateway, clock, llm)
    await answered(telegram, gateway, 2)
    history = [(m["role"], m["content"]) for m in llm.seen[1]["messages"][1:]]
    assert history == [("user", "hi"), ("user", "can you"), ("user", "book a table"),
                       ("assistant", "Echo: book a table"), ("user", "for two")]


async def test_separate_the_default_answers_each_message(
        telegram: TelegramHarness, llm: GatedOpenAI, make_gateway: GatewayFactory,
        tmp_path: Path) -> None:
    gateway = await online(telegram, llm, make_gateway, tmp_path / "data")
    assert gateway.channels["telegram"].entry.config.burst == "separate"
    pids = await send_all(telegram, "hi", "can you", "book a table")
    await answered(telegram, gateway, 3)
    assert len(llm.seen) == 3
    assert sorted(telegram.visible(CHAT)) == sorted(
        ["Echo: hi", "Echo: can you", "Echo: book a table"])
    assert sorted(m.reply_to for m in telegram.sent(CHAT)) == sorted(pids)
    rows = await inbound_rows(gateway)
    assert [(r["status"], r["answered_with"]) for r in rows] == [("replied", None)] * 3


async def test_messages_that_arrive_while_a_turn_runs_are_the_next_turn(
        telegram: TelegramHarness, llm: GatedOpenAI, make_gateway: GatewayFactory,
        tmp_path: Path) -> None:
    gateway = await online(telegram, llm, make_gateway, tmp_path / "data",
                           burst="collect", burst_settle=0)
    llm.gate.clear()
    await telegram.inject_message(CHAT, "hi")
    await eventually(lambda: len(llm.seen) == 1, timeout=WAIT)  # the turn for "hi" runs
    await send_all(telegram, "can you", "book a table")
    await journaled(gateway, 3)
    assert len(llm.seen) == 1

    llm.gate.set()
    await answered(telegram, gateway, 2)
    assert len(llm.seen) == 2
    assert users(llm.seen[0]) == ["hi"]
    assert [(m["role"], m["content"]) for m in llm.seen[1]["messages"][1:]] == [
        ("user", "hi"), ("assistant", "Echo: hi"), ("user", "can you"),
        ("user", "book a table")]
    assert telegram.visible(CHAT) == ["Echo: hi", "Echo: book a table"]
    rows = await inbound_rows(gateway)
    last = rows[-1]["id"]
    assert [(r["status"], r["answered_with"]) for r in rows] == [
        ("replied", None), ("replied", last), ("replied", last)]
    out = await gateway.store.db.fetchall(
        "SELECT reply_to FROM messages WHERE direction='out' ORDER BY id")
    assert [r["reply_to"] for r in out] == [rows[0]["id"], last]


async def test_a_gateway_stopped_mid_turn_answers_the_burst_once_after_restart(
        telegram: TelegramHarness, llm: GatedOpenAI, make_gateway: GatewayFactory,
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    clock = FakeClock()
    first = await online(telegram, llm, make_gateway, data, clock, burst="collect",
                         burst_settle=SETTLE)
    llm.gate.clear()
    await send_all(telegram, "hi", "can you", "book a table")
    await journaled(first, 3)
    await settle_passes(first, clock, llm)
    await eventually(lambda: len(llm.seen) == 1, timeout=WAIT)  # the model is thinking
    rows = await inbound_rows(first)
    last = rows[-1]["id"]
    assert all(r["answered_with"] == last for r in rows)  # the burst is durable already
    await first.stop()  # mid-turn: the answer never comes
    assert telegram.sent(CHAT) == []

    llm.gate.set()
    second = await online(telegram, llm, make_gateway, data, burst="collect",
                          burst_settle=SETTLE)
    await answered(telegram, second, 1)
    assert len(llm.seen) == 2
    assert users(llm.seen[1]) == ["hi", "can you", "book a table"]
    assert telegram.visible(CHAT) == ["Echo: book a table"]
    rows = await inbound_rows(second)
    assert [(r["status"], r["answered_with"]) for r in rows] == [("replied", last)] * 3

    await second.resume_unfinished()  # and once more: nothing is left to answer
    await second.lanes.join()
    assert len(telegram.sent(CHAT)) == 1 and len(llm.seen) == 2


async def test_local_chat_collects_a_burst_too(llm: GatedOpenAI,
                                               make_gateway: GatewayFactory) -> None:
    clock = FakeClock()
    gateway = await make_gateway({
        "providers": [provider_section(llm)],
        "channels": {"local": {"type": "local", "burst": "collect", "burst_settle": SETTLE}}})
    gateway.intake.bursts.clock = clock
    connector = gateway.channels["local"].connector
    assert connector is not None
    pids = [(await connector.post(text))[0] for text in ("hi", "can you", "book a table")]
    assert llm.seen == []
    await settle_passes(gateway, clock, llm)
    await eventually(lambda: connector.sent, timeout=WAIT)
    await gateway.lanes.join()
    assert [(r.text, r.reply_to) for r in connector.sent] == [("Echo: book a table", pids[-1])]
    assert len(llm.seen) == 1 and users(llm.seen[0]) == ["hi", "can you", "book a table"]


async def test_a_burst_whose_reply_was_going_out_is_uncertain_as_a_whole(
        tmp_path: Path, make_gateway: GatewayFactory, open_store: StoreFactory) -> None:
    """The custody rule for a reply cut by a crash holds for a burst: all of its messages
    are closed as uncertain together, and nothing is sent again."""
    store = await open_store(tmp_path / "data")
    address = Address("local", "crash", "local")
    ids = [(await store.journal.submit(Inbound(address, f"p-{n}", text, "you", "you"))
            ).journal_id for n, text in enumerate(("hi", "can you", "book a table"))]
    await store.journal.collect(ids)
    await store.journal.add_outbound(ids[-1], address, "Sure, for when?")
    await store.close()

    gateway = await make_gateway({"channels": {"local": {"type": "local",
                                                         "burst": "collect"}}})

    async def closed() -> list[JournalRow] | None:
        rows = [await gateway.store.journal.get(i) for i in ids]
        return rows if all(r is not None and r.status == "failed" for r in rows) else None

    rows = await eventually(closed)
    assert all(r.error is not None and r.error.startswith("uncertain") for r in rows)
    await gateway.lanes.join()
    connector = gateway.channels["local"].connector
    assert connector is not None and list(connector.sent) == []

    # Retrying any of them answers the burst, once, as one.
    assert await gateway.retry(ids[0])
    await gateway.lanes.join()
    final = [await gateway.store.journal.get(i) for i in ids]
    assert [r.status for r in final if r is not None] == ["replied"] * 3
    assert len(list(connector.sent)) == 1


def _row(id_: int, text: str, sender: str = "you") -> JournalRow:
    return JournalRow(id=id_, direction="in", channel="c", account="", chat="x", thread=None,
                      conv="c||x|", sender_id=sender, sender_name=sender, text=text,
                      attachments=None, meta=None, platform_id=str(id_), reply_to=None,
                      status="received", error=None, attempts=0, created_at=0.0,
                      updated_at=0.0)


def test_a_burst_is_one_persons_messages_up_to_a_command() -> None:
    rows = [_row(1, "hi"), _row(2, "can you"), _row(3, "/reset"), _row(4, "again")]
    assert [r.id for r in take_burst(rows)] == [1, 2]
    assert [r.id for r in take_burst(rows[2:])] == [3]  # a command is answered alone
    mixed = [_row(1, "hi", "ann"), _row(2, "me too", "bob"), _row(3, "so?", "ann")]
    assert [r.id for r in take_burst(mixed)] == [1]  # never two people in one answer
    backlog = [_row(i, f"m{i}") for i in range(1, MAX_BURST + 6)]
    assert len(take_burst(backlog)) == MAX_BURST
    assert take_burst([]) == []
