"""The Matrix connector against a real Synapse, without a gateway, plus its pure parser.

What every channel must do is the contract suite's (tests/contract); here is what is
Matrix's own: a wrong password or token as one clear line, an access-token login and
Test connection, invites accepted or declined by ``invite_policy``, rooms with more than
two members reported as groups with ``m.mentions``, Synapse's own 429 with its
``retry_after_ms``, a send to a room the bot is not in, encrypted rooms answered with one
notice, typing seen by the user, and the parser (mentions, replies, fallbacks, edits,
attachments) including a hypothesis test that it never raises.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from nio import AsyncClient, SyncResponse
from pydantic import SecretStr

from connectors.matrix._parse import (
    RoomView,
    Skip,
    accepts_invite,
    inviter,
    parse_event,
    strip_reply_fallback,
)
from connectors.matrix.manifest import MatrixConfig
from connectors.matrix.runtime import E2E_NOTICE, SINCE_KEY, TIMELINE_LIMIT, MatrixConnector
from pyclaw_app.errors import FatalConnectorError, RetryableError
from pyclaw_app.model import Address, ChannelState, Inbound
from tests.conftest import GatewayFactory
from tests.contract.harness_matrix import MatrixHarness
from tests.fakes.openai_api import FakeOpenAI, FakeToolCall
from tests.servers.synapse import Synapse, shared_synapse
from tests.support import RecordingContext, eventually
from tests.test_attachments import PNG
from tests.test_attachments_channels import online, reply_to
from tests.test_outbound_files import calls

Running = tuple[MatrixConnector, RecordingContext]
BOT = "@bot:localhost"
DM = RoomView("!dm:localhost", members=2, bot_id=BOT, bot_name="Pyclaw Bot")
GROUP = RoomView("!g:localhost", members=3, bot_id=BOT, bot_name="Pyclaw Bot")


@pytest.fixture
async def synapse() -> Synapse:
    return await shared_synapse()


@pytest.fixture
def tag(synapse: Synapse) -> str:
    tag = uuid.uuid4().hex[:8]
    for name in ("bot", "alice", "bob"):
        synapse.register(f"{name}{tag}", displayname=name.capitalize())
    return tag


@pytest.fixture
async def start(synapse: Synapse, tag: str) -> AsyncIterator[Callable[..., Any]]:
    made: list[MatrixConnector] = []

    async def factory(**overrides: Any) -> Running:
        settings: dict[str, Any] = {
            "homeserver": synapse.url, "user_id": synapse.user_id(f"bot{tag}"),
            "password": SecretStr(synapse.password(f"bot{tag}")), "sync_timeout": 5,
            **overrides}
        connector = MatrixConnector("matrix", MatrixConfig(**settings))
        ctx = RecordingContext()
        made.append(connector)
        await connector.start(ctx)
        return connector, ctx

    yield factory
    for connector in made:
        await connector.stop()


def logged(ctx: RecordingContext, words: str) -> bool:
    return any(words in line[1] for line in ctx.logs)


def texts(ctx: RecordingContext) -> list[str]:
    return [inbound.text for inbound in ctx.inbound]


def messages(synapse: Synapse, reader: str, room: str) -> list[dict[str, Any]]:
    """The room's newest events as ``reader`` sees them, oldest first."""
    answer = synapse.call("GET", f"/_matrix/client/v3/rooms/{quote(room)}/messages?dir=b"
                          "&limit=50", synapse.token(reader))
    return list(reversed(answer["chunk"]))


# ---- logging in ------------------------------------------------------------------------------


async def test_a_wrong_password_stops_with_one_clear_line(start: Callable[..., Any]) -> None:
    with pytest.raises(FatalConnectorError, match="refused the login"):
        await start(password=SecretStr("wrong"))


async def test_a_revoked_token_stops_with_one_clear_line(start: Callable[..., Any]) -> None:
    with pytest.raises(FatalConnectorError, match="rejected the access token"):
        await start(password=None, access_token=SecretStr("syt_not_a_real_token"))


