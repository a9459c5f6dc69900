"""Editing sent messages (streamed replies) and Telegram's command menu, through the real SDKs.

Each connector runs against its platform's fake; the fakes keep every message's
edit history, so the tests check what a reader would see: edits in order, the
last one equal to the full reply, formatting applied as ``send`` applies it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from pydantic import SecretStr

from connectors.telegram.manifest import TelegramConfig
from connectors.telegram.runtime import TelegramConnector
from pyclaw_app.errors import FatalConnectorError, RetryableError
from pyclaw_app.model import Address, ChannelState
from tests.fakes.telegram_api import FakeTelegram
from tests.support import RecordingContext, eventually

GROWING = ["Hello", "Hello, **wor", "Hello, **world** — a < b & c", "Hello, **world** — a < b & "
           "c.\n\n```py\nprint(1)\n```"]
"""Drafts of one streamed reply, as the gateway sends them about once a second."""


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


def _problems(ctx: RecordingContext) -> list[tuple[str, str, dict[str, object]]]:
    return [log for log in ctx.logs if log[0] in ("warning", "error")]


def _tg_ids(platform_id: str) -> tuple[int, int]:
    chat, _, message = platform_id.rpartition(":")
    return int(chat), int(message)


async def test_telegram_edits_arrive_in_order_with_the_send_formatting(
        tg: FakeTelegram, telegram: tuple[TelegramConnector, RecordingContext]) -> None:
    connector, ctx = telegram
    address = Address("tg", "1001")
    draft = await connector.send_part(address, "…", None)
    for text in GROWING:
        await connector.edit(address, draft, text)
    visible = ["Hello", "Hello, **wor", "Hello, world — a < b & c",
               "Hello, world — a < b & c.\n\nprint(1)\n"]
    assert tg.edits(*_tg_ids(draft)) == visible
    assert tg.text_of(*_tg_ids(draft)) == visible[-1]
    last = tg.sent[-1]
    assert last.parse_mode == "HTML" and '<pre><code class="language-py">' in last.raw_text
    assert "&lt; b &amp; c" in last.raw_text
    assert all(p.get("message_thread_id") is None for m, p in tg.requests
               if m == "editMessageText")
    assert not _problems(ctx)


async def test_telegram_edit_falls_back_to_plain_text_and_warns_once(
        tg: FakeTelegram, telegram: tuple[TelegramConnector, RecordingContext]) -> None:
    connector, ctx = telegram
    address = Address("tg", "1001")
    draft = await connector.send_part(address, "…", None)
    tg.reject_entities_next_send()
    await connector.edit(address, draft, "**one**")
    tg.reject_entities_next_send()
    await connector.edit(address, draft, "**one** two")
    assert tg.edits(*_tg_ids(draft)) == ["**one**", "**one** two"]
    assert tg.sent[-1].parse_mode is None
    assert [msg for _, msg, _ in _problems(ctx)] == [
        "Telegram could not parse the formatting; edited as plain text"]


async def test_telegram_edit_429_is_raised_with_its_retry_after(
        tg: FakeTelegram, telegram: tuple[TelegramConnector, RecordingContext]) -> None:
    connector, _ = telegram
    address = Address("tg", "1001")
    draft = await connector.send_part(address, "…", None)
    tg.fail_next("editMessageText", 429, retry_after=3)
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
    draft = await connector.send_part(address, "same **text**", None)
    await connector.edit(address, draft, "same **text**")
    assert tg.edits(*_tg_ids(draft)) == []
    assert tg.calls("editMessageText") == 1  # asked, refused, fine
    assert not _problems(ctx)


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
        [(level, _, data)] = _problems(ctx)
        assert level == "warning" and data["commands"] == ["bad-name"]
    finally:
        await connector.stop()


async def test_telegram_empty_menu_is_not_sent(tg: FakeTelegram) -> None:
    connector, ctx = await _telegram(tg, CommandsContext(channel="tg", menu=[]))
    try:
        assert tg.calls("setMyCommands") == 0
        assert not _problems(ctx)
    finally:
        await connector.stop()


async def test_telegram_failing_menu_only_warns(tg: FakeTelegram) -> None:
    tg.fail_next("setMyCommands", 500)
    connector, ctx = await _telegram(tg)
    try:
        [(level, message, _)] = _problems(ctx)
        assert level == "warning" and "command menu" in message
        assert ctx.states[-1][0] == ChannelState.ONLINE
        tg.inject_message(1001, "still listening")
        await eventually(lambda: ctx.inbound)
    finally:
        await connector.stop()


async def test_telegram_menu_is_set_once_not_on_every_reconnect(
        tg: FakeTelegram, telegram: tuple[TelegramConnector, RecordingContext]) -> None:
    _, ctx = telegram
    await tg.drop_connection()
    await eventually(lambda: tg.calls("deleteWebhook") == 2)  # connected again
    tg.inject_message(1001, "after the drop")
    await eventually(lambda: ctx.inbound)
    assert len(tg.command_sets) == 1


async def test_telegram_edit_whose_answer_is_lost_is_retryable_not_uncertain(
        tg: FakeTelegram, telegram: tuple[TelegramConnector, RecordingContext]) -> None:
    connector, _ = telegram
    address = Address("tg", "1001")
    draft = await connector.send_part(address, "…", None)
    tg.lose_next_answer("editMessageText")  # carried out, the answer never comes back
    with pytest.raises(RetryableError) as caught:
        await connector.edit(address, draft, "grown")
    assert type(caught.value) is RetryableError  # an edit may safely be made again
    await connector.edit(address, draft, "grown")  # the retry: "not modified" is success
    assert tg.edits(*_tg_ids(draft)) == ["grown"]
