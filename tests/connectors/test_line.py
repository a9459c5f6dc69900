"""What is LINE's own: its signature, its webhook body, reply tokens, sources and mentions,
and how the SDK's outcomes become pyclaw's errors.

Everything a channel shares (journal first, splitting, retries, group rule...) is the
contract suite's (tests/contract, harness_line.py).
"""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from linebot.v3.messaging import TextMessage
from pydantic import SecretStr

from connectors.line import _api, runtime
from connectors.line._api import LineApi
from connectors.line._parse import Ignored, LineMessage, parse_event
from connectors.line.manifest import LineConfig
from connectors.line.runtime import LineConnector
from pyclaw_app.channels import WebhookRejected, WebhookRequest
from pyclaw_app.errors import DeliveryUncertain, FatalConnectorError, RetryableError
from pyclaw_app.model import Address, Attachment
from tests.conftest import GatewayFactory
from tests.contract.harness_line import LineHarness
from tests.fakes.line_api import BOT_NAME, BOT_USER_ID, LineFake
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.server import FakeServer, json_response
from tests.support import RecordingContext, eventually
from tests.test_attachments import OGG, PNG
from tests.test_attachments_channels import online, reply_to

SAMPLE = json.loads((Path(__file__).parent / "line_webhook.json").read_text("utf-8"))
"""tests/v3/text/webhook.json of github.com/line/line-bot-sdk-python, verbatim."""
USER = "U" + "0a" * 16
GROUP = "C" + "0b" * 16
ROOM = "R" + "0c" * 16


@pytest.fixture
async def fake() -> AsyncIterator[LineFake]:
    async with LineFake() as server:
        yield server  # type: ignore[misc]


def connector(fake: LineFake | None = None, **values: Any) -> LineConnector:
    config = {"channel_access_token": fake.access_token if fake else "t",
              "channel_secret": fake.channel_secret if fake else "channel_secret",
              "api_base": fake.url if fake else "http://127.0.0.1:9", **values}
    return LineConnector("line", LineConfig(**{
        k: SecretStr(v) if k != "api_base" else v for k, v in config.items()}))


@pytest.fixture
async def running(fake: LineFake) -> AsyncIterator[tuple[LineConnector, RecordingContext]]:
    conn, ctx = connector(fake), RecordingContext(channel="line")
    await conn.start(ctx)
    yield conn, ctx
    await conn.stop()


async def post(conn: LineConnector, fake: LineFake, *events: Any, secret: str | None = None
               ) -> int:
    body, headers = fake.signed(list(events), secret=secret)
    return (await conn.handle_webhook(WebhookRequest("POST", body, headers))).status


# ---- signature ------------------------------------------------------------------------------

def test_the_published_signature_vector_passes_and_others_do_not() -> None:
    verify = connector()._verify  # secret "channel_secret", as in the SDK's test
    body = b"bodybodybodybody"
    verify(WebhookRequest("POST", body, {"x-line-signature":
                                         "/gg9a+LvFevTH1sd7XCQycD7tsWclCsInj7MhBHxN7k="}))
    good = "/gg9a+LvFevTH1sd7XCQycD7tsWclCsInj7MhBHxN7k="
    for sent, headers in ((body, {"X-Line-Signature": "invalid_signature"}), (body, {}),
                          (body + b" ", {"X-Line-Signature": good})):
        with pytest.raises(WebhookRejected) as rejected:
            verify(WebhookRequest("POST", sent, headers))
        assert rejected.value.status == 401


async def test_a_forged_request_is_refused_before_anything_is_read(
        running: tuple[LineConnector, RecordingContext], fake: LineFake) -> None:
    conn, ctx = running
    assert await post(conn, fake, fake.message_event(USER, "hi"), secret="wrong") == 401
    assert ctx.inbound == [] and any("rejected" in m for _, m, _ in ctx.logs)
    request = WebhookRequest("GET", b"", {"X-Line-Signature": fake.signature(b"")})
    assert (await conn.handle_webhook(request)).status == 405
    latin = b'{"events": [], "x": "\xe9"}'  # signed, but not the UTF-8 LINE sends
    request = WebhookRequest("POST", latin, {"X-Line-Signature": fake.signature(latin)})
    assert (await conn.handle_webhook(request)).status == 400