async def test_an_access_token_logs_in_and_probe_says_who(synapse: Synapse, tag: str,
                                                          start: Callable[..., Any]) -> None:
    token = SecretStr(synapse.token(f"bot{tag}"))
    connector, ctx = await start(password=None, access_token=token)
    assert ctx.states[-1][0] == ChannelState.ONLINE
    assert (await connector.probe()).ok
    assert await ctx.state.get(SINCE_KEY)
    bad = MatrixConnector("m", MatrixConfig(homeserver=synapse.url, user_id="@x:localhost",
                                            access_token=SecretStr("nope")))
    result = await bad.probe()
    assert not result.ok and "access token" in result.message


# ---- rooms, invites, groups ----------------------------------------------------------------


async def test_invites_from_allowed_senders_are_accepted_and_others_declined(
        synapse: Synapse, tag: str, start: Callable[..., Any]) -> None:
    bot, alice = synapse.user_id(f"bot{tag}"), synapse.user_id(f"alice{tag}")
    _connector, ctx = await start(dm_policy="allowlist", allow_from=[alice])
    welcome = synapse.create_room(f"alice{tag}", invite=[bot], direct=True)
    stranger = synapse.create_room(f"bob{tag}", invite=[bot], direct=True)
    await eventually(lambda: logged(ctx, "accepted the invite") and logged(ctx, "declined"))

    def membership(room: str, owner: str) -> str:
        state = synapse.call("GET", f"/_matrix/client/v3/rooms/{quote(room)}/state/"
                             f"m.room.member/{quote(bot)}", synapse.token(owner))
        return str(state["membership"])

    assert membership(welcome, f"alice{tag}") == "join"
    assert membership(stranger, f"bob{tag}") == "leave"
    assert logged(ctx, f"from {synapse.user_id(f'bob{tag}')}")
    synapse.send(f"alice{tag}", welcome, {"msgtype": "m.text", "body": "hello after invite"})
    await eventually(lambda: "hello after invite" in texts(ctx))
    assert not ctx.inbound[-1].is_group


async def test_group_rooms_report_mentions_and_replies_to_the_bot(
        synapse: Synapse, tag: str, start: Callable[..., Any]) -> None:
    bot = synapse.user_id(f"bot{tag}")
    room = synapse.create_room(f"alice{tag}", invite=[bot, synapse.user_id(f"bob{tag}")])
    synapse.join(f"bot{tag}", room)
    synapse.join(f"bob{tag}", room)
    connector, ctx = await start()
    synapse.send(f"alice{tag}", room, {"msgtype": "m.text", "body": "people talking",
                                       "m.mentions": {}})
    synapse.send(f"alice{tag}", room, {"msgtype": "m.text", "body": "Bot: hi",
                                       "m.mentions": {"user_ids": [bot]}})
    await eventually(lambda: len(ctx.inbound) == 2)
    quiet, mention = ctx.inbound
    assert quiet.is_group and not quiet.mentioned
    assert mention.is_group and mention.mentioned
    sent = await connector.send_part(mention.address, "an answer", mention.platform_id)
    synapse.send(f"bob{tag}", room, {"msgtype": "m.text", "body": "thanks",
                                     "m.relates_to": {"m.in_reply_to": {"event_id": sent}}})
    await eventually(lambda: len(ctx.inbound) == 3)
    assert ctx.inbound[2].reply_to_bot and not ctx.inbound[2].mentioned
    own = [e for e in messages(synapse, f"alice{tag}", room) if e["event_id"] == sent]
    assert own[0]["content"]["m.relates_to"] == {"m.in_reply_to":
                                                 {"event_id": mention.platform_id}}


