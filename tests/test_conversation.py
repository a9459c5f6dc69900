"""The conversation read model over a real gateway run: the real Telegram connector
(python-telegram-bot) against the fake Bot API, the local chat channel and the fake OpenAI
API, on SQLite. Ann writes from a Telegram DM, from the local chat and in a Telegram group;
the owner links her two accounts; the plane reads her conversation back as a chat."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pyclaw_app.agent import Agent
from pyclaw_app.bus import Bus
from pyclaw_app.config import load_config
from pyclaw_app.control import ConversationPage
from pyclaw_app.control.chat import ask
from pyclaw_app.control.conversation import parse_tool_line
from pyclaw_app.control.host import GatewayHost
from pyclaw_app.control.local import LocalControlPlane
from pyclaw_app.control.remote import RemoteControlPlane, RemoteError
from pyclaw_app.control.rights import MONITOR_TOKEN_KEY
from pyclaw_app.gateway import Gateway
from pyclaw_app.model import ChannelState
from pyclaw_app.secrets import MASK, FileSecretStore
from pyclaw_app.store import Store
from tests.conftest import provider_section
from tests.contract.harness_telegram import GROUP_CHAT, TelegramHarness
from tests.fakes.openai_api import FakeOpenAI, FakeReply, FakeToolCall
from tests.support import eventually

WAIT = 20.0
ANN_TG = "1001"
ANN_LOCAL = "ann-local"


def responder(messages: list[dict[str, Any]]) -> str | FakeReply:
    """Echoes, except "calc EXPR", which the model answers with the calculator's help."""
    if messages[-1]["role"] == "tool":
        return f"The answer is {messages[-1]['content']}"
    text = next(str(m["content"]) for m in reversed(messages) if m["role"] == "user")
    if text.startswith("calc "):
        return FakeReply(tool_calls=[FakeToolCall("calculate", {"expression": text[5:]})])
    return f"Echo: {text}"


class Ann:
    """Ann on Telegram (DM and group) and in the local chat; each call waits for the reply."""

    def __init__(self, gateway: Gateway, telegram: TelegramHarness) -> None:
        self.gateway = gateway
        self.telegram = telegram

    async def telegram_dm(self, text: str) -> None:
        await self._replied("telegram", await self.telegram.inject_message(ANN_TG, text))

    async def telegram_group(self, text: str) -> None:
        handle = f"@{self.telegram.fake.username} {text}"
        message = self.telegram.fake.inject_message(
            GROUP_CHAT, handle, sender=int(ANN_TG),
            entities=self.telegram.fake.mention_entities(handle))
        await self._replied("telegram", f"{GROUP_CHAT}:{message['message_id']}")

    async def local(self, text: str) -> str:
        return await ask(self.gateway, text, chat="ann", sender=ANN_LOCAL, timeout=WAIT)

    async def _replied(self, channel: str, platform_id: str) -> None:
        async def done() -> bool:
            row = await self.gateway.store.db.fetchone(
                "SELECT 1 FROM messages i JOIN messages o ON o.reply_to=i.id"
                " WHERE i.channel=? AND i.platform_id=? AND o.status='sent'",
                (channel, platform_id))
            return row is not None

        await eventually(done, timeout=WAIT)
        await self.gateway.lanes.join()


@pytest.fixture
async def gateway(tmp_path: Path, telegram: TelegramHarness,
                  fake_llm: FakeOpenAI) -> AsyncIterator[Gateway]:
    fake_llm.responder = responder
    common = {"rate_limit_per_minute": 0, "dm_policy": "open", "group_policy": "open",
              "stream_replies": False}
    path = tmp_path / "pyclaw.yaml"
    path.write_text(yaml.safe_dump({
        "providers": [provider_section(fake_llm)],
        "channels": {"telegram": {"type": "telegram", **common, **telegram.channel_config()},
                     "local": {"type": "local"}}}), "utf-8")
    data = tmp_path / "data"
    config = load_config(path, FileSecretStore(data / "secrets.json"))
    store = await Store(data).open()
    running = Gateway(config, store, Bus(), agent=Agent.from_config(config, store))
    await running.start()
    try:
        for name in ("telegram", "local"):
            await eventually(lambda n=name: running.channels[n].state == ChannelState.ONLINE,
                             timeout=WAIT)
        yield running
    finally:
        await running.stop()
        await store.close()


@pytest.fixture
def ann(gateway: Gateway, telegram: TelegramHarness) -> Ann:
    return Ann(gateway, telegram)


@pytest.fixture
def plane(gateway: Gateway, tmp_path: Path) -> LocalControlPlane:
    return LocalControlPlane(gateway, FileSecretStore(tmp_path / "data" / "secrets.json"))


def texts(page: ConversationPage) -> list[tuple[str, str, list[str]]]:
    return [(e.message.channel, e.message.text, [r.text for r in e.replies])
            for e in page.exchanges]


