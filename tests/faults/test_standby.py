"""A hot standby on PostgreSQL: the active gateway SIGKILLed mid-burst, the standby takes over.

Two ``pyclaw gateway`` processes share one PostgreSQL database with ``storage.standby``:
the first holds the store, the second waits for it. Killing the first (no clean stop, its
connections cut by the kernel) frees its lock on the server; the standby then takes over
the Telegram channel from its stored offset and the unfinished journal rows under the same
custody rules as a restart: nothing lost, nothing answered twice, each chat in order.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from tests.conftest import provider_section
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.telegram_api import FakeTelegram
from tests.faults.gateways import rows, spawn
from tests.faults.test_faults import (
    figures,
    replies,
    telegram,  # noqa: F401 - the fixture
    telegram_channel,
)
from tests.stores import postgres_storage
from tests.support import eventually

pytestmark = pytest.mark.timeout(300)
MESSAGES, CHATS = 300, 30


async def test_the_standby_takes_over_a_killed_gateway_without_loss_or_doubles(
        tmp_path: Path, telegram: FakeTelegram) -> None:  # noqa: F811 - the fixture
    storage = await postgres_storage()
    assert storage.url is not None
    url = storage.url
    async with FakeOpenAI(latency=0.02) as llm:
        config = tmp_path / "pyclaw.yaml"
        config.write_text(yaml.safe_dump({
            "storage": {"url": url, "standby": True},
            "providers": [provider_section(llm)],
            "channels": {"tg": telegram_channel(telegram)}}))
        active, active_running = await spawn(config, tmp_path / "a")
        await asyncio.wait_for(active_running.wait(), 60)
        standby, standby_running = await spawn(config, tmp_path / "b")
        await eventually(lambda: len(rows(  # both lock sessions: the holder, the waiter
            url, "SELECT pid FROM pg_stat_activity WHERE application_name LIKE"
                 " 'pyclaw gateway%'")) == 2, timeout=60)
        assert not standby_running.is_set()  # it waits: the store is held

        for n in range(MESSAGES):
            telegram.inject_message(5000 + n % CHATS, f"burst {n}")
        await eventually(lambda: len(telegram.sent_to()) >= 80, timeout=60)
        active.send_signal(signal.SIGKILL)
        await active.wait()
        killed_at = time.monotonic()
        at_kill = len(telegram.sent_to())
        try:
            await asyncio.wait_for(standby_running.wait(), 30)
            takeover = time.monotonic() - killed_at

            def uncertain() -> set[str]:
                return {str(r[0]) for r in rows(
                    url, "SELECT text FROM messages WHERE direction='out' AND status='failed'"
                         " AND error LIKE 'uncertain:%'")}

            expected = {f"Echo: burst {n}" for n in range(MESSAGES)}
            await eventually(lambda: len(expected - set(replies(telegram)))
                             <= len(uncertain()), timeout=120)
            await eventually(lambda: not rows(
                url, "SELECT id FROM messages WHERE status IN ('received', 'processing',"
                     " 'pending')"), timeout=30)
        finally:
            standby.send_signal(signal.SIGTERM)
            await asyncio.wait_for(standby.wait(), 30)

    got = replies(telegram)
    missing = expected - set(got)
    duplicated = sum(n - 1 for n in got.values() if n > 1)
    per_chat: dict[int, list[int]] = defaultdict(list)
    for sent in telegram.sent_to():
        if match := re.fullmatch(r"Echo: burst (\d+)", sent.text):
            per_chat[sent.chat_id].append(int(match.group(1)))
    out_of_order = [chat for chat, ns in per_chat.items() if ns != sorted(ns)]
    figures("standby", messages=MESSAGES, replies_before_kill=at_kill,
            uncertain=len(uncertain()), lost=len(missing - uncertain()), duplicated=duplicated,
            takeover_s=round(takeover, 1))
    assert duplicated == 0
    assert not missing - uncertain()
    assert len(uncertain()) <= 4
    assert not out_of_order