# ---- the SDK's sample body ---------------------------------------------------------------------

def test_the_sdk_sample_webhook_parses_event_by_event() -> None:
    parsed = [parse_event(e, channel="line", bot_user_id=BOT_USER_ID) for e in SAMPLE["events"]]
    messages = [p for p in parsed if isinstance(p, LineMessage)]
    ignored = {e["type"] for e, p in zip(SAMPLE["events"], parsed, strict=True)
               if isinstance(p, Ignored)}
    assert None not in parsed
    assert ignored == {"follow", "unfollow", "join", "leave", "postback", "beacon",
                       "accountLink", "memberJoined", "memberLeft", "unsend",
                       "videoPlayComplete", "messageEdited", "undefined"}
    kinds = [(m.inbound.text or m.inbound.attachments[0].kind, m.inbound.is_group)
             for m in messages]
    assert kinds == [("Hello, world", False), ("image", True), ("video", False),
                     ("audio", False), ("location", False), ("sticker", False),
                     ("Hello, world", True), ("Hello, world", True), ("file", False),
                     ("image", False), ("Hello, world", False)]
    first = messages[0]
    assert first.inbound.platform_id == "325708"
    assert first.inbound.address.chat == first.inbound.sender_id == \
        "U206d25c2ea6bd87c17655609a1c37cb8"
    assert first.reply_token == "nHuyWiB7yP5Zw52FIkcQobQuGDXCTA"
    assert first.quote_token == "quoteToken"
    assert first.inbound.ts == pytest.approx(1462629479.859)
    group, room = messages[6].inbound, messages[7].inbound
    assert group.address.chat == "Ca56f94637cc4347f90a25382909b24b9"
    assert room.address.chat == "Ra8dbf4673c4c812cd491258042226c99"
    assert group.sender_id == room.sender_id == "U206d25c2ea6bd87c17655609a1c37cb8"
    media = {m.inbound.attachments[0].kind: m.inbound.attachments[0] for m in messages
             if m.inbound.attachments}
    assert media["image"].platform_id == "354718705033693861"  # the last image: an image set
    assert media["video"].platform_id == "325708"
    assert media["file"].name == "file.txt" and media["file"].size == 2138
    assert media["location"].name == "my location"
    assert media["location"].url == "geo:35.65910807942215,139.70372892916203"
    assert media["sticker"].name == "sticker 1/1"


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=12), inner, max_size=5), max_leaves=25))
def test_the_parser_never_raises_on_any_json(value: Any) -> None:
    parse_event(value, channel="line", bot_user_id=BOT_USER_ID, ours={"1"})


_ANY = st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.lists(
    st.integers(), max_size=2) | st.dictionaries(st.text(max_size=4), st.integers(), max_size=2)


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({}, optional={
    "id": _ANY, "type": st.sampled_from(["text", "image", "file", "location", "sticker"]) | _ANY,
    "text": _ANY, "fileSize": _ANY, "latitude": _ANY, "longitude": _ANY, "quotedMessageId": _ANY,
    "mention": _ANY | st.fixed_dictionaries({"mentionees": st.lists(st.dictionaries(
        st.sampled_from(["index", "length", "isSelf", "userId", "type"]), _ANY), max_size=3)})}),
    st.fixed_dictionaries({}, optional={"type": st.sampled_from(["user", "group", "room"])
                                        | _ANY, "userId": _ANY, "groupId": _ANY,
                                        "roomId": _ANY}),
    _ANY)
def test_the_parser_never_raises_on_message_events_of_any_shape(
        message: dict[str, Any], source: dict[str, Any], stamp: Any) -> None:
    event = {"type": "message", "mode": "active", "timestamp": stamp, "source": source,
             "message": message, "replyToken": stamp}
    parse_event(event, channel="line", bot_user_id=BOT_USER_ID, ours={"1"})