async def test_a_restart_answers_what_came_while_down_and_nothing_twice(
        synapse: Synapse, tag: str, start: Callable[..., Any]) -> None:
    bot = synapse.user_id(f"bot{tag}")
    room = synapse.create_room(f"alice{tag}", invite=[bot], direct=True)
    synapse.join(f"bot{tag}", room)
    synapse.send(f"alice{tag}", room, {"msgtype": "m.text", "body": "history"})
    first, ctx = await start()
    synapse.send(f"alice{tag}", room, {"msgtype": "m.text", "body": "one"})
    await eventually(lambda: texts(ctx) == ["one"])
    await eventually(lambda: SINCE_KEY in ctx.state.values)
    await first.stop()
    synapse.send(f"alice{tag}", room, {"msgtype": "m.text", "body": "while down"})
    second = MatrixConnector("matrix", first.config)
    await second.start(ctx)
    try:
        await eventually(lambda: texts(ctx) == ["one", "while down"])
        synapse.send(f"alice{tag}", room, {"msgtype": "m.text", "body": "after"})
        await eventually(lambda: texts(ctx) == ["one", "while down", "after"])
    finally:
        await second.stop()
    assert "history" not in texts(ctx)  # the very first start answers no history


# ---- sending -------------------------------------------------------------------------------


async def test_synapse_rate_limit_becomes_retryable_with_its_delay(
        synapse: Synapse, tag: str, start: Callable[..., Any]) -> None:
    bot = synapse.user_id(f"bot{tag}")
    room = synapse.create_room(f"alice{tag}", invite=[bot], direct=True)
    synapse.join(f"bot{tag}", room)
    synapse.register(f"admin{tag}", admin=True)
    synapse.call("POST", f"/_synapse/admin/v1/users/{quote(bot)}/override_ratelimit",
                 synapse.token(f"admin{tag}"), {"messages_per_second": 1, "burst_count": 1})
    connector, _ctx = await start()
    address = Address("matrix", room, bot)
    with pytest.raises(RetryableError, match="rate limit") as raised:
        for n in range(20):
            await connector.send_part(address, f"quick {n}", None)
    assert raised.value.retry_after and raised.value.retry_after > 0


async def test_a_room_the_bot_is_not_in_is_a_clear_refusal(
        synapse: Synapse, tag: str, start: Callable[..., Any]) -> None:
    room = synapse.create_room(f"alice{tag}")
    connector, _ctx = await start()
    with pytest.raises(FatalConnectorError, match="not in that room"):
        await connector.send_part(Address("matrix", room), "hello?", None)


async def test_edits_and_typing_reach_the_user(synapse: Synapse, tag: str,
                                                start: Callable[..., Any]) -> None:
    bot = synapse.user_id(f"bot{tag}")
    room = synapse.create_room(f"alice{tag}", invite=[bot], direct=True)
    synapse.join(f"bot{tag}", room)
    connector, _ctx = await start()
    alice = AsyncClient(synapse.url, synapse.user_id(f"alice{tag}"))
    alice.access_token, alice.user_id = synapse.token(f"alice{tag}"), synapse.user_id(
        f"alice{tag}")
    try:
        first = await alice.sync(timeout=0)
        assert isinstance(first, SyncResponse)
        address = Address("matrix", room, bot)
        await connector.typing(address)
        typing = await alice.sync(timeout=5000, since=first.next_batch)
        assert isinstance(typing, SyncResponse)
        assert any(bot in getattr(e, "users", []) for e in typing.rooms.join[room].ephemeral)
    finally:
        await alice.close()
    sent = await connector.send_part(address, "draft", None)
    await connector.edit(address, sent, "final text")
    events = messages(synapse, f"alice{tag}", room)
    edit = [e for e in events if e["content"].get("m.relates_to", {}).get("rel_type")
            == "m.replace"]
    assert edit and edit[0]["content"]["m.new_content"]["body"] == "final text"
    assert edit[0]["content"]["m.relates_to"]["event_id"] == sent


