"""The Discord connector through the real discord.py against the fake Discord, without a gateway.

What every channel must do (429 and Retry-After, redelivery, dropped connections,
splitting, malformed payloads, resending only the missing parts) is the contract
suite's (tests/contract); here is what is Discord's own: the Gateway's close codes
and intents, RESUME, thread targets, allowed mentions and how REST answers map.
"""

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
from connectors.discord.manifest import DiscordConfig
from connectors.discord.runtime import DiscordConnector
from pyclaw_app.channels import SubmitResult
from pyclaw_app.errors import DeliveryUncertain, FatalConnectorError, RetryableError
from pyclaw_app.model import Address, ChannelState, Inbound
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


async def test_guild_messages_say_whether_they_address_the_bot_and_are_not_gated(
        fake: FakeDiscord, running: Running) -> None:
    """The gateway applies group_reply; the connector submits every guild message with
    ``mentioned`` (``<@id>`` or the bot in ``mentions``) and ``reply_to_bot`` set."""
    connector, ctx = running
    channel = await fake.create_text_channel("general")
    chatter = await fake.inject(fake.user_message(channel, "just chatting"))
    mention = await fake.inject(fake.user_message(channel, "what's up?", mention_bot=True))
    got = await eventually(lambda: _by_id(ctx, mention))
    assert got.text == "what's up?"  # the bot's own <@id> is taken out
    assert got.is_group and got.mentioned and got.address.chat == channel
    bot_reply = await connector.send_part(got.address, "hi!", mention)
    reply = await fake.inject(fake.user_message(channel, "thanks", reply_to=bot_reply))
    assert (await eventually(lambda: _by_id(ctx, reply))).reply_to_bot
    plain = _by_id(ctx, chatter)
    assert plain is not None and plain.is_group
    assert not (plain.mentioned or plain.reply_to_bot)
    assert all(i.sender_id != fake.bot["id"] for i in ctx.inbound)  # own echo ignored


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


# ---- the Gateway: SDK crashes, RESUME, close codes, intents ---------------------------------

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


async def test_a_dropped_connection_is_resumed_not_reidentified(
        fake: FakeDiscord, running: Running) -> None:
    _, ctx = running
    cid, _ = fake.create_dm()
    await fake.drop_connection()
    during = await fake.inject(fake.user_message(cid, "during"))  # replayed after RESUME
    await eventually(lambda: _by_id(ctx, during))
    assert (fake.identifies, fake.resumes) == (1, 1)
    await eventually(lambda: ctx.states[-1][0] == ChannelState.ONLINE)
    assert ChannelState.DEGRADED in [s for s, _ in ctx.states]
    assert any(msg == "reconnected (gateway session resumed)" for _, msg, _ in ctx.logs)


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
    with pytest.raises(FatalConnectorError, match="Discord token is not set"):
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
    await eventually(lambda: [r for s, r in ctx.states
                              if s == ChannelState.DEGRADED and "reconnecting in" in r])
    await connector.stop()
    assert ctx.states[-1][0] == ChannelState.STOPPED and not ctx.crashes
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("discord:discord:")]


# ---- sending: one request per part, Discord's answers mapped -----------------------------

async def test_send_part_posts_in_the_thread_and_quotes_the_message(
        fake: FakeDiscord, running: Running) -> None:
    connector, _ = running
    channel = await fake.create_text_channel("general")
    thread = await fake.create_thread(channel, "topic")
    original = await fake.inject(fake.user_message(thread, "go", mention_bot=True))
    address = Address("discord", channel, fake.bot["id"], thread)
    first = await connector.send_part(address, "one @everyone", original)
    second = await connector.send_part(address, "two", None)
    assert [r.message_id for r in fake.sent] == [first, second]
    assert {(r.chat, r.thread, r.channel_id) for r in fake.sent} == {(channel, thread, thread)}
    assert [r.reply_to for r in fake.sent] == [original, None]
    for record in fake.sent:  # names may ping, @everyone and roles never
        assert record.allowed_mentions == {"parse": ["users"], "replied_user": True}


async def test_reply_to_a_vanished_message_is_still_sent(fake: FakeDiscord,
                                                         running: Running) -> None:
    connector, _ = running
    cid, _ = fake.create_dm()
    await connector.send_part(Address("discord", cid), "hi", p.snowflake())
    assert [(r.text, r.reply_to) for r in fake.sent] == [("hi", None)]


