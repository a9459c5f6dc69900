"""The Mattermost connector against the fake server (tests/fakes/mattermost_api.py), without a
gateway, plus its pure parsers.

What every channel must do is the contract suite's (tests/contract); here is what is
Mattermost's own: a refused token as one clear line and Test connection, the group rule
in public, private and group-DM channels (``@username`` mentions, replies in the bot's
threads, known after a restart by asking the server), the bot's own and other bots'
posts ignored, the catch-up after a dropped WebSocket and after a restart (including a
post in the very millisecond of the cursor), the real 16383-character limit, the
server's 429 forms, a channel the bot is not in, edits and typing as the server records
them, a link that stops answering pings, and parsers that never raise.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

from connectors.mattermost._api import _classify, describe
from connectors.mattermost._cursor import Cursor
from connectors.mattermost._parse import (
    Bot,
    Skip,
    is_mentioned,
    parse_frame,
    parse_post,
    post_of,
    strip_mention,
)
from connectors.mattermost._socket import Socket
from connectors.mattermost.manifest import MAX_TEXT, MattermostConfig
from connectors.mattermost.runtime import CURSOR_KEY, MattermostConnector
from pyclaw_app.channels import HttpAnswer
from pyclaw_app.errors import DeliveryUncertain, FatalConnectorError, RetryableError
from pyclaw_app.model import Address, ChannelState, Inbound
from tests.conftest import GatewayFactory
from tests.contract.harness_mattermost import MattermostHarness
from tests.fakes.mattermost_api import MAX_RUNES, MattermostFake
from tests.fakes.openai_api import FakeOpenAI, FakeToolCall
from tests.support import RecordingContext, eventually
from tests.test_attachments import PNG
from tests.test_attachments_channels import online as gateway_online
from tests.test_attachments_channels import reply_to
from tests.test_outbound_files import calls

BOT = "pyclawbot"
Running = tuple[MattermostConnector, RecordingContext]


class World:
    """The fake server with a bot, alice and bob, a DM of alice's and a public channel."""

    def __init__(self, fake: MattermostFake) -> None:
        self.fake = fake
        self.bot, self.token = fake.add_user(BOT, bot=True)
        self.alice, self.alice_token = fake.add_user("alice")
        self.bob, _ = fake.add_user("bob")
        self.dm = fake.direct_channel(self.bot, self.alice)
        self.town = fake.open_channel("town-square", {self.bot, self.alice, self.bob})

    def address(self, chat: str, thread: str | None = None) -> Address:
        return Address(channel="mattermost", chat=chat, account=self.bot, thread=thread)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    fake = MattermostFake()
    await fake.start()
    try:
        yield World(fake)
    finally:
        await fake.stop()


@pytest.fixture
async def start(world: World) -> AsyncIterator[Callable[..., Any]]:
    made: list[MattermostConnector] = []

    async def factory(after: RecordingContext | None = None, **overrides: Any) -> Running:
        """A connector on a fresh context; ``after``: restarted on that context's state and
        journal (what it already has is a duplicate, not a new message)."""
        settings: dict[str, Any] = {"url": world.fake.url, "token": SecretStr(world.token),
                                    **overrides}
        connector = MattermostConnector("mattermost", MattermostConfig(**settings))
        ctx = RecordingContext(channel="mattermost")
        if after is not None:
            ctx.state, ctx._seen = after.state, after._seen
        made.append(connector)
        await connector.start(ctx)
        return connector, ctx

    yield factory
    for connector in made:
        await connector.stop()


async def online(world: World, start: Callable[..., Any], **overrides: Any) -> Running:
    """A started connector whose socket is logged in and whose first catch-up is done."""
    connector, ctx = await start(**overrides)
    await eventually(lambda: world.fake.live_sockets(world.bot) >= 1)
    await eventually(lambda: ctx.state.get(CURSOR_KEY))
    return connector, ctx


def texts(ctx: RecordingContext) -> list[str]:
    return [m.text for m in ctx.inbound]


def logged(ctx: RecordingContext, words: str) -> bool:
    return any(words in line[1] for line in ctx.logs)


# ---- logging in ------------------------------------------------------------------------------