async def test_an_encrypted_room_gets_one_notice_and_no_answer(
        synapse: Synapse, tag: str, start: Callable[..., Any]) -> None:
    bot = synapse.user_id(f"bot{tag}")
    room = synapse.create_room(f"alice{tag}", invite=[bot], direct=True, encrypted=True)
    synapse.join(f"bot{tag}", room)
    _connector, ctx = await start()
    sealed = {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgAEn...",
              "sender_key": "k", "device_id": "DEV", "session_id": "s"}
    for _ in range(2):
        synapse.send(f"alice{tag}", room, sealed, event_type="m.room.encrypted")
    synapse.send(f"alice{tag}", room, {"msgtype": "m.text", "body": "plain marker"})
    await eventually(lambda: "plain marker" in texts(ctx))
    assert logged(ctx, "not supported yet")
    assert texts(ctx) == ["plain marker"]
    notices = [e for e in messages(synapse, f"alice{tag}", room)
               if e["sender"] == bot and e["content"].get("msgtype") == "m.notice"]
    assert [n["content"]["body"] for n in notices] == [E2E_NOTICE]
    assert ctx.states[-1][0] == ChannelState.ONLINE


# ---- the parser -------------------------------------------------------------------------------


def event(content: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"type": "m.room.message", "event_id": "$e1", "sender": "@alice:localhost",
            "origin_server_ts": 1_700_000_000_000, "content": content, **fields}


def parsed(raw: object, room: RoomView = GROUP, bot_events: tuple[str, ...] = ()) -> Inbound:
    result = parse_event(raw, channel="matrix", room=room, bot_events=bot_events)
    assert isinstance(result, Inbound), result
    return result


def test_mentions_follow_m_mentions_and_fall_back_to_names() -> None:
    assert parsed(event({"msgtype": "m.text", "body": "x", "m.mentions":
                         {"user_ids": [BOT]}})).mentioned
    # m.mentions present without the bot: the name in the text does not count
    assert not parsed(event({"msgtype": "m.text", "body": "Pyclaw Bot: hi",
                             "m.mentions": {}})).mentioned
    assert parsed(event({"msgtype": "m.text", "body": "pyclaw bot: hi"})).mentioned
    assert parsed(event({"msgtype": "m.text", "body": f"{BOT} hi"})).mentioned
    assert not parsed(event({"msgtype": "m.text", "body": "hi all"})).mentioned
    assert not parsed(event({"msgtype": "m.text", "body": "hi"}), room=DM).is_group


def spec_mention(body: str, formatted: str) -> dict[str, Any]:
    """The spec's user-mention example (client-server API, "User and room mentions":
    ``"body": "Hello Alice!"``, a matrix.to pill in ``formatted_body`` and ``m.mentions``),
    with the bot as the one mentioned."""
    return event({"msgtype": "m.text", "body": body, "format": "org.matrix.custom.html",
                  "formatted_body": formatted, "m.mentions": {"user_ids": [BOT]}})


def _pill(user: str, text: str) -> str:
    return f"<a href='https://matrix.to/#/{user}'>{text}</a>"


ROOM = RoomView("!g:localhost", members=3, bot_id=BOT, bot_name="Pyclaw Bot",
                names={"@alice:localhost": "Alice", "@bob:localhost": "Bob B."})