# ---- sources, mentions, quotes -----------------------------------------------------------------

def _parse(event: dict[str, Any], ours: set[str] | None = None) -> LineMessage:
    parsed = parse_event(event, channel="line", bot_user_id=BOT_USER_ID, ours=ours or set())
    assert isinstance(parsed, LineMessage)
    return parsed


def test_groups_and_rooms_are_groups_and_mentions_of_the_bot_are_seen() -> None:
    fake = LineFake()
    for chat in (GROUP, ROOM):
        plain = _parse(fake.message_event(chat, "people talking")).inbound
        assert plain.is_group and not plain.mentioned and plain.address.chat == chat
        called = _parse(fake.message_event(chat, "hey bot", mention_bot=True)).inbound
        assert called.mentioned and called.text == "hey bot"
    direct = _parse(fake.message_event(USER, "hi")).inbound
    assert not direct.is_group and direct.address.chat == USER

    other = fake.message_event(GROUP, "@ann look")
    other["message"]["mention"] = {"mentionees": [
        {"index": 0, "length": 4, "type": "user", "userId": "U" + "1" * 32, "isSelf": False},
        {"index": 5, "length": 4, "type": "all"}]}
    assert not _parse(other).inbound.mentioned
    by_id = fake.message_event(GROUP, "🍎 @pyclaw hi")  # no isSelf: the bot's user id decides
    by_id["message"]["mention"] = {"mentionees": [
        {"index": 3, "length": 7, "type": "user", "userId": BOT_USER_ID}]}
    seen = _parse(by_id).inbound
    assert seen.mentioned and seen.text == "🍎 @pyclaw hi"  # only a leading mention is cut
    emoji = fake.message_event(GROUP, "x")
    emoji["message"]["text"] = "@🍎bot 🍎 hi"  # the mention is 6 UTF-16 code units long
    emoji["message"]["mention"] = {"mentionees": [
        {"index": 0, "length": 6, "type": "user", "isSelf": True}]}
    assert _parse(emoji).inbound.text == "🍎 hi"


def docs_text_message(text: str, mentionees: list[dict[str, Any]]) -> dict[str, Any]:
    """The text message event of developers.line.biz/en/reference/messaging-api/#wh-text
    (its "@All @example Good Morning!! (love)" example), in a group, with ``text`` and
    ``mentionees`` replaced."""
    return {
        "replyToken": "nHuyWiB7yP5Zw52FIkcQobQuGDXCTA", "type": "message", "mode": "active",
        "timestamp": 1462629479859, "webhookEventId": "01FZ74A0TDDPYRVKNK77XKC3ZR",
        "deliveryContext": {"isRedelivery": False},
        "source": {"type": "group", "groupId": GROUP, "userId": USER},
        "message": {"id": "444573844083572737", "type": "text", "quoteToken": "q3Plxr4AgKd",
                    "text": text, "mention": {"mentionees": mentionees}}}


def _me(index: int, length: int) -> dict[str, Any]:
    return {"index": index, "length": length, "userId": BOT_USER_ID, "type": "user",
            "isSelf": True}


