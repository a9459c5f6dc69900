"""Editing sent messages (streamed replies) and Telegram's command menu, through the real SDKs.

Each connector runs against its platform's fake; the fakes keep every message's
edit history, so the tests check what a reader would see: edits in order, the
last one equal to the full reply, formatting applied as ``send`` applies it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import discord
import pytest
import yarl
from pydantic import SecretStr

from connectors.discord.manifest import DiscordConfig
from connectors.discord.runtime import DiscordConnector
from connectors.registry import get_spec
from connectors.slack._parse import escape_text
from connectors.slack.manifest import SlackConfig
from connectors.slack.runtime import SlackConnector
from connectors.telegram.manifest import TelegramConfig
from connectors.telegram.runtime import TelegramConnector
from pyclaw_app.errors import FatalConnectorError, RetryableError
from pyclaw_app.model import Address, ChannelState, Outbound
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.slack_api import SlackFake
from tests.fakes.telegram_api import FakeTelegram
from tests.support import RecordingContext, eventually

GROWING = ["Hello", "Hello, **wor", "Hello, **world** — a < b & c", "Hello, **world** — a < b & "
           "c.\n\n```py\nprint(1)\n```"]
"""Drafts of one streamed reply, as the gateway sends them about once a second."""


@pytest.mark.parametrize("name", ["telegram", "discord", "slack"])
def test_manifests_declare_edit(name: str) -> None:
    assert get_spec(name).capabilities.edit


# ---- Telegram -----------------------------------------------------------------------------


@dataclass
class CommandsContext(RecordingContext):
    """A context whose assistant knows the given commands (RecordingContext knows two)."""

    menu: list[tuple[str, str]] | None = None

    def commands(self) -> list[tuple[str, str]]:
        return super().commands() if self.menu is None else self.menu


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        server.add_chat(1001)
        yield server  # type: ignore[misc]


async def _telegram(fake: FakeTelegram, ctx: RecordingContext | None = None
                    ) -> tuple[TelegramConnector, RecordingContext]:
    config = TelegramConfig(token=SecretStr(fake.token), base_url=f"{fake.url}/bot",
                            base_file_url=f"{fake.url}/file/bot", poll_timeout=1)
    connector, ctx = TelegramConnector("tg", config), ctx or RecordingContext(channel="tg")
    await connector.start(ctx)
    return connector, ctx


@pytest.fixture
async def telegram(tg: FakeTelegram) -> AsyncIterator[tuple[TelegramConnector, RecordingContext]]:
    connector, ctx = await _telegram(tg)
    yield connector, ctx
    await connector.stop()


def _tg_ids(platform_id: str) -> tuple[int, int]:
    chat, _, message = platform_id.rpartition(":")
    return int(chat), int(message)


async def test_telegram_edits_arrive_in_order_with_the_send_formatting(
        tg: FakeTelegram, telegram: tuple[TelegramConnector, RecordingContext]) -> None:
    connector, ctx = telegram
    address = Address("tg", "1001")
    [draft] = await connector.send(Outbound(address, "…"))
    for text in GROWING:
        await connector.edit(address, draft, text)
    visible = ["Hello", "Hello, **wor", "Hello, world — a < b & c",
               "Hello, world — a < b & c.\n\nprint(1)\n"]
    assert tg.edits(*_tg_ids(draft)) == visible
    assert tg.text_of(*_tg_ids(draft)) == visible[-1]
    last = tg.sent[-1]
    assert last.parse_mode == "HTML" and '<pre><code class="language-py">' in last.raw_text
    assert "&lt; b &amp; c" in last.raw_text
    assert all(p.get("message_thread_id") is None for m, p in tg.calls
               if m == "editMessageText")
    assert not [log for log in ctx.logs if log[0] in ("warning", "error")]


async def test_telegram_edit_falls_back_to_plain_text_and_warns_once(
        tg: FakeTelegram, telegram: tuple[TelegramConnector, RecordingContext]) -> None:
    connector, ctx = telegram
    address = Address("tg", "1001")
    [draft] = await connector.send(Outbound(address, "…"))
    tg.reject_entities_next_send()
    await connector.edit(address, draft, "**one**")
    tg.reject_entities_next_send()
    await connector.edit(address, draft, "**one** two")
    assert tg.edits(*_tg_ids(draft)) == ["**one**", "**one** two"]
    assert tg.sent[-1].parse_mode is None
    warnings = [msg for level, msg, _ in ctx.logs if level == "warning"]
    assert len(warnings) == 1 and "plain text" in warnings[0]


async def test_telegram_edit_429_is_raised_with_its_retry_after(
        tg: FakeTelegram, telegram: tuple[TelegramConnector, RecordingContext]) -> None:
    connector, _ = telegram
    address = Address("tg", "1001")
    [draft] = await connector.send(Outbound(address, "…"))
    tg.rate_limit_next_send(3)
    with pytest.raises(RetryableError) as caught:
        await connector.edit(address, draft, "growing")
    assert caught.value.retry_after == 3.0
    assert tg.edits(*_tg_ids(draft)) == []
    await connector.edit(address, draft, "growing")  # the streamer's retry
    assert tg.edits(*_tg_ids(draft)) == ["growing"]


async def test_telegram_not_modified_is_success(
        tg: FakeTelegram, telegram: tuple[TelegramConnector, RecordingContext]) -> None:
    connector, ctx = telegram
    address = Address("tg", "1001")
    [draft] = await connector.send(Outbound(address, "same **text**"))
    await connector.edit(address, draft, "same **text**")
    assert tg.edits(*_tg_ids(draft)) == []
    assert [m for m, _ in tg.calls].count("editMessageText") == 1  # asked, refused, fine
    assert not ctx.logs


async def test_telegram_edit_of_a_missing_or_foreign_message_is_fatal(
        tg: FakeTelegram, telegram: tuple[TelegramConnector, RecordingContext]) -> None:
    connector, _ = telegram
    address = Address("tg", "1001")
    with pytest.raises(FatalConnectorError, match="Message to edit not found"):
        await connector.edit(address, "1001:4242", "text")
    users = tg.inject_message(1001, "written by the user")
    with pytest.raises(FatalConnectorError, match=r"Message can.t be edited"):
        await connector.edit(address, f"1001:{users['message_id']}", "text")
    with pytest.raises(FatalConnectorError, match="not a Telegram message id"):
        await connector.edit(address, "1001:abc", "text")


async def test_telegram_registers_the_command_menu_on_start(
        tg: FakeTelegram, telegram: tuple[TelegramConnector, RecordingContext]) -> None:
    assert tg.command_sets == [[{"command": "help", "description": "What I can do"},
                                {"command": "reset", "description": "Forget this conversation"}]]


async def test_telegram_menu_skips_names_telegram_refuses(tg: FakeTelegram) -> None:
    long = "x" * 300
    ctx = CommandsContext(channel="tg", menu=[("/Model", "Switch model"), ("bad-name", "no"),
                                              ("usage", long)])
    connector, _ = await _telegram(tg, ctx)
    try:
        assert tg.commands == [{"command": "model", "description": "Switch model"},
                               {"command": "usage", "description": "x" * 256}]
        [(level, _, data)] = ctx.logs
        assert level == "warning" and data["commands"] == ["bad-name"]
    finally:
        await connector.stop()


async def test_telegram_empty_menu_is_not_sent(tg: FakeTelegram) -> None:
    connector, ctx = await _telegram(tg, CommandsContext(channel="tg", menu=[]))
    try:
        assert "setMyCommands" not in [m for m, _ in tg.calls]
        assert not ctx.logs
    finally:
        await connector.stop()


async def test_telegram_failing_menu_only_warns(tg: FakeTelegram) -> None:
    tg.fail_next("setMyCommands")
    connector, ctx = await _telegram(tg)
    try:
        [(level, message, _)] = ctx.logs
        assert level == "warning" and "command menu" in message
        assert ctx.states[-1][0] == ChannelState.ONLINE
        tg.inject_message(1001, "still listening")
        await eventually(lambda: ctx.inbound)
    finally:
        await connector.stop()


# ---- Discord ------------------------------------------------------------------------------


@pytest.fixture
async def dc(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        assert isinstance(server, FakeDiscord)
        monkeypatch.setattr(discord.http.Route, "BASE", server.api_base)
        monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY",
                            yarl.URL(server.gateway_url))
        yield server


@pytest.fixture
async def dcon(dc: FakeDiscord) -> AsyncIterator[DiscordConnector]:
    connector = DiscordConnector("discord", DiscordConfig(token=SecretStr(dc.token)))
    ctx = RecordingContext(channel="discord")
    await connector.start(ctx)
    await eventually(lambda: ctx.states and ctx.states[-1][0] == ChannelState.ONLINE)
    yield connector
    await connector.stop()


async def test_discord_edits_arrive_in_order(dc: FakeDiscord, dcon: DiscordConnector) -> None:
    cid, _ = dc.create_dm()
    address = Address("discord", cid)
    [draft] = await dcon.send(Outbound(address, "…"))
    for text in [*GROWING, "@everyone look"]:
        await dcon.edit(address, draft, text)
    assert dc.edits(draft) == [*GROWING, "@everyone look"]  # Discord renders markdown itself
    assert dc.messages[draft]["content"] == "@everyone look"
    mentions = dc.edit_log[-1].allowed_mentions
    assert mentions is not None and "everyone" not in mentions["parse"]  # shown, never pinged


async def test_discord_edit_in_a_thread_targets_the_thread(
        dc: FakeDiscord, dcon: DiscordConnector) -> None:
    parent = await dc.create_text_channel("general")
    thread = await dc.create_thread(parent, "topic")
    address = Address("discord", parent, thread=thread)
    [draft] = await dcon.send(Outbound(address, "…"))
    await dcon.edit(address, draft, "done")
    assert dc.edits(draft) == ["done"]


async def test_discord_edit_waits_out_a_429(dc: FakeDiscord, dcon: DiscordConnector) -> None:
    cid, _ = dc.create_dm()
    address = Address("discord", cid)
    [draft] = await dcon.send(Outbound(address, "…"))
    dc.rate_limit_next_edit(0.3)
    await dcon.edit(address, draft, "after the wait")
    assert dc.edits(draft) == ["after the wait"]
    [(answered, retried)] = dc.rate_limit_log
    assert retried - answered >= 0.3


async def test_discord_edit_of_a_missing_or_foreign_message_is_fatal(
        dc: FakeDiscord, dcon: DiscordConnector) -> None:
    cid, _ = dc.create_dm()
    address = Address("discord", cid)
    with pytest.raises(FatalConnectorError, match="10008"):
        await dcon.edit(address, "1234567890", "text")
    users = dc.user_message(cid, "mine")
    with pytest.raises(FatalConnectorError, match="50005"):
        await dcon.edit(address, users["id"], "text")
    with pytest.raises(FatalConnectorError, match="not a Discord message id"):
        await dcon.edit(address, "C1:2", "text")


# ---- Slack --------------------------------------------------------------------------------


@pytest.fixture
async def sl() -> AsyncIterator[SlackFake]:
    async with SlackFake() as server:
        yield server  # type: ignore[misc]


@pytest.fixture
async def slack(sl: SlackFake) -> AsyncIterator[SlackConnector]:
    config = SlackConfig(bot_token=SecretStr(sl.bot_token), app_token=SecretStr(sl.app_token),
                         base_url=sl.api_url)
    connector = SlackConnector("slack", config)
    await connector.start(RecordingContext(channel="slack"))
    yield connector
    await connector.stop()


async def test_slack_edits_arrive_in_order_escaped_like_send(
        sl: SlackFake, slack: SlackConnector) -> None:
    address = Address("slack", "C0001", thread="1700000000.000001")
    [draft] = await slack.send(Outbound(address, "…"))
    channel, _, ts = draft.partition(":")
    for text in [*GROWING, "<!channel> ping"]:
        await slack.edit(address, draft, text)
    expected = [escape_text(t) for t in [*GROWING, "<!channel> ping"]]
    assert sl.edits(channel, ts) == expected
    assert sl.text_of(channel, ts) == "&lt;!channel&gt; ping"  # no @channel ping


async def test_slack_edit_waits_out_a_429(sl: SlackFake, slack: SlackConnector) -> None:
    address = Address("slack", "D0001")
    [draft] = await slack.send(Outbound(address, "…"))
    sl.rate_limit_next("chat.update", 1)
    await slack.edit(address, draft, "after the wait")
    assert sl.edits(*draft.split(":")) == ["after the wait"]
    [hit] = [h for h in sl.rate_limits if h.method == "chat.update"]
    assert hit.retried is not None and hit.retried - hit.answered >= 1.0


async def test_slack_edit_of_a_missing_or_foreign_message_is_fatal(
        sl: SlackFake, slack: SlackConnector) -> None:
    address = Address("slack", "C0001")
    with pytest.raises(FatalConnectorError, match="message_not_found"):
        await slack.edit(address, "C0001:1.000099", "text")
    users = sl.message_event("C0001", "written by a person")["event"]
    with pytest.raises(FatalConnectorError, match="cant_update_message"):
        await slack.edit(address, f"C0001:{users['ts']}", "text")
    [draft] = await slack.send(Outbound(address, "…"))
    with pytest.raises(FatalConnectorError, match="msg_too_long"):
        await slack.edit(address, draft, "x" * 40_001)
    assert sl.edits(*draft.split(":")) == []
