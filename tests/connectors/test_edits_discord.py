"""Editing sent messages (streamed replies) on Discord, through the real connector.

The connector runs against the fake Discord, which keeps every message's edit
history, so the tests check what a reader would see: edits in order, the last
one equal to the full reply, mentions restricted as ``send_part`` restricts them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import discord
import pytest
import yarl
from pydantic import SecretStr

from connectors.discord.manifest import DiscordConfig
from connectors.discord.runtime import DiscordConnector
from pyclaw_app.errors import FatalConnectorError, RetryableError
from pyclaw_app.model import Address, ChannelState
from tests.fakes.discord_api import FakeDiscord
from tests.support import RecordingContext, eventually

GROWING = ["Hello", "Hello, **wor", "Hello, **world** — a < b & c", "Hello, **world** — a < b & "
           "c.\n\n```py\nprint(1)\n```"]
"""Drafts of one streamed reply, as the gateway sends them about once a second."""


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
    draft = await dcon.send_part(address, "…", None)
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
    draft = await dcon.send_part(address, "…", None)
    await dcon.edit(address, draft, "done")
    assert dc.edits(draft) == ["done"]


async def test_discord_edit_429_is_retryable_with_retry_after_and_not_slept_through(
        dc: FakeDiscord, dcon: DiscordConnector) -> None:
    """The gateway waits out the limit (its one retry layer), not discord.py."""
    cid, _ = dc.create_dm()
    address = Address("discord", cid)
    draft = await dcon.send_part(address, "…", None)
    dc.fail_next("edit_message", 429, retry_after=0.3)
    with pytest.raises(RetryableError) as caught:
        await dcon.edit(address, draft, "after the wait")
    assert caught.value.retry_after == 1.0  # Retry-After: whole seconds, rounded up
    assert dc.edits(draft) == [] and dc.calls("edit_message") == 1
    await dcon.edit(address, draft, "after the wait")
    assert dc.edits(draft) == ["after the wait"]


async def test_discord_edit_with_a_lost_answer_may_be_retried(
        dc: FakeDiscord, dcon: DiscordConnector) -> None:
    """Setting the same content again is harmless, so a lost PATCH answer is retryable."""
    cid, _ = dc.create_dm()
    address = Address("discord", cid)
    draft = await dcon.send_part(address, "…", None)
    dc.lose_next_answer("edit_message")
    with pytest.raises(RetryableError, match="no answer"):
        await dcon.edit(address, draft, "full text")
    await dcon.edit(address, draft, "full text")
    assert dc.messages[draft]["content"] == "full text"


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


