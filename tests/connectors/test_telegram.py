"""The Telegram connector through the real python-telegram-bot against the fake Bot API."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from connectors.telegram._format import to_html
from connectors.telegram._parse import BotIdentity, describe_skip, parse_update
from connectors.telegram.manifest import MAX_TEXT, TelegramConfig
from connectors.telegram.runtime import TelegramConnector
from pyclaw_app.channels import SubmitResult, WebhookRequest
from pyclaw_app.channels.registry import connector_class, get_spec
from pyclaw_app.errors import (
    ConnectorError,
    DeliveryUncertain,
    FatalConnectorError,
    RetryableError,
)
from pyclaw_app.model import Address, ChannelState, Inbound
from tests.fakes.telegram_api import FakeTelegram, utf16_len
from tests.fakes.telegram_html import HtmlParseError, visible_text
from tests.support import RecordingContext, eventually

Factory = Callable[..., TelegramConnector]
Running = tuple[TelegramConnector, RecordingContext]

FORUM = -1001234567890
BOT = BotIdentity(id=123456789, username="pyclaw_test_bot")


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                "all_proxy"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server  # type: ignore[misc]


@pytest.fixture
async def make(fake: FakeTelegram) -> AsyncIterator[Factory]:
    made: list[TelegramConnector] = []

    def factory(**overrides: Any) -> TelegramConnector:
        values: dict[str, Any] = {
            "token": SecretStr(fake.token),
            "base_url": f"{fake.url}/bot",
            "base_file_url": f"{fake.url}/file/bot",
            "poll_timeout": 1,
            **overrides,
        }
        connector = TelegramConnector("tg", TelegramConfig(**values))
        made.append(connector)
        return connector

    yield factory
    for connector in made:
        await connector.stop()


@pytest.fixture
async def running(make: Factory) -> Running:
    connector, ctx = make(), RecordingContext(channel="tg")
    await connector.start(ctx)
    return connector, ctx


def _gets(fake: FakeTelegram) -> list[dict[str, Any]]:
    return [params for method, params in fake.requests if method == "getUpdates"]


def _problems(ctx: RecordingContext) -> list[tuple[str, str]]:
    return [(level, message) for level, message, _ in ctx.logs if level in ("warning", "error")]


# ---- registry and config --------------------------------------------------------------------


def test_registry_finds_manifest_and_runtime() -> None:
    spec = get_spec("telegram")
    assert spec.limits.max_text == MAX_TEXT and spec.limits.text_length("😀") == 2
    assert spec.docs_url.startswith("https://core.telegram.org/")
    assert connector_class("telegram") is TelegramConnector
    schema = spec.config_model.model_json_schema()["properties"]
    assert schema["token"]["secret"] and schema["webhook_secret"]["secret"]
    assert schema["base_url"]["default"] == "https://api.telegram.org/bot"


def test_webhook_mode_needs_a_url() -> None:
    with pytest.raises(ValueError, match="webhook_url"):
        TelegramConfig(token=SecretStr("1:a"), mode="webhook")


# ---- receiving ------------------------------------------------------------------------------


async def test_private_message_becomes_an_inbound(fake: FakeTelegram, running: Running) -> None:
    _, ctx = running
    message = fake.inject_message(1001, "hello 🙂 <b>&")
    [inbound] = await eventually(lambda: ctx.inbound)
    assert inbound.address == Address("tg", "1001", account=str(fake.bot_id), thread=None)
    assert inbound.platform_id == f"1001:{message['message_id']}"
    assert inbound.text == "hello 🙂 <b>&"
    assert (inbound.sender_id, inbound.sender_name) == ("1001", "User1001")
    assert not inbound.is_group and not inbound.mentioned and not inbound.reply_to_bot
    assert ctx.heartbeats > 0
    assert ctx.states[:2] == [(ChannelState.CONNECTING, "connecting to Telegram"),
                              (ChannelState.ONLINE, "connected as @pyclaw_test_bot")]


async def test_group_messages_carry_mention_and_reply_flags_and_are_not_gated(
        fake: FakeTelegram, running: Running) -> None:
    connector, ctx = running
    fake.add_chat(-500, "supergroup")
    fake.inject_message(-500, "just chatting", sender=7)
    text = "👋🏽 hey @pyclaw_test_bot, what's up?"  # emoji before it: offsets are UTF-16
    fake.inject_message(-500, text, sender=7, entities=fake.mention_entities(text))
    chatter, mentioned = await eventually(lambda: ctx.inbound if len(ctx.inbound) == 2 else None)
    assert chatter.is_group and not chatter.mentioned and not chatter.reply_to_bot
    assert mentioned.is_group and mentioned.mentioned
    assert (mentioned.sender_id, mentioned.sender_name) == ("7", "User7")

    bot_message = await connector.send_part(Address("tg", "-500"), "ack", None)
    fake.inject_message(-500, "thanks!", sender=7, reply_to=int(bot_message.split(":")[1]))
    fake.inject_message(-500, "/help", sender=7,
                        entities=[{"type": "bot_command", "offset": 0, "length": 5}])
    fake.inject_message(-500, "/help@other_bot", sender=7,
                        entities=[{"type": "bot_command", "offset": 0, "length": 15}])
    await eventually(lambda: len(ctx.inbound) == 5)
    flags = [(i.text, i.mentioned, i.reply_to_bot) for i in ctx.inbound[2:]]
    assert flags == [("thanks!", False, True), ("/help", True, False),
                     ("/help@other_bot", False, False)]
    assert not _problems(ctx)


async def test_forum_topic_sets_the_thread_and_is_not_a_reply(fake: FakeTelegram,
                                                              running: Running) -> None:
    _, ctx = running
    text = "@pyclaw_test_bot in topic"
    message = fake.inject_message(FORUM, text, sender=5, thread=42,
                                  entities=fake.mention_entities(text))
    [inbound] = await eventually(lambda: ctx.inbound)
    assert inbound.address.thread == "42" and inbound.address.chat == str(FORUM)
    assert inbound.platform_id == f"{FORUM}:{message['message_id']}"
    assert not inbound.reply_to_bot  # the topic-creation "reply" does not count


async def test_media_only_message_is_submitted_with_attachments(fake: FakeTelegram,
                                                                running: Running) -> None:
    _, ctx = running
    photo = [{"file_id": "small", "file_unique_id": "s", "file_size": 10, "width": 9,
              "height": 9},
             {"file_id": "large", "file_unique_id": "l", "file_size": 99, "width": 99,
              "height": 99}]
    fake.inject_message(1001, None, extra={"photo": photo})
    fake.inject_message(1001, None, extra={
        "caption": "the report",
        "document": {"file_id": "doc1", "file_unique_id": "d", "file_name": "r.pdf",
                     "mime_type": "application/pdf", "file_size": 1234}})
    first, second = await eventually(lambda: ctx.inbound if len(ctx.inbound) == 2 else None)
    assert first.text == "" and [(a.kind, a.platform_id, a.size) for a in first.attachments] == [
        ("image", "large", 99)]
    assert second.text == "the report"
    assert [(a.kind, a.name, a.mime) for a in second.attachments] == [
        ("file", "r.pdf", "application/pdf")]


async def test_malformed_and_service_updates_are_logged_and_polling_continues(
        fake: FakeTelegram, running: Running) -> None:
    _, ctx = running
    fake.inject_update({"message": {"message_id": 9, "date": 0, "text": {"not": "a string"}}})
    fake.inject_update({"message": {"message_id": 10, "date": 0, "chat": {"id": 1001,
                                    "type": "private"}, "new_chat_title": "x"}})
    fake.inject_update({"edited_message": {"message_id": 1}})
    fake.inject_message(1001, "still alive")
    await eventually(lambda: ctx.inbound)
    levels = [(level, message) for level, message, _ in ctx.logs if "skipped" in message]
    assert levels[0][0] == "error" and "malformed" in levels[0][1]
    assert levels[1] == ("info",
                         "skipped a Telegram message with no text or media: a new chat title")
    assert levels[2][0] == "info" and "edited_message" in levels[2][1]
    assert all("not" not in str(data) for _, _, data in ctx.logs)  # no payload in the log
    await eventually(lambda: not fake.updates)  # all of them confirmed, none wedged


@dataclass
class GatedContext(RecordingContext):
    """submit() blocks until the test opens the gate: a journal that has not written yet."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    entered: asyncio.Event = field(default_factory=asyncio.Event)

    async def submit(self, inbound: Inbound) -> SubmitResult:
        self.entered.set()
        await self.gate.wait()
        return await super().submit(inbound)