@pytest.mark.parametrize(("body", "formatted", "expected"), [
    ("Pyclaw Bot: hello!", f"{_pill(BOT, 'Pyclaw Bot')}: hello!", "hello!"),
    ("Pyclaw Bot, hello!", f"{_pill(BOT, 'Pyclaw Bot')}, hello!", "hello!"),
    ("Pyclaw hello", f"{_pill(BOT, 'Pyclaw')} hello", "hello"),  # the pill's text, shortened
    ("what time is it Pyclaw Bot?", f"what time is it {_pill(BOT, 'Pyclaw Bot')}?",
     "what time is it?"),
    ("Hello Pyclaw Bot!", f"Hello {_pill(BOT, 'Pyclaw Bot')}!", "Hello!"),
    ("ask Pyclaw Bot about it", f"ask {_pill(BOT, 'Pyclaw Bot')} about it",
     "ask Pyclaw Bot about it"),
    ("Pyclaw Bot", _pill(BOT, "Pyclaw Bot"), "@Pyclaw Bot"),
    ("Pyclaw Bot: ask Alice", f"{_pill(BOT, 'Pyclaw Bot')}: ask "
     f"{_pill('@alice:localhost', 'Alice')}", "ask Alice"),
    ("@bot:localhost hi @bob:localhost", "", "hi @Bob B."),  # user IDs typed by hand
    ("ask @bot:localhost and @carol:localhost", "", "ask @Pyclaw Bot and @carol:localhost"),
])
def test_the_bots_mention_is_cut_where_it_addresses_the_bot(
        body: str, formatted: str, expected: str) -> None:
    inbound = parsed(spec_mention(body, formatted), room=ROOM)
    assert inbound.mentioned and inbound.text == expected


def test_without_its_room_name_the_bot_is_known_by_its_pill_and_its_user_id() -> None:
    unnamed = RoomView("!g:localhost", members=3, bot_id=BOT)
    assert parsed(spec_mention("Pyclaw: hi", f"{_pill(BOT, 'Pyclaw')}: hi"),
                  room=unnamed).text == "hi"
    assert parsed(spec_mention("Pyclaw", _pill(BOT, "Pyclaw")), room=unnamed).text == "@Pyclaw"
    assert parsed(spec_mention(BOT, ""), room=unnamed).text == "@bot"
    quoted = spec_mention(  # the reply quote's pill names the bot as the quoted sender
        "> <@bot:localhost> Lunch?\n\nLunch is at noon",
        f"<mx-reply><blockquote>In reply to {_pill(BOT, 'Lunch')}<br>Lunch?</blockquote>"
        "</mx-reply>Lunch is at noon")
    assert parsed(quoted, room=unnamed).text == "Lunch is at noon"


def test_replies_drop_their_fallback_and_know_the_bot() -> None:
    body = "> <@bot:localhost> the earlier answer\n> second line\n\nthanks!"
    inbound = parsed(event({"msgtype": "m.text", "body": body,
                            "m.relates_to": {"m.in_reply_to": {"event_id": "$old"}}}))
    assert inbound.text == "thanks!" and inbound.reply_to_bot
    by_id = parsed(event({"msgtype": "m.text", "body": "yes",
                          "m.relates_to": {"m.in_reply_to": {"event_id": "$mine"}}}),
                   bot_events=("$mine",))
    assert by_id.reply_to_bot
    other = parsed(event({"msgtype": "m.text", "body": "> <@bob:x> hm\n\nno",
                          "m.relates_to": {"m.in_reply_to": {"event_id": "$b"}}}))
    assert not other.reply_to_bot and other.text == "no"
    assert strip_reply_fallback("> quoted only") == ""
    assert strip_reply_fallback(">no space\nrest") == "rest"


def test_threads_edits_notices_own_and_encrypted_events() -> None:
    threaded = parsed(event({"msgtype": "m.text", "body": "in thread", "m.relates_to": {
        "rel_type": "m.thread", "event_id": "$root", "is_falling_back": True,
        "m.in_reply_to": {"event_id": "$mine"}}}), bot_events=("$mine",))
    assert threaded.address.thread == "$root" and not threaded.reply_to_bot
    edit = parse_event(event({"msgtype": "m.text", "body": "* fixed", "m.relates_to": {
        "rel_type": "m.replace", "event_id": "$e0"}}), channel="m", room=DM, bot_events=())
    assert isinstance(edit, Skip) and "edit" in edit.reason
    notice = parse_event(event({"msgtype": "m.notice", "body": "bot chatter"}),
                         channel="m", room=DM, bot_events=())
    assert isinstance(notice, Skip)
    own = parse_event(event({"msgtype": "m.text", "body": "me"}, sender=BOT), channel="m",
                      room=DM, bot_events=())
    assert isinstance(own, Skip) and own.level == "debug"
    sealed = parse_event(event({"ciphertext": "x"}, type="m.room.encrypted"), channel="m",
                         room=DM, bot_events=())
    assert isinstance(sealed, Skip) and sealed.encrypted and "not supported" in sealed.reason