@pytest.mark.parametrize(("status", "error", "match"), [
    (429, RetryableError, "rate limit: retry after 2s"),
    (500, RetryableError, "HTTP 500: 500: Internal Server Error"),
    (502, RetryableError, "HTTP 502"),
    (400, FatalConnectorError, r"Invalid Form Body \(code 50035\)"),
    (403, FatalConnectorError, r"Missing Permissions \(code 50013\)"),
])
async def test_a_refused_part_is_asked_once_and_mapped(
        fake: FakeDiscord, running: Running, status: int, error: type[Exception],
        match: str) -> None:
    """discord.py would sleep through the 429 and resend 500/502 up to five times; the
    connector makes exactly one request and lets the gateway's retry layer decide."""
    connector, _ = running
    cid, _ = fake.create_dm()
    fake.fail_next("create_message", status, retry_after=1.5)
    started = time.monotonic()
    with pytest.raises(error, match=match) as caught:
        await connector.send_part(Address("discord", cid), "once", None)
    assert time.monotonic() - started < 1.0  # no sleeping inside the connector
    assert fake.calls("create_message") == 1 and not fake.sent
    if status == 429:  # Discord's Retry-After header is whole seconds, rounded up
        assert isinstance(caught.value, RetryableError) and caught.value.retry_after == 2.0


async def test_a_lost_answer_is_uncertain_and_not_resent(fake: FakeDiscord,
                                                         running: Running) -> None:
    connector, _ = running
    cid, _ = fake.create_dm()
    fake.lose_next_answer("create_message")
    with pytest.raises(DeliveryUncertain, match="may have been carried out"):
        await connector.send_part(Address("discord", cid), "did it arrive?", None)
    assert fake.calls("create_message") == 1
    assert [r.text for r in fake.sent] == ["did it arrive?"]  # it did, exactly once


async def test_unknown_channel_and_bad_ids_are_fatal(running: Running) -> None:
    connector, _ = running
    with pytest.raises(FatalConnectorError, match="10003"):
        await connector.send_part(Address("discord", p.snowflake()), "lost", None)
    with pytest.raises(FatalConnectorError, match="not a Discord channel id"):
        await connector.send_part(Address("discord", "general"), "lost", None)


async def test_replies_go_out_while_the_gateway_reconnects(fake: FakeDiscord,
                                                           running: Running) -> None:
    """REST does not depend on the websocket: a reply is not held up by a RESUME."""
    connector, ctx = running
    cid, _ = fake.create_dm()
    fake.gateway_available = False
    await fake.drop_connection()
    await eventually(lambda: ctx.states[-1][0] == ChannelState.DEGRADED)
    await connector.send_part(Address("discord", cid), "still here", None)
    assert [r.text for r in fake.sent] == ["still here"]
    assert ctx.states[-1][0] == ChannelState.DEGRADED
    fake.gateway_available = True
    await eventually(lambda: ctx.states[-1][0] == ChannelState.ONLINE, timeout=20)


async def test_stop_journals_what_was_already_read(fake: FakeDiscord, make: Factory) -> None:
    """The Gateway never sends a read event again: stop() drains the queue first."""

    class SlowContext(RecordingContext):
        async def submit(self, inbound: Inbound) -> SubmitResult:
            await asyncio.sleep(0.1)
            return await super().submit(inbound)

    connector = make()
    ctx = SlowContext(channel="discord")
    await connector.start(ctx)
    await eventually(lambda: ctx.states and ctx.states[-1][0] == ChannelState.ONLINE)
    cid, _ = fake.create_dm()
    beats = ctx.heartbeats
    ids = [await fake.inject(fake.user_message(cid, f"m{n}")) for n in range(5)]
    await eventually(lambda: ctx.heartbeats >= beats + 5)  # every frame was read
    await connector.stop()
    assert [i.platform_id for i in ctx.inbound] == ids


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
        cid, _ = fake.create_dm()
        fake.rate_limit_next_send(0.25)
        async with http.post(f"{fake.api_base}/channels/{cid}/messages", headers=auth,
                             json={"content": "x"}) as resp:
            assert resp.status == 429
            assert await resp.json() == {"message": "You are being rate limited.",
                                         "retry_after": 0.25, "global": False}
            assert (resp.headers["Retry-After"], resp.headers["X-RateLimit-Remaining"]) == (
                "1", "0")
            assert resp.headers["Via"] and resp.headers["X-RateLimit-Scope"] == "user"
        assert len(fake.rate_limit_log) == 0  # logged when the retry arrives
        async with http.post(f"{fake.api_base}/channels/{cid}/messages", headers=auth,
                             json={"content": "x"}) as resp:
            assert resp.status == 200 and (await resp.json())["content"] == "x"
        assert len(fake.rate_limit_log) == 1


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