async def test_a_refused_token_stops_with_one_clear_line(start: Callable[..., Any]) -> None:
    with pytest.raises(FatalConnectorError, match=r"refused our credentials.*check the token"):
        await start(token=SecretStr("not-a-token"))


async def test_probe_says_who_or_why_not(world: World, start: Callable[..., Any]) -> None:
    connector, ctx = await online(world, start)
    assert ctx.states[-1][0] == ChannelState.ONLINE
    assert (await connector.probe()).message == f"connected as @{BOT}"
    bad = MattermostConnector("m", MattermostConfig(url=world.fake.url,
                                                    token=SecretStr("nope")))
    result = await bad.probe()
    assert not result.ok and "check the token" in result.message
    assert "nope" not in result.message
    unset = await MattermostConnector("m", MattermostConfig(url=world.fake.url)).probe()
    assert not unset.ok and "token is not set" in unset.message


async def test_the_socket_login_is_refused_for_an_unknown_token(world: World) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(RetryableError, match="closed the WebSocket at login"):
            await Socket.open(session, f"ws://127.0.0.1:{world.fake.port}/api/v4/websocket",
                              "unknown", ping_interval=5, ping_timeout=5)
        socket = await Socket.open(session, f"ws://127.0.0.1:{world.fake.port}"
                                   "/api/v4/websocket", world.token, ping_interval=5,
                                   ping_timeout=5)
        assert socket.connection_id and socket.server_version.startswith("10.")
        await socket.close()


def test_the_config_needs_a_url_and_a_token() -> None:
    assert MattermostConfig(url="https://chat.example.com/api/v4/").url == \
        "https://chat.example.com"
    assert MattermostConfig(url="https://c.example").missing_secrets() == ["token"]
    with pytest.raises(ValidationError, match="https://"):
        MattermostConfig(url="chat.example.com")
    with pytest.raises(ValidationError):
        MattermostConfig(url="https://c.example", max_text=MAX_TEXT + 1)


# ---- receiving -------------------------------------------------------------------------------


async def test_dms_are_flat_and_channels_answered_in_their_threads(
        world: World, start: Callable[..., Any]) -> None:
    fake = world.fake
    _, ctx = await online(world, start)
    dm = await fake.user_post(world.alice, world.dm, "hello")
    in_thread = await fake.user_post(world.alice, world.dm, "more", root_id=dm["id"])
    mention = await fake.user_post(world.alice, world.town, f"@{BOT}: what's up?")
    await fake.user_post(world.bob, world.town, "people talking")
    await eventually(lambda: len(ctx.inbound) == 4)
    first, second, third, fourth = ctx.inbound
    assert first.address == world.address(world.dm) and not first.is_group
    assert first.sender_name == "alice" and first.sender_id == world.alice
    assert first.ts == dm["create_at"] / 1000
    assert second.address.thread == dm["id"]
    assert third.address == world.address(world.town, mention["id"])
    assert third.is_group and third.mentioned and third.text == "what's up?"
    assert fourth.is_group and not fourth.mentioned and not fourth.reply_to_bot
    assert in_thread["id"] == second.platform_id


async def test_private_channels_and_group_dms_are_groups(world: World,
                                                         start: Callable[..., Any]) -> None:
    fake = world.fake
    private = fake.open_channel("secret", {world.bot, world.alice}, private=True)
    group_dm = fake._channel("G", "gdm", "alice, bob", "", {world.bot, world.alice, world.bob})
    _, ctx = await online(world, start)
    await fake.user_post(world.alice, private, f"hi @{BOT}")
    await fake.user_post(world.alice, group_dm, "hi all")
    await eventually(lambda: len(ctx.inbound) == 2)
    assert [(m.is_group, m.mentioned) for m in ctx.inbound] == [(True, True), (True, False)]