@pytest.mark.parametrize(("text", "mentionees", "expected"), [
    ("@All @example Good Morning!! (love)",  # the docs' example: nobody is the bot
     [{"index": 0, "length": 4, "type": "all"},
      {"index": 5, "length": 8, "userId": "U49585cd0d5", "type": "user", "isSelf": False}],
     "@All @example Good Morning!! (love)"),
    ("@pyclaw Good Morning!!", [_me(0, 7)], "Good Morning!!"),
    ("@pyclaw, Good Morning!!", [_me(0, 7)], "Good Morning!!"),
    ("what time is it @pyclaw?", [_me(16, 7)], "what time is it?"),
    ("ask @pyclaw about it", [_me(4, 7)], "ask @pyclaw about it"),
    ("@pyclaw", [_me(0, 7)], "@pyclaw"),
    ("@pyclaw ", [_me(0, 7)], "@pyclaw"),
    ("@All @example @pyclaw Good Morning!!",  # others' mentions stay as the user saw them
     [{"index": 0, "length": 4, "type": "all"},
      {"index": 5, "length": 8, "userId": "U49585cd0d5", "type": "user", "isSelf": False},
      _me(14, 7)], "@All @example @pyclaw Good Morning!!"),
    ("@pyclaw ask @example", [_me(0, 7), {"index": 12, "length": 8, "userId": "U49585cd0d5",
                                          "type": "user", "isSelf": False}], "ask @example"),
    ("@pyclaw is @pyclaw here", [_me(0, 7), _me(11, 7)], "is @pyclaw here"),
    ("🍎 hi @pyclaw", [_me(6, 7)], "🍎 hi"),  # the apple is 2 UTF-16 code units
])
def test_the_bots_mention_is_cut_where_it_addresses_the_bot(
        text: str, mentionees: list[dict[str, Any]], expected: str) -> None:
    inbound = _parse(docs_text_message(text, mentionees)).inbound
    assert inbound.text == expected
    assert inbound.mentioned == any(m.get("isSelf") for m in mentionees)


def test_a_mention_that_points_outside_the_text_cuts_nothing() -> None:
    inbound = _parse(docs_text_message("@pyclaw hi", [_me(5, 40)])).inbound
    assert inbound.mentioned and inbound.text == "@pyclaw hi"


def test_a_quote_of_the_bots_message_is_a_reply_to_the_bot() -> None:
    fake = LineFake()
    assert _parse(fake.message_event(GROUP, "yes", quoted="77"), {"77"}).inbound.reply_to_bot
    assert not _parse(fake.message_event(GROUP, "yes", quoted="78"), {"77"}).inbound.reply_to_bot


def test_standby_mode_and_unknown_message_types_are_skipped() -> None:
    fake = LineFake()
    assert isinstance(parse_event({**fake.message_event(USER, "x"), "mode": "standby"},
                                  channel="line", bot_user_id=""), Ignored)
    assert isinstance(parse_event(fake.message_event(USER, kind="hologram"),
                                  channel="line", bot_user_id=""), Ignored)


async def test_a_broken_event_is_logged_and_the_rest_of_the_batch_is_journaled(
        running: tuple[LineConnector, RecordingContext], fake: LineFake) -> None:
    conn, ctx = running
    broken = fake.message_event(USER, "lost")
    broken["source"] = {"type": "user"}
    good = fake.message_event(GROUP, "kept", mention_bot=True)
    assert await post(conn, fake, broken, {"type": "follow"}, good) == 200
    assert [m.text for m in ctx.inbound] == ["kept"]
    assert ctx.inbound[0].mentioned and ctx.inbound[0].address.account == BOT_USER_ID
    assert [lvl for lvl, m, _ in ctx.logs if "malformed" in m] == ["error"]
    assert await post(conn, fake) == 200  # the console's Verify: no events at all


# ---- reply token, then push -----------------------------------------------------------------

async def _inbound(conn: LineConnector, fake: LineFake, chat: str = USER) -> str:
    event = fake.message_event(chat, "question")
    assert await post(conn, fake, event) == 200
    return event["message"]["id"]


async def test_the_first_part_replies_with_the_token_and_the_rest_are_pushed(
        running: tuple[LineConnector, RecordingContext], fake: LineFake) -> None:
    conn, _ = running
    pid = await _inbound(conn, fake)
    first = await conn.send_part(Address("line", USER), "one", pid)
    second = await conn.send_part(Address("line", USER), "two", None)
    await conn.send_part(Address("line", USER), "one, retried", pid)  # token spent
    assert [(m.via, m.text, m.quoted) for m in fake.sent] == [
        ("reply", "one", pid), ("push", "two", None), ("push", "one, retried", None)]
    assert [first, second] == [m.id for m in fake.sent[:2]]
    quoting = fake.message_event(USER, "re", quoted=first)
    assert await post(conn, fake, quoting) == 200
    assert running[1].inbound[-1].reply_to_bot  # the bot's own message, quoted


