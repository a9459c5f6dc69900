"""The Rocket.Chat connector against the fake server, without a gateway, plus its parsers.

What every channel must do is the contract suite's; here is what is Rocket.Chat's own:
a bad token as one clear line (start and Test connection), direct messages, channels and
group DMs with the ``mentions`` array, threads under the bot's messages as replies to it,
public channels the bot has not joined ignored, system and encrypted messages skipped,
the rate limiter's ``X-RateLimit-Reset``, a room the bot is not in, Message_MaxAllowedSize,
edits and typing as the server takes them, the catch-up after a restart (and none on the
first start), a room joined while away, updates of old messages not answered, a silent
server detected by DDP pings, and the parsers under hypothesis.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from connectors.rocketchat._api import RoomGone, iso, rate_limit_wait
from connectors.rocketchat._cursor import GRACE_MS, Cursor
from connectors.rocketchat._ddp import websocket_url
from connectors.rocketchat._parse import (
    RoomInfo,
    Skip,
    Stamp,
    Viewpoint,
    parse_message,
    parse_room,
    parse_time,
    stamp,
    stream_message,
)
from connectors.rocketchat.manifest import RocketChatConfig
from connectors.rocketchat.runtime import CURSOR_KEY, RocketChatConnector
from pyclaw_app.channels import SubmitResult
from pyclaw_app.errors import FatalConnectorError, PyclawError, RetryableError
from pyclaw_app.model import Address, ChannelState, Inbound
from tests.conftest import GatewayFactory
from tests.contract.harness_rocketchat import RocketChatHarness
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.rocketchat_api import FakeRocketChat
from tests.fakes.tls import self_signed
from tests.support import RecordingContext, eventually
from tests.test_attachments import PNG
from tests.test_attachments_channels import online, reply_to

Running = tuple[RocketChatConnector, RecordingContext]
BOT = Viewpoint("rc", "BOTID", "pyclaw.bot", "https://chat.example.com", {"OURS", "THREAD"})
DM = RoomInfo("DMROOM", "d", members=2)
CHANNEL = RoomInfo("CHAN", "c", "general", 3)


@pytest.fixture
async def fake() -> AsyncIterator[FakeRocketChat]:
    server = FakeRocketChat()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def alice(fake: FakeRocketChat) -> dict[str, Any]:
    return fake.add_user("alice", "Alice")


@pytest.fixture
async def start(fake: FakeRocketChat) -> AsyncIterator[Callable[..., Any]]:
    made: list[RocketChatConnector] = []

    async def factory(*, ctx: RecordingContext | None = None, **overrides: Any) -> Running:
        settings: dict[str, Any] = {
            "server_url": fake.url, "user_id": fake.bot["_id"],
            "auth_token": SecretStr(fake.bot["token"]), "ping_interval": 5, **overrides}
        connector = RocketChatConnector("rc", RocketChatConfig(**settings))
        ctx = ctx or RecordingContext(channel="rc")
        made.append(connector)
        await connector.start(ctx)
        await fake.wait_subscribed()
        return connector, ctx

    yield factory
    for connector in made:
        await connector.stop()


def logged(ctx: RecordingContext, words: str) -> bool:
    return any(words in line[1] for line in ctx.logs)


def texts(ctx: RecordingContext) -> list[str]:
    return [m.text for m in ctx.inbound]


# ---- credentials --------------------------------------------------------------------------

async def test_a_wrong_token_fails_the_start_with_one_clear_line(fake: FakeRocketChat) -> None:
    connector = RocketChatConnector("rc", RocketChatConfig(
        server_url=fake.url, user_id=fake.bot["_id"], auth_token=SecretStr("wrong")))
    ctx = RecordingContext()
    with pytest.raises(FatalConnectorError, match="check auth_token and user_id"):
        await connector.start(ctx)
    assert ctx.states[-1][0] is ChannelState.OFFLINE
    assert logged(ctx, "You must be logged in to do this.")
    assert not any("wrong" in line[1] for line in ctx.logs)  # the token is never logged
    await connector.stop()


async def test_test_connection_names_the_bot_or_the_problem(fake: FakeRocketChat) -> None:
    good = RocketChatConnector("rc", RocketChatConfig(
        server_url=fake.url, user_id=fake.bot["_id"], auth_token=SecretStr(fake.bot["token"])))
    assert (await good.probe()).message == "connected as @pyclaw.bot"
    bad = RocketChatConnector("rc", RocketChatConfig(
        server_url=fake.url, user_id="someone-else", auth_token=SecretStr(fake.bot["token"])))
    result = await bad.probe()
    assert not result.ok and "check auth_token and user_id" in result.message
    unset = await RocketChatConnector("rc", RocketChatConfig(
        user_id="x", auth_token=SecretStr("t"))).probe()
    assert not unset.ok and "server_url" in unset.message
    gone = await RocketChatConnector("rc", RocketChatConfig(
        server_url="http://127.0.0.1:9", user_id="x", auth_token=SecretStr("t"))).probe()
    assert not gone.ok and "unreachable" in gone.message


async def test_a_redirected_realtime_endpoint_is_not_followed(fake: FakeRocketChat) -> None:
    elsewhere = FakeRocketChat()
    await elsewhere.start()
    fake.realtime_redirect = f"{elsewhere.url}/websocket"
    connector = RocketChatConnector("rc", RocketChatConfig(
        server_url=fake.url, user_id=fake.bot["_id"], auth_token=SecretStr(fake.bot["token"])))
    try:
        with pytest.raises(FatalConnectorError, match="redirects are not followed"):
            await connector.start(RecordingContext())
        assert elsewhere.connections == 0 and fake.connections == 0
    finally:
        await connector.stop()
        await elsewhere.stop()


@pytest.fixture
async def tls_fake(tmp_path: Path) -> AsyncIterator[tuple[FakeRocketChat, Path]]:
    """The fake over HTTPS/WSS with a self-signed certificate (and that certificate)."""
    made = self_signed(tmp_path)
    server = FakeRocketChat()
    await server.start_tls(made.server_context())
    yield server, made.cert
    await server.stop()


async def test_a_refused_certificate_is_named_and_ca_file_trusts_it(
        tls_fake: tuple[FakeRocketChat, Path]) -> None:
    fake, cert = tls_fake
    alice = fake.add_user("alice", "Alice")
    dm = fake.create_dm(fake.bot, alice)

    def config(**extra: Any) -> RocketChatConfig:
        return RocketChatConfig(server_url=fake.url, user_id=fake.bot["_id"],
                                auth_token=SecretStr(fake.bot["token"]), **extra)

    refused = RocketChatConnector("rc", config())
    ctx = RecordingContext()
    try:  # retrying cannot make the certificate trusted: the start stops, saying what to do
        with pytest.raises(FatalConnectorError, match=r"TLS refused.*set ca_file"):
            await refused.start(ctx)
        assert "set ca_file" in (await refused.probe()).message
    finally:
        await refused.stop()
    trusting = RocketChatConnector("rc", config(ca_file=str(cert)))
    assert (await trusting.probe()).ok
    ctx = RecordingContext()
    await trusting.start(ctx)
    try:
        await fake.wait_subscribed()
        await fake.post(alice, dm, "over wss")
        await eventually(lambda: ctx.inbound)
        assert texts(ctx) == ["over wss"]
    finally:
        await trusting.stop()


def test_the_token_is_a_required_secret() -> None:
    assert RocketChatConfig().missing_secrets() == ["auth_token"]


# ---- receiving ----------------------------------------------------------------------------

async def test_direct_messages_channels_and_mentions_are_reported(
        fake: FakeRocketChat, alice: dict[str, Any], start: Callable[..., Any]) -> None:
    bob = fake.add_user("bob", "Bob")
    dm = fake.create_dm(fake.bot, alice)
    channel = fake.create_room("p", "team", [fake.bot, alice, bob])
    trio = fake.create_room("d", "", [fake.bot, alice, bob])  # a group DM
    _, ctx = await start()
    await fake.post(alice, dm, "hello")
    await fake.post(alice, channel, "people talking")
    await fake.post(alice, channel, "@pyclaw.bot are you there?")
    await fake.post(alice, trio, "three of us")
    await eventually(lambda: len(ctx.inbound) == 4)
    hello, chatter, mention, trio_msg = ctx.inbound
    assert (hello.is_group, hello.mentioned, hello.sender_name) == (False, False, "Alice")
    assert hello.address == Address(channel="rc", chat=dm, account=fake.bot["_id"])
    assert (chatter.is_group, chatter.mentioned) == (True, False)
    assert (mention.is_group, mention.mentioned) == (True, True)
    assert trio_msg.is_group


async def test_a_thread_under_the_bots_message_is_a_reply_to_it(
        fake: FakeRocketChat, alice: dict[str, Any], start: Callable[..., Any]) -> None:
    channel = fake.create_room("c", "general", [fake.bot, alice])
    connector, ctx = await start()
    first = await fake.post(alice, channel, "@pyclaw.bot start")
    await eventually(lambda: ctx.inbound)
    address = ctx.inbound[0].address
    sent = await connector.send_part(address, "the bot's answer", first)
    await fake.post(alice, channel, "a follow-up without a mention", tmid=sent)
    await fake.post(alice, channel, "unrelated thread", tmid=first)
    await eventually(lambda: len(ctx.inbound) == 3)
    follow_up, unrelated = ctx.inbound[1], ctx.inbound[2]
    assert follow_up.address.thread == sent and follow_up.reply_to_bot
    assert not follow_up.mentioned
    assert unrelated.address.thread == first and not unrelated.reply_to_bot
    threaded = await connector.send_part(follow_up.address, "in the thread", None)
    assert fake.messages[threaded]["tmid"] == sent


async def test_what_is_not_for_the_bot_is_skipped(
        fake: FakeRocketChat, alice: dict[str, Any], start: Callable[..., Any]) -> None:
    outside = fake.create_room("c", "elsewhere", [alice])  # public, the bot has not joined
    dm = fake.create_dm(fake.bot, alice)
    connector, ctx = await start()
    await fake.post(alice, outside, "@pyclaw.bot not your room")
    await fake.post(alice, dm, "alice joined", t="uj")
    await fake.post(alice, dm, "ciphertext", t="e2e")
    await connector.send_part(Address(channel="rc", chat=dm), "own message", None)
    await fake.post(alice, dm, "marker")
    await eventually(lambda: ctx.inbound)
    assert texts(ctx) == ["marker"]
    assert logged(ctx, "end-to-end encrypted")


async def test_an_update_of_an_old_message_is_not_answered(
        fake: FakeRocketChat, alice: dict[str, Any], start: Callable[..., Any]) -> None:
    dm = fake.create_dm(fake.bot, alice)
    old = fake.store(alice, dm, "from long ago")
    fake.messages[old["_id"]]["ts"] -= 3_600_000
    _, ctx = await start()
    await fake.post(alice, dm, "reply in its thread", tmid=old["_id"])  # re-broadcasts it
    await fake.touch(old["_id"])
    await fake.post(alice, dm, "marker")
    await eventually(lambda: len(ctx.inbound) == 2)
    assert texts(ctx) == ["reply in its thread", "marker"]


# ---- sending ------------------------------------------------------------------------------

async def test_the_rate_limiter_answer_carries_the_wait(
        fake: FakeRocketChat, alice: dict[str, Any], start: Callable[..., Any]) -> None:
    dm = fake.create_dm(fake.bot, alice)
    connector, _ = await start()
    fake.rate_limit_next_send(2.0)
    with pytest.raises(RetryableError, match="rate limit") as caught:
        await connector.send_part(Address(channel="rc", chat=dm), "hi", None)
    assert caught.value.retry_after is not None and caught.value.retry_after > 0
    assert not fake.sent


def test_the_wait_is_read_from_the_reset_header_or_the_text() -> None:
    assert rate_limit_wait({"X-RateLimit-Reset": "101500"}, {}, now=100.0) == 1.5
    body = {"error": "Error, too many requests. Please slow down. You must wait 7 seconds "
                     "before trying this endpoint again. [error-too-many-requests]"}
    assert rate_limit_wait({}, body) == 7.0
    assert rate_limit_wait({"X-RateLimit-Reset": "soon"}, {"error": 3}) is None


async def test_a_room_the_bot_is_not_in_and_an_over_long_text_say_what_to_fix(
        fake: FakeRocketChat, alice: dict[str, Any], start: Callable[..., Any]) -> None:
    private = fake.create_room("p", "secret", [alice])
    dm = fake.create_dm(fake.bot, alice)
    connector, _ = await start()
    with pytest.raises(RoomGone, match="not a member"):
        await connector.send_part(Address(channel="rc", chat=private), "hi", None)
    with pytest.raises(FatalConnectorError, match="Message_MaxAllowedSize"):
        await connector.send_part(Address(channel="rc", chat=dm), "x" * 5001, None)
    assert connector.limits.max_text == 5000
    assert connector.limits.text_length("😀") == 2  # counted as the server's JavaScript does


async def test_edits_and_typing_reach_the_room(
        fake: FakeRocketChat, alice: dict[str, Any], start: Callable[..., Any]) -> None:
    dm = fake.create_dm(fake.bot, alice)
    connector, _ = await start()
    address = Address(channel="rc", chat=dm)
    mid = await connector.send_part(address, "draft", None)
    await connector.edit(address, mid, "final text")
    assert fake.messages[mid]["msg"] == "final text" and len(fake.edit_log) == 1
    theirs = await fake.post(alice, dm, "alice's own")
    with pytest.raises(FatalConnectorError):
        await connector.edit(address, theirs, "not mine")
    await connector.typing(address)
    await eventually(lambda: fake.typing)
    assert fake.typing == [(dm, "pyclaw.bot", ["user-typing"])]


async def test_typing_follows_the_servers_real_name_setting(
        fake: FakeRocketChat, alice: dict[str, Any], start: Callable[..., Any]) -> None:
    fake.use_real_name = True
    dm = fake.create_dm(fake.bot, alice)
    connector, _ = await start()
    address = Address(channel="rc", chat=dm)

    async def typed() -> list[tuple[str, str, list[str]]]:
        await connector.typing(address)  # the first is refused: the server shows names
        return fake.typing

    await eventually(typed)
    assert {name for _, name, _ in fake.typing} == {"Pyclaw Bot"}


# ---- resuming -----------------------------------------------------------------------------

async def test_a_restart_catches_up_once_and_the_first_start_answers_no_history(
        fake: FakeRocketChat, alice: dict[str, Any], start: Callable[..., Any]) -> None:
    dm = fake.create_dm(fake.bot, alice)
    fake.store(alice, dm, "history before the bot ever ran")
    first, ctx = await start()
    await fake.post(alice, dm, "live one")
    await eventually(lambda: ctx.inbound)
    await first.stop()  # the same context again: the journal and ctx.state survive
    later = fake.create_room("p", "new room", [fake.bot, alice])  # joined while away
    fake.store(alice, dm, "while away 1")
    fake.store(alice, later, "@pyclaw.bot in the new room")
    fake.store(alice, dm, "while away 2")
    await start(ctx=ctx)
    await eventually(lambda: len(ctx.inbound) == 4)
    assert texts(ctx) == ["live one", "while away 1", "while away 2",
                          "@pyclaw.bot in the new room"]
    cursor = await ctx.state.get(CURSOR_KEY)
    assert set(cursor["rooms"]) == {dm, later} and set(cursor["floors"]) == {dm}
    assert cursor["floors"][dm] < cursor["rooms"][dm]
    assert logged(ctx, "caught up on 3 messages")


async def test_a_dropped_socket_comes_back_and_nothing_is_lost(
        fake: FakeRocketChat, alice: dict[str, Any], start: Callable[..., Any]) -> None:
    dm = fake.create_dm(fake.bot, alice)
    _, ctx = await start()
    await fake.drop_connection()
    fake.store(alice, dm, "sent while the socket was down")
    await eventually(lambda: fake.logins == 2)
    await fake.post(alice, dm, "after")
    await eventually(lambda: len(ctx.inbound) == 2)
    assert texts(ctx) == ["sent while the socket was down", "after"]
    assert logged(ctx, "reconnected") and not ctx.crashes


@dataclass
class JournalFailsOnce(RecordingContext):
    """The database refuses the first message (a full disk), then recovers."""

    refused: int = 0

    async def submit(self, inbound: Inbound) -> SubmitResult:
        if not self.refused:
            self.refused += 1
            raise PyclawError("database is locked")
        return await super().submit(inbound)


async def test_a_message_the_journal_refused_is_fetched_again(
        fake: FakeRocketChat, alice: dict[str, Any], start: Callable[..., Any]) -> None:
    dm = fake.create_dm(fake.bot, alice)
    ctx = JournalFailsOnce(channel="rc")
    await start(ctx=ctx)
    await fake.post(alice, dm, "keep me")
    await eventually(lambda: ctx.inbound)
    assert texts(ctx) == ["keep me"] and ctx.refused == 1
    assert logged(ctx, "will fetch it again") and fake.logins == 2


async def test_a_quiet_connection_is_kept_by_pings_and_a_silent_server_reconnected(
        fake: FakeRocketChat, alice: dict[str, Any], start: Callable[..., Any]) -> None:
    dm = fake.create_dm(fake.bot, alice)
    _, ctx = await start(ping_interval=0.3)
    beats = ctx.heartbeats
    await eventually(lambda: ctx.heartbeats >= beats + 2)  # pongs count as traffic
    await fake.post(alice, dm, "after a quiet while")
    await eventually(lambda: ctx.inbound)
    assert fake.logins == 1 and not logged(ctx, "lost connection")
    fake.answer_pings = False
    await eventually(lambda: logged(ctx, "did not answer a ping"), timeout=10)
    fake.answer_pings = True
    await eventually(lambda: logged(ctx, "reconnected"), timeout=10)


async def test_a_refused_realtime_endpoint_is_retried_until_it_answers(
        fake: FakeRocketChat, alice: dict[str, Any], start: Callable[..., Any]) -> None:
    fake.realtime_available = False
    connector = RocketChatConnector("rc", RocketChatConfig(
        server_url=fake.url, user_id=fake.bot["_id"], auth_token=SecretStr(fake.bot["token"])))
    ctx = RecordingContext()
    await connector.start(ctx)
    try:
        assert logged(ctx, "will keep trying") and ctx.states[-1][0] is ChannelState.DEGRADED
        fake.realtime_available = True
        await eventually(lambda: ctx.states[-1][0] is ChannelState.ONLINE, timeout=10)
    finally:
        await connector.stop()


# ---- parsers ------------------------------------------------------------------------------

def _message(**fields: Any) -> dict[str, Any]:
    return {"_id": "M1", "rid": "CHAN", "msg": "hi", "ts": {"$date": 1_700_000_000_000},
            "u": {"_id": "U1", "username": "alice", "name": "Alice"}, **fields}


def test_times_come_as_ejson_or_iso_and_back() -> None:
    assert parse_time({"$date": 1480377601000}) == 1480377601000
    assert parse_time("2016-12-09T12:50:51.555Z") == 1481287851555
    assert iso(1481287851555) == "2016-12-09T12:50:51.555Z"
    assert parse_time("2016-12-09T12:50:51") is None  # no zone: not the server's form
    assert parse_time({"$date": True}) is None and parse_time(None) is None


def test_mentions_quotes_and_attachments() -> None:
    by_array = parse_message(_message(msg="hey", mentions=[{"_id": "BOTID"}]), room=CHANNEL,
                             view=BOT)
    by_text = parse_message(_message(msg="ping @Pyclaw.Bot!"), room=CHANNEL, view=BOT)
    not_me = parse_message(_message(msg="mail me@pyclaw.bot.example"), room=CHANNEL, view=BOT)
    assert isinstance(by_array, Inbound) and by_array.mentioned
    assert isinstance(by_text, Inbound) and by_text.mentioned
    assert isinstance(not_me, Inbound) and not not_me.mentioned
    quote = parse_message(_message(
        msg="[ ](https://chat.example.com/channel/general?msg=OURS) I disagree",
        attachments=[{"message_link": "https://chat.example.com/channel/general?msg=OURS",
                      "text": "the bot said"}]), room=CHANNEL, view=BOT)
    assert isinstance(quote, Inbound) and quote.reply_to_bot and quote.text == "I disagree"
    odd = parse_message(_message(attachments=[{"message_link": "http://[oops"}]),
                        room=CHANNEL, view=BOT)
    assert isinstance(odd, Inbound) and not odd.reply_to_bot
    upload = {"_id": "F1", "name": "a.pdf", "type": "application/pdf", "size": 10}
    files = parse_message(_message(msg="", file=upload, files=[upload]), room=DM, view=BOT)
    assert isinstance(files, Inbound)
    assert [(a.kind, a.name, a.url, a.platform_id) for a in files.attachments] == [
        ("file", "a.pdf", "https://chat.example.com/file-upload/F1/a.pdf", "F1")]


def test_rooms_and_stream_frames() -> None:
    assert parse_room({"_id": "R", "t": "d", "uids": ["a", "b", "c"],
                       "lm": "2024-01-01T00:00:00.000Z"}) == RoomInfo(
        "R", "d", "", 3, 1704067200000)
    assert parse_room({"t": "c"}) is None
    frame = {"msg": "changed", "collection": "stream-room-messages", "id": "id",
             "fields": {"eventName": "__my_messages__", "args": [_message(),
                                                                 {"roomType": "c"}]}}
    assert stream_message(frame) == (_message(), {"roomType": "c"})
    assert isinstance(stream_message({**frame, "fields": {}}), Skip)
    assert stream_message({"msg": "ready", "subs": ["1"]}) is None
    assert stamp(_message()) is not None and stamp({"rid": "R"}) is None
    assert websocket_url("https://chat.example.com") == "wss://chat.example.com/websocket"
    assert websocket_url("http://127.0.0.1:3000") == "ws://127.0.0.1:3000/websocket"


def test_the_cursor_keeps_history_out_and_lets_late_arrivals_in() -> None:
    cursor = Cursor()
    assert cursor.first
    cursor.set_floors([RoomInfo("A", "d", last_message=1000), RoomInfo("E", "c")], now=500)
    cursor.since = 2000
    assert cursor.is_old(Stamp("A", 1000)) and not cursor.is_old(Stamp("A", 1001))
    assert cursor.is_old(Stamp("E", 500)) and cursor.is_old(Stamp("NEW", 2000))
    assert cursor.advance(Stamp("A", 50_000)) and not cursor.advance(Stamp("A", 49_000))
    assert not cursor.is_old(Stamp("A", 50_000 - GRACE_MS))  # may have come out of order
    assert cursor.is_old(Stamp("A", 50_000 - GRACE_MS - 1))  # an update of an old one
    assert cursor.catch_up_from(RoomInfo("A", "d", last_message=50_000)) is None
    assert cursor.catch_up_from(RoomInfo("A", "d", last_message=60_000)) == 50_000 - GRACE_MS
    assert cursor.catch_up_from(RoomInfo("NEW", "p")) == 2000  # joined while away
    again = Cursor.from_json(cursor.to_json())
    assert again == cursor and not again.first
    assert Cursor.from_json({"since": True, "rooms": {"A": "x"}, "floors": []}) == Cursor()


_keys = st.sampled_from(["_id", "rid", "msg", "ts", "u", "t", "tmid", "mentions",
                         "attachments", "file", "files", "$date", "message_link",
                         "title_link", "username", "name", "type", "size", "args", "fields"])
_leaf = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
         | st.builds(lambda ms: {"$date": ms}, st.integers())
         | st.sampled_from(["http://[", "https://x/c?msg=OURS", "/file-upload/F/a.png",
                            "2016-12-09T12:50:51.555Z", "image/png", "@pyclaw.bot", "OURS"]))
_shaped = st.recursive(_leaf, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(_keys | st.text(max_size=6), inner, max_size=8),
                       max_leaves=20)
_mutated = st.builds(lambda extra: {**_message(), **extra},
                     st.dictionaries(_keys, _shaped, max_size=3))
"""A good message with a few fields replaced by anything, so the deep paths run too."""


@settings(max_examples=200, deadline=None)
@given(_shaped | _mutated, st.sampled_from([DM, CHANNEL, None, RoomInfo("L", "l")]),
       st.sampled_from([None, True, False]))
def test_the_parsers_never_raise(raw: Any, room: RoomInfo | None,
                                 participant: bool | None) -> None:
    result = parse_message(raw, room=room, view=BOT, participant=participant)
    assert isinstance(result, Inbound | Skip)
    stream_message({"msg": "changed", "collection": "stream-room-messages", "fields": raw})
    stream_message(raw)
    parse_room(raw)
    parse_time(raw)
    stamp(raw)
    rate_limit_wait({}, raw)


# ---- attachments through a gateway ----------------------------------------------------------

@pytest.fixture
async def harness() -> AsyncIterator[RocketChatHarness]:
    made = RocketChatHarness()
    await made.start()
    try:
        yield made
    finally:
        await made.stop()


async def test_an_uploaded_picture_is_fetched_with_the_bots_login_and_seen_by_the_model(
        harness: RocketChatHarness, fake_llm: FakeOpenAI,
        make_gateway: GatewayFactory) -> None:
    await online(harness, fake_llm, make_gateway)
    chat = harness.chat(0)
    user = harness._by_rid[chat]
    await harness.fake.upload(user, chat, "what is this?", PNG, "cat.png", "image/png")
    assert await reply_to(harness, chat, 0) == "Echo: what is this?"
    assert fake_llm.images == [("image/png", PNG)]
    assert [who for _, who in harness.fake.downloads] == [harness.fake.bot["_id"]]


async def test_an_upload_the_server_lost_and_a_foreign_link_are_reported(
        harness: RocketChatHarness, fake_llm: FakeOpenAI,
        make_gateway: GatewayFactory) -> None:
    await online(harness, fake_llm, make_gateway)
    chat = harness.chat(1)
    user = harness._by_rid[chat]
    await harness.fake.upload(user, chat, "and this?", PNG, "old.png", "image/png",
                              keep=False)
    assert await reply_to(harness, chat, 0) == (
        "Echo: and this?\n\n(I could not read what you sent: old.png: the file is no longer "
        "there on 127.0.0.1 (HTTP 404).)")
    await harness.fake.post(user, chat, "and that?", attachments=[
        {"title": "elsewhere.png", "image_url": "http://198.51.100.7/elsewhere.png",
         "image_type": "image/png"}])
    reply = await reply_to(harness, chat, 1)
    assert reply.startswith("Echo: and that?") and "a link to another site" in reply
    assert fake_llm.images == []
    assert len(harness.fake.downloads) == 1