async def test_replies_in_the_bots_threads_are_replies_to_the_bot_even_after_a_restart(
        world: World, start: Callable[..., Any]) -> None:
    fake = world.fake
    connector, ctx = await online(world, start)
    question = await fake.user_post(world.alice, world.town, f"@{BOT} question")
    await eventually(lambda: ctx.inbound)
    await connector.send_part(ctx.inbound[0].address, "answer", question["id"])
    bot_root = await connector.send_part(world.address(world.town), "an announcement", None)
    others = await fake.user_post(world.bob, world.town, "bob's topic")
    await fake.user_post(world.alice, world.town, "thanks", root_id=question["id"])
    await fake.user_post(world.alice, world.town, "nice", root_id=bot_root)
    await fake.user_post(world.alice, world.town, "agreed", root_id=others["id"])
    await eventually(lambda: len(ctx.inbound) == 5)
    assert [m.reply_to_bot for m in ctx.inbound[2:]] == [True, True, False]
    assert fake.calls("thread") == 1  # only bob's thread had to be asked about

    await connector.stop()
    asked = fake.calls("thread")
    _, ctx2 = await online(world, start, after=ctx)
    await fake.user_post(world.alice, world.town, "one more", root_id=question["id"])
    await eventually(lambda: ctx2.inbound)
    assert texts(ctx2) == ["one more"] and ctx2.inbound[0].reply_to_bot
    assert fake.calls("thread") > asked  # the restarted bot had to ask the server


async def test_own_posts_other_bots_system_posts_and_odd_frames_are_not_answered(
        world: World, start: Callable[..., Any]) -> None:
    fake = world.fake
    connector, ctx = await online(world, start)
    other_bot, _ = fake.add_user("otherbot", bot=True)
    fake.channels[world.town].members.add(other_bot)
    await connector.send_part(world.address(world.dm), "from the bot", None)
    await fake.user_post(other_bot, world.town, f"@{BOT} ping")
    joined = fake.store_post(world.alice, world.town, "alice joined the channel.")
    joined["type"] = "system_join_channel"
    await fake.broadcast_post(joined)
    await fake.send_raw(world.dm, "not json")
    await fake.send_raw(world.dm, json.dumps({"event": "posted", "data": {"post": "[]"}}))
    await fake.user_post(world.alice, world.dm, "marker")
    await eventually(lambda: ctx.inbound)
    assert texts(ctx) == ["marker"]
    assert logged(ctx, "not a Mattermost event") and logged(ctx, "malformed posted event")


async def test_attachments_are_metadata(world: World, start: Callable[..., Any]) -> None:
    _, ctx = await online(world, start)
    post = await world.fake.user_post(world.alice, world.dm, "look", files=(
        {"name": "cat.png", "mime_type": "image/png", "size": 10},
        {"name": "notes.pdf", "mime_type": "application/pdf", "size": 20}))
    await eventually(lambda: ctx.inbound)
    cat, notes = ctx.inbound[0].attachments
    assert (cat.kind, cat.name, cat.mime, cat.size) == ("image", "cat.png", "image/png", 10)
    assert notes.kind == "file" and notes.platform_id == post["file_ids"][1]
    assert cat.url == f"{world.fake.url}/api/v4/files/{post['file_ids'][0]}"


# ---- catching up -----------------------------------------------------------------------------


async def test_posts_made_while_the_socket_was_down_are_fetched_once(
        world: World, start: Callable[..., Any]) -> None:
    fake = world.fake
    _, ctx = await online(world, start)
    await fake.user_post(world.alice, world.dm, "before")
    await eventually(lambda: ctx.inbound)
    await fake.drop_connection()
    await fake.user_post(world.alice, world.dm, "during 1")
    await fake.user_post(world.alice, world.town, f"@{BOT} during 2")
    await eventually(lambda: len(ctx.inbound) == 3)
    await fake.user_post(world.alice, world.dm, "after")
    await eventually(lambda: len(ctx.inbound) == 4)
    assert texts(ctx) == ["before", "during 1", "during 2", "after"]
    assert logged(ctx, "lost connection") and logged(ctx, "reconnected")
    assert not ctx.crashes