async def test_a_token_line_calls_invalid_falls_back_to_push(
        running: tuple[LineConnector, RecordingContext], fake: LineFake) -> None:
    conn, _ = running
    used = await _inbound(conn, fake)
    token = fake._events[used]["replyToken"]  # spent elsewhere (another process, a retry)
    async with aiohttp.ClientSession() as session, session.post(
            f"{fake.url}/v2/bot/message/reply", json={"replyToken": token, "messages": [
                {"type": "text", "text": "first"}]},
            headers={"Authorization": f"Bearer {fake.access_token}"}) as resp:
        assert resp.status == 200
    await conn.send_part(Address("line", USER), "after a used token", used)
    fake.reply_token_ttl = 0.0  # LINE expired it before our clock did
    expired = await _inbound(conn, fake)
    await conn.send_part(Address("line", USER), "after an expired token", expired)
    assert [(m.via, m.quoted) for m in fake.sent[1:]] == [("push", used), ("push", expired)]
    assert fake.calls("reply") == 3


async def test_a_token_past_its_lifetime_is_not_even_tried(
        running: tuple[LineConnector, RecordingContext], fake: LineFake,
        monkeypatch: pytest.MonkeyPatch) -> None:
    conn, _ = running
    pid = await _inbound(conn, fake)
    monkeypatch.setattr(runtime, "REPLY_TOKEN_LIFETIME", 0.0)
    await conn.send_part(Address("line", USER), "late", pid)
    assert fake.calls("reply") == 0 and [m.via for m in fake.sent] == ["push"]


async def test_a_rate_limited_reply_keeps_its_token_for_the_retry(
        running: tuple[LineConnector, RecordingContext], fake: LineFake) -> None:
    conn, _ = running
    pid = await _inbound(conn, fake)
    fake.fail_next("reply", 429)
    with pytest.raises(RetryableError) as limited:
        await conn.send_part(Address("line", USER), "hello", pid)
    assert limited.value.retry_after == _api.RATE_LIMIT_WAIT  # LINE sends no Retry-After
    await conn.send_part(Address("line", USER), "hello", pid)
    assert [(m.via, m.quoted) for m in fake.sent] == [("reply", pid)]


async def test_other_refusals_are_fatal_and_not_pushed(
        running: tuple[LineConnector, RecordingContext], fake: LineFake) -> None:
    conn, _ = running
    pid = await _inbound(conn, fake)
    fake.fail_next("reply", 400)
    with pytest.raises(FatalConnectorError, match=r"messages\[0\]\.text"):
        await conn.send_part(Address("line", USER), "hello", pid)
    fake.quota_used_up = True
    with pytest.raises(FatalConnectorError, match="monthly limit"):
        await conn.send_part(Address("line", USER), "hello", None)
    assert fake.sent == [] and fake.calls("push") == 1


# ---- typing, start, probe ----------------------------------------------------------------------

async def test_the_loading_animation_is_shown_in_one_on_one_chats_only(
        running: tuple[LineConnector, RecordingContext], fake: LineFake) -> None:
    conn, _ = running
    await conn.typing(Address("line", USER))
    await conn.typing(Address("line", GROUP))
    assert fake.loading == [(USER, runtime.LOADING_SECONDS)]


async def test_a_bad_token_fails_the_start_and_the_probe_says_who_we_are(
        fake: LineFake) -> None:
    bad = connector(fake, channel_access_token="wrong")
    with pytest.raises(FatalConnectorError, match="401"):
        await bad.start(RecordingContext(channel="line"))
    assert not (await connector(fake, channel_access_token="wrong").probe()).ok
    result = await connector(fake).probe()
    assert result.ok and result.message == "connected as pyclaw"


# ---- the SDK's outcomes in pyclaw's words ------------------------------------------------------