def test_attachments_are_metadata_with_mxc_urls() -> None:
    image = parsed(event({"msgtype": "m.image", "body": "cat.png", "url": "mxc://hs/cat",
                          "info": {"mimetype": "image/png", "size": 10}}))
    assert image.text == "" and image.attachments[0].kind == "image"
    assert image.attachments[0].url == "mxc://hs/cat" and image.attachments[0].size == 10
    captioned = parsed(event({"msgtype": "m.file", "body": "the report", "filename": "r.pdf",
                              "url": "mxc://hs/r"}))
    assert captioned.text == "the report" and captioned.attachments[0].name == "r.pdf"
    for msgtype, kind in (("m.audio", "audio"), ("m.video", "video")):
        media = parsed(event({"msgtype": msgtype, "body": "f", "file": {"url": "mxc://hs/e"}}))
        assert media.attachments[0].kind == kind and media.attachments[0].url == "mxc://hs/e"
    sticker = parsed(event({"body": "wave", "url": "mxc://hs/w"}, type="m.sticker"))
    assert sticker.attachments[0].kind == "sticker"
    broken = parse_event(event({"msgtype": "m.image", "body": "x.png"}), channel="m",
                         room=DM, bot_events=())
    assert isinstance(broken, Skip) and broken.level == "warning"


def test_invite_policy() -> None:
    state = [{"type": "m.room.member", "state_key": BOT, "sender": "@alice:hs",
              "content": {"membership": "invite"}}, {"type": "m.room.name"}, "junk"]
    assert inviter(state, BOT) == "@alice:hs" and inviter([], BOT) == ""
    allowed = {"allow_from": ["@alice:hs"], "dm_policy": "allowlist"}
    assert accepts_invite("allowed", "@alice:hs", **allowed)
    assert not accepts_invite("allowed", "@mallory:hs", **allowed)
    assert accepts_invite("allowed", "@mallory:hs", allow_from=[], dm_policy="open")
    assert accepts_invite("any", "", **allowed)
    assert not accepts_invite("never", "@alice:hs", **allowed)
    assert not accepts_invite("allowed", "", allow_from=[], dm_policy="open")


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["type", "event_id", "sender", "content", "msgtype",
                                       "body", "m.relates_to", "m.in_reply_to", "m.mentions",
                                       "user_ids", "url", "info", "file", "filename",
                                       "rel_type", "origin_server_ts", "size"]), children,
                      max_size=6),
    max_leaves=20)


@given(_json)
def test_the_parser_never_raises(raw: object) -> None:
    result = parse_event(raw, channel="m", room=GROUP, bot_events={"$x"})
    assert isinstance(result, Inbound | Skip)


@given(st.fixed_dictionaries({"type": st.just("m.room.message"), "event_id": st.text(min_size=1),
                              "sender": st.text(min_size=1), "content": _json}))
def test_the_parser_never_raises_on_message_shaped_events(raw: dict[str, Any]) -> None:
    result = parse_event(raw, channel="m", room=DM, bot_events=())
    assert isinstance(result, Inbound | Skip)


def test_the_config_needs_a_token_or_a_password() -> None:
    assert MatrixConfig(user_id="@b:hs").missing_secrets() == ["access_token"]
    assert MatrixConfig(user_id="@b:hs", password=SecretStr("p")).missing_secrets() == []
    assert MatrixConfig(homeserver="https://hs.example/").homeserver == "https://hs.example"