async def test_offset_advances_only_after_submit_returns(fake: FakeTelegram,
                                                         make: Factory) -> None:
    first, gated = make(), GatedContext(channel="tg")
    await first.start(gated)
    update_id = fake.inject_message(1001, "journal me") and fake.updates[-1]["update_id"]
    await asyncio.wait_for(gated.entered.wait(), 10)
    assert all(int(p.get("offset") or 0) <= update_id for p in _gets(fake))
    await first.stop()  # "crash" before the journal took it
    assert [u["update_id"] for u in fake.updates] == [update_id]
    assert await gated.state.get("offset") is None

    second, ctx = make(), RecordingContext(channel="tg")
    await second.start(ctx)
    [inbound] = await eventually(lambda: ctx.inbound)
    assert inbound.text == "journal me"
    assert await eventually(lambda: ctx.state.get("offset")) == update_id + 1


async def test_start_resumes_from_the_stored_offset(fake: FakeTelegram, make: Factory) -> None:
    journaled = fake.inject_message(1001, "journaled before the restart")
    offset = fake.updates[-1]["update_id"] + 1
    ctx = RecordingContext(channel="tg")
    await ctx.state.set("offset", offset)  # stored, but Telegram never saw it (a crash)
    connector = make()
    await connector.start(ctx)
    fake.inject_message(1001, "new")
    await eventually(lambda: ctx.inbound)
    assert [i.text for i in ctx.inbound] == ["new"]  # the journaled one was not fetched again
    assert int(_gets(fake)[0]["offset"]) == offset
    assert journaled["message_id"] not in [u["message"]["message_id"] for u in fake.updates]

    async def moved_on() -> bool:
        return await ctx.state.get("offset") == offset + 1

    await eventually(moved_on)