async def test_refusals_lost_answers_and_refused_connections_are_told_apart(
        running: tuple[LineConnector, RecordingContext], fake: LineFake) -> None:
    conn, _ = running
    fake.fail_next("push", 500)
    with pytest.raises(RetryableError):
        await conn.send_part(Address("line", USER), "later", None)
    fake.fail_next("push", 403)
    with pytest.raises(FatalConnectorError, match="plan or permissions") as refused:
        await conn.send_part(Address("line", USER), "never", None)
    assert not isinstance(refused.value, DeliveryUncertain)
    assert fake.sent == []
    fake.lose_next_answer("push")
    with pytest.raises(DeliveryUncertain):  # LINE delivered it; sending again would double it
        await conn.send_part(Address("line", USER), "delivered", None)
    assert [m.text for m in fake.sent] == ["delivered"]
    fake.lose_next_answer("loading")
    with pytest.raises(RetryableError):  # the animation may simply be asked for again
        await conn.typing(Address("line", USER))


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_refused_connection_sent_nothing_and_may_be_retried() -> None:
    api = LineApi(f"http://127.0.0.1:{_closed_port()}", "t")
    try:
        with pytest.raises(RetryableError, match="nothing was sent") as refused:
            await api.push(USER, TextMessage(text="hello"))
    finally:
        await api.close()
    assert not isinstance(refused.value, DeliveryUncertain)
    result = await connector(api_base=f"http://127.0.0.1:{_closed_port()}").probe()
    assert not result.ok and "unreachable" in result.message


class ScriptedServer(FakeServer):
    """Not LINE: a LINE-compatible server (a proxy, say) that answers each path as a test
    says, for answers LINE itself does not give. Bot info is LINE's own."""

    def __init__(self) -> None:
        super().__init__()
        self.answers: dict[str, tuple[int, object, dict[str, str]]] = {
            "/v2/bot/info": (200, {"userId": BOT_USER_ID, "basicId": "@012abcde",
                                   "displayName": BOT_NAME, "chatMode": "bot",
                                   "markAsReadMode": "auto"}, {})}
        self.transports: list[asyncio.Transport] = []

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/{path:.*}", self._answer)

    async def _answer(self, request: web.Request) -> web.Response:
        if request.transport is not None:
            self.transports.append(request.transport)  # type: ignore[arg-type]
        status, body, headers = self.answers[request.path]
        return json_response(body, status=status, headers=headers)


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedServer]:
    async with ScriptedServer() as server:
        yield server  # type: ignore[misc]


async def test_secrets_never_reach_an_error_and_retry_after_is_honoured_when_sent(
        scripted: ScriptedServer) -> None:
    conn, ctx = connector(api_base=scripted.url, channel_access_token="tok-123456",
                          channel_secret="sec-654321"), RecordingContext(channel="line")
    await conn.start(ctx)
    try:
        scripted.answers["/v2/bot/message/push"] = (
            400, {"message": "tok-123456 is not allowed to tell sec-654321"}, {})
        with pytest.raises(FatalConnectorError) as refused:
            await conn.send_part(Address("line", USER), "hello", None)
        text = str(refused.value)
        assert "tok-123456" not in text and "sec-654321" not in text and "<secret>" in text
        scripted.answers["/v2/bot/message/push"] = (
            429, {"message": "The API rate limit has been exceeded. Try again later."},
            {"Retry-After": "3"})
        with pytest.raises(RetryableError) as limited:
            await conn.send_part(Address("line", USER), "hello", None)
        assert limited.value.retry_after == 3.0
    finally:
        await conn.stop()