async def test_sync_timeouts_stay_quiet(synapse: Synapse, tag: str,
                                        start: Callable[..., Any]) -> None:
    """A long poll that ends without events is traffic, not an outage."""
    _connector, ctx = await start(sync_timeout=1)
    before = ctx.heartbeats
    await eventually(lambda: ctx.heartbeats >= before + 2, timeout=10)
    assert ctx.states[-1][0] == ChannelState.ONLINE and not ctx.crashes


async def test_a_password_probe_leaves_no_session_behind(synapse: Synapse, tag: str) -> None:
    bot = synapse.user_id(f"bot{tag}")
    config = MatrixConfig(homeserver=synapse.url, user_id=bot,
                          password=SecretStr(synapse.password(f"bot{tag}")))

    def devices() -> int:
        return len(synapse.call("GET", "/_matrix/client/v3/devices",
                                synapse.token(f"bot{tag}"))["devices"])

    before = devices()
    result = await MatrixConnector("m", config).probe()
    assert result.ok and bot in result.message
    assert devices() == before


async def test_a_logged_out_session_logs_in_again(synapse: Synapse, tag: str,
                                                  start: Callable[..., Any]) -> None:
    connector, ctx = await start(invite_policy="any")
    token = await connector.probe()  # the probe's own session is gone again
    assert token.ok
    devices = synapse.call("GET", "/_matrix/client/v3/devices", synapse.token(f"bot{tag}"))
    device = str(await ctx.state.get("device_id"))
    assert device in {d["device_id"] for d in devices["devices"]}
    synapse.register(f"admin{tag}", admin=True)
    synapse.call("DELETE", f"/_synapse/admin/v2/users/{quote(synapse.user_id(f'bot{tag}'))}"
                 f"/devices/{device}", synapse.token(f"admin{tag}"))
    await eventually(lambda: any(state == ChannelState.DEGRADED for state, _ in ctx.states))
    await eventually(lambda: ctx.states[-1][0] == ChannelState.ONLINE)
    room = synapse.create_room(f"alice{tag}", invite=[synapse.user_id(f"bot{tag}")],
                               direct=True)
    synapse.join(f"bot{tag}", room)
    synapse.send(f"alice{tag}", room, {"msgtype": "m.text", "body": "still there?"})
    await eventually(lambda: "still there?" in texts(ctx))


async def test_a_gap_longer_than_one_sync_is_fetched_back(
        synapse: Synapse, tag: str, start: Callable[..., Any]) -> None:
    bot = synapse.user_id(f"bot{tag}")
    room = synapse.create_room(f"alice{tag}", invite=[bot], direct=True)
    synapse.join(f"bot{tag}", room)
    first, ctx = await start()
    await first.stop()
    count = TIMELINE_LIMIT + 30
    for n in range(count):
        synapse.send(f"alice{tag}", room, {"msgtype": "m.text", "body": f"queued {n}"})
    second = MatrixConnector("matrix", first.config)
    await second.start(ctx)
    try:
        await eventually(lambda: len(ctx.inbound) >= count)
    finally:
        await second.stop()
    assert texts(ctx) == [f"queued {n}" for n in range(count)]


# ---- attachments through a gateway ----------------------------------------------------------

@pytest.fixture
async def harness() -> AsyncIterator[MatrixHarness]:
    made = MatrixHarness()
    await made.start()
    try:
        yield made
    finally:
        await made.stop()


async def upload(harness: MatrixHarness, data: bytes, name: str, mime: str) -> str:
    """Alice uploads a file to Synapse (``POST /_matrix/media/v3/upload``); its mxc:// URI."""
    async with aiohttp.ClientSession() as session, session.post(
            f"{harness.synapse.url}/_matrix/media/v3/upload", params={"filename": name},
            data=data, headers={"Content-Type": mime, "Authorization":
                                f"Bearer {harness.synapse.token(harness.alice)}"}) as answer:
        assert answer.status == 200, await answer.text()
        return str((await answer.json())["content_uri"])


