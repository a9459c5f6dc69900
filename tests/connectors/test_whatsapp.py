"""What is WhatsApp's own: the GET verification, X-Hub-Signature-256, the webhook body, statuses,
the 24-hour customer-service window, read receipts, media ids and the phone number probe.

Everything a channel shares (journal first, splitting, retries, 429...) is the contract
suite's (tests/contract, harness_whatsapp.py).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from connectors.whatsapp._parse import Ignored, Malformed, Message, StatusUpdate, parse_payload
from connectors.whatsapp.manifest import SPEC, WhatsAppConfig
from connectors.whatsapp.runtime import WhatsAppConnector
from pyclaw_app.channels import WebhookRejected, WebhookRequest
from pyclaw_app.channels.contract import AttachmentUnavailable
from pyclaw_app.control.webhooks import WebhookServer
from pyclaw_app.errors import FatalConnectorError, RetryableError
from pyclaw_app.model import Address, ChannelState
from tests.conftest import GatewayFactory, provider_section
from tests.contract.harness_whatsapp import WhatsAppHarness
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.whatsapp_api import (
    DISPLAY_NUMBER,
    PHONE_NUMBER_ID,
    VERIFIED_NAME,
    WhatsAppFake,
)
from tests.support import RecordingContext, eventually
from tests.test_attachments import PNG
from tests.test_attachments_channels import online, reply_to

USER = "16505551234"
SECRETS = ("access_token", "app_secret", "verify_token")


@pytest.fixture
async def fake() -> AsyncIterator[WhatsAppFake]:
    async with WhatsAppFake() as server:
        yield server  # type: ignore[misc]


def connector(fake: WhatsAppFake | None = None, **values: Any) -> WhatsAppConnector:
    config: dict[str, Any] = {
        "access_token": fake.access_token if fake else "t",
        "app_secret": fake.app_secret if fake else "app_secret",
        "verify_token": fake.verify_token if fake else "verify_token",
        "phone_number_id": PHONE_NUMBER_ID,
        "api_base": fake.url if fake else "http://127.0.0.1:9", **values}
    return WhatsAppConnector("whatsapp", WhatsAppConfig(**{
        k: SecretStr(v) if k in SECRETS else v for k, v in config.items()}))


async def started(fake: WhatsAppFake, **values: Any
                  ) -> tuple[WhatsAppConnector, RecordingContext]:
    conn, ctx = connector(fake, **values), RecordingContext(channel="whatsapp")
    await conn.start(ctx)
    return conn, ctx


@pytest.fixture
async def running(fake: WhatsAppFake
                  ) -> AsyncIterator[tuple[WhatsAppConnector, RecordingContext]]:
    conn, ctx = await started(fake)
    yield conn, ctx
    await conn.stop()


async def post(conn: WhatsAppConnector, fake: WhatsAppFake, *, messages: Sequence[Any] = (),
               statuses: Sequence[Any] = (), secret: str | None = None) -> int:
    body, headers = fake.signed(fake.payload(messages=messages, statuses=statuses),
                                secret=secret)
    return (await conn.handle_webhook(WebhookRequest("POST", body, headers))).status


def get(conn: WhatsAppConnector, **query: str) -> WebhookRequest:
    return WebhookRequest("GET", b"", {}, {f"hub.{k}": v for k, v in query.items()})


# ---- the GET verification ---------------------------------------------------------------------

async def test_the_verification_request_echoes_the_challenge_only_for_our_token(
        running: tuple[WhatsAppConnector, RecordingContext], fake: WhatsAppFake) -> None:
    conn, ctx = running
    good = await conn.handle_webhook(get(conn, mode="subscribe", challenge="1158201444",
                                         verify_token=fake.verify_token))
    assert (good.status, good.body) == (200, "1158201444")
    wrong = await conn.handle_webhook(get(conn, mode="subscribe", challenge="1158201444",
                                          verify_token="guess"))
    missing = await conn.handle_webhook(get(conn, mode="subscribe", challenge="1158201444"))
    assert wrong.status == missing.status == 403
    assert "1158201444" not in str(wrong.body) + str(missing.body)
    no_challenge = await conn.handle_webhook(get(conn, mode="subscribe",
                                                 verify_token=fake.verify_token))
    not_subscribe = await conn.handle_webhook(get(conn, mode="unsubscribe", challenge="1",
                                                  verify_token=fake.verify_token))
    assert no_challenge.status == not_subscribe.status == 400
    assert sum("rejected" in m for _, m, _ in ctx.logs) == 4
    assert ctx.inbound == []


async def test_the_verification_request_through_the_real_webhook_server(
        fake: WhatsAppFake, fake_llm: Any, make_gateway: Any) -> None:
    gw = await make_gateway({"providers": [provider_section(fake_llm)], "channels": {
        "whatsapp": {"type": "whatsapp", "access_token": fake.access_token,
                     "app_secret": fake.app_secret, "verify_token": fake.verify_token,
                     "phone_number_id": PHONE_NUMBER_ID, "api_base": fake.url}}})
    await eventually(lambda: gw.channels["whatsapp"].state == ChannelState.ONLINE)
    server = WebhookServer(gw, "127.0.0.1", 0)
    await server.start()
    try:
        url = f"{server.url}/webhook/whatsapp"
        assert await fake.verify_subscription(url, token=fake.verify_token,
                                              challenge="987654") == (200, "987654")
        status, body = await fake.verify_subscription(url, token="wrong", challenge="987654")
        assert status == 403 and "987654" not in body
        assert (await fake.verify_subscription(url, challenge="987654"))[0] == 403
    finally:
        await server.stop()


# ---- signature ---------------------------------------------------------------------------------

# GitHub's documented X-Hub-Signature-256 example (the same scheme as Meta's: "sha256=" + hex
# HMAC-SHA256 of the raw body); Meta publishes no vector of its own.
DOC_SECRET = "It's a Secret to Everybody"
DOC_PAYLOAD = b"Hello, World!"
DOC_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_the_published_signature_vector_passes_and_others_do_not() -> None:
    verify = connector(app_secret=DOC_SECRET)._verify
    verify(WebhookRequest("POST", DOC_PAYLOAD, {"x-hub-signature-256": DOC_SIGNATURE}))
    for body, headers in (
            (DOC_PAYLOAD, {}),
            (DOC_PAYLOAD, {"X-Hub-Signature-256": DOC_SIGNATURE.removeprefix("sha256=")}),
            (DOC_PAYLOAD, {"X-Hub-Signature": "sha1=" + "0" * 40}),  # the old SHA-1 header
            (DOC_PAYLOAD + b" ", {"X-Hub-Signature-256": DOC_SIGNATURE}),
            (DOC_PAYLOAD, {"X-Hub-Signature-256": DOC_SIGNATURE[:-1] + "f"})):
        with pytest.raises(WebhookRejected) as rejected:
            verify(WebhookRequest("POST", body, headers))
        assert rejected.value.status == 401


async def test_a_forged_request_is_refused_before_anything_is_read(
        running: tuple[WhatsAppConnector, RecordingContext], fake: WhatsAppFake) -> None:
    conn, ctx = running
    assert await post(conn, fake, messages=[fake.message(USER, "hi")], secret="wrong") == 401
    unsigned_garbage = WebhookRequest("POST", b"{not json", {})
    assert (await conn.handle_webhook(unsigned_garbage)).status == 401  # not 400: unread
    assert ctx.inbound == [] and any("rejected" in m for _, m, _ in ctx.logs)


# ---- the webhook body ------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=12), inner, max_size=5), max_leaves=25))
def test_the_parser_never_raises_on_any_json(value: Any) -> None:
    parse_payload(value, channel="whatsapp", phone_number_id=PHONE_NUMBER_ID)


_ANY = st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.lists(
    st.integers(), max_size=2) | st.dictionaries(st.text(max_size=6), st.text(max_size=4),
                                                 max_size=2)
_KIND = st.sampled_from(["text", "image", "audio", "video", "document", "sticker", "location",
                         "button", "interactive", "reaction", "unsupported"]) | _ANY


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({"from": _ANY, "id": _ANY, "type": _KIND}, optional={
    "timestamp": _ANY, "text": _ANY, "image": _ANY, "document": _ANY, "location": _ANY,
    "button": _ANY, "interactive": _ANY, "errors": _ANY}),
       st.fixed_dictionaries({"id": _ANY, "status": _ANY}, optional={
           "recipient_id": _ANY, "errors": st.lists(_ANY, max_size=2)}),
       _ANY)
def test_the_parser_never_raises_on_near_valid_bodies(message: Any, status: Any,
                                                     metadata: Any) -> None:
    for meta in (metadata, {"phone_number_id": PHONE_NUMBER_ID}):
        body = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
            {"field": "messages", "value": {"metadata": meta, "messages": [message],
                                             "statuses": [status],
                                             "contacts": [{"wa_id": message["from"]}]}}]}]}
        for item in parse_payload(body, channel="whatsapp"):
            if isinstance(item, Message):
                assert item.inbound.platform_id and item.inbound.address.chat


def test_text_media_and_location_parse_with_their_ids_and_nothing_downloaded() -> None:
    fake = WhatsAppFake()
    image = fake.media(USER, "image", caption="Taj Mahal")
    document = fake.media(USER, "document", filename="receipt.pdf")
    audio, video, sticker = (fake.media(USER, k) for k in ("audio", "video", "sticker"))
    location = fake.message(USER, kind="location", location={
        "latitude": 37.44221496582, "longitude": -122.16165924072, "name": "Philz Coffee",
        "address": "101 Forest Ave, Palo Alto, CA 94301"})
    text = fake.message(USER, "Does it come in another color?")
    items = parse_payload(fake.payload(messages=[text, image, document, audio, video, sticker,
                                                 location]),
                          channel="whatsapp", phone_number_id=PHONE_NUMBER_ID)
    inbound = [i.inbound for i in items if isinstance(i, Message)]
    assert len(inbound) == 7
    first = inbound[0]
    assert (first.text, first.platform_id, first.address.chat, first.sender_id) == (
        "Does it come in another color?", text["id"], USER, USER)
    assert first.address.account == PHONE_NUMBER_ID and not first.is_group
    assert first.sender_name == "User 1234" and first.attachments == ()
    assert first.platform_id.startswith("wamid.")
    kinds = [(m.attachments[0].kind, m.attachments[0].platform_id) for m in inbound[1:6]]
    assert kinds == [("image", image["image"]["id"]), ("file", document["document"]["id"]),
                     ("audio", audio["audio"]["id"]), ("video", video["video"]["id"]),
                     ("sticker", sticker["sticker"]["id"])]
    assert inbound[1].text == "Taj Mahal" and inbound[1].attachments[0].mime == "image/jpeg"
    assert inbound[2].attachments[0].name == "receipt.pdf"
    assert all(a.url is None for m in inbound[1:6] for a in m.attachments)
    place = inbound[6].attachments[0]
    assert (place.kind, place.name, place.url) == (
        "location", "Philz Coffee", "geo:37.44221496582,-122.16165924072")


def test_other_numbers_reactions_and_broken_items_are_told_apart() -> None:
    fake = WhatsAppFake()
    body = fake.payload(messages=[
        {"from": USER, "id": "wamid.r", "timestamp": "1", "type": "reaction",
         "reaction": {"message_id": "wamid.x", "emoji": "👍"}},
        {"from": USER, "id": "wamid.b", "timestamp": "1", "type": "image", "image": {}},
        {"from": USER, "id": "wamid.q", "timestamp": "1", "type": "button",
         "button": {"text": "Yes, continue", "payload": "yes"}}])
    items = parse_payload(body, channel="whatsapp", phone_number_id=PHONE_NUMBER_ID)
    assert isinstance(items[0], Ignored) and isinstance(items[1], Malformed)
    assert isinstance(items[2], Message) and items[2].inbound.text == "Yes, continue"
    other = parse_payload(body, channel="whatsapp", phone_number_id="999")
    assert [type(i) for i in other] == [Ignored]
    assert parse_payload({"object": "page"}, channel="whatsapp") == [Malformed("no entry array")]


async def test_a_redelivery_carries_the_same_id_and_is_submitted_once(
        running: tuple[WhatsAppConnector, RecordingContext], fake: WhatsAppFake) -> None:
    conn, ctx = running
    message = fake.message(USER, "once")
    assert await post(conn, fake, messages=[message]) == 200
    assert await post(conn, fake, messages=[fake.redelivery(message["id"])]) == 200
    assert [m.platform_id for m in ctx.inbound] == [message["id"]]


# ---- statuses ----------------------------------------------------------------------------------

async def test_statuses_are_not_journaled_and_failed_ones_are_logged_with_their_title(
        running: tuple[WhatsAppConnector, RecordingContext], fake: WhatsAppFake) -> None:
    conn, ctx = running
    await post(conn, fake, messages=[fake.message(USER, "hi")])
    mid = await conn.send_part(Address("whatsapp", USER, PHONE_NUMBER_ID), "hello", None)
    ctx.logs.clear()
    statuses = [fake.status(mid, s) for s in ("sent", "delivered", "read")]
    failed = fake.status(mid, "failed", error=(
        131026, "Message undeliverable", "Message Undeliverable."))
    assert await post(conn, fake, statuses=[*statuses, failed]) == 200
    assert len(ctx.inbound) == 1  # only the user's message
    errors = [(m, d) for level, m, d in ctx.logs if level == "error"]
    assert len(errors) == 1 and len(ctx.logs) == 1
    message, data = errors[0]
    assert mid in message and USER in message and "Message undeliverable" in message
    assert "131026" in message and data["code"] == 131026
    parsed = parse_payload(fake.payload(statuses=[failed]), channel="whatsapp")
    assert parsed == [StatusUpdate(mid, "failed", USER, "Message undeliverable", 131026,
                                   "Message Undeliverable.")]


# ---- the 24-hour window ---------------------------------------------------------------------

async def test_outside_the_window_a_reply_is_refused_with_a_clear_error(
        running: tuple[WhatsAppConnector, RecordingContext], fake: WhatsAppFake) -> None:
    conn, ctx = running
    address = Address("whatsapp", USER, PHONE_NUMBER_ID)
    with pytest.raises(FatalConnectorError) as never_wrote:  # no message from them at all
        await conn.send_part(address, "hello?", None)
    await post(conn, fake, messages=[fake.message(USER, "hi")])
    assert await conn.send_part(address, "inside the window", None)
    fake.close_window(USER)
    with pytest.raises(FatalConnectorError) as refused:
        await conn.send_part(address, "a day later", None)
    for exc in (never_wrote.value, refused.value):
        said = str(exc)
        assert "24 hours" in said and USER in said and "131047" in said
        assert "template_name" in said  # what to do about it
    assert [m.kind for m in fake.sent] == ["text"]  # no template: none configured
    assert not any("template" in m for _, m, _ in ctx.logs)


async def test_with_a_template_configured_the_template_re_engages_the_user(
        fake: WhatsAppFake) -> None:
    conn, ctx = await started(fake, template_name="hello_world", template_language="en_US")
    try:
        address = Address("whatsapp", USER, PHONE_NUMBER_ID)
        await post(conn, fake, messages=[fake.message(USER, "hi")])
        fake.close_window(USER)
        with pytest.raises(FatalConnectorError) as refused:
            await conn.send_part(address, "a day later", None)
        assert "sent the template 'hello_world' instead" in str(refused.value)
        assert [(m.to, m.kind, m.text, m.language) for m in fake.sent] == [
            (USER, "template", "hello_world", "en_US")]
        assert any(level == "warning" and "template 'hello_world'" in m and USER in m
                   for level, m, _ in ctx.logs)
        with pytest.raises(FatalConnectorError) as again:  # a retry: no second template
            await conn.send_part(address, "a day later", None)
        assert "already sent" in str(again.value) and len(fake.sent) == 1
        answer = fake.message(USER, "Yes, continue")  # they answered: the window reopens
        await post(conn, fake, messages=[answer])
        await conn.send_part(address, "welcome back", answer["id"])
        assert [m.kind for m in fake.sent] == ["template", "text"]
        fake.close_window(USER)  # a new closed window gets the template again
        with pytest.raises(FatalConnectorError, match="sent the template"):
            await conn.send_part(address, "another day later", None)
        assert [m.kind for m in fake.sent] == ["template", "text", "template"]
    finally:
        await conn.stop()


async def test_a_message_failed_later_with_131047_gets_the_template_too(
        fake: WhatsAppFake) -> None:
    """Meta may accept a message (200) and fail it in a status webhook instead."""
    conn, ctx = await started(fake, template_name="hello_world")
    try:
        await post(conn, fake, messages=[fake.message(USER, "hi")])
        mid = await conn.send_part(Address("whatsapp", USER, PHONE_NUMBER_ID), "late", None)
        failed = fake.status(mid, "failed", error=(
            131047, "Re-engagement message", "Message failed to send because more than 24 "
            "hours have passed since the customer last replied to this number."))
        assert await post(conn, fake, statuses=[failed]) == 200
        assert [(m.kind, m.text) for m in fake.sent] == [("text", "late"),
                                                         ("template", "hello_world")]
        errors = [m for level, m, _ in ctx.logs if level == "error"]
        assert len(errors) == 1 and "Re-engagement message" in errors[0]
        assert "sent the template 'hello_world' instead" in errors[0]
        assert await post(conn, fake, statuses=[failed]) == 200  # redelivered: no second one
        assert len(fake.sent) == 2 and len(ctx.inbound) == 1
    finally:
        await conn.stop()


async def test_a_template_that_cannot_be_sent_is_said_too(fake: WhatsAppFake) -> None:
    conn, ctx = await started(fake, template_name="not_approved")
    try:
        fake.close_window(USER)
        with pytest.raises(FatalConnectorError) as refused:
            await conn.send_part(Address("whatsapp", USER, PHONE_NUMBER_ID), "hi", None)
        assert "could not be sent either" in str(refused.value) and "132001" in str(
            refused.value)
        assert any(level == "error" and "not_approved" in m for level, m, _ in ctx.logs)
        assert fake.sent == []
    finally:
        await conn.stop()


# ---- read receipts ------------------------------------------------------------------------------

async def test_the_answered_message_is_marked_read_before_its_first_part(
        running: tuple[WhatsAppConnector, RecordingContext], fake: WhatsAppFake) -> None:
    conn, _ = running
    address = Address("whatsapp", USER, PHONE_NUMBER_ID)
    message = fake.message(USER, "hi")
    await post(conn, fake, messages=[message])
    assert fake.reads == []  # stored is not read: the gateway may not answer it
    await conn.send_part(address, "part 1", message["id"])
    await conn.send_part(address, "part 2", None)
    assert fake.reads == [(message["id"], False)]
    assert [m.quoted for m in fake.sent] == [message["id"], None]


async def test_typing_is_a_read_receipt_with_the_typing_indicator(
        running: tuple[WhatsAppConnector, RecordingContext], fake: WhatsAppFake) -> None:
    conn, _ = running
    address = Address("whatsapp", USER, PHONE_NUMBER_ID)
    await conn.typing(address)  # nothing from this chat yet: nothing to mark
    first, second = fake.message(USER, "one"), fake.message(USER, "two")
    await post(conn, fake, messages=[first, second])
    await conn.typing(address)
    assert fake.reads == [(second["id"], True)]  # the newest; WhatsApp reads up to it
    await conn.send_part(address, "answer", second["id"])
    assert fake.reads == [(second["id"], True)]  # already read: no second receipt


async def test_a_failed_read_receipt_never_fails_the_reply(
        running: tuple[WhatsAppConnector, RecordingContext], fake: WhatsAppFake) -> None:
    conn, _ = running
    message = fake.message(USER, "hi")
    await post(conn, fake, messages=[message])
    fake.fail_next("read", 500)
    assert await conn.send_part(Address("whatsapp", USER, PHONE_NUMBER_ID), "ok",
                                message["id"])
    assert fake.reads == [] and [m.text for m in fake.sent] == ["ok"]


# ---- errors -----------------------------------------------------------------------------------

async def test_graph_throttling_in_a_400_is_retryable_with_its_window(
        running: tuple[WhatsAppConnector, RecordingContext], fake: WhatsAppFake) -> None:
    conn, _ = running
    address = Address("whatsapp", USER, PHONE_NUMBER_ID)
    await post(conn, fake, messages=[fake.message(USER, "hi")])
    fake.rate_limit_next_send(1.0)
    with pytest.raises(RetryableError) as throughput:
        await conn.send_part(address, "x", None)
    fake.pair_rate_limit_next_send()
    with pytest.raises(RetryableError) as pair:
        await conn.send_part(address, "x", None)
    assert (throughput.value.retry_after, pair.value.retry_after) == (1.0, 6.0)
    assert "130429" in str(throughput.value) and "131056" in str(pair.value)
    fake.fail_next("send", 400)
    with pytest.raises(FatalConnectorError) as invalid:
        await conn.send_part(address, "x", None)
    assert "Invalid parameter" in str(invalid.value) and fake.sent == []


async def test_a_bad_token_names_the_field_and_never_leaks_it(fake: WhatsAppFake) -> None:
    conn = connector(fake, access_token="EAAG-wrong-token")
    result = await conn.probe()
    assert not result.ok and "access_token" in result.message
    assert "EAAG-wrong-token" not in result.message


# ---- media -----------------------------------------------------------------------------------

@pytest.fixture
async def harness() -> AsyncIterator[WhatsAppHarness]:
    harness = WhatsAppHarness()
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()


async def test_a_picture_is_fetched_by_media_id_with_the_token_and_seen_by_the_model(
        harness: WhatsAppHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    await online(harness, fake_llm, make_gateway)
    fake, chat = harness.fake, harness.chat(0)
    picture = fake.media(chat, "image", data=PNG, mime_type="image/png", caption="what is it?")
    await harness.deliver(fake.signed(fake.payload(messages=[picture])))
    assert await reply_to(harness, chat, 0) == "Echo: what is it?"
    assert fake_llm.images == [("image/png", PNG)]
    assert fake.downloads == [(picture["image"]["id"], f"Bearer {fake.access_token}")]


async def test_a_media_id_whatsapp_no_longer_holds_is_explained_to_the_sender(
        harness: WhatsAppHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    gateway = await online(harness, fake_llm, make_gateway)
    fake, chat = harness.fake, harness.chat(1)
    await harness.deliver(fake.signed(fake.payload(messages=[fake.media(chat, "image")])))
    reply = await reply_to(harness, chat, 0)
    assert reply.startswith("I could not read what you sent: the picture: WhatsApp no longer "
                            "has the file") and "does not exist" in reply
    assert fake.downloads == [] and fake_llm.requests == []
    assert await gateway.store.logs.page(channel="whatsapp", search="WhatsApp no longer has")


async def test_the_token_never_goes_to_a_host_other_than_meta_s(
        fake: WhatsAppFake, running: tuple[WhatsAppConnector, RecordingContext]) -> None:
    conn, _ = running
    fake.media_base = f"http://localhost:{fake.port}"  # not the configured api_base host
    picture = fake.media(USER, "image", data=PNG)
    [item] = parse_payload(fake.payload(messages=[picture]), channel="whatsapp",
                           phone_number_id=PHONE_NUMBER_ID)
    assert isinstance(item, Message)
    with pytest.raises(AttachmentUnavailable, match=r"localhost.*not sent there"):
        await conn.fetch_attachment(item.inbound.attachments[0])
    assert fake.downloads == []


# ---- probe ----------------------------------------------------------------------------------

async def test_probe_and_start_name_the_phone_number(fake: WhatsAppFake) -> None:
    assert (await connector(fake).probe()).message == \
        f"connected as {VERIFIED_NAME} ({DISPLAY_NUMBER})"
    conn, ctx = await started(fake)
    await conn.stop()
    assert (ChannelState.ONLINE, f"connected as {VERIFIED_NAME} ({DISPLAY_NUMBER})") in \
        ctx.states
    wrong = await connector(fake, phone_number_id="123").probe()
    assert not wrong.ok and "does not exist" in wrong.message
    missing = await connector(fake, verify_token="").probe()
    assert not missing.ok and "verify_token" in missing.message
    with pytest.raises(FatalConnectorError, match="phone_number_id"):
        await connector(fake, phone_number_id="").start(RecordingContext(channel="whatsapp"))


def test_the_spec_is_a_webhook_channel_without_an_sdk() -> None:
    assert SPEC.requires == () and SPEC.install == ""
    assert SPEC.limits.max_text == 4096 and not SPEC.capabilities.edit
    assert WhatsAppConfig().needs_webhook()
    schema = WhatsAppConfig.model_json_schema()["properties"]
    assert {k for k, v in schema.items() if v.get("secret")} == set(SECRETS)
    assert json.dumps(schema)  # the setup form can be generated
