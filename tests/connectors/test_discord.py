"""The Discord connector through the real discord.py against the fake Discord, without a gateway."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import discord
import pytest
import yarl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from connectors.discord._parse import channel_id_of, is_ignorable, parse_message_create
from connectors.discord.manifest import MAX_TEXT, DiscordConfig
from connectors.discord.runtime import DiscordConnector
from pyclaw_app.errors import FatalConnectorError, RetryableError
from pyclaw_app.model import Address, ChannelState, Outbound
from tests.fakes import discord_payloads as p
from tests.fakes.discord_api import FakeDiscord
from tests.support import RecordingContext, eventually

Factory = Callable[..., DiscordConnector]
Running = tuple[DiscordConnector, RecordingContext]


@pytest.fixture
async def fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        assert isinstance(server, FakeDiscord)
        monkeypatch.setattr(discord.http.Route, "BASE", server.api_base)
        monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY",
                            yarl.URL(server.gateway_url))
        yield server


@pytest.fixture
async def make(fake: FakeDiscord) -> AsyncIterator[Factory]:
    made: list[DiscordConnector] = []

    def factory(**overrides: Any) -> DiscordConnector:
        token = overrides.pop("token", fake.token)
        config = DiscordConfig(token=SecretStr(token), **overrides)
        connector = DiscordConnector("discord", config)
        made.append(connector)
        return connector

    yield factory
    for connector in made:
        await connector.stop()


async def _start(connector: DiscordConnector) -> RecordingContext:
    ctx = RecordingContext(channel="discord")
    await connector.start(ctx)
    await eventually(lambda: ctx.states and ctx.states[-1][0] == ChannelState.ONLINE)
    return ctx


@pytest.fixture
async def running(make: Factory) -> Running:
    connector = make()
    return connector, await _start(connector)


def _by_id(ctx: RecordingContext, pid: str) -> Any:
    return next((i for i in ctx.inbound if i.platform_id == pid), None)


# ---- receiving ------------------------------------------------------------------------------

async def test_dm_becomes_an_inbound_with_every_field(fake: FakeDiscord, running: Running) -> None:
    _, ctx = running
    cid, person = fake.create_dm("alice")
    pid = await fake.inject(fake.user_message(cid, "hello 👋"))
    inbound = await eventually(lambda: _by_id(ctx, pid))
    assert inbound.address == Address(channel="discord", chat=cid, account=fake.bot["id"],
                                      thread=None)
    assert (inbound.text, inbound.sender_id, inbound.sender_name) == (
        "hello 👋", person["id"], "Alice")
    assert not (inbound.is_group or inbound.mentioned or inbound.reply_to_bot)
    assert ctx.heartbeats > 0
    assert fake.connections[0]["v"] == "10"
    assert fake.connections[0]["compress"] == "zlib-stream"  # the fake answered zlib frames


async def test_guild_messages_need_a_mention_or_a_reply_to_the_bot(
        fake: FakeDiscord, running: Running) -> None:
    connector, ctx = running
    channel = await fake.create_text_channel("general")
    ignored = await fake.inject(fake.user_message(channel, "just chatting"))
    mention = await fake.inject(fake.user_message(channel, "what's up?", mention_bot=True))
    got = await eventually(lambda: _by_id(ctx, mention))
    assert got.text == "what's up?"  # the bot's own <@id> is taken out
    assert got.is_group and got.mentioned and got.address.chat == channel
    [bot_reply] = await connector.send(Outbound(got.address, "hi!", reply_to=mention))
    reply = await fake.inject(fake.user_message(channel, "thanks", reply_to=bot_reply))
    assert (await eventually(lambda: _by_id(ctx, reply))).reply_to_bot
    assert _by_id(ctx, ignored) is None
    assert all(i.sender_id != fake.bot["id"] for i in ctx.inbound)  # own echo ignored


async def test_guild_mode_all_takes_every_message(fake: FakeDiscord, make: Factory) -> None:
    ctx = await _start(make(guild_mode="all"))
    channel = await fake.create_text_channel("general")
    pid = await fake.inject(fake.user_message(channel, "no mention here"))
    got = await eventually(lambda: _by_id(ctx, pid))
    assert got.is_group and not got.mentioned


async def test_thread_message_is_addressed_to_parent_and_thread(fake: FakeDiscord,
                                                                running: Running) -> None:
    _, ctx = running
    channel = await fake.create_text_channel("general")
    thread = await fake.create_thread(channel, "topic")
    pid = await fake.inject(fake.user_message(thread, "in a thread", mention_bot=True))
    got = await eventually(lambda: _by_id(ctx, pid))
    assert (got.address.chat, got.address.thread) == (channel, thread)


async def test_other_bots_and_system_messages_are_ignored(fake: FakeDiscord,
                                                          running: Running) -> None:
    _, ctx = running
    cid, _ = fake.create_dm()
    other_bot = fake.user_message(cid, "beep", author=p.user(p.snowflake(), "otherbot", bot=True))
    await fake.inject(other_bot)
    pin_notice = {**fake.user_message(cid, ""), "type": 6}  # CHANNEL_PINNED_MESSAGE
    await fake.inject(pin_notice)
    marker = await fake.inject(fake.user_message(cid, "marker"))
    await eventually(lambda: _by_id(ctx, marker))
    assert [i.platform_id for i in ctx.inbound] == [marker]
    assert not [entry for entry in ctx.logs if entry[0] == "error"]


async def test_media_only_message_is_submitted_with_its_attachment(fake: FakeDiscord,
                                                                   running: Running) -> None:
    _, ctx = running
    cid, _ = fake.create_dm()
    files = [{"id": p.snowflake(), "filename": "cat.png", "size": 1234, "url": "http://x/cat.png",
              "proxy_url": "http://x/cat.png", "content_type": "image/png"}]
    pid = await fake.inject(fake.user_message(cid, "", attachments=files))
    got = await eventually(lambda: _by_id(ctx, pid))
    assert got.text == ""
    [attachment] = got.attachments
    assert (attachment.kind, attachment.name, attachment.mime, attachment.size) == (
        "image", "cat.png", "image/png", 1234)


async def test_redelivered_message_is_submitted_once(fake: FakeDiscord, running: Running) -> None:
    _, ctx = running
    cid, _ = fake.create_dm()
    pid = await fake.inject(fake.user_message(cid, "once"))
    await fake.redeliver(pid)
    marker = await fake.inject(fake.user_message(cid, "marker"))
    await eventually(lambda: _by_id(ctx, marker))
    assert [i.platform_id for i in ctx.inbound] == [pid, marker]


# ---- malformed payloads and reconnects ------------------------------------------------------

async def test_malformed_message_is_logged_and_the_connector_carries_on(
        fake: FakeDiscord, running: Running) -> None:
    _, ctx = running
    cid, _ = fake.create_dm()
    await fake.dispatch("MESSAGE_CREATE", {**fake.user_message(cid, "x"), "content": None})
    await eventually(lambda: [e for e in ctx.logs if "malformed" in e[1]])
    pid = await fake.inject(fake.user_message(cid, "still here"))
    await eventually(lambda: _by_id(ctx, pid))
    assert fake.identifies == 1  # discord.py survived it: same session


async def test_payload_that_crashes_the_sdk_restarts_the_client(fake: FakeDiscord,
                                                                running: Running) -> None:
    _, ctx = running
    cid, _ = fake.create_dm()
    broken = {**fake.user_message(cid, "x"), "id": "not-a-snowflake"}  # int() fails in the SDK
    await fake.dispatch("MESSAGE_CREATE", broken)
    await eventually(lambda: [e for e in ctx.logs if "malformed" in e[1]])
    await eventually(lambda: fake.identifies == 2)  # a fresh client, a fresh session
    await eventually(lambda: ctx.states[-1][0] == ChannelState.ONLINE)
    assert ChannelState.DEGRADED in [s for s, _ in ctx.states]
    pid = await fake.inject(fake.user_message(cid, "back"))
    await eventually(lambda: _by_id(ctx, pid))


async def test_dropped_connection_resumes_without_loss_or_duplicates(
        fake: FakeDiscord, running: Running) -> None:
    _, ctx = running
    cid, _ = fake.create_dm()
    before = await fake.inject(fake.user_message(cid, "before"))
    await fake.drop_connection()
    during = [await fake.inject(fake.user_message(cid, f"during {n}")) for n in range(3)]
    await eventually(lambda: len(ctx.inbound) == 4)
    after = await fake.inject(fake.user_message(cid, "after"))
    await eventually(lambda: _by_id(ctx, after))
    assert [i.platform_id for i in ctx.inbound] == [before, *during, after]
    assert (fake.identifies, fake.resumes) == (1, 1)
    assert ctx.states[-1][0] == ChannelState.ONLINE
    assert any(msg == "gateway session resumed" for _, msg, _ in ctx.logs)


async def test_invalid_session_leads_to_a_new_identify(fake: FakeDiscord,
                                                       running: Running) -> None:
    _, ctx = running
    await fake.invalidate_session()
    await fake.drop_connection()
    await eventually(lambda: fake.identifies == 2)
    cid, _ = fake.create_dm()
    pid = await fake.inject(fake.user_message(cid, "new session"))
    await eventually(lambda: _by_id(ctx, pid))


async def test_token_revoked_while_running_goes_offline_for_good(fake: FakeDiscord,
                                                                 running: Running) -> None:
    _, ctx = running
    fake.token = "revoked"
    await fake.drop_connection()  # the RESUME now fails with close code 4004
    await eventually(lambda: ctx.states[-1][0] == ChannelState.OFFLINE)
    assert "4004" in ctx.states[-1][1]
    assert [e for e in ctx.logs if e[0] == "error" and e[2].get("fatal")]


async def test_missing_token_fails_start(make: Factory) -> None:
    connector = DiscordConnector("discord", DiscordConfig())
    ctx = RecordingContext(channel="discord")
    with pytest.raises(FatalConnectorError, match="no Discord bot token"):
        await connector.start(ctx)
    assert ctx.states[-1][0] == ChannelState.OFFLINE
    await connector.stop()
    assert not (await connector.probe()).ok


async def test_bad_token_fails_start_and_stop_is_still_safe(make: Factory) -> None:
    connector = make(token="wrong")
    ctx = RecordingContext(channel="discord")
    with pytest.raises(FatalConnectorError, match="token"):
        await connector.start(ctx)
    assert ctx.states[-1][0] == ChannelState.OFFLINE
    assert [e for e in ctx.logs if e[0] == "error"]
    await connector.stop()
    await connector.stop()


async def test_missing_message_content_intent_is_fatal_with_a_hint(fake: FakeDiscord,
                                                                   make: Factory) -> None:
    fake.privileged_intents_enabled = False
    ctx = RecordingContext(channel="discord")
    await make().start(ctx)
    await eventually(lambda: ctx.states[-1][0] == ChannelState.OFFLINE)
    assert "Message Content intent" in ctx.states[-1][1]


async def test_unreachable_server_keeps_retrying_in_the_background(make: Factory) -> None:
    connector = make(api_base="http://127.0.0.1:9/api/v10")
    ctx = RecordingContext(channel="discord")
    await connector.start(ctx)  # returns: a network fault is not a reason to give up
    assert ctx.states[-1][0] == ChannelState.DEGRADED
    await eventually(lambda: len([e for e in ctx.logs if "reconnecting in" in e[1]]) >= 1)
    await connector.stop()
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("discord:discord:")]


# ---- sending --------------------------------------------------------------------------------

async def test_send_splits_and_replies_in_the_thread(fake: FakeDiscord, running: Running) -> None:
    connector, _ = running
    channel = await fake.create_text_channel("general")
    thread = await fake.create_thread(channel, "topic")
    original = await fake.inject(fake.user_message(thread, "go", mention_bot=True))
    text = ("word " * 900).strip() + " " + "é" * 700
    ids = await connector.send(Outbound(Address("discord", channel, fake.bot["id"], thread),
                                        text, reply_to=original))
    assert [r.message_id for r in fake.sent] == ids and len(ids) == 3
    assert "".join(r.text for r in fake.sent) == text
    assert all(len(r.text) <= MAX_TEXT for r in fake.sent)
    assert {(r.chat, r.thread, r.channel_id) for r in fake.sent} == {(channel, thread, thread)}
    assert [r.reply_to for r in fake.sent] == [original, None, None]


async def test_reply_to_a_vanished_message_is_still_sent(fake: FakeDiscord,
                                                         running: Running) -> None:
    connector, _ = running
    cid, _ = fake.create_dm()
    await connector.send(Outbound(Address("discord", cid), "hi", reply_to=p.snowflake()))
    assert [(r.text, r.reply_to) for r in fake.sent] == [("hi", None)]


async def test_rate_limit_retry_after_is_honoured(fake: FakeDiscord, running: Running) -> None:
    connector, _ = running
    cid, _ = fake.create_dm()
    fake.rate_limit_next_send(0.5)
    ids = await connector.send(Outbound(Address("discord", cid), "patience"))
    [(answered, retried)] = fake.rate_limit_log
    assert retried - answered >= 0.5
    assert [r.message_id for r in fake.sent] == ids


async def test_a_retried_reply_does_not_repeat_the_parts_already_sent(
        fake: FakeDiscord, running: Running) -> None:
    connector, _ = running
    cid, _ = fake.create_dm()
    outbound = Outbound(Address("discord", cid), "a" * 1999 + " " + "b" * 1999, journal_id=7)
    fake.cut_next_sends(3, after=1)  # the 2nd part meets a dead network, 3 tries running
    with pytest.raises(RetryableError):
        await connector.send(outbound)
    ids = await connector.send(outbound)  # the gateway's retry
    assert [r.text[0] for r in fake.sent] == ["a", "b"]
    assert ids == [r.message_id for r in fake.sent]


async def test_unknown_channel_is_a_fatal_send_error(running: Running) -> None:
    connector, _ = running
    with pytest.raises(FatalConnectorError, match="10003"):
        await connector.send(Outbound(Address("discord", p.snowflake()), "lost"))


async def test_typing_hits_the_thread(fake: FakeDiscord, running: Running) -> None:
    connector, _ = running
    channel = await fake.create_text_channel("general")
    thread = await fake.create_thread(channel, "topic")
    await connector.typing(Address("discord", channel, thread=thread))
    assert [cid for cid, _ in fake.typing] == [thread]


# ---- probe ----------------------------------------------------------------------------------

async def test_probe_reports_the_bot_name(make: Factory) -> None:
    result = await make().probe()
    assert result.ok and result.message == "connected as @pyclaw-bot"


async def test_probe_reports_a_bad_token(make: Factory) -> None:
    result = await make(token="nope").probe()
    assert not result.ok and "bad token" in result.message


async def test_probe_reports_an_unreachable_server(make: Factory) -> None:
    result = await make(api_base="http://127.0.0.1:9/api/v10").probe()
    assert not result.ok and "unreachable at http://127.0.0.1:9/api/v10" in result.message


# ---- the fake speaks Discord's REST error shapes --------------------------------------------

async def test_fake_rest_errors_have_discords_shape(fake: FakeDiscord) -> None:
    auth = {"Authorization": f"Bot {fake.token}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{fake.api_base}/users/@me") as resp:
            assert resp.status == 401 and resp.headers["Content-Type"] == "application/json"
            assert await resp.json() == {"message": "401: Unauthorized", "code": 0}
        async with http.get(f"{fake.api_base}/no/such/route", headers=auth) as resp:
            assert (resp.status, await resp.json()) == (
                404, {"message": "404: Not Found", "code": 0})
        async with http.post(f"{fake.api_base}/channels/1/messages", headers=auth,
                             json={"content": "x"}) as resp:
            assert (resp.status, (await resp.json())["code"]) == (404, 10003)


# ---- the pure parser ------------------------------------------------------------------------

_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=20)
_keys = st.sampled_from(["id", "channel_id", "author", "content", "type", "guild_id", "mentions",
                         "attachments", "sticker_items", "referenced_message", "webhook_id"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_keys | st.text(max_size=8), _json, max_size=8), st.text(max_size=25))
def test_parser_never_raises(data: dict[str, Any], bot_id: str) -> None:
    is_ignorable(data, bot_id)
    channel_id_of(data)
    parse_message_create(data, channel="discord", bot_id=bot_id, thread_parent=bot_id or None)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300), st.booleans())
def test_parser_round_trips_a_valid_payload(text: str, in_guild: bool) -> None:
    author = p.user(p.snowflake(), "bob")
    channel = p.snowflake()
    data = p.message(p.snowflake(), channel, author, text,
                     guild_id=p.snowflake() if in_guild else None)
    got = parse_message_create(data, channel="discord", bot_id="42")
    assert got is not None
    assert (got.platform_id, got.text, got.sender_id, got.address.chat, got.is_group) == (
        data["id"], text, author["id"], channel, in_guild)
    assert abs(got.ts - time.time()) < 60  # taken from the snowflake
