"""Groups are kept out until the owner approves them (``group_policy: allowlist``, the default).

A stranger who adds the bot to their own group and mentions it must not spend the
owner's tokens. These tests run the real Telegram connector (python-telegram-bot)
against the fake Bot API, so "a group" is a real supergroup update with a mention.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pyclaw_app.channels.contract import ChannelConfig
from pyclaw_app.gateway import Gateway
from pyclaw_app.model import ChannelState
from pyclaw_app.store import Store
from pyclaw_app.store.access import MAX_PENDING_GROUPS, GroupStanding
from tests.conftest import GatewayFactory, provider_section
from tests.contract.harness_telegram import GROUP_CHAT, TelegramHarness
from tests.fakes.openai_api import FakeOpenAI
from tests.support import eventually
from tests.test_cli import run_cli

GROUP = str(GROUP_CHAT)
WAIT = 20.0


async def online(harness: TelegramHarness, llm: FakeOpenAI, make_gateway: GatewayFactory,
                 data_dir: Path, **section: Any) -> Gateway:
    """A gateway with Telegram online; the channel's group settings are left at their
    defaults unless ``section`` sets them."""
    gateway = await make_gateway({
        "providers": [provider_section(llm)],
        "channels": {"telegram": {"type": "telegram", "rate_limit_per_minute": 0,
                                  **harness.channel_config(), **section}}},
        data_dir=data_dir)
    await eventually(lambda: gateway.channels["telegram"].state == ChannelState.ONLINE,
                     timeout=WAIT)
    return gateway


async def mention(harness: TelegramHarness, gateway: Gateway, text: str,
                  chat: str = GROUP) -> None:
    """Mention the bot in the group and wait until the gateway is done with the message."""
    pid = await harness.inject_group_message(chat, text, mention=True)

    async def settled() -> bool:
        row = await gateway.store.db.fetchone(
            "SELECT status FROM messages WHERE direction='in' AND platform_id=?", (pid,))
        return row is not None and row["status"] in ("replied", "skipped", "failed")

    await eventually(settled, timeout=WAIT)
    await gateway.lanes.join()


def texts(harness: TelegramHarness, chat: str = GROUP) -> list[str]:
    return [m.text for m in harness.sent(chat)]


def echo(text: str) -> str:
    """The fake LLM's answer to a mention (the mention that opened it is cut: the kit's
    rule, pyclaw_app/channels/mentions.py)."""
    return f"Echo: {text}"


async def test_a_strangers_group_gets_one_notice_and_no_llm_call(
        telegram: TelegramHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory,
        tmp_path: Path) -> None:
    gateway = await online(telegram, fake_llm, make_gateway, tmp_path / "data")
    for text in ("hey bot", "answer me", "please?"):
        await mention(telegram, gateway, text)
    sent = texts(telegram)
    assert len(sent) == 1, sent  # one notice, then silence until the owner decides
    assert "owner" in sent[0] and f"pyclaw groups approve telegram {GROUP}" in sent[0]
    assert fake_llm.requests == []  # the stranger's group cost no tokens

    pending = await gateway.store.access.pending_groups()
    assert [(g.channel, g.chat, g.status) for g in pending] == [("telegram", GROUP, "pending")]
    assert pending[0].requested_by.endswith("(7)")  # the harness's group sender
    rows = await gateway.store.db.fetchall(
        "SELECT status, error FROM messages WHERE direction='in' ORDER BY id")
    assert [r["status"] for r in rows] == ["skipped"] * 3
    assert all("approv" in r["error"] for r in rows)


async def test_approval_through_the_cli_makes_the_group_answered_beside_a_running_gateway(
        telegram: TelegramHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory,
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    gateway = await online(telegram, fake_llm, make_gateway, data)
    await mention(telegram, gateway, "let us in")
    status, out, err = await run_cli("groups", "--data-dir", str(data), "list")
    assert status == 0, err
    assert "pending" in out and GROUP in out and "telegram" in out

    status, out, err = await run_cli("groups", "--data-dir", str(data), "approve", "telegram",
                                     GROUP)
    assert status == 0, err
    assert "approved" in out
    await mention(telegram, gateway, "now?")
    assert texts(telegram)[1:] == [echo("now?")]
    assert len(fake_llm.requests) == 1
    assert await gateway.store.access.pending_groups() == []


async def test_a_rejected_group_stays_silent(
        telegram: TelegramHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory,
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    gateway = await online(telegram, fake_llm, make_gateway, data)
    await mention(telegram, gateway, "hello")
    status, out, err = await run_cli("groups", "--data-dir", str(data), "reject", "telegram",
                                     GROUP)
    assert status == 0, err
    assert "rejected" in out
    for text in ("hello?", "anyone?"):
        await mention(telegram, gateway, text)
    assert len(texts(telegram)) == 1  # only the first notice, ever
    assert fake_llm.requests == []
    rows = await gateway.store.db.fetchall(
        "SELECT error FROM messages WHERE direction='in' ORDER BY id")
    assert "rejected" in rows[-1]["error"]


async def test_a_restart_keeps_the_owners_decisions(
        telegram: TelegramHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory,
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    other = "-1005550001111"
    telegram.fake.add_chat(int(other), "supergroup", title="Another group")
    gateway = await online(telegram, fake_llm, make_gateway, data)
    await mention(telegram, gateway, "first")
    await mention(telegram, gateway, "first", chat=other)
    assert await gateway.store.access.approve_group("telegram", GROUP) is not None
    assert await gateway.store.access.reject_group("telegram", other) is not None
    await gateway.stop()

    again = await online(telegram, fake_llm, make_gateway, data)
    await mention(telegram, again, "after the restart")
    await mention(telegram, again, "after the restart", chat=other)
    assert texts(telegram)[1:] == [echo("after the restart")]
    assert len(texts(telegram, other)) == 1  # its notice from before the restart, nothing more
    assert len(fake_llm.requests) == 1


async def test_allow_groups_and_an_explicit_open_policy_still_answer(
        telegram: TelegramHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory,
        tmp_path: Path) -> None:
    gateway = await online(telegram, fake_llm, make_gateway, tmp_path / "a",
                           allow_groups=[GROUP])
    await mention(telegram, gateway, "listed")
    assert texts(telegram) == [echo("listed")]
    await gateway.stop()

    gateway = await online(telegram, fake_llm, make_gateway, tmp_path / "b",
                           group_policy="open")
    await mention(telegram, gateway, "open")
    assert texts(telegram)[1:] == [echo("open")]
    assert await gateway.store.access.pending_groups() == []


def test_the_default_group_policy_is_allowlist() -> None:
    assert ChannelConfig().group_policy == "allowlist"


async def test_disabled_groups_get_no_notice(
        telegram: TelegramHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory,
        tmp_path: Path) -> None:
    gateway = await online(telegram, fake_llm, make_gateway, tmp_path / "data",
                           group_policy="disabled")
    await mention(telegram, gateway, "hello")
    assert texts(telegram) == [] and fake_llm.requests == []
    assert await gateway.store.access.pending_groups() == []


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store(tmp_path / "data").open()
    try:
        yield opened
    finally:
        await opened.close()


async def test_waiting_group_requests_are_bounded_per_channel(store: Store) -> None:
    access = store.access
    standings = [await access.admit_group("tg", f"g{i}", requested_by="x")
                 for i in range(MAX_PENDING_GROUPS + 1)]
    assert standings[:-1] == [GroupStanding.REQUESTED] * MAX_PENDING_GROUPS
    assert standings[-1] == GroupStanding.FULL
    assert await access.admit_group("tg", "g0", requested_by="x") == GroupStanding.PENDING
    assert await access.admit_group("other", "g0", requested_by="x") == GroupStanding.REQUESTED
    await access.reject_group("tg", "g0")
    assert await access.admit_group("tg", f"g{MAX_PENDING_GROUPS}", requested_by="x") == \
        GroupStanding.REQUESTED  # a decision frees its place in the queue
    assert await access.approve_group("tg", "never-asked") is None


async def test_a_decision_can_be_changed_and_is_listed(store: Store) -> None:
    access = store.access
    await access.admit_group("tg", "g1", requested_by="Bob (7)", now=100.0)
    await access.admit_group("tg", "g2", requested_by="Eve (9)", now=200.0)
    approved = await access.approve_group("tg", "g1", now=300.0)
    assert approved is not None and approved.decided_at == 300.0
    assert [(g.chat, g.status) for g in await access.groups()] == [
        ("g2", "pending"), ("g1", "approved")]  # waiting ones first
    await access.reject_group("tg", "g1")  # the owner changes their mind
    assert await access.admit_group("tg", "g1") == GroupStanding.REJECTED
    await access.approve_group("tg", "g1")
    assert await access.admit_group("tg", "g1") == GroupStanding.APPROVED


async def test_cli_refuses_groups_that_never_asked(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    status, out, _ = await run_cli("groups", "--data-dir", data, "list")
    assert status == 0 and "no group" in out
    status, _, err = await run_cli("groups", "--data-dir", data, "approve", "telegram", "-42")
    assert status == 1 and "allow_groups" in err
    status, _, err = await run_cli("groups", "--data-dir", data, "approve", "telegram")
    assert status == 2 and "CHANNEL and CHAT" in err