async def test_two_linked_channels_read_as_one_timeline_and_the_group_stays_apart(
        ann: Ann, plane: LocalControlPlane) -> None:
    await ann.telegram_dm("one")
    await ann.local("two")
    await ann.telegram_group("in the group")
    await ann.telegram_dm("three")
    person = await plane.link_accounts("telegram", ANN_TG, "local", ANN_LOCAL)

    page = await plane.conversation(person_id=person.id)
    assert page is not None and page.person == person
    assert texts(page) == [("telegram", "one", ["Echo: one"]),
                           ("local", "two", ["Echo: two"]),
                           ("telegram", "three", ["Echo: three"])]
    assert {(c.channel, c.chat) for c in page.chats} == {("telegram", ANN_TG), ("local", "ann")}
    assert page.older is None
    (group,) = page.elsewhere
    assert (group.channel, group.chat, group.is_group) == ("telegram", str(GROUP_CHAT), True)
    replies = [r for e in page.exchanges for r in e.replies]
    assert all(r.latency_ms is not None and r.latency_ms >= 0 for r in replies)
    first_llm = page.exchanges[0].llm_calls
    assert [(c.provider, c.model, c.error) for c in first_llm] == [("fake", "fake-model", None)]
    assert first_llm[0].input_tokens > 0 and first_llm[0].output_tokens > 0

    # the group opens on its own, with what was said there
    group_page = await plane.conversation(conv=group.conv)
    assert group_page is not None and group_page.person is None
    assert texts(group_page) == [("telegram", "in the group", ["Echo: in the group"])]
    assert group_page.title == f"telegram group {GROUP_CHAT}"

    # a DM opened from one of its messages knows whose it is (the view offers her timeline)
    dm_page = await plane.conversation(message_id=page.exchanges[1].message.id)
    assert dm_page is not None and dm_page.person == person
    assert texts(dm_page) == [("local", "two", ["Echo: two"])]
    assert dm_page.title == ANN_LOCAL  # a direct chat is named after its person


async def test_a_tool_call_is_part_of_its_exchange(ann: Ann, plane: LocalControlPlane) -> None:
    assert await ann.local("calc 6*7") == "The answer is 42"
    await ann.local("after")
    message = (await plane.recent_traffic(10, channel="local"))[-1]
    page = await plane.conversation(message_id=message.id)
    assert page is not None
    calc, after = page.exchanges
    (tool,) = calc.tool_calls
    assert (tool.name, tool.result, tool.failed) == ("calculate", "42", False)
    assert "6*7" in tool.arguments
    assert len(calc.llm_calls) == 2  # the call that asked for the tool, then the answer
    assert calc.llm_calls[0].ts <= tool.ts <= calc.llm_calls[1].ts + 1
    assert [r.text for r in calc.replies] == ["The answer is 42"]
    assert after.tool_calls == () and len(after.llm_calls) == 1


async def test_a_long_conversation_pages_back_from_the_newest(
        ann: Ann, plane: LocalControlPlane) -> None:
    for n in range(5):
        await ann.local(f"message {n}")
    message = (await plane.recent_traffic(1, channel="local"))[0]
    seen: list[str] = []
    before: int | None = None
    pages = 0
    while True:
        page = await plane.conversation(message_id=message.id, before_id=before, limit=2)
        assert page is not None
        pages += 1
        seen[0:0] = [e.message.text for e in page.exchanges]
        if page.older is None:
            break
        before = page.older
    assert pages == 3
    assert seen == [f"message {n}" for n in range(5)]
    newest = await plane.conversation(message_id=message.id, limit=2)
    assert newest is not None and [e.message.text for e in newest.exchanges] == [
        "message 3", "message 4"]


async def test_secrets_are_masked_and_bad_selections_refused(
        ann: Ann, plane: LocalControlPlane, telegram: TelegramHarness) -> None:
    await ann.local(f"my bot token is {telegram.fake.token}")
    (message,) = [t for t in await plane.recent_traffic(10) if t.direction == "in"]
    page = await plane.conversation(message_id=message.id)
    assert page is not None
    (exchange,) = page.exchanges
    assert telegram.fake.token not in exchange.message.text and MASK in exchange.message.text
    assert all(telegram.fake.token not in r.text for r in exchange.replies)

    assert await plane.conversation(message_id=message.id + 1000) is None
    assert await plane.conversation(person_id=12345) is None
    assert await plane.conversation(conv="nowhere|||") is None
    with pytest.raises(ValueError, match="exactly one"):
        await plane.conversation()
    with pytest.raises(ValueError, match="exactly one"):
        await plane.conversation(person_id=1, message_id=message.id)


def test_tool_lines_are_read_back_and_other_lines_are_not() -> None:
    assert parse_tool_line('message 42: tool calculate({"expression": "6*7"}) -> 42') == (
        42, "calculate", '{"expression": "6*7"}', "42")
    assert parse_tool_line("scheduled message 7: tool recall_notes({}) -> no notes found") == (
        7, "recall_notes", "{}", "no notes found")
    assert parse_tool_line("message 42: tool x({}) -> line one\nline two") == (
        42, "x", "{}", "line one\nline two")
    assert parse_tool_line("message 42: LLM call failed: boom") is None
    assert parse_tool_line("started") is None


async def test_the_monitor_token_reads_a_conversation_over_the_control_api(
        tmp_path: Path, fake_llm: FakeOpenAI) -> None:
    """Read-only, so a phone's monitor token may: the page comes back whole, tool call
    included, equal to what the gateway's own plane reads."""
    fake_llm.responder = responder
    config = tmp_path / "remote.yaml"
    config.write_text(yaml.safe_dump({"server": {"port": 0, "control_api": True},
                                      "providers": [provider_section(fake_llm)]}))
    host = await GatewayHost.start(config, tmp_path / "remote-data")
    try:
        assert host.server is not None
        token = host.runtime.secrets.get(MONITOR_TOKEN_KEY)
        assert token
        await ask(host.runtime.gateway, "calc 2+3", chat="app", timeout=WAIT)
        monitor = await RemoteControlPlane(host.server.url, token).connect()
        try:
            (message,) = [t for t in await monitor.recent_traffic(10) if t.direction == "in"]
            page = await monitor.conversation(message_id=message.id)
            assert page is not None
            assert page == await host.plane.conversation(message_id=message.id)
            assert [t.name for t in page.exchanges[0].tool_calls] == ["calculate"]
            assert await monitor.conversation(message_id=message.id + 99) is None
            with pytest.raises(RemoteError, match="exactly one"):
                await monitor.conversation()
        finally:
            await monitor.close()
    finally:
        await host.stop()
