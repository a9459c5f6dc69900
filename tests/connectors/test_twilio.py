"""What is Twilio's own: X-Twilio-Signature over the public URL and the form, the form webhooks,
SMS and WhatsApp addresses, status callbacks and their error codes, STOP, 20429, the account
probe, API keys and the WhatsApp typing indicator.

Everything a channel shares (journal first, splitting, retries, 429...) is the contract
suite's (tests/contract, harness_twilio.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

from connectors.twilio._parse import (
    Form,
    Malformed,
    Message,
    OptOut,
    StatusUpdate,
    parse_form,
    parse_webhook,
)
from connectors.twilio.manifest import MAX_TEXT, SPEC, TwilioConfig
from connectors.twilio.runtime import EMPTY_TWIML, TwilioConnector
from pyclaw_app.channels import WebhookRejected, WebhookRequest
from pyclaw_app.channels.contract import AttachmentUnavailable
from pyclaw_app.control.webhooks import WebhookServer
from pyclaw_app.errors import DeliveryUncertain, FatalConnectorError, RetryableError
from pyclaw_app.model import Address, ChannelState
from tests.conftest import GatewayFactory, provider_section
from tests.contract.harness_twilio import TwilioHarness
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.twilio_api import (
    ACCOUNT_SID,
    API_KEY_SECRET,
    API_KEY_SID,
    FRIENDLY_NAME,
    MESSAGING_SERVICE_SID,
    SMS_NUMBER,
    WEBHOOK_URL,
    WHATSAPP_NUMBER,
    TwilioFake,
    signature,
)
from tests.support import RecordingContext, eventually
from tests.test_attachments import PNG
from tests.test_attachments_channels import online, reply_to

USER = "+16505551234"
WA_USER = f"whatsapp:{USER}"
SECRETS = ("auth_token", "api_key_secret")


@pytest.fixture
async def fake() -> AsyncIterator[TwilioFake]:
    async with TwilioFake() as server:
        yield server  # type: ignore[misc]


def connector(fake: TwilioFake | None = None, **values: Any) -> TwilioConnector:
    config: dict[str, Any] = {
        "account_sid": ACCOUNT_SID, "auth_token": fake.auth_token if fake else "t" * 32,
        "webhook_url": WEBHOOK_URL, "api_base": fake.url if fake else "http://127.0.0.1:9",
        "messaging_api_base": fake.url if fake else "http://127.0.0.1:9", **values}
    return TwilioConnector("twilio", TwilioConfig(**{
        k: SecretStr(v) if k in SECRETS else v for k, v in config.items()}))


async def started(fake: TwilioFake, **values: Any) -> tuple[TwilioConnector, RecordingContext]:
    conn, ctx = connector(fake, **values), RecordingContext(channel="twilio")
    await conn.start(ctx)
    return conn, ctx


@pytest.fixture
async def running(fake: TwilioFake) -> AsyncIterator[tuple[TwilioConnector, RecordingContext]]:
    conn, ctx = await started(fake)
    yield conn, ctx
    await conn.stop()


async def post(conn: TwilioConnector, signed: tuple[bytes, dict[str, str]]) -> int:
    return (await conn.handle_webhook(WebhookRequest("POST", *signed))).status


def errors(ctx: RecordingContext) -> list[str]:
    return [m for level, m, _ in ctx.logs if level in ("warning", "error")]


# ---- the published signature vectors (twilio-python tests/unit/test_request_validator.py) -----

DOC_TOKEN = "12345"
DOC_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
DOC_PARAMS = {"CallSid": "CA1234567890ABCDE", "Digits": "1234", "From": "+14158675309",
              "To": "+18005551212", "Caller": "+14158675309"}
DOC_SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
DOC_DUPLICATES = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"),
                  ("Digits", "1234")]
DOC_DUPLICATES_SIGNATURE = "IK+Dwps556ElfBT0I3Rgjkr1wJU="


def request(params: Any, sig: str | None) -> WebhookRequest:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if sig is not None:
        headers["x-twilio-signature"] = sig
    return WebhookRequest("POST", urlencode(params).encode(), headers)


def test_the_published_vectors_pass_the_connector_and_the_fake_signs_them_alike() -> None:
    assert signature(DOC_TOKEN, DOC_URL, DOC_PARAMS) == DOC_SIGNATURE
    assert signature(DOC_TOKEN, DOC_URL, DOC_DUPLICATES) == DOC_DUPLICATES_SIGNATURE
    verify = connector(auth_token=DOC_TOKEN, webhook_url=DOC_URL)._verify
    verify(request(DOC_PARAMS, DOC_SIGNATURE))
    verify(request(DOC_DUPLICATES, DOC_DUPLICATES_SIGNATURE))  # a repeated name, both values


@pytest.mark.parametrize(("configured", "sig"), [
    (DOC_URL.replace(".com", ".com:1234"), DOC_SIGNATURE),  # a port is removed on https
    (DOC_URL, "kvajT1Ptam85bY51eRf/AJRuM3w="),  # Twilio signed https://...:443
    (DOC_URL.replace("https", "http"), "0ZXoZLH/DfblKGATFgpif+LLRf4="),  # http://...:80
    (DOC_URL.replace(".com", ".com:1234").replace("https", "http"),
     "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="),  # http with the port it was signed with
    (DOC_URL + "#rc=3&rp=all", DOC_SIGNATURE),  # connection overrides never reach us
])
def test_the_published_port_variants_pass(configured: str, sig: str) -> None:
    connector(auth_token=DOC_TOKEN, webhook_url=configured)._verify(request(DOC_PARAMS, sig))


@pytest.mark.parametrize(("change", "why"), [
    ({"sig": None}, "no X-Twilio-Signature"),
    ({"sig": DOC_SIGNATURE.lower()}, "bad"),
    ({"params": {**DOC_PARAMS, "Digits": "9999"}}, "bad"),  # a tampered parameter
    ({"params": {**DOC_PARAMS, "Extra": ""}}, "bad"),  # an added one, even blank
    ({"url": "https://mycompany.com/myapp.php?foo=1&bar=3"}, "bad"),  # another URL
    ({"url": "https://mycompany.com/myapp.php"}, "bad"),  # the query is signed too
    ({"token": "54321"}, "bad"),
])
def test_anything_else_is_refused_before_it_is_read(change: dict[str, Any], why: str) -> None:
    conn = connector(auth_token=change.get("token", DOC_TOKEN),
                     webhook_url=change.get("url", DOC_URL))
    with pytest.raises(WebhookRejected) as refused:
        conn._verify(request(change.get("params", DOC_PARAMS), change.get("sig", DOC_SIGNATURE)))
    assert refused.value.status == 401 and why in refused.value.message
    assert DOC_TOKEN not in refused.value.message


def test_a_get_and_a_body_that_is_not_utf8_are_refused() -> None:
    verify = connector(auth_token=DOC_TOKEN, webhook_url=DOC_URL)._verify
    with pytest.raises(WebhookRejected) as get:
        verify(WebhookRequest("GET", b"", {}, dict(DOC_PARAMS)))
    assert get.value.status == 405 and "HTTP POST" in get.value.message
    with pytest.raises(WebhookRejected) as binary:
        verify(WebhookRequest("POST", b"Body=\xff\xfe", {"X-Twilio-Signature": DOC_SIGNATURE}))
    assert binary.value.status == 400


def test_a_shared_key_signature_is_named_when_it_is_refused() -> None:
    verify = connector(auth_token=DOC_TOKEN, webhook_url=DOC_URL)._verify
    signed = request(DOC_PARAMS, "c2hhcmVkLWtleS1zaWduYXR1cmU=")
    with pytest.raises(WebhookRejected) as refused:
        verify(WebhookRequest("POST", signed.body, {
            **signed.headers,
            "X-Twilio-Webhooks-Signature-Settings": "key=sk_1,algorithm=HMAC_SHA256"}))
    assert refused.value.status == 401 and "shared key" in refused.value.message


# ---- the parser -------------------------------------------------------------------------------

def form(params: dict[str, str]) -> Form:
    parsed = parse_form(urlencode(params).encode())
    assert parsed is not None
    return parsed


def test_an_sms_becomes_an_inbound_from_the_sender_to_our_number(fake: TwilioFake) -> None:
    params = fake.inbound(USER, "hello ☕ \u200f")
    item = parse_webhook(form(params), channel="sms", account_sid=ACCOUNT_SID)
    assert isinstance(item, Message)
    inbound = item.inbound
    assert inbound.address == Address(channel="sms", chat=USER, account=SMS_NUMBER)
    assert (inbound.platform_id, inbound.text, inbound.sender_id) == (
        params["MessageSid"], "hello ☕ \u200f", USER)
    assert not inbound.is_group and inbound.attachments == ()


def test_whatsapp_media_and_locations_are_metadata(fake: TwilioFake) -> None:
    params = fake.inbound(WA_USER, "look", profile_name="Ana",
                          media=("image/jpeg", "audio/ogg", "application/pdf", "image/webp"))
    item = parse_webhook(form(params), channel="t")
    assert isinstance(item, Message)
    assert item.inbound.address.account == WHATSAPP_NUMBER
    assert item.inbound.sender_name == "Ana"
    kinds = [(a.kind, a.mime) for a in item.inbound.attachments]
    assert kinds == [("image", "image/jpeg"), ("audio", "audio/ogg"),
                     ("file", "application/pdf"), ("sticker", "image/webp")]
    first = item.inbound.attachments[0]
    assert first.url == params["MediaUrl0"] and first.platform_id == \
        params["MediaUrl0"].rpartition("/")[2]
    pin = fake.inbound(WA_USER, "", Latitude="52.5200066", Longitude="13.404954",
                       Label="Alexanderplatz")
    located = parse_webhook(form(pin), channel="t")
    assert isinstance(located, Message)
    [where] = located.inbound.attachments
    assert (where.kind, where.url, where.name) == ("location", "geo:52.5200066,13.404954",
                                                   "Alexanderplatz")
    off_the_map = parse_webhook(form({**pin, "Latitude": "91"}), channel="t")
    assert isinstance(off_the_map, Message) and off_the_map.inbound.attachments == ()


def test_status_callbacks_stop_and_broken_forms_are_told_apart(fake: TwilioFake) -> None:
    status = {"MessageSid": "SM" + "a" * 32, "MessageStatus": "undelivered", "To": USER,
              "ErrorCode": "30003", "AccountSid": ACCOUNT_SID}
    assert parse_webhook(form(status), channel="t") == StatusUpdate(
        status["MessageSid"], "undelivered", USER, 30003)
    stop = fake.inbound(USER, " stop ")
    assert parse_webhook(form(stop), channel="t") == OptOut(USER, stop["MessageSid"])
    wa_stop = parse_webhook(form(fake.inbound(WA_USER, "STOP")), channel="t")
    assert isinstance(wa_stop, Message)  # WhatsApp has no keywords: just a word
    advanced = parse_webhook(form({**fake.inbound(USER, "arrête"), "OptOutType": "STOP"}),
                             channel="t")
    assert isinstance(advanced, OptOut)
    assert isinstance(parse_webhook(form({"Body": "x"}), channel="t"), Malformed)
    no_sender = {k: v for k, v in fake.inbound(USER, "x").items() if k != "From"}
    assert isinstance(parse_webhook(form(no_sender), channel="t"), Malformed)
    other = parse_webhook(form(fake.inbound(USER, "x")), channel="t",
                          account_sid="AC" + "0" * 32)
    assert not isinstance(other, Message)


_text = st.text(max_size=30)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([
    "MessageSid", "AccountSid", "From", "To", "Body", "NumMedia", "MediaUrl0",
    "MediaContentType0", "MediaUrl9", "MessageStatus", "ErrorCode", "Latitude", "Longitude",
    "OptOutType", "ProfileName"]) | _text, st.lists(_text, max_size=3) | _text | st.none()),
    st.binary(max_size=200))
def test_the_parser_never_raises(raw: dict[str, Any], body: bytes) -> None:
    parse_webhook(raw, channel="t", account_sid=ACCOUNT_SID)
    parsed = parse_form(body)
    if parsed is not None:
        parse_webhook(parsed, channel="t")


# ---- receiving --------------------------------------------------------------------------------

async def test_a_message_is_journaled_and_answered_with_empty_twiml(
        running: tuple[TwilioConnector, RecordingContext], fake: TwilioFake) -> None:
    conn, ctx = running
    params = fake.inbound(USER, "hi")
    answer = await conn.handle_webhook(WebhookRequest("POST", *fake.signed(params)))
    assert (answer.status, answer.body, answer.content_type) == (200, EMPTY_TWIML, "text/xml")
    assert "<Response" in EMPTY_TWIML
    assert [m.platform_id for m in ctx.inbound] == [params["MessageSid"]]
    forged = await post(conn, fake.signed(fake.inbound(USER, "forged"), token="f" * 32))
    assert forged == 401 and len(ctx.inbound) == 1
    assert any("rejected" in m and WEBHOOK_URL in m for m in errors(ctx))


async def test_stop_is_logged_not_answered_and_a_later_reply_says_why_it_fails(
        running: tuple[TwilioConnector, RecordingContext], fake: TwilioFake) -> None:
    conn, ctx = running
    assert await post(conn, fake.signed(fake.inbound(USER, "STOP"))) == 200
    assert ctx.inbound == []
    assert any(level == "info" and "texted STOP" in m for level, m, _ in ctx.logs)
    with pytest.raises(FatalConnectorError) as refused:
        await conn.send_part(Address("twilio", USER, SMS_NUMBER), "are you there?", None)
    assert "texted STOP" in str(refused.value) and "21610" in str(refused.value)
    assert await post(conn, fake.signed(fake.inbound(USER, "START"))) == 200
    assert await conn.send_part(Address("twilio", USER, SMS_NUMBER), "welcome back", None)


async def test_a_malformed_form_is_logged_and_answered(
        running: tuple[TwilioConnector, RecordingContext], fake: TwilioFake) -> None:
    conn, ctx = running
    assert await post(conn, fake.signed({"AccountSid": ACCOUNT_SID, "Body": "x"})) == 200
    assert any("malformed" in m and "MessageSid" in m for m in errors(ctx))
    assert ctx.inbound == []


# ---- status callbacks -------------------------------------------------------------------------

async def test_delivery_reports_are_not_messages_and_failures_name_the_code(
        running: tuple[TwilioConnector, RecordingContext], fake: TwilioFake) -> None:
    conn, ctx = running
    sid = await conn.send_part(Address("twilio", USER, SMS_NUMBER), "hello", None)
    [sent] = fake.sent
    assert (sent.sid, sent.from_, sent.status_callback) == (sid, SMS_NUMBER, WEBHOOK_URL)
    for url, body, headers in fake.callbacks:  # sent, delivered: what Twilio would POST
        assert url == WEBHOOK_URL
        assert await post(conn, (body, headers)) == 200
    assert len(fake.callbacks) == 2 and ctx.inbound == [] and errors(ctx) == []
    assert await post(conn, fake.status_callback(sid, "undelivered", error_code=30007)) == 200
    [line] = errors(ctx)
    assert sid in line and "30007" in line and "spam" in line and USER in line
    unknown = fake.status_callback(sid, "failed", error_code=30999, error_message="Odd")
    assert await post(conn, unknown) == 200
    assert "Odd (error 30999" in errors(ctx)[-1] and ctx.inbound == []


async def test_whatsapp_outside_the_24_hour_window_fails_later_with_a_clear_line(
        running: tuple[TwilioConnector, RecordingContext], fake: TwilioFake) -> None:
    conn, ctx = running
    fake.close_window(WA_USER)
    sid = await conn.send_part(Address("twilio", WA_USER, WHATSAPP_NUMBER), "late", None)
    [(url, body, headers)] = fake.callbacks  # accepted as queued, then failed: 63016
    assert url == WEBHOOK_URL
    assert await post(conn, (body, headers)) == 200
    [line] = errors(ctx)
    assert sid in line and "63016" in line and "24 hours" in line


async def test_status_callbacks_can_be_left_to_the_number_or_service(fake: TwilioFake) -> None:
    conn, _ = await started(fake, status_callbacks=False,
                            messaging_service_sid=MESSAGING_SERVICE_SID)
    try:
        await conn.send_part(Address("twilio", USER, ""), "via the service", None)
    finally:
        await conn.stop()
    [sent] = fake.sent
    assert (sent.status_callback, sent.messaging_service, sent.from_) == (
        "", MESSAGING_SERVICE_SID, SMS_NUMBER)


# ---- sending ----------------------------------------------------------------------------------

async def test_replies_go_out_from_the_number_the_user_wrote_to(
        running: tuple[TwilioConnector, RecordingContext], fake: TwilioFake) -> None:
    conn, _ = running
    await conn.send_part(Address("twilio", WA_USER, WHATSAPP_NUMBER), "wa", None)
    await conn.send_part(Address("twilio", USER, SMS_NUMBER), "sms", "SM" + "b" * 32)
    assert [(m.to, m.from_, m.body) for m in fake.sent] == [
        (WA_USER, WHATSAPP_NUMBER, "wa"), (USER, SMS_NUMBER, "sms")]
    with pytest.raises(FatalConnectorError, match="from_number"):
        await conn.send_part(Address("twilio", USER, ""), "from whom?", None)
    with pytest.raises(FatalConnectorError, match="21211") as bad:
        await conn.send_part(Address("twilio", "555", SMS_NUMBER), "x", None)
    assert "not a valid phone number" in str(bad.value)


async def test_from_number_is_the_sender_of_a_chat_with_no_number_known(
        fake: TwilioFake) -> None:
    conn, _ = await started(fake, from_number=WHATSAPP_NUMBER)
    try:
        await conn.send_part(Address("twilio", WA_USER, ""), "hi", None)
    finally:
        await conn.stop()
    assert fake.sent[0].from_ == WHATSAPP_NUMBER


async def test_a_429_waits_retry_after_or_one_second_and_a_lost_answer_is_uncertain(
        running: tuple[TwilioConnector, RecordingContext], fake: TwilioFake) -> None:
    conn, _ = running
    address = Address("twilio", USER, SMS_NUMBER)
    fake.rate_limit_next_send(7.0)  # Twilio sends no Retry-After
    with pytest.raises(RetryableError) as plain:
        await conn.send_part(address, "x", None)
    assert plain.value.retry_after == 1.0 and "20429" in str(plain.value)
    fake.retry_after_header = True
    fake.rate_limit_next_send(7.0)
    with pytest.raises(RetryableError) as told:
        await conn.send_part(address, "x", None)
    assert told.value.retry_after == 7.0
    fake.fail_next("send", 503)
    with pytest.raises(RetryableError):
        await conn.send_part(address, "x", None)
    assert fake.sent == []
    fake.lose_next_answer("send")
    with pytest.raises(DeliveryUncertain):
        await conn.send_part(address, "x", None)
    assert len(fake.sent) == 1


async def test_the_typing_indicator_is_whatsapps_and_tied_to_the_newest_message(
        running: tuple[TwilioConnector, RecordingContext], fake: TwilioFake) -> None:
    conn, _ = running
    await conn.typing(Address("twilio", WA_USER, WHATSAPP_NUMBER))  # nothing to tie it to
    first, second = fake.inbound(WA_USER, "one"), fake.inbound(WA_USER, "two")
    await post(conn, fake.signed(first))
    await post(conn, fake.signed(second))
    await post(conn, fake.signed(fake.inbound(USER, "sms")))
    await conn.typing(Address("twilio", WA_USER, WHATSAPP_NUMBER))
    await conn.typing(Address("twilio", USER, SMS_NUMBER))  # SMS has none
    assert fake.typing == [second["MessageSid"]]
    fake.fail_next("typing", 429)
    with pytest.raises(RetryableError):
        await conn.typing(Address("twilio", WA_USER, WHATSAPP_NUMBER))


def test_limits_are_the_body_limit_in_utf16_or_lower_by_choice() -> None:
    assert SPEC.limits.max_text == MAX_TEXT == 1600
    assert SPEC.limits.text_length("😀") == 2
    assert connector(max_text=320).limits.max_text == 320
    with pytest.raises(ValidationError):
        connector(max_text=1601)


# ---- start, probe, credentials ----------------------------------------------------------------

async def test_start_and_probe_name_the_account_and_never_echo_the_token(
        fake: TwilioFake) -> None:
    conn, ctx = await started(fake)
    try:
        assert ctx.states[-1] == (ChannelState.ONLINE, f"connected as {FRIENDLY_NAME} "
                                                       f"({ACCOUNT_SID})")
        probe = await conn.probe()
        assert probe.ok and FRIENDLY_NAME in probe.message
    finally:
        await conn.stop()
    assert fake.auth_token not in repr(ctx.logs) + repr(ctx.states)  # the account JSON has it
    missing = await connector(fake, webhook_url="").probe()
    assert not missing.ok and "webhook_url" in missing.message
    fake.status = "suspended"
    suspended = await connector(fake).probe()
    assert not suspended.ok and "suspended" in suspended.message


async def test_bad_credentials_fail_the_start_by_name(fake: TwilioFake) -> None:
    with pytest.raises(FatalConnectorError) as refused:
        await started(fake, auth_token="0" * 32)
    assert "auth_token" in str(refused.value) and "20003" in str(refused.value)
    assert "0" * 32 not in str(refused.value)
    with pytest.raises(FatalConnectorError, match="account_sid"):
        await started(fake, account_sid="")


async def test_an_api_key_sends_and_the_auth_token_still_checks_webhooks(
        fake: TwilioFake) -> None:
    conn, ctx = await started(fake, api_key_sid=API_KEY_SID, api_key_secret=API_KEY_SECRET)
    try:
        await conn.send_part(Address("twilio", USER, SMS_NUMBER), "keyed", None)
        assert await post(conn, fake.signed(fake.inbound(USER, "in"))) == 200
    finally:
        await conn.stop()
    assert [m.body for m in fake.sent] == ["keyed"] and len(ctx.inbound) == 1
    probe = await connector(fake, api_key_sid=API_KEY_SID, api_key_secret="wrong").probe()
    assert not probe.ok and "api_key_secret" in probe.message and "wrong" not in probe.message


def test_the_config_checks_its_ids_and_urls() -> None:
    for bad in ({"account_sid": "AC123"}, {"api_key_sid": "AC" + "0" * 32},
                {"webhook_url": "ftp://example.com/x"}, {"webhook_url": "gateway/webhook"},
                {"messaging_service_sid": "MG1"}):
        with pytest.raises(ValidationError):
            TwilioConfig(**bad)
    schema = TwilioConfig.model_json_schema()["properties"]
    assert schema["auth_token"]["secret"] and schema["api_key_secret"]["secret"]
    assert all(field.get("description") for field in schema.values())
    assert TwilioConfig().needs_webhook() and SPEC.docs_url.startswith("https://www.twilio")


# ---- through the real webhook server, behind a "proxy" ----------------------------------------

async def test_a_request_signed_for_the_public_url_reaches_the_gateway(
        fake: TwilioFake, fake_llm: Any, make_gateway: Any) -> None:
    gw = await make_gateway({"providers": [provider_section(fake_llm)], "channels": {
        "twilio": {"type": "twilio", "dm_policy": "open", "account_sid": ACCOUNT_SID,
                   "auth_token": fake.auth_token, "webhook_url": WEBHOOK_URL,
                   "api_base": fake.url, "messaging_api_base": fake.url}}})
    await eventually(lambda: gw.channels["twilio"].state == ChannelState.ONLINE)
    server = WebhookServer(gw, "127.0.0.1", 0)
    await server.start()
    try:
        local = f"{server.url}/webhook/twilio"  # where the proxy forwards WEBHOOK_URL
        status, body = await fake.post_signed(local, *fake.signed(fake.inbound(WA_USER, "hi")))
        assert status == 200 and body == EMPTY_TWIML
        sent = await eventually(lambda: fake.sent)
        assert (sent[0].to, sent[0].from_, sent[0].body) == (WA_USER, WHATSAPP_NUMBER,
                                                            "Echo: hi")
        signed_for_local = fake.signed(fake.inbound(USER, "sneaky"), url=local)
        assert (await fake.post_signed(local, *signed_for_local))[0] == 401
    finally:
        await server.stop()


# ---- media ----------------------------------------------------------------------------------

@pytest.fixture
async def harness() -> AsyncIterator[TwilioHarness]:
    harness = TwilioHarness()
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()


@pytest.mark.parametrize("i", [0, 1], ids=["sms", "whatsapp"])
async def test_a_picture_is_fetched_with_basic_auth_and_the_cdn_gets_no_credentials(
        harness: TwilioHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory,
        i: int) -> None:
    await online(harness, fake_llm, make_gateway)
    fake, chat = harness.fake, harness.chat(i)
    params = fake.inbound(chat, "what is it?", media=("image/png",), files=(PNG,))
    await harness.deliver(fake.signed(params))
    assert await reply_to(harness, chat, 0) == "Echo: what is it?"
    assert fake_llm.images == [("image/png", PNG)]
    me = params["MediaUrl0"].rpartition("/")[2]
    assert fake.cdn_requests == [(me, None)]  # the redirect to the CDN dropped the auth


async def test_a_deleted_media_item_is_explained_to_the_sender(
        harness: TwilioHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    gateway = await online(harness, fake_llm, make_gateway)
    fake, chat = harness.fake, harness.chat(2)
    await harness.deliver(fake.signed(fake.inbound(chat, "", media=("image/jpeg",))))
    reply = await reply_to(harness, chat, 0)
    assert reply.startswith("I could not read what you sent: the picture: Twilio no longer "
                            "has the file") and "was not found" in reply, reply
    assert fake.cdn_requests == [] and fake_llm.requests == []
    assert await gateway.store.logs.page(channel="twilio", search="no longer has the file")


async def test_credentials_never_go_to_a_media_url_off_the_api_host(
        fake: TwilioFake, running: tuple[TwilioConnector, RecordingContext]) -> None:
    conn, _ = running
    params = fake.inbound(USER, "", media=("image/png",), files=(PNG,))
    params["MediaUrl0"] = params["MediaUrl0"].replace("127.0.0.1", "localhost")
    item = parse_webhook(form(params), channel="twilio")
    assert isinstance(item, Message)
    with pytest.raises(AttachmentUnavailable, match="not sent there"):
        await conn.fetch_attachment(item.inbound.attachments[0])
    assert fake.cdn_requests == []