async def test_an_answer_the_sdk_cannot_read_counts_as_sent_but_fails_the_start(
        scripted: ScriptedServer) -> None:
    conn, ctx = connector(api_base=scripted.url), RecordingContext(channel="line")
    await conn.start(ctx)
    try:
        scripted.answers["/v2/bot/message/push"] = (200, {}, {})  # no sentMessages
        assert await conn.send_part(Address("line", USER), "hello", None) == ""
        assert [lvl for lvl, m, _ in ctx.logs if "could not be read" in m] == ["warning"]
    finally:
        await conn.stop()
    scripted.answers["/v2/bot/info"] = (200, {"displayName": 7}, {})
    result = await connector(api_base=scripted.url).probe()
    assert not result.ok and "check the API base URL" in result.message


async def test_one_connection_serves_the_channel_and_stop_closes_it(
        scripted: ScriptedServer) -> None:
    conn = connector(api_base=scripted.url)
    await conn.start(RecordingContext(channel="line"))
    scripted.answers["/v2/bot/chat/loading/start"] = (202, {}, {})
    for _ in range(3):
        await conn.typing(Address("line", USER))
    assert len(scripted.transports) == 4 and len(set(map(id, scripted.transports))) == 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        await conn.stop()
        gc.collect()  # a session left open says so when it is collected
    assert [str(w.message) for w in caught if "nclosed" in str(w.message)] == []
    await eventually(lambda: scripted.transports[0].is_closing())


# ---- media ----------------------------------------------------------------------------------

@pytest.fixture
async def harness() -> AsyncIterator[LineHarness]:
    harness = LineHarness()
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()


async def test_a_picture_is_fetched_from_the_content_api_with_the_token_and_seen(
        harness: LineHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    await online(harness, fake_llm, make_gateway)
    fake, chat = harness.fake, harness.chat(0)
    event = fake.media_event(chat, "image", PNG, "image/png")
    await harness.deliver(fake.signed([event]))
    assert await reply_to(harness, chat, 0) == "Echo: "  # LINE pictures carry no words
    assert fake_llm.images == [("image/png", PNG)]
    assert fake.downloads == [(event["message"]["id"], f"Bearer {fake.access_token}")]


@pytest.mark.parametrize(("transcoding", "held", "says"), [
    ("failed", True, "the voice note: LINE could not prepare the file (transcoding failed)"),
    ("succeeded", False, "the voice note: the file is no longer there on 127.0.0.1 "
                         "(HTTP 404)"),
])
async def test_a_voice_note_line_cannot_hand_over_is_explained_to_the_sender(
        harness: LineHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory,
        transcoding: str, held: bool, says: str) -> None:
    gateway = await online(harness, fake_llm, make_gateway)
    fake, chat = harness.fake, harness.chat(1)
    event = fake.media_event(chat, "audio", OGG if held else None, "audio/ogg",
                             transcoding=transcoding, duration=3000)
    await harness.deliver(fake.signed([event]))
    assert await reply_to(harness, chat, 0) == f"I could not read what you sent: {says}."
    assert fake_llm.requests == []
    assert await gateway.store.logs.page(channel="line", search="could not be read")


async def test_externally_hosted_content_is_fetched_without_the_token(
        fake: LineFake) -> None:
    event = fake.message_event("U" + "1" * 32, kind="image", contentProvider={
        "type": "external", "originalContentUrl": "https://cdn.example.com/a.png",
        "previewImageUrl": "https://cdn.example.com/a-small.png"})
    parsed = parse_event(event, channel="line", bot_user_id=BOT_USER_ID)
    assert isinstance(parsed, LineMessage)
    source = await connector(fake).fetch_attachment(parsed.inbound.attachments[0])
    assert source.url == "https://cdn.example.com/a.png" and source.headers == {}


@pytest.mark.parametrize(("api_base", "content"), [
    ("https://api.line.me", "https://api-data.line.me"),
    ("https://line-proxy.example.com", "https://line-proxy.example.com"),
])
async def test_content_comes_from_lines_content_host_or_the_configured_server(
        api_base: str, content: str) -> None:
    source = await connector(api_base=api_base).fetch_attachment(
        Attachment(kind="image", platform_id="600000000000000001"))
    assert source.url == f"{content}/v2/bot/message/600000000000000001/content"
    assert source.headers == {"Authorization": "Bearer t"}