async def test_a_channel_that_cannot_be_read_back_is_logged_and_the_rest_still_is(
        world: World, start: Callable[..., Any]) -> None:
    fake = world.fake
    _, ctx = await online(world, start)
    await fake.user_post(world.alice, world.dm, "before")
    await fake.user_post(world.alice, world.town, f"@{BOT} before")
    await eventually(lambda: len(ctx.inbound) == 2)
    await fake.drop_connection()
    fake.store_post(world.alice, world.dm, "lost in the refused channel")
    fake.store_post(world.alice, world.town, f"@{BOT} read back")
    fake.fail_next("get_posts", 403)  # the first channel read back refuses
    await eventually(lambda: logged(ctx, "could not read back channel"))
    await eventually(lambda: len(ctx.inbound) == 3)
    assert ctx.states[-1][0] == ChannelState.ONLINE and not ctx.crashes


async def test_a_restart_answers_what_came_while_down_and_nothing_twice(
        world: World, start: Callable[..., Any]) -> None:
    fake = world.fake
    fake.store_post(world.alice, world.dm, "history before the first start")
    connector, ctx = await online(world, start)
    assert logged(ctx, "first start")
    await fake.user_post(world.alice, world.dm, "one")
    await eventually(lambda: ctx.inbound)
    await connector.stop()
    fake.store_post(world.alice, world.dm, "while down")
    fake.store_post(world.alice, world.town, f"@{BOT} in town while down")
    _, ctx2 = await online(world, start, after=ctx)
    await eventually(lambda: len(ctx2.inbound) == 2)
    assert texts(ctx2) == ["while down", "in town while down"]
    assert ctx2.inbound[0].sender_name == ""  # not in a post fetched back; the id is
    assert ctx2.inbound[0].sender_id == world.alice


async def test_a_post_in_the_cursors_own_millisecond_is_not_lost(
        world: World, start: Callable[..., Any]) -> None:
    fake = world.fake
    connector, ctx = await online(world, start)
    first = await fake.user_post(world.alice, world.dm, "first")
    await eventually(lambda: ctx.inbound)
    await connector.stop()
    twin = fake.store_post(world.alice, world.dm, "same millisecond")
    twin["create_at"] = twin["update_at"] = first["create_at"]
    _, ctx2 = await online(world, start, after=ctx)
    await eventually(lambda: ctx2.inbound)
    assert texts(ctx2) == ["same millisecond"]  # "first" was read again: a duplicate


def test_the_cursor_moves_forward_per_channel_and_reads_back_anything() -> None:
    cursor = Cursor.load({"at": 5, "channels": {"a": 5, "b": "x"}})
    assert cursor.channels == {"a": 5} and cursor.known("new") == 5
    assert cursor.advance("b", 7) and not cursor.advance("a", 4)
    assert cursor.dump() == {"at": 7, "channels": {"a": 5, "b": 7}}
    assert Cursor.load(["junk"]).empty and Cursor.load({"at": True}).empty


# ---- sending ---------------------------------------------------------------------------------


async def test_posts_go_into_the_thread_and_the_real_limit_holds(
        world: World, start: Callable[..., Any]) -> None:
    fake = world.fake
    connector, _ = await online(world, start)
    assert connector.limits.max_text == MAX_TEXT == MAX_RUNES
    root = await connector.send_part(world.address(world.dm), "😀" * MAX_TEXT, None)
    with pytest.raises(FatalConnectorError, match="Invalid RootId"):
        await connector.send_part(world.address(world.town, root), "not its channel", None)
    with pytest.raises(FatalConnectorError, match="Invalid Message property"):
        await connector.send_part(world.address(world.dm), "y" * (MAX_TEXT + 1), None)
    threaded = await fake.user_post(world.alice, world.town, "root")
    in_thread = await connector.send_part(world.address(world.town, threaded["id"]), "r", None)
    assert fake.posts[in_thread]["root_id"] == threaded["id"]
    assert fake.sent[0].text == "😀" * MAX_TEXT


async def test_a_channel_the_bot_is_not_in_is_a_clear_refusal(
        world: World, start: Callable[..., Any]) -> None:
    connector, _ = await online(world, start)
    elsewhere = world.fake.open_channel("elsewhere", {world.alice})
    with pytest.raises(FatalConnectorError, match="not a member of that channel"):
        await connector.send_part(world.address(elsewhere), "hi", None)