# ---- edits (streamed replies) ------------------------------------------------------------

GROWING = ["Hello", "Hello, **wor", "Hello, **world** — a < b & c", "Hello, **world** — a < b & "
           "c.\n\n```py\nprint(1)\n```"]
"""Drafts of one streamed reply, as the gateway sends them about once a second."""


@pytest.fixture
async def dcon(fake: FakeDiscord) -> AsyncIterator[DiscordConnector]:
    connector = DiscordConnector("discord", DiscordConfig(token=SecretStr(fake.token)))
    ctx = RecordingContext(channel="discord")
    await connector.start(ctx)
    await eventually(lambda: ctx.states and ctx.states[-1][0] == ChannelState.ONLINE)
    yield connector
    await connector.stop()


async def test_discord_edits_arrive_in_order(fake: FakeDiscord, dcon: DiscordConnector) -> None:
    cid, _ = fake.create_dm()
    address = Address("discord", cid)
    draft = await dcon.send_part(address, "…", None)
    for text in [*GROWING, "@everyone look"]:
        await dcon.edit(address, draft, text)
    assert fake.edits(draft) == [*GROWING, "@everyone look"]  # Discord renders markdown itself
    assert fake.messages[draft]["content"] == "@everyone look"
    mentions = fake.edit_log[-1].allowed_mentions
    assert mentions is not None and "everyone" not in mentions["parse"]  # shown, never pinged


async def test_discord_edit_in_a_thread_targets_the_thread(
        fake: FakeDiscord, dcon: DiscordConnector) -> None:
    parent = await fake.create_text_channel("general")
    thread = await fake.create_thread(parent, "topic")
    address = Address("discord", parent, thread=thread)
    draft = await dcon.send_part(address, "…", None)
    await dcon.edit(address, draft, "done")
    assert fake.edits(draft) == ["done"]


async def test_discord_edit_429_is_retryable_with_retry_after_and_not_slept_through(
        fake: FakeDiscord, dcon: DiscordConnector) -> None:
    """The gateway waits out the limit (its one retry layer), not discord.py."""
    cid, _ = fake.create_dm()
    address = Address("discord", cid)
    draft = await dcon.send_part(address, "…", None)
    fake.fail_next("edit_message", 429, retry_after=0.3)
    with pytest.raises(RetryableError) as caught:
        await dcon.edit(address, draft, "after the wait")
    assert caught.value.retry_after == 1.0  # Retry-After: whole seconds, rounded up
    assert fake.edits(draft) == [] and fake.calls("edit_message") == 1
    await dcon.edit(address, draft, "after the wait")
    assert fake.edits(draft) == ["after the wait"]


async def test_discord_edit_with_a_lost_answer_may_be_retried(
        fake: FakeDiscord, dcon: DiscordConnector) -> None:
    """Setting the same content again is harmless, so a lost PATCH answer is retryable."""
    cid, _ = fake.create_dm()
    address = Address("discord", cid)
    draft = await dcon.send_part(address, "…", None)
    fake.lose_next_answer("edit_message")
    with pytest.raises(RetryableError, match="no answer"):
        await dcon.edit(address, draft, "full text")
    await dcon.edit(address, draft, "full text")
    assert fake.messages[draft]["content"] == "full text"


async def test_discord_edit_of_a_missing_or_foreign_message_is_fatal(
        fake: FakeDiscord, dcon: DiscordConnector) -> None:
    cid, _ = fake.create_dm()
    address = Address("discord", cid)
    with pytest.raises(FatalConnectorError, match="10008"):
        await dcon.edit(address, "1234567890", "text")
    users = fake.user_message(cid, "mine")
    with pytest.raises(FatalConnectorError, match="50005"):
        await dcon.edit(address, users["id"], "text")
    with pytest.raises(FatalConnectorError, match="not a Discord message id"):
        await dcon.edit(address, "C1:2", "text")