async def test_a_picture_is_downloaded_from_the_homeserver_and_seen_by_the_model(
        harness: MatrixHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    await online(harness, fake_llm, make_gateway)
    chat = harness.chat(0)
    uri = await upload(harness, PNG, "cat.png", "image/png")
    await harness._send(chat, {"msgtype": "m.image", "body": "what is this?",
                               "filename": "cat.png", "url": uri,
                               "info": {"mimetype": "image/png", "size": len(PNG)}})
    assert await reply_to(harness, chat, 0) == "Echo: what is this?"
    assert fake_llm.images == [("image/png", PNG)]


async def test_media_the_homeserver_does_not_have_is_reported(
        harness: MatrixHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    await online(harness, fake_llm, make_gateway)
    chat = harness.chat(1)
    await harness._send(chat, {"msgtype": "m.image", "body": "and this?",
                               "filename": "gone.png", "url": "mxc://localhost/NoSuchMedia",
                               "info": {"mimetype": "image/png"}})
    assert await reply_to(harness, chat, 0) == (
        "Echo: and this?\n\n(I could not read what you sent: gone.png: the file is no longer "
        "there on 127.0.0.1 (HTTP 404).)")
    assert fake_llm.images == []


async def test_a_file_the_assistant_sends_is_uploaded_and_posted_as_an_image_event(
        harness: MatrixHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    """``send_file`` on Matrix: the bytes go to Synapse's media repository, then one
    ``m.image`` event names the ``mxc://`` URI, quoting the message it answers; alice
    downloads exactly the picture she sent."""
    def send_back(results: list[str]) -> FakeToolCall:
        [listed] = json.loads(results[0])
        return FakeToolCall("send_file", {"file_id": listed["id"], "caption": "the map"})

    gateway = await online(harness, fake_llm, make_gateway)
    chat = harness.chat(2)
    uri = await upload(harness, PNG, "map.png", "image/png")
    await harness._send(chat, {"msgtype": "m.image", "body": "look", "filename": "map.png",
                               "url": uri, "info": {"mimetype": "image/png",
                                                    "size": len(PNG)}})
    assert await reply_to(harness, chat, 0) == "Echo: look"
    await gateway.lanes.join()

    fake_llm.responder = calls(lambda results: FakeToolCall("list_files"), send_back)
    asked = await harness.inject_message(chat, "send the map back")
    await eventually(lambda: len(harness.sent(chat)) == 3, timeout=30)
    await gateway.lanes.join()

    assert harness.proxy is not None
    [(_, content, event_id, _)] = [a for a in harness.proxy.accepted
                                   if a[0] == chat and a[1].get("msgtype") == "m.image"]
    assert {k: content[k] for k in ("body", "filename", "info")} == {
        "body": "the map", "filename": "map.png",
        "info": {"mimetype": "image/png", "size": len(PNG)}}
    assert content["m.relates_to"] == {"m.in_reply_to": {"event_id": asked}}
    server, media = str(content["url"]).removeprefix("mxc://").split("/")
    async with aiohttp.ClientSession() as session, session.get(
            f"{harness.synapse.url}/_matrix/client/v1/media/download/{server}/{media}",
            headers={"Authorization": f"Bearer {harness.synapse.token(harness.alice)}"}
    ) as answer:
        assert answer.status == 200
        assert await answer.read() == PNG
    assert harness.sent(chat)[-1].text == (f"Done: sent map.png ({len(PNG)} bytes) to this "
                                           "conversation")
    parts = await gateway.store.db.fetchall(
        "SELECT text, platform_id, status FROM reply_parts ORDER BY out_id, idx")
    assert [tuple(p) for p in parts][-2] == ("[picture: map.png]", event_id, "sent")
