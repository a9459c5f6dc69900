"""What is Viber's own: its signature, set_webhook, the welcome message, status codes, callbacks.

Everything a channel shares (journal first, splitting, retries, custody of parts...) is the
contract suite's (tests/contract, harness_viber.py).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from connectors.viber import runtime
from connectors.viber._parse import Ignored, Notice, parse_callback
from connectors.viber.manifest import ViberConfig
from connectors.viber.runtime import ViberConnector
from pyclaw_app.channels import WebhookRejected, WebhookRequest
from pyclaw_app.errors import DeliveryUncertain, FatalConnectorError, RetryableError
from pyclaw_app.model import Address, ChannelState, Inbound
from tests.conftest import GatewayFactory
from tests.contract.harness_viber import ViberHarness
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.viber_api import ACCOUNT_ID, ViberFake, user_id
from tests.support import RecordingContext
from tests.test_attachments import PNG
from tests.test_attachments_channels import online, reply_to

URL = "https://bot.example.com/webhook/viber"
USER = user_id(1)
SDK_TOKEN = "44dafb7e0f40021e-61a47a1e6778d187-f2c5a676a07050b3"
"""tests/api/test_api.py of github.com/Viber/viber-bot-python: its bot token, body and
signature, verbatim."""
SDK_BODY = b'{"event":"webhook","timestamp":4977069964384421269,"message_token":1478683725125}'
SDK_SIGNATURE = "d21b343448c8aee33b8e93768ef6ceb64a6ba6163099973a2b8bd028fea510ef"
SDK_UNICODE_REQUEST = {  # tests/api/test_data/unicode_request there (its text shortened)
    "event": "message", "timestamp": 1457764197627, "message_token": 4912661846655238145,
    "sender": {"id": "01234567890A=",
               "name": "ふで都急ぼちラり面関ごル期販ずラ否裁ぞるめ数努むや正記味てょ",
               "avatar": "http://avatar_url", "api_version": 2},
    "message": {"type": "text",
                "text": "批封廟根縄華勢田郎報株聞。変宝長独部鉱内出殺反提似惑金参勧車査真測。",
                "tracking_data": "אל תעקוב אחרי!"},
    "silent": False}


@pytest.fixture
async def fake() -> AsyncIterator[ViberFake]:
    async with ViberFake() as server:
        yield server  # type: ignore[misc]


def connector(fake: ViberFake | None = None, **values: Any) -> ViberConnector:
    config: dict[str, Any] = {
        "auth_token": SecretStr(fake.auth_token if fake else SDK_TOKEN), "webhook_url": URL,
        "api_base": fake.api_base if fake else "http://127.0.0.1:9/pa"}
    config.update({k: SecretStr(v) if k == "auth_token" else v for k, v in values.items()})
    return ViberConnector("viber", ViberConfig(**config))


@pytest.fixture
async def running(fake: ViberFake) -> AsyncIterator[tuple[ViberConnector, RecordingContext]]:
    conn, ctx = connector(fake), RecordingContext(channel="viber")
    await conn.start(ctx)
    yield conn, ctx
    await conn.stop()


async def post(conn: ViberConnector, fake: ViberFake, event: dict[str, Any] | bytes, *,
               token: str | None = None) -> tuple[int, str | bytes]:
    body, headers = fake.signed(event, token=token)
    answer = await conn.handle_webhook(WebhookRequest("POST", body, headers))
    return answer.status, answer.body


# ---- signature ------------------------------------------------------------------------------

def test_the_published_signature_vector_passes_and_others_do_not() -> None:
    verify = connector()._verify  # the SDK's token
    verify(WebhookRequest("POST", SDK_BODY, {"x-viber-content-signature": SDK_SIGNATURE}))
    for sent, headers in ((SDK_BODY, {"X-Viber-Content-Signature": "aaaaaaaaaaaaaaaaaaaaaa"}),
                          (SDK_BODY, {}),
                          (SDK_BODY + b" ", {"X-Viber-Content-Signature": SDK_SIGNATURE}),
                          (SDK_BODY, {"X-Viber-Content-Signature": SDK_SIGNATURE.upper()[:-1]})):
        with pytest.raises(WebhookRejected) as rejected:
            verify(WebhookRequest("POST", sent, headers))
        assert rejected.value.status == 401
    with pytest.raises(WebhookRejected) as rejected:
        verify(WebhookRequest("GET", SDK_BODY, {"X-Viber-Content-Signature": SDK_SIGNATURE}))
    assert rejected.value.status == 405


async def test_a_forged_request_is_refused_before_anything_is_read(
        running: tuple[ViberConnector, RecordingContext], fake: ViberFake) -> None:
    conn, ctx = running
    status, _ = await post(conn, fake, fake.message_event(USER, "hi"), token="wrong")
    assert status == 401
    status, _ = await post(conn, fake, b"not json at all", token="wrong")
    assert status == 401  # not 400: the body was never parsed
    assert ctx.inbound == [] and any("rejected" in m for _, m, _ in ctx.logs)
    status, _ = await post(conn, fake, b"not json at all")
    assert status == 400


# ---- set_webhook on start -------------------------------------------------------------------

async def test_start_sets_the_webhook_and_answers_vibers_check(fake: ViberFake) -> None:
    conn, ctx = connector(fake), RecordingContext(channel="viber")
    checks: list[int] = []

    async def through_the_connector(body: bytes, headers: dict[str, str]) -> int:
        answer = await conn.handle_webhook(WebhookRequest("POST", body, headers))
        checks.append(answer.status)
        return answer.status

    fake.webhook_check = through_the_connector
    await conn.start(ctx)
    try:
        assert checks == [200]  # Viber's callback came while set_webhook was in flight
        assert fake.webhook_url == URL
        assert set(fake.event_types) == {"delivered", "seen", "failed", "subscribed",
                                         "unsubscribed", "conversation_started"}
        assert ctx.states[-1] == (ChannelState.ONLINE, "connected as pyclaw")
        assert any("checked the webhook" in m for _, m, _ in ctx.logs)
        assert ctx.inbound == []
    finally:
        await conn.stop()


@pytest.mark.parametrize(("url", "check", "words"), [
    ("http://bot.example.com/webhook/viber", None, "status 1 invalidUrl"),
    (URL, 500, "status 1 invalidUrl"),  # our webhook did not answer Viber's check with 200
])
async def test_a_webhook_viber_refuses_fails_the_start_clearly(
        fake: ViberFake, url: str, check: int | None, words: str) -> None:
    if check is not None:
        async def refuse(body: bytes, headers: dict[str, str]) -> int:
            return check
        fake.webhook_check = refuse
    ctx = RecordingContext(channel="viber")
    with pytest.raises(FatalConnectorError) as failed:
        await connector(fake, webhook_url=url).start(ctx)
    message = str(failed.value)
    assert f"could not set the Viber webhook to {url}" in message and words in message
    assert "public HTTPS" in message
    assert ctx.states[-1][0] is ChannelState.OFFLINE and fake.webhook_url == ""


async def test_a_set_webhook_outage_is_fatal_too_and_no_url_is_refused_before_calling(
        fake: ViberFake) -> None:
    fake.fail_next("set_webhook", 503)
    with pytest.raises(FatalConnectorError, match=r"could not set the Viber webhook.*HTTP 503"):
        await connector(fake).start(RecordingContext(channel="viber"))
    calls = fake.calls("get_account_info")
    with pytest.raises(FatalConnectorError, match="webhook_url is not set"):
        await connector(fake, webhook_url=" ").start(RecordingContext(channel="viber"))
    assert fake.calls("get_account_info") == calls


# ---- conversation_started and the welcome message -------------------------------------------

async def test_conversation_started_answers_with_the_welcome_message(fake: ViberFake) -> None:
    conn, ctx = connector(fake, welcome_message="Hi! Write anything to start.",
                          bot_name="Helper"), RecordingContext(channel="viber")
    await conn.start(ctx)
    try:
        answer = await conn.handle_webhook(WebhookRequest("POST", *fake.signed(
            fake.conversation_started_event(USER, name="Ann", context="ad-campaign"))))
        assert answer.status == 200 and answer.content_type == "application/json"
        assert json.loads(answer.body) == {"sender": {"name": "Helper"}, "type": "text",
                                           "text": "Hi! Write anything to start."}
        assert ctx.inbound == []  # not a message: nothing journaled
        assert any("Ann opened the chat (not subscribed yet)" in m for _, m, _ in ctx.logs)
        # Opening the chat does not subscribe: the welcome was the one message allowed.
        with pytest.raises(FatalConnectorError, match="has not subscribed to the bot"):
            await conn.send_part(Address("viber", USER), "hello?", None)
        assert fake.sent == []
    finally:
        await conn.stop()


async def test_conversation_started_without_a_welcome_message_is_only_logged(
        running: tuple[ViberConnector, RecordingContext], fake: ViberFake) -> None:
    conn, ctx = running
    status, body = await post(conn, fake, fake.conversation_started_event(USER))
    assert (status, body) == (200, "")
    assert any("opened the chat" in m for _, m, _ in ctx.logs) and ctx.inbound == []


# ---- status codes -> errors -----------------------------------------------------------------

async def test_a_subscriber_is_answered_with_the_bot_name_and_unsubscribing_ends_that(
        running: tuple[ViberConnector, RecordingContext], fake: ViberFake) -> None:
    conn, ctx = running
    assert (await post(conn, fake, fake.message_event(USER, "hello")))[0] == 200
    pid = await conn.send_part(ctx.inbound[0].address, "hi there", ctx.inbound[0].platform_id)
    assert [(m.to, m.text, m.sender_name, str(m.token)) for m in fake.sent] == [
        (USER, "hi there", "pyclaw", pid)]  # no bot_name: the account's own name
    assert (await post(conn, fake, fake.unsubscribed_event(USER)))[0] == 200
    assert any("unsubscribed" in m for _, m, _ in ctx.logs)
    with pytest.raises(FatalConnectorError, match="status 6 receiverNotSubscribed"):
        await conn.send_part(Address("viber", USER), "still there?", None)
    with pytest.raises(FatalConnectorError, match=r"status 5 receiverNotRegistered.*not a "
                       r"Viber user"):
        await conn.send_part(Address("viber", user_id(404)), "hello", None)


@pytest.mark.parametrize(("status", "error", "words", "wait"), [
    (429, RetryableError, "status 12 tooManyRequests", runtime.RATE_LIMIT_WAIT),
    (500, RetryableError, "HTTP 500", None),
    (400, FatalConnectorError, "status 3 badData", None),
    (401, FatalConnectorError, "status 2 invalidAuthToken: check auth_token", None),
    (403, FatalConnectorError, "status 7 publicAccountBlocked", None),
])
async def test_vibers_answers_map_to_the_kits_errors(
        running: tuple[ViberConnector, RecordingContext], fake: ViberFake, status: int,
        error: type[Exception], words: str, wait: float | None) -> None:
    conn, _ = running
    await post(conn, fake, fake.message_event(USER, "hello"))
    fake.fail_next("send_message", status)
    with pytest.raises(error, match=words) as raised:
        await conn.send_part(Address("viber", USER), "hi", None)
    assert not isinstance(raised.value, DeliveryUncertain)
    if isinstance(raised.value, RetryableError):
        assert raised.value.retry_after == wait
    assert fake.sent == []
    assert fake.auth_token not in str(raised.value)


async def test_a_lost_send_answer_is_uncertain_and_an_unknown_status_retryable(
        running: tuple[ViberConnector, RecordingContext], fake: ViberFake) -> None:
    conn, _ = running
    await post(conn, fake, fake.message_event(USER, "hello"))
    fake.lose_next_answer("send_message")
    with pytest.raises(DeliveryUncertain):
        await conn.send_part(Address("viber", USER), "hi", None)
    assert len(fake.sent) == 1  # it went out; the gateway will not send it again
    refusal = runtime._refusal("send_message", 99, "generalError")
    assert isinstance(refusal, RetryableError) and not isinstance(refusal, FatalConnectorError)
    assert "status 99 generalError" in str(refusal)


async def test_a_bad_token_fails_the_start_and_the_probe_says_who_we_are(
        fake: ViberFake) -> None:
    with pytest.raises(FatalConnectorError, match="invalidAuthToken: check auth_token"):
        await connector(fake, auth_token="wrong").start(RecordingContext(channel="viber"))
    assert fake.webhook_url == ""  # the token is checked before the webhook is set
    bad = await connector(fake, auth_token="wrong").probe()
    assert not bad.ok and "invalidAuthToken" in bad.message and "wrong" not in bad.message
    no_url = await connector(fake, webhook_url="").probe()
    assert not no_url.ok and "webhook_url is not set" in no_url.message
    good = await connector(fake).probe()
    assert good.ok and good.message == "connected as pyclaw"


# ---- callbacks ------------------------------------------------------------------------------

async def test_receipts_and_subscriptions_are_logged_and_never_journaled(
        running: tuple[ViberConnector, RecordingContext], fake: ViberFake) -> None:
    conn, ctx = running
    for event in (fake.subscribed_event(USER, name="Ann"),
                  fake.receipt_event("delivered", USER, 42),
                  fake.receipt_event("seen", USER, 42),
                  fake.receipt_event("failed", USER, 43, "Unsupported message type")):
        assert (await post(conn, fake, event))[0] == 200
    assert ctx.inbound == []
    assert ("warning", "Viber could not deliver message 43 to " + USER
            + ": Unsupported message type") in [(lv, m) for lv, m, _ in ctx.logs]
    assert any(m == "Ann subscribed to the bot" for _, m, _ in ctx.logs)


async def test_a_message_is_journaled_with_its_token_sender_and_account(
        running: tuple[ViberConnector, RecordingContext], fake: ViberFake) -> None:
    conn, ctx = running
    event = fake.message_event(USER, "hello", name="Ann")
    assert (await post(conn, fake, event))[0] == 200
    assert (await post(conn, fake, fake.redelivery(str(event["message_token"]))))[0] == 200
    [inbound] = ctx.inbound
    assert inbound.platform_id == str(event["message_token"])
    assert inbound.address == Address("viber", USER, account=ACCOUNT_ID)
    assert (inbound.sender_id, inbound.sender_name, inbound.is_group) == (USER, "Ann", False)
    assert inbound.ts == pytest.approx(event["timestamp"] / 1000)


def test_the_sdk_unicode_request_parses() -> None:
    inbound = parse_callback(SDK_UNICODE_REQUEST, channel="viber")
    assert isinstance(inbound, Inbound)
    assert inbound.platform_id == "4912661846655238145"
    assert inbound.text == SDK_UNICODE_REQUEST["message"]["text"]  # type: ignore[index]
    assert inbound.sender_name == SDK_UNICODE_REQUEST["sender"]["name"]  # type: ignore[index]
    assert inbound.ts == pytest.approx(1457764197.627)


@pytest.mark.parametrize(("message", "kind", "name", "url", "size", "text"), [
    ({"type": "picture", "media": "https://dl.viber/p.jpg", "text": "look",
      "file_name": "p.jpg", "file_size": 9}, "image", "p.jpg", "https://dl.viber/p.jpg", 9,
     "look"),
    ({"type": "video", "media": "https://dl.viber/v.mp4", "size": 1200, "duration": 3},
     "video", "", "https://dl.viber/v.mp4", 1200, ""),
    ({"type": "file", "media": "https://dl.viber/f", "file_name": "cv.pdf", "size": 77},
     "file", "cv.pdf", "https://dl.viber/f", 77, ""),
    ({"type": "sticker", "sticker_id": 46105, "media": "https://dl.viber/s.png"},
     "sticker", "sticker 46105", "https://dl.viber/s.png", None, ""),
    ({"type": "location", "location": {"lat": 50.76891, "lon": 6.11499}},
     "location", "", "geo:50.76891,6.11499", None, ""),
    ({"type": "contact", "contact": {"name": "Itamar", "phone_number": "+972511123123"}},
     "contact", "Itamar", "tel:+972511123123", None, ""),
])
def test_media_becomes_attachment_metadata_with_its_url(
        message: dict[str, Any], kind: str, name: str, url: str, size: int | None,
        text: str) -> None:
    event = {"event": "message", "timestamp": 1, "message_token": 77,
             "sender": {"id": USER}, "message": message}
    inbound = parse_callback(event, channel="viber")
    assert isinstance(inbound, Inbound) and inbound.text == text
    [attachment] = inbound.attachments
    assert (attachment.kind, attachment.name, attachment.url, attachment.size,
            attachment.platform_id) == (kind, name, url, size, "77")


def test_links_are_text_and_unknown_shapes_are_skipped_or_malformed() -> None:
    base = {"event": "message", "timestamp": 1, "message_token": 5, "sender": {"id": USER}}
    link = parse_callback({**base, "message": {"type": "url", "media": "https://x.y"}},
                          channel="viber")
    assert isinstance(link, Inbound) and link.text == "https://x.y" and not link.attachments
    assert isinstance(parse_callback({**base, "message": {"type": "rich_media"}},
                                     channel="viber"), Ignored)
    assert isinstance(parse_callback({"event": "client_status"}, channel="viber"), Ignored)
    for broken in ({**base, "message": {"type": "text"}},
                   {**base, "message": {"type": "location", "location": {"lat": "1"}}},
                   {**base, "message_token": True, "message": {"type": "text", "text": "a"}},
                   {"event": "failed", "message_token": 1}, [], {"event": 3}):
        assert parse_callback(broken, channel="viber") is None
    started = parse_callback({"event": "conversation_started", "message_token": 1,
                              "type": "open", "user": {"id": USER}, "subscribed": True},
                             channel="viber")
    assert started == Notice("conversation_started", user_id=USER, message_token="1",
                             detail="open", subscribed=True)


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=12), inner, max_size=5), max_leaves=25))
def test_the_parser_never_raises_on_any_json(value: Any) -> None:
    parse_callback(value, channel="viber")


_ANY = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8) | st.lists(
    st.integers(), max_size=2) | st.dictionaries(st.text(max_size=4), st.integers(), max_size=2)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(["message", "conversation_started", "subscribed", "unsubscribed",
                        "delivered", "seen", "failed", "webhook"]),
       st.fixed_dictionaries({}, optional={
           "type": st.sampled_from(["text", "picture", "video", "file", "sticker", "location",
                                    "contact", "url"]) | _ANY,
           "text": _ANY, "media": _ANY, "file_name": _ANY, "file_size": _ANY, "size": _ANY,
           "sticker_id": _ANY, "location": _ANY | st.fixed_dictionaries(
               {}, optional={"lat": _ANY, "lon": _ANY}),
           "contact": _ANY | st.fixed_dictionaries({}, optional={"name": _ANY,
                                                                 "phone_number": _ANY})}),
       st.fixed_dictionaries({}, optional={"id": _ANY, "name": _ANY}), _ANY, _ANY)
def test_the_parser_never_raises_on_callbacks_of_any_shape(
        event: str, message: dict[str, Any], user: dict[str, Any], token: Any,
        stamp: Any) -> None:
    parse_callback({"event": event, "timestamp": stamp, "message_token": token,
                    "sender": user, "user": user, "user_id": token, "message": message,
                    "subscribed": stamp, "desc": token, "type": token}, channel="viber")


# ---- media ----------------------------------------------------------------------------------

@pytest.fixture
async def harness() -> AsyncIterator[ViberHarness]:
    harness = ViberHarness()
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()


async def test_a_picture_comes_from_vibers_cdn_without_the_token_and_is_seen(
        harness: ViberHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    await online(harness, fake_llm, make_gateway)
    fake, chat = harness.fake, harness.chat(0)
    url = fake.media_url(PNG, "image/png")
    await harness.deliver(fake.signed(fake.message_event(
        chat, "what is this?", kind="picture", media=url, file_name="photo.png",
        file_size=len(PNG))))
    assert await reply_to(harness, chat, 0) == "Echo: what is this?"
    assert fake_llm.images == [("image/png", PNG)]
    [(_, headers)] = fake.downloads
    assert "X-Viber-Auth-Token" not in headers  # the token stayed home


async def test_an_expired_viber_link_is_explained_to_the_sender(
        harness: ViberHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    gateway = await online(harness, fake_llm, make_gateway)
    fake, chat = harness.fake, harness.chat(1)
    await harness.deliver(fake.signed(fake.message_event(
        chat, kind="picture", media=fake.media_url(PNG, "image/png", ttl=-60),
        file_name="old.png")))
    assert await reply_to(harness, chat, 0) == ("I could not read what you sent: old.png: "
                                                "Viber's link to the file has expired (its "
                                                "media links are valid for a limited time).")
    assert fake.downloads == [] and fake_llm.requests == []
    assert await gateway.store.logs.page(channel="viber", search="has expired")