async def test_rate_limits_failures_and_lost_answers(world: World,
                                                     start: Callable[..., Any]) -> None:
    fake = world.fake
    connector, _ = await online(world, start)
    fake.rate_limit_next_send(2.5)
    with pytest.raises(RetryableError) as limited:
        await connector.send_part(world.address(world.dm), "a", None)
    assert limited.value.retry_after == 3.0  # the server rounds its wait up to seconds
    fake.fail_next("create_post", 503)
    with pytest.raises(RetryableError):
        await connector.send_part(world.address(world.dm), "b", None)
    fake.lose_next_answer("create_post")
    with pytest.raises(DeliveryUncertain):
        await connector.send_part(world.address(world.dm), "c", None)
    assert [p.text for p in fake.sent] == ["c"]


def test_a_429_without_retry_after_waits_for_the_window_reset() -> None:
    answer = HttpAnswer(429, {"X-Ratelimit-Reset": "4"}, "limit exceeded\n")
    error = _classify(answer, "Mattermost POST /api/v4/posts", "limit exceeded")
    assert isinstance(error, RetryableError) and error.retry_after == 4.0
    with_header = HttpAnswer(429, {"Retry-After": "1", "X-Ratelimit-Reset": "4"}, "")
    assert _classify(with_header, "Mattermost POST /api/v4/posts", "") is None
    assert describe({"id": "x.y", "message": "No."}) == "No. (x.y)"
    assert describe("limit exceeded") is None and describe({"id": "only.id"}) == "only.id"


async def test_edits_and_typing_reach_the_server(world: World,
                                                 start: Callable[..., Any]) -> None:
    fake = world.fake
    connector, _ = await online(world, start)
    post_id = await connector.send_part(world.address(world.dm), "draft", None)
    await connector.edit(world.address(world.dm), post_id, "final text")
    assert fake.visible(world.dm, world.bot) == ["final text"]
    assert fake.patches == [(post_id, "final text")]
    await connector.typing(world.address(world.town, post_id))
    assert fake.typing_log == [(world.bot, world.town, post_id)]
    fake.fail_next("typing", 500)
    await connector.typing(world.address(world.dm))  # a failed indicator fails nothing
    with pytest.raises(FatalConnectorError):
        await connector.edit(world.address(world.dm), "nosuchpost" * 2 + "abcdef", "x")


# ---- liveness --------------------------------------------------------------------------------


async def test_a_quiet_link_is_pinged_and_stays_up(world: World,
                                                   start: Callable[..., Any]) -> None:
    _, ctx = await online(world, start, ping_interval=1.0, ping_timeout=2.0)
    beats = ctx.heartbeats
    await eventually(lambda: ctx.heartbeats >= beats + 2, timeout=5)
    assert world.fake.live_sockets(world.bot) == 1 and not logged(ctx, "lost connection")


async def test_a_link_that_stops_answering_pings_is_made_again(
        world: World, start: Callable[..., Any]) -> None:
    world.fake.answer_pings = False
    _, ctx = await online(world, start, ping_interval=1.0, ping_timeout=1.0)
    await eventually(lambda: logged(ctx, "no answer to a WebSocket ping"), timeout=8)
    world.fake.answer_pings = True
    await eventually(lambda: logged(ctx, "reconnected"), timeout=8)
    await world.fake.user_post(world.alice, world.dm, "still there?")
    await eventually(lambda: ctx.inbound)


async def test_the_token_never_reaches_a_log_line_or_an_error(
        world: World, start: Callable[..., Any]) -> None:
    connector, ctx = await online(world, start)
    await world.fake.drop_connection()
    await eventually(lambda: logged(ctx, "reconnected"))
    elsewhere = world.fake.open_channel("elsewhere", {world.alice})
    with pytest.raises(FatalConnectorError) as refused:
        await connector.send_part(world.address(elsewhere), "hi", None)
    wrong = world.token[:-1] + "x"
    with pytest.raises(FatalConnectorError) as bad_token:
        await start(token=SecretStr(wrong))
    said = json.dumps([ctx.logs, ctx.states, str(refused.value), str(bad_token.value)],
                      default=str)
    assert world.token not in said and wrong not in said