# ---- sending --------------------------------------------------------------------------------


async def test_send_part_answers_in_the_topic_and_quotes_the_message(
        fake: FakeTelegram, running: Running) -> None:
    connector, ctx = running
    text = "@pyclaw_test_bot go"
    fake.inject_message(FORUM, text, sender=5, thread=42, entities=fake.mention_entities(text))
    [inbound] = await eventually(lambda: ctx.inbound)
    reply = "😀" * (MAX_TEXT // 2)  # exactly the limit in UTF-16 units
    first = await connector.send_part(inbound.address, reply, inbound.platform_id)
    second = await connector.send_part(inbound.address, "and more", None)
    parts = fake.sent_to(FORUM)
    assert [p.text for p in parts] == [reply, "and more"]
    assert {p.thread_id for p in parts} == {42}
    assert [p.reply_to_message_id for p in parts] == [
        int(inbound.platform_id.rsplit(":", 1)[1]), None]
    assert [first, second] == [f"{FORUM}:{p.message_id}" for p in parts]
    assert all(p.parse_mode == "HTML" for p in parts)
    assert fake.calls("sendMessage") == 2  # one request per part


async def test_markdown_becomes_html_and_rejected_html_falls_back_to_plain(
        fake: FakeTelegram, running: Running) -> None:
    connector, ctx = running
    fake.add_chat(1001)
    address = Address("tg", "1001", account=str(fake.bot_id))
    await connector.send_part(address, "**bold** and `a<b` & more", None)
    assert fake.sent[-1].raw_text == "<b>bold</b> and <code>a&lt;b</code> &amp; more"
    assert fake.sent[-1].text == "bold and a<b & more"
    fake.reject_entities_next_send()
    await connector.send_part(address, "**plain** now", None)
    assert (fake.sent[-1].text, fake.sent[-1].parse_mode) == ("**plain** now", None)
    assert [msg for _, msg in _problems(ctx)] == [
        "Telegram could not parse the formatting; sent as plain text"]


async def test_reply_to_a_deleted_message_is_still_sent(fake: FakeTelegram,
                                                        running: Running) -> None:
    connector, _ = running
    fake.add_chat(1001)
    address = Address("tg", "1001", account=str(fake.bot_id))
    await connector.send_part(address, "answer", "1001:999")
    assert [(s.text, s.reply_to_message_id) for s in fake.sent_to(1001)] == [("answer", None)]


@pytest.mark.parametrize(("status", "error", "match"), [
    (429, RetryableError, "rate limit: retry after 3s"),
    (500, RetryableError, "unreachable"),
    (502, RetryableError, "unreachable"),
    (400, FatalConnectorError, "(?i)chat not found"),
    (403, FatalConnectorError, "blocked by the user"),
])
async def test_send_part_maps_telegrams_refusals_without_retrying(
        fake: FakeTelegram, running: Running, status: int, error: type[Exception],
        match: str) -> None:
    connector, _ = running
    fake.add_chat(1001)
    fake.fail_next("sendMessage", status, retry_after=3)
    with pytest.raises(error, match=match) as caught:
        await connector.send_part(Address("tg", "1001"), "hello", None)
    assert type(caught.value) is error
    if status == 429:
        assert caught.value.retry_after == 3.0  # type: ignore[attr-defined]
    assert fake.calls("sendMessage") == 1 and not fake.sent_to(1001)  # the gateway retries


async def test_send_part_whose_answer_is_lost_is_uncertain(fake: FakeTelegram,
                                                           running: Running) -> None:
    connector, _ = running
    fake.add_chat(1001)
    fake.lose_next_answer("sendMessage")  # Telegram delivers it, the answer never comes back
    with pytest.raises(DeliveryUncertain, match="may have been delivered"):
        await connector.send_part(Address("tg", "1001"), "only once", None)
    assert [s.text for s in fake.sent_to(1001)] == ["only once"]


async def test_send_to_an_unknown_chat_is_fatal(running: Running) -> None:
    connector, _ = running
    with pytest.raises(FatalConnectorError, match=r"(?i)chat not found"):
        await connector.send_part(Address("tg", "424242"), "hello?", None)


async def test_send_part_before_start_says_not_running(make: Factory) -> None:
    with pytest.raises(ConnectorError, match="not running"):
        await make().send_part(Address("tg", "1001"), "hello?", None)


async def test_typing_uses_the_thread(fake: FakeTelegram, running: Running) -> None:
    connector, _ = running
    fake.add_chat(FORUM, "supergroup", is_forum=True)
    fake.add_topic(FORUM, 42)
    await connector.typing(Address("tg", str(FORUM), thread="42"))
    await connector.typing(Address("tg", "31337"))  # unknown chat: no exception
    assert [(c, a, t) for c, a, t, _ in fake.chat_actions] == [(FORUM, "typing", 42)]


# ---- credentials, lifecycle -----------------------------------------------------------------


async def test_probe_reports_ok_bad_token_and_unreachable(fake: FakeTelegram,
                                                          make: Factory) -> None:
    assert (await make().probe()).message == "connected as @pyclaw_test_bot"
    wrong = await make(token=SecretStr("987654321:wrong")).probe()
    assert not wrong.ok and "rejected the bot token" in wrong.message
    assert "wrong" not in wrong.message
    malformed = await make(token=SecretStr("not-a-token")).probe()
    assert not malformed.ok and "rejected" in malformed.message
    missing = await make(token=None).probe()
    assert not missing.ok and "no bot token" in missing.message
    down = await make(base_url="http://127.0.0.1:9/bot").probe()
    assert not down.ok and "unreachable at http://127.0.0.1:9/bot" in down.message


async def test_bad_token_at_start_is_fatal_and_stop_is_safe(make: Factory) -> None:
    connector, ctx = make(token=SecretStr("987654321:wrong")), RecordingContext(channel="tg")
    with pytest.raises(FatalConnectorError, match="rejected"):
        await connector.start(ctx)
    assert ctx.states[-1][0] == ChannelState.OFFLINE
    assert ctx.logs[-1][0] == "error" and "wrong" not in ctx.logs[-1][1]
    await connector.stop()
    await connector.stop()


async def test_token_revoked_while_polling_goes_offline_without_a_tight_loop(
        fake: FakeTelegram, running: Running) -> None:
    _, ctx = running
    fake.token = "123456789:revoked"
    await eventually(lambda: ctx.states[-1][0] == ChannelState.OFFLINE)
    polls = len(_gets(fake))
    await asyncio.sleep(0.3)
    assert len(_gets(fake)) == polls
    assert ctx.logs[-1][0] == "error" and "rejected" in ctx.logs[-1][1]


async def test_unreachable_at_start_degrades_then_connects(fake: FakeTelegram,
                                                           make: Factory) -> None:
    fake.fail_next("getMe", 502, count=2)
    connector, ctx = make(), RecordingContext(channel="tg")
    await connector.start(ctx)  # returns: the retry runs in the background
    assert ctx.states[-1][0] == ChannelState.DEGRADED
    await eventually(lambda: ctx.states[-1][0] == ChannelState.ONLINE)
    fake.inject_message(1001, "made it")
    await eventually(lambda: ctx.inbound)
    assert [level for level, _, _ in ctx.logs] == ["warning", "info"]
    assert "cannot reach Telegram yet" in ctx.logs[0][1]


async def test_start_deletes_a_stale_webhook_so_polling_works(fake: FakeTelegram,
                                                              make: Factory) -> None:
    fake.webhook = {"url": "https://old.example/hook"}
    connector, ctx = make(), RecordingContext(channel="tg")
    await connector.start(ctx)
    fake.inject_message(1001, "hi")
    await eventually(lambda: ctx.inbound)
    assert fake.webhook["url"] == ""


# ---- webhook mode ---------------------------------------------------------------------------


@pytest.fixture
async def webhook(fake: FakeTelegram, make: Factory) -> AsyncIterator[tuple[str, RecordingContext]]:
    connector = make(mode="webhook", webhook_url="https://bot.example/tg",
                     webhook_secret=SecretStr("s3cret_token-1"))
    ctx = RecordingContext(channel="tg")
    await connector.start(ctx)

    async def handle(request: web.Request) -> web.Response:
        answer = await connector.handle_webhook(WebhookRequest(
            request.method, await request.read(), dict(request.headers)))
        return web.Response(status=answer.status, text=str(answer.body))

    app = web.Application()
    app.router.add_post("/tg", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/tg", ctx
    await runner.cleanup()


async def test_webhook_mode_registers_and_accepts_signed_updates(
        fake: FakeTelegram, webhook: tuple[str, RecordingContext]) -> None:
    url, ctx = webhook
    assert fake.webhook == {"url": "https://bot.example/tg", "secret_token": "s3cret_token-1"}
    assert fake.allowed_updates == ["message"]
    update = fake.message_update(1001, "via webhook")
    assert await fake.post_webhook(url, update) == 200
    assert [i.text for i in ctx.inbound] == ["via webhook"]  # journaled before the 200
    assert await fake.post_webhook(url, update) == 200  # Telegram's retry: deduplicated
    assert len(ctx.inbound) == 1


async def test_webhook_rejects_wrong_or_missing_secret_before_parsing(
        webhook: tuple[str, RecordingContext]) -> None:
    url, ctx = webhook
    body = json.dumps({"update_id": 1, "message": {"secret": "payload"}})
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=body, headers={
                "X-Telegram-Bot-Api-Secret-Token": "s3cret_token-2"}) as resp:
            assert resp.status == 403
        async with session.post(url, data=body) as resp:
            assert resp.status == 401
        async with session.post(url, data=b"{not json", headers={
                "X-Telegram-Bot-Api-Secret-Token": "s3cret_token-1"}) as resp:
            assert resp.status == 400
    assert not ctx.inbound
    assert all("payload" not in f"{msg} {data}" for _, msg, data in ctx.logs)
    assert [level for level, _ in _problems(ctx)] == ["warning", "warning", "error"]
    assert all(message.startswith("rejected a webhook request") for _, message in _problems(ctx))


async def test_a_polling_channel_refuses_webhook_calls(fake: FakeTelegram,
                                                       running: Running) -> None:
    connector, ctx = running
    body = json.dumps(fake.message_update(1001, "sneaky")).encode()
    answer = await connector.handle_webhook(WebhookRequest("POST", body, {
        "X-Telegram-Bot-Api-Secret-Token": "anything"}))
    assert answer.status == 404
    assert not ctx.inbound


async def test_webhook_mode_without_a_valid_secret_is_fatal(make: Factory) -> None:
    connector = make(mode="webhook", webhook_url="https://bot.example/tg",
                     webhook_secret=SecretStr("bad secret!"))
    with pytest.raises(FatalConnectorError, match="webhook_secret"):
        await connector.start(RecordingContext(channel="tg"))


# ---- the fake itself answers like the Bot API -----------------------------------------------


async def test_fake_error_shapes(fake: FakeTelegram) -> None:
    async with httpx.AsyncClient(base_url=fake.url) as client:
        wrong = await client.post("/bot111:wrong/getMe")
        assert (wrong.status_code, wrong.json()) == (
            401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        malformed = await client.post("/botnonsense/getMe")
        assert malformed.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
        unknown = await client.post(f"/bot{fake.token}/sendTelepathy")
        assert unknown.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
        fake.add_chat(1001)
        base = f"/bot{fake.token}"
        too_long = await client.post(f"{base}/sendMessage",
                                     data={"chat_id": "1001", "text": "😀" * 2049})
        assert too_long.json()["description"] == "Bad Request: message is too long"
        bad_html = await client.post(f"{base}/sendmessage", json={
            "chat_id": 1001, "text": "<b>open", "parse_mode": "HTML"})
        assert bad_html.json()["description"].startswith("Bad Request: can't parse entities: ")
        ok = await client.get(f"{base}/sendMessage",
                              params={"chat_id": "1001", "text": "a &amp; b", "parse_mode": "HTML"})
        assert ok.json()["result"]["text"] == "a & b"
        fake.rate_limit_next_send(2.5)
        limited = await client.post(f"{base}/sendMessage", data={"chat_id": "1001", "text": "x"})
        assert (limited.status_code, limited.json()) == (429, {
            "ok": False, "error_code": 429, "description": "Too Many Requests: retry after 3",
            "parameters": {"retry_after": 3}})
        fake.fail_next("getMe", 502)
        down = await client.post(f"{base}/GETME")  # method names are case-insensitive
        assert down.status_code == 502 and "nginx" in down.text
        assert fake.calls("getMe") == 1
        await client.post(f"{base}/setWebhook", data={"url": "https://x.example/h"})
        conflict = await client.post(f"{base}/getUpdates")
        assert conflict.status_code == 409


@pytest.mark.parametrize("source", ["a < b", "<i>x</b>", "</b>", "<span>s</span>", "<b>x"])
def test_fake_html_rejects_what_telegram_rejects(source: str) -> None:
    with pytest.raises(HtmlParseError):
        visible_text(source)


# ---- pure functions -------------------------------------------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
_message_keys = st.sampled_from([
    "message_id", "chat", "from", "text", "caption", "entities", "caption_entities", "photo",
    "document", "reply_to_message", "message_thread_id", "is_topic_message", "location",
    "sender_chat", "animation", "voice",
])
_chat_like = st.fixed_dictionaries({"id": st.integers() | _json_values,
                                    "type": st.sampled_from(["private", "supergroup", "x"])})
_message_like = st.dictionaries(_message_keys, _json_values | _chat_like, max_size=10)
_entity_like = st.fixed_dictionaries({
    "type": st.sampled_from(["mention", "text_mention", "bot_command", "bold"]),
    "offset": st.integers(-5, 50) | _json_values, "length": st.integers(-5, 50) | _json_values,
})


@settings(max_examples=200, deadline=None)
@given(st.one_of(
    st.dictionaries(st.text(max_size=8), _json_values, max_size=5),
    st.fixed_dictionaries({"update_id": _json_values, "message": _message_like}),
    st.fixed_dictionaries({"update_id": st.integers(), "message": st.fixed_dictionaries({
        "message_id": st.integers(), "chat": _chat_like, "text": st.text(),
        "entities": st.lists(_entity_like, max_size=3)})}),
))
def test_parser_never_raises(raw: dict[str, Any]) -> None:
    result = parse_update(raw, channel="tg", bot=BOT)
    if result is None:
        level, message = describe_skip(raw)
        assert level in ("info", "error") and message


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(min_size=1),
    chat_id=st.integers(min_value=-(10**13), max_value=10**13).filter(bool),
    message_id=st.integers(min_value=1, max_value=2**31),
    sender=st.integers(min_value=1, max_value=2**40),
    thread=st.none() | st.integers(min_value=2, max_value=10**6),
    mention_at=st.none() | st.integers(min_value=0, max_value=5),
)
def test_parser_round_trips_a_valid_message(text: str, chat_id: int, message_id: int,
                                            sender: int, thread: int | None,
                                            mention_at: int | None) -> None:
    entities = []
    if mention_at is not None:
        prefix = text[:mention_at]
        text = f"{prefix}@{BOT.username}{text[mention_at:]}"
        entities = [{"type": "mention", "offset": utf16_len(prefix),
                     "length": len(BOT.username) + 1}]
    chat = {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"}
    message: dict[str, Any] = {"message_id": message_id, "date": 0, "chat": chat,
                               "from": {"id": sender, "is_bot": False, "first_name": "Ann"},
                               "text": text, "entities": entities}
    if thread is not None:
        message.update(message_thread_id=thread, is_topic_message=True)
    inbound = parse_update({"update_id": 1, "message": message}, channel="tg", bot=BOT)
    assert inbound is not None
    assert inbound.address == Address("tg", str(chat_id), account=str(BOT.id),
                                      thread=str(thread) if thread is not None else None)
    assert inbound.platform_id == f"{chat_id}:{message_id}"
    assert (inbound.sender_id, inbound.sender_name) == (str(sender), "Ann")
    handle = f"@{BOT.username}".casefold()
    if mention_at is None:
        assert inbound.text == text
    else:  # the address may be cut (see test_bot_mention_is_cut_where_it_addressed_the_bot)
        assert inbound.text and inbound.text.casefold().count(handle) <= text.casefold().count(
            handle)
    assert inbound.is_group == (chat_id < 0)
    assert inbound.mentioned == (mention_at is not None)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="*`", codec="utf-8")))
def test_html_conversion_shows_the_original_text(text: str) -> None:
    assert visible_text(to_html(text)) == text

