"""Telegram end to end: the poller moves past a poison message (issue 17).

A text holding a lone surrogate (JSON's ``\\ud800``, which the Bot API can send) made
the journal raise, the poller kept the offset and fetched the same update forever, and
nothing after it was answered. Now the text is answered with U+FFFD in the surrogate's
place, a message the journal cannot store at all is kept as a dead letter, and in both
cases the offset moves past it and the next message is answered.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator

import pytest

from pyclaw_app.gateway import Gateway
from tests.conftest import provider_section
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.telegram_api import FakeTelegram
from tests.support import eventually

CHAT = 1001


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture
async def gateway(telegram: FakeTelegram, fake_llm: FakeOpenAI, make_gateway) -> Gateway:
    gw: Gateway = await make_gateway({
        "providers": [provider_section(fake_llm)],
        "channels": {"tg": {"type": "telegram", "token": telegram.token,
                            "base_url": f"{telegram.url}/bot",
                            "base_file_url": f"{telegram.url}/file/bot", "poll_timeout": 1,
                            "dm_policy": "open", "stream_replies": False}}})
    await eventually(lambda: gw.channels["tg"].state.value == "online")
    return gw


def replies(telegram: FakeTelegram) -> list[str]:
    return [s.text for s in telegram.sent_to(CHAT)]


async def offset(gateway: Gateway) -> int | None:
    value: int | None = await gateway.store.channel_state.of("tg").get("offset")
    return value


async def test_a_lone_surrogate_is_answered_and_the_poller_moves_past_it(
        telegram: FakeTelegram, gateway: Gateway) -> None:
    telegram.inject_message(CHAT, "bad \ud800 text")
    telegram.inject_message(CHAT, "after the poison")
    last = telegram.updates[-1]["update_id"]
    await eventually(lambda: len(replies(telegram)) == 2, timeout=15)
    assert replies(telegram) == ["Echo: bad \ufffd text", "Echo: after the poison"]
    await eventually(lambda: telegram.updates == [], timeout=5)  # both confirmed
    assert await offset(gateway) == last + 1

    row = (await gateway.store.journal.recent(4, channel="tg"))[-1]
    assert row.direction == "in" and row.text == "bad \ufffd text" and row.status == "replied"
    assert json.loads(row.meta or "{}")["repaired"] == ["text"]
    notes = await gateway.store.logs.page(channel="tg", level="warning")
    assert any("U+FFFD" in n["message"] for n in notes)
    assert not await gateway.store.logs.page(channel="tg", search="could not journal")
    assert gateway.channels["tg"].crashed is None


async def test_a_message_the_journal_cannot_store_is_a_dead_letter_and_the_poller_goes_on(
        telegram: FakeTelegram, gateway: Gateway) -> None:
    # Stand-in for whatever the journal cannot take: SQLite's own length limit, lowered
    # on the writer's connection so that a 3,000-emoji text (12,000 bytes) is too big.
    await gateway.store.db.write(
        lambda conn: conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 8_000))
    big = "😀" * 3_000
    poison = telegram.inject_message(CHAT, big)
    telegram.inject_message(CHAT, "after the poison")
    last = telegram.updates[-1]["update_id"]
    await eventually(lambda: replies(telegram), timeout=15)
    assert replies(telegram) == ["Echo: after the poison"]
    await eventually(lambda: telegram.updates == [], timeout=5)
    assert await offset(gateway) == last + 1

    (letter,) = await gateway.store.dead_letters.list(channel="tg")
    assert letter.platform_id == f"{CHAT}:{poison['message_id']}"
    assert "too big" in letter.reason and "raw cut" in letter.reason
    full = await gateway.store.dead_letters.get(letter.id)
    assert full is not None and full.raw is not None
    assert full.raw.startswith(b'{"address": {"channel": "tg", "chat": "1001"')
    errors = await gateway.store.logs.page(channel="tg", level="error")
    assert any(f"dead letter {letter.id}:" in e["message"] and letter.reason in e["message"]
               for e in errors)
    rows = await gateway.store.journal.recent(10, channel="tg")
    assert [r.text for r in rows if r.direction == "in"] == ["after the poison"]