# ---- parsers ---------------------------------------------------------------------------------

ME = Bot("botid", BOT)


def _post(**fields: Any) -> dict[str, Any]:
    return {"id": "p1", "create_at": 1700000000123, "user_id": "u1", "channel_id": "c1",
            "message": "hi", "root_id": "", **fields}


def test_mentions_follow_mattermosts_username_rules() -> None:
    assert is_mentioned(f"@{BOT} hi", BOT) and is_mentioned(f"hey @{BOT.upper()}.", BOT)
    assert is_mentioned(f"(@{BOT})", BOT) and is_mentioned(f"@{BOT}: x", BOT)
    assert not is_mentioned(f"@{BOT}.x hi", BOT) and not is_mentioned(f"@{BOT}_2", BOT)
    assert not is_mentioned(f"mail@{BOT}", BOT) and not is_mentioned("@pyclaw", BOT)
    assert strip_mention(f"@{BOT}, hello", BOT) == "hello"
    assert strip_mention(f"@{BOT}", BOT) == f"@{BOT}" and strip_mention("x", "") == "x"


def test_posts_become_inbound_or_are_skipped_with_a_reason() -> None:
    inbound = parse_post(_post(root_id="r1"), channel="mm", bot=ME, channel_type="O",
                         sender_name="@alice", bot_thread=True)
    assert isinstance(inbound, Inbound) and inbound.reply_to_bot and inbound.address.thread == "r1"
    assert inbound.sender_name == "alice"
    own = parse_post(_post(user_id="botid"), channel="mm", bot=ME, channel_type="D")
    assert isinstance(own, Skip) and own.own
    for odd in (_post(type="system_join_channel"), _post(delete_at=5),
                _post(props={"from_bot": "true"}), _post(message="  ")):
        assert isinstance(parse_post(odd, channel="mm", bot=ME, channel_type="D"), Skip)
    assert parse_post(_post(root_id=5), channel="mm", bot=ME, channel_type="D") is None
    assert parse_post(_post(id=""), channel="mm", bot=ME, channel_type="D") is None
    only_ids = parse_post(_post(message="", file_ids=["f1"]), channel="mm", bot=ME,
                          channel_type="D", files_url="https://m/api/v4/files")
    assert isinstance(only_ids, Inbound)
    assert [(a.kind, a.url) for a in only_ids.attachments] == [("file",
                                                                "https://m/api/v4/files/f1")]


def test_frames_and_posted_events() -> None:
    hello = parse_frame('{"event":"hello","data":{"server_version":"10"},"seq":0}')
    assert hello is not None and hello.event == "hello" and hello.seq == 0
    reply = parse_frame('{"status":"FAIL","seq_reply":1,"error":{"id":"a.b","message":"No"}}')
    assert reply is not None and (reply.seq_reply, reply.status, reply.error) == (1, "FAIL", "No")
    assert parse_frame("[1]") is None and parse_frame('{"seq": 3}') is None
    assert post_of({"post": json.dumps(_post())}) == _post()
    assert post_of({"post": "{broken"}) is None and post_of(None) is None


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["id", "create_at", "user_id", "channel_id", "message",
                                       "root_id", "type", "props", "from_bot", "file_ids",
                                       "metadata", "files", "mime_type", "size", "name",
                                       "delete_at", "event", "data", "post", "seq",
                                       "seq_reply", "error", "status"]), children,
                      max_size=8),
    max_leaves=20)


@given(_json, st.sampled_from(["D", "O", "P", "G", "", "x"]), st.booleans())
def test_the_post_parser_never_raises(raw: object, channel_type: str, thread: bool) -> None:
    post = raw if isinstance(raw, dict) else {"post": raw}
    result = parse_post(post, channel="mm", bot=ME, channel_type=channel_type,
                        bot_thread=thread, files_url="u")
    assert result is None or isinstance(result, Inbound | Skip)
    post_of(post)


@given(st.fixed_dictionaries({"id": st.text(min_size=1), "create_at": st.integers(),
                              "user_id": st.text(min_size=1), "channel_id": st.text(min_size=1),
                              "message": st.text()}, optional={"root_id": _json, "type": _json,
                                                               "props": _json,
                                                               "metadata": _json,
                                                               "file_ids": _json}))
def test_the_post_parser_never_raises_on_post_shaped_dicts(raw: dict[str, Any]) -> None:
    result = parse_post(raw, channel="mm", bot=ME, channel_type="O")
    assert result is None or isinstance(result, Inbound | Skip)


@given(st.text() | st.binary() | _json.map(json.dumps))
def test_the_frame_parser_never_raises(raw: str | bytes) -> None:
    parse_frame(raw)


# ---- attachments through a gateway ----------------------------------------------------------

@pytest.fixture
async def harness() -> AsyncIterator[MattermostHarness]:
    made = MattermostHarness()
    await made.start()
    try:
        yield made
    finally:
        await made.stop()


async def test_a_picture_is_downloaded_with_the_bot_token_and_seen_by_the_model(
        harness: MattermostHarness, fake_llm: FakeOpenAI,
        make_gateway: GatewayFactory) -> None:
    await gateway_online(harness, fake_llm, make_gateway)
    chat = harness.chat(0)
    post = await harness.fake.user_post(harness._author(chat), chat, "what is this?", files=(
        {"name": "cat.png", "mime_type": "image/png", "size": len(PNG), "data": PNG},))
    assert await reply_to(harness, chat, 0) == "Echo: what is this?"
    assert fake_llm.images == [("image/png", PNG)]
    assert harness.fake.downloads == [(post["file_ids"][0], f"Bearer {harness.token}")]


async def test_a_file_the_server_no_longer_has_is_reported_to_the_sender(
        harness: MattermostHarness, fake_llm: FakeOpenAI,
        make_gateway: GatewayFactory) -> None:
    await gateway_online(harness, fake_llm, make_gateway)
    chat = harness.chat(1)
    await harness.fake.user_post(harness._author(chat), chat, "and this?", files=(
        {"name": "gone.png", "mime_type": "image/png", "size": 120},))
    assert await reply_to(harness, chat, 0) == (
        "Echo: and this?\n\n(I could not read what you sent: gone.png: the file is no longer "
        "there on 127.0.0.1 (HTTP 404).)")
    assert fake_llm.images == []


async def test_a_file_the_assistant_sends_is_uploaded_then_posted_and_a_lost_upload_is_redone(
        harness: MattermostHarness, fake_llm: FakeOpenAI,
        make_gateway: GatewayFactory) -> None:
    """``send_file``: ``POST /files`` then a post carrying its ``file_ids``. The first
    upload's answer is lost: an upload no post holds is invisible, so it is made again,
    and the picture is posted once, with the caption, to the conversation asking."""
    def send_back(results: list[str]) -> FakeToolCall:
        [listed] = json.loads(results[0])
        return FakeToolCall("send_file", {"file_id": listed["id"], "caption": "the map"})

    gateway = await gateway_online(harness, fake_llm, make_gateway)
    chat = harness.chat(2)
    await harness.fake.user_post(harness._author(chat), chat, "look", files=(
        {"name": "map.png", "mime_type": "image/png", "size": len(PNG), "data": PNG},))
    assert await reply_to(harness, chat, 0) == "Echo: look"
    await gateway.lanes.join()

    fake_llm.responder = calls(lambda results: FakeToolCall("list_files"), send_back)
    harness.fake.lose_next_answer("upload_file")
    await harness.inject_message(chat, "send the map back")
    await eventually(lambda: len(harness.sent(chat)) == 3, timeout=20)
    await gateway.lanes.join()

    assert harness.fake.calls("upload_file") == 2
    with_file = harness.sent(chat)[1]
    post = harness.fake.posts[next(p.id for p in harness.fake.sent
                                   if p.text == with_file.text and p.channel == chat)]
    [file_id] = post["file_ids"]
    info, data = harness.fake.files[file_id]
    assert (post["message"], info["name"], info["mime_type"], data) == (
        "the map", "map.png", "image/png", PNG)
    assert harness.sent(chat)[-1].text == (f"Done: sent map.png ({len(PNG)} bytes) to this "
                                           "conversation")
