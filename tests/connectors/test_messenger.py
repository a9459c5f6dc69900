"""What is Messenger's own: the GET verification, X-Hub-Signature-256 keyed with the app secret,
the Page webhook's events, the 24-hour window and message tags, seen receipts and typing,
Graph error codes, the Page token and its appsecret_proof.

Everything a channel shares (journal first, splitting, retries, 429...) is the contract
suite's (tests/contract, harness_messenger.py).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from connectors.messenger._parse import (
    Elsewhere,
    Ignored,
    Malformed,
    Message,
    PolicyNotice,
    parse_payload,
)
from connectors.messenger.manifest import SPEC, MessengerConfig
from connectors.messenger.runtime import MessengerConnector
from pyclaw_app.channels import WebhookRejected, WebhookRequest
from pyclaw_app.control.webhooks import WebhookServer
from pyclaw_app.errors import DeliveryUncertain, FatalConnectorError, RetryableError
from pyclaw_app.model import Address, ChannelState
from tests.conftest import GatewayFactory, provider_section
from tests.contract.harness_messenger import MessengerHarness
from tests.fakes.messenger_api import PAGE_ID, PAGE_NAME, MessengerFake
from tests.fakes.openai_api import FakeOpenAI
from tests.support import RecordingContext, eventually
from tests.test_attachments import PNG
from tests.test_attachments_channels import online, reply_to

USER = "6024123456789012"
SECRETS = ("page_access_token", "app_secret", "verify_token")
DOCS_BODY = Path(__file__).with_name("messenger_webhook.json")


@pytest.fixture
async def fake() -> AsyncIterator[MessengerFake]:
    async with MessengerFake() as server:
        yield server  # type: ignore[misc]


def connector(fake: MessengerFake | None = None, **values: Any) -> MessengerConnector:
    config: dict[str, Any] = {
        "page_access_token": fake.page_access_token if fake else "t",
        "app_secret": fake.app_secret if fake else "app_secret",
        "verify_token": fake.verify_token if fake else "verify_token",
        "api_base": fake.url if fake else "http://127.0.0.1:9", **values}
    return MessengerConnector("messenger", MessengerConfig(**{
        k: SecretStr(v) if k in SECRETS else v for k, v in config.items()}))


async def started(fake: MessengerFake, **values: Any
                  ) -> tuple[MessengerConnector, RecordingContext]:
    conn, ctx = connector(fake, **values), RecordingContext(channel="messenger")
    await conn.start(ctx)
    return conn, ctx


@pytest.fixture
async def running(fake: MessengerFake
                  ) -> AsyncIterator[tuple[MessengerConnector, RecordingContext]]:
    conn, ctx = await started(fake)
    yield conn, ctx
    await conn.stop()


async def post(conn: MessengerConnector, fake: MessengerFake, *events: Any,
               secret: str | None = None, page_id: str | None = None) -> int:
    body, headers = fake.signed(fake.payload(*events, page_id=page_id), secret=secret)
    return (await conn.handle_webhook(WebhookRequest("POST", body, headers))).status


def get(**query: str) -> WebhookRequest:
    return WebhookRequest("GET", b"", {}, {f"hub.{k}": v for k, v in query.items()})


def address(psid: str = USER) -> Address:
    return Address("messenger", psid, PAGE_ID)


# ---- the GET verification ---------------------------------------------------------------------

async def test_the_verification_request_echoes_the_challenge_only_for_our_token(
        running: tuple[MessengerConnector, RecordingContext], fake: MessengerFake) -> None:
    conn, ctx = running
    good = await conn.handle_webhook(get(mode="subscribe", challenge="1158201444",
                                         verify_token=fake.verify_token))
    assert (good.status, good.body) == (200, "1158201444")
    wrong = await conn.handle_webhook(get(mode="subscribe", challenge="1158201444",
                                          verify_token="guess"))
    missing = await conn.handle_webhook(get(mode="subscribe", challenge="1158201444"))
    assert wrong.status == missing.status == 403
    assert "1158201444" not in str(wrong.body) + str(missing.body)
    no_challenge = await conn.handle_webhook(get(mode="subscribe",
                                                 verify_token=fake.verify_token))
    not_subscribe = await conn.handle_webhook(get(mode="unsubscribe", challenge="1",
                                                  verify_token=fake.verify_token))
    assert no_challenge.status == not_subscribe.status == 400
    assert sum("rejected" in m for _, m, _ in ctx.logs) == 4
    assert ctx.inbound == []


async def test_the_verification_request_through_the_real_webhook_server(
        fake: MessengerFake, fake_llm: Any, make_gateway: Any) -> None:
    gw = await make_gateway({"providers": [provider_section(fake_llm)], "channels": {
        "messenger": {"type": "messenger", "page_access_token": fake.page_access_token,
                      "app_secret": fake.app_secret, "verify_token": fake.verify_token,
                      "api_base": fake.url}}})
    await eventually(lambda: gw.channels["messenger"].state == ChannelState.ONLINE)
    server = WebhookServer(gw, "127.0.0.1", 0)
    await server.start()
    try:
        url = f"{server.url}/webhook/messenger"
        assert await fake.verify_subscription(url, token=fake.verify_token,
                                              challenge="987654") == (200, "987654")
        status, body = await fake.verify_subscription(url, token="wrong", challenge="987654")
        assert status == 403 and "987654" not in body
        assert (await fake.verify_subscription(url, challenge="987654"))[0] == 403
    finally:
        await server.stop()


# ---- signature ---------------------------------------------------------------------------------

# A body Meta really signed (a WhatsApp webhook, the same X-Hub-Signature-256 scheme), with
# its app secret since reset: david-lev/pywa tests/test_server.py::test_webhook_updates_validator.
META_SECRET = "1222e786b144d0e85b9f365372d93676"
META_BODY = (
    b'{"object":"whatsapp_business_account","entry":[{"id":"264937493375603","changes":[{"value"'
    b':{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550953877","phone_'
    b'number_id":"277321005464405"},"contacts":[{"profile":{"name":"PyWa Tests"},"wa_id":"97254'
    b'4401243"}],"messages":[{"from":"972544401243","id":"wamid.HBgMOTcyNTQ0NDAxMjQzFQIAEhggM0R'
    b'FQTNCMEEwRTY3QzUwODYzMDc4NjQ4QzM4ODAxM0YA","timestamp":"1730231903","text":{"body":"Hey t'
    b'here! I am using PyWa."},"type":"text"}]},"field":"messages"}]}]}')
META_SIGNATURE = "sha256=54edfa1d7259e0eb13c677cc7d73d1b5c86cfa12433d19156e058ab9251bc441"
# GitHub's documented X-Hub-Signature-256 example (the same algorithm and header format).
DOC_SECRET = "It's a Secret to Everybody"
DOC_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_the_published_signature_vectors_pass_and_near_misses_do_not() -> None:
    connector(app_secret=META_SECRET)._verify(WebhookRequest(
        "POST", META_BODY, {"x-hub-signature-256": META_SIGNATURE}))
    verify = connector(app_secret=DOC_SECRET)._verify
    verify(WebhookRequest("POST", b"Hello, World!", {"X-Hub-Signature-256": DOC_SIGNATURE}))
    for body, headers in (
            (b"Hello, World!", {}),
            (b"Hello, World!", {"X-Hub-Signature-256": DOC_SIGNATURE.removeprefix("sha256=")}),
            (b"Hello, World!", {"X-Hub-Signature": "sha1=" + "0" * 40}),  # the old SHA-1 one
            (b"Hello, World! ", {"X-Hub-Signature-256": DOC_SIGNATURE}),
            (b"Hello, World!", {"X-Hub-Signature-256": DOC_SIGNATURE[:-1] + "f"})):
        with pytest.raises(WebhookRejected) as rejected:
            verify(WebhookRequest("POST", body, headers))
        assert rejected.value.status == 401


async def test_a_body_signed_with_the_verify_token_is_refused(
        running: tuple[MessengerConnector, RecordingContext], fake: MessengerFake) -> None:
    """Meta's Python sample keys the HMAC with the verify token; Meta keys it with the app
    secret, so such a signature is a forgery here."""
    conn, ctx = running
    event = fake.message(USER, "hi")
    assert await post(conn, fake, event, secret=fake.verify_token) == 401
    assert (await conn.handle_webhook(WebhookRequest("POST", b"{not json", {}))).status == 401
    assert ctx.inbound == [] and any("rejected" in m for _, m, _ in ctx.logs)
    assert await post(conn, fake, event) == 200 and len(ctx.inbound) == 1


# ---- the webhook body ------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=12), inner, max_size=5), max_leaves=25))
def test_the_parser_never_raises_on_any_json(value: Any) -> None:
    parse_payload(value, channel="messenger", page_id=PAGE_ID)
    parse_payload({"object": "page", "entry": [value]}, channel="messenger")


_ANY = st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.lists(
    st.integers(), max_size=2) | st.dictionaries(st.text(max_size=6), st.text(max_size=4),
                                                 max_size=2)
_ATTACHMENT = st.fixed_dictionaries({"type": st.sampled_from(
    ["image", "audio", "video", "file", "fallback", "location", "template", "reel"]) | _ANY},
    optional={"payload": _ANY | st.fixed_dictionaries({}, optional={
        "url": _ANY, "sticker_id": _ANY, "coordinates": _ANY, "title": _ANY}),
        "title": _ANY})


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({"sender": _ANY | st.fixed_dictionaries({"id": _ANY})}, optional={
    "timestamp": _ANY, "read": _ANY, "delivery": _ANY, "policy_enforcement": _ANY,
    "postback": _ANY | st.fixed_dictionaries({}, optional={
        "mid": _ANY, "title": _ANY, "payload": _ANY}),
    "message": _ANY | st.fixed_dictionaries({"mid": _ANY}, optional={
        "text": _ANY, "is_echo": _ANY, "reply_to": _ANY, "quick_reply": _ANY,
        "attachments": _ANY | st.lists(_ATTACHMENT | _ANY, max_size=3)})}))
def test_the_parser_never_raises_on_near_valid_events(event: Any) -> None:
    body = {"object": "page", "entry": [{"id": PAGE_ID, "time": 1, "messaging": [event]}]}
    for item in parse_payload(body, channel="messenger", page_id=PAGE_ID):
        if isinstance(item, Message):
            inbound = item.inbound
            assert inbound.platform_id and inbound.address.chat
            assert inbound.text or inbound.attachments


def test_the_documented_example_events_parse_as_meta_describes_them() -> None:
    """Meta's own examples (webhook reference) in one body, with Meta's ``\\/`` escaping."""
    items = parse_payload(json.loads(DOCS_BODY.read_bytes()), channel="messenger",
                          page_id="682498302938465")
    kinds = [type(i).__name__ for i in items]
    assert kinds == ["Message", "Message", "Message", "Message", "Ignored", "Ignored",
                     "Ignored", "Ignored", "Ignored"]
    quick, reply, image, postback = (i.inbound for i in items[:4])  # type: ignore[union-attr]
    assert (quick.text, quick.platform_id, quick.address.chat, quick.address.account) == (
        "hello, world!", "mid.1457764197618:41d102a3e1ae206a38", "1254459154682919",
        "682498302938465")
    assert quick.ts == 1458692752.478 and not quick.is_group
    assert quick.sender_id == quick.address.chat
    assert items[1].replied_to == "m_1fTq8oLumEyIp3Q2MR-aY7IfLZDamVrALniheU"  # type: ignore[union-attr]
    assert reply.text == "hello, world!"
    assert image.text == "" and [(a.kind, a.url) for a in image.attachments] == [
        ("image", "https://scontent.xx.fbcdn.net/v/t1.15752-9/photo.png?_nc_cat=1&oh=abc"
                  "&oe=5C6B3A8E")]
    assert (postback.text, postback.platform_id[:6]) == ("Get Started", "m_AG5H")
    reasons = [i.reason for i in items[4:]]  # type: ignore[union-attr]
    assert reasons == ["echo of a message the Page sent", "delivery", "read", "reaction",
                       "standby: another app owns this conversation"]


def test_attachments_are_metadata_and_a_shared_link_is_text() -> None:
    fake = MessengerFake()
    audio, video, file, sticker = (fake.media(USER, "audio"), fake.media(USER, "video"),
                                   fake.media(USER, "file"),
                                   fake.media(USER, "image", sticker_id=369239263222822))
    link = fake.message(USER, "look", attachments=[{"type": "fallback", "title": "Example",
                                                    "payload": {"url": "https://example.com/a"}}])
    bare = fake.message(USER, attachments=[{"type": "fallback"}])  # an unsupported share
    template = fake.message(USER, attachments=[{"type": "template", "payload": {
        "template_type": "generic"}}])
    old_location = fake.message(USER, attachments=[{"type": "location", "title": "Home",
                                                    "payload": {"coordinates": {
                                                        "lat": 52.52, "long": 13.405}}}])
    items = parse_payload(fake.payload(audio, video, file, sticker, link, bare, template,
                                       old_location), channel="messenger")
    found = [i.inbound for i in items if isinstance(i, Message)]
    assert [(m.attachments[0].kind, m.attachments[0].url is not None) for m in found[:4]] == [
        ("audio", True), ("video", True), ("file", True), ("sticker", True)]
    assert found[3].attachments[0].platform_id == "369239263222822"
    assert (found[4].text, found[4].attachments) == ("look\nhttps://example.com/a", ())
    assert isinstance(items[5], Ignored) and isinstance(items[6], Ignored)
    place = found[5].attachments[0]
    assert (place.kind, place.name, place.url) == ("location", "Home", "geo:52.52,13.405")


def test_postbacks_without_a_mid_and_broken_events_are_told_apart() -> None:
    base = {"sender": {"id": USER}, "recipient": {"id": PAGE_ID}, "timestamp": 1527459824123}
    body = {"object": "page", "entry": [{"id": PAGE_ID, "time": 1, "messaging": [
        {**base, "postback": {"title": "", "payload": "MENU_HELP"}},
        {**base, "message": {"text": "no mid"}},
        {"recipient": {"id": PAGE_ID}, "message": {"mid": "m_1", "text": "no sender"}},
        {**base, "message": {"mid": "m_2", "attachments": "not a list"}},
        {**base, "policy_enforcement": {"action": "block", "reason": "spam"}},
        {**base, "message_edit": {"mid": "m_3", "text": "edited", "num_edit": 1}}]}]}
    items = parse_payload(body, channel="messenger", page_id=PAGE_ID)
    first = items[0]
    assert isinstance(first, Message)
    assert (first.inbound.platform_id, first.inbound.text) == (
        f"postback.{USER}.1527459824123", "MENU_HELP")  # the same on a redelivery
    assert [type(i) for i in items[1:4]] == [Malformed] * 3
    assert items[4] == PolicyNotice("block", "spam") and items[5] == Ignored("message edit")
    assert parse_payload({"object": "instagram", "entry": []}, channel="m") == [
        Elsewhere("object 'instagram'")]
    assert parse_payload({"object": "page"}, channel="m") == [Malformed("no entry array")]


async def test_receipts_echoes_and_other_pages_are_not_journaled_but_said(
        running: tuple[MessengerConnector, RecordingContext], fake: MessengerFake) -> None:
    conn, ctx = running
    message = fake.message(USER, "hi")
    assert await post(conn, fake, message, fake.echo(USER, "hello"),
                      fake.delivery(USER, ["m_x"]), fake.read(USER)) == 200
    assert [m.platform_id for m in ctx.inbound] == [message["message"]["mid"]]
    ctx.logs.clear()
    for _ in range(2):
        assert await post(conn, fake, fake.message(USER, "for my other Page"),
                          page_id="999") == 200
    warnings = [m for level, m, _ in ctx.logs if level == "warning"]
    assert len(warnings) == 1 and "Page 999" in warnings[0] and PAGE_ID in warnings[0]
    assert len(ctx.inbound) == 1
    policy = {"recipient": {"id": PAGE_ID}, "timestamp": 1458692752478,  # Meta's example
              "policy_enforcement": {"action": "block", "reason": "The bot violated our "
                                     "Platform Policies"}}
    unblocked = {"recipient": {"id": PAGE_ID}, "timestamp": 1458692752479,
                 "policy_enforcement": {"action": "unblock"}}
    assert await post(conn, fake, policy, unblocked) == 200
    assert [(level, m) for level, m, _ in ctx.logs][-2:] == [
        ("error", "Meta policy enforcement on this Page: block (The bot violated our Platform "
         "Policies)"), ("info", "Meta policy enforcement on this Page: unblock")]


async def test_a_redelivery_is_submitted_once_and_replies_to_the_bot_are_marked(
        running: tuple[MessengerConnector, RecordingContext], fake: MessengerFake) -> None:
    conn, ctx = running
    message = fake.message(USER, "once")
    mid = message["message"]["mid"]
    assert await post(conn, fake, message) == 200
    assert await post(conn, fake, fake.redelivery(mid)) == 200
    assert [m.platform_id for m in ctx.inbound] == [mid]
    ours = await conn.send_part(address(), "a question?", None)
    await post(conn, fake, fake.message(USER, "an answer", reply_to=ours),
               fake.message(USER, "to myself", reply_to=mid))
    assert [m.reply_to_bot for m in ctx.inbound] == [False, True, False]


# ---- sending and the 24-hour window ------------------------------------------------------------

async def test_a_reply_is_a_response_with_the_token_in_the_header_only(
        running: tuple[MessengerConnector, RecordingContext], fake: MessengerFake) -> None:
    conn, _ = running
    await post(conn, fake, fake.message(USER, "hi"))
    fake.require_proof = True  # "Require app secret": every call must carry the proof
    mid = await conn.send_part(address(), "hello 👋", None)
    assert [(m.to, m.text, m.id, m.messaging_type, m.tag) for m in fake.sent] == [
        (USER, "hello 👋", mid, "RESPONSE", "")]
    assert set(fake.token_places) == {"header"}
    with pytest.raises(FatalConnectorError, match="No matching user found"):
        await conn.send_part(address("1111"), "who?", None)  # never wrote to the Page


async def test_outside_the_window_a_reply_fails_with_what_to_do(
        running: tuple[MessengerConnector, RecordingContext], fake: MessengerFake) -> None:
    conn, ctx = running
    await post(conn, fake, fake.message(USER, "hi"))
    fake.close_window(USER)
    with pytest.raises(FatalConnectorError) as refused:
        await conn.send_part(address(), "a day later", None)
    said = str(refused.value)
    assert "24 hours" in said and USER in said and "2018278" in said
    assert "message_tag" in said and fake.sent == []
    assert not any(level == "warning" for level, _, _ in ctx.logs)


async def test_with_a_message_tag_the_part_goes_tagged_and_the_log_says_so(
        fake: MessengerFake) -> None:
    conn, ctx = await started(fake, message_tag="ACCOUNT_UPDATE")
    try:
        await post(conn, fake, fake.message(USER, "hi"))
        fake.close_window(USER, hours=24 * 30)
        await conn.send_part(address(), "your account changed", None)
        await conn.send_part(address(), "part two", None)
        assert [(m.messaging_type, m.tag) for m in fake.sent] == [
            ("MESSAGE_TAG", "ACCOUNT_UPDATE")] * 2
        warned = [m for level, m, _ in ctx.logs if level == "warning"]
        assert len(warned) == 1 and "ACCOUNT_UPDATE" in warned[0] and USER in warned[0]
        await post(conn, fake, fake.message(USER, "thanks"))  # the window is open again
        await conn.send_part(address(), "you're welcome", None)
        assert fake.sent[-1].messaging_type == "RESPONSE"
    finally:
        await conn.stop()


async def test_human_agent_reaches_people_for_seven_days_only(fake: MessengerFake) -> None:
    conn, _ = await started(fake, message_tag="HUMAN_AGENT")
    try:
        await post(conn, fake, fake.message(USER, "hi"))
        fake.close_window(USER, hours=48)
        await conn.send_part(address(), "a person answers", None)
        fake.close_window(USER, hours=24 * 8)
        with pytest.raises(FatalConnectorError, match="7 days"):
            await conn.send_part(address(), "too late", None)
        assert [m.tag for m in fake.sent] == ["HUMAN_AGENT"]
    finally:
        await conn.stop()


async def test_a_person_who_blocked_the_page_gets_a_clear_error(
        running: tuple[MessengerConnector, RecordingContext], fake: MessengerFake) -> None:
    conn, _ = running
    await post(conn, fake, fake.message(USER, "hi"))
    fake.blocked.add(USER)
    with pytest.raises(FatalConnectorError) as refused:
        await conn.send_part(address(), "hello?", None)
    assert "551" in str(refused.value) and "blocked the Page" in str(refused.value)


# ---- seen receipts and typing --------------------------------------------------------------------

async def test_the_answered_message_is_marked_seen_before_its_first_part(
        running: tuple[MessengerConnector, RecordingContext], fake: MessengerFake) -> None:
    conn, _ = running
    message = fake.message(USER, "hi")
    await post(conn, fake, message)
    assert fake.actions == []  # stored is not seen: the gateway may not answer it
    await conn.send_part(address(), "part 1", message["message"]["mid"])
    await conn.send_part(address(), "part 2", None)
    assert fake.actions == [(USER, "mark_seen")] and len(fake.sent) == 2


async def test_typing_marks_the_newest_message_seen_once_then_types(
        running: tuple[MessengerConnector, RecordingContext], fake: MessengerFake) -> None:
    conn, _ = running
    first, second = fake.message(USER, "one"), fake.message(USER, "two")
    await post(conn, fake, first, second)
    await conn.typing(address())
    await conn.typing(address())
    await conn.send_part(address(), "answer", second["message"]["mid"])
    assert fake.actions == [(USER, "mark_seen"), (USER, "typing_on"), (USER, "typing_on")]


async def test_a_failed_seen_receipt_never_fails_the_reply_and_it_can_be_off(
        fake: MessengerFake) -> None:
    conn, _ = await started(fake)
    quiet, _ = await started(fake, mark_seen=False)
    try:
        message = fake.message(USER, "hi")
        await post(conn, fake, message)
        fake.fail_next("action", 500)
        assert await conn.send_part(address(), "ok", message["message"]["mid"])
        assert fake.actions == [] and [m.text for m in fake.sent] == ["ok"]
        await post(quiet, fake, fake.message(USER, "again"))
        await quiet.typing(address())
        await quiet.send_part(address(), "ok", fake.sent[0].id)
        assert fake.actions == [(USER, "typing_on")]
    finally:
        await conn.stop()
        await quiet.stop()


# ---- errors ----------------------------------------------------------------------------------

async def test_graph_throttling_in_a_400_is_retryable_with_meta_s_estimate(
        running: tuple[MessengerConnector, RecordingContext], fake: MessengerFake) -> None:
    conn, _ = running
    await post(conn, fake, fake.message(USER, "hi"))
    fake.rate_limit_next_send(1.0)
    with pytest.raises(RetryableError) as per_second:
        await conn.send_part(address(), "x", None)
    fake.throttle_next_send(2)
    with pytest.raises(RetryableError) as minutes:
        await conn.send_part(address(), "x", None)
    assert (per_second.value.retry_after, minutes.value.retry_after) == (1.0, 120.0)
    assert "613" in str(minutes.value)
    fake.fail_next("send", 500)
    fake.fail_next("send", 503)
    for _ in range(2):
        with pytest.raises(RetryableError):
            await conn.send_part(address(), "x", None)
    fake.fail_next("send", 403)
    with pytest.raises(FatalConnectorError, match="pages_messaging"):
        await conn.send_part(address(), "x", None)
    fake.lose_next_answer("send")
    with pytest.raises(DeliveryUncertain):
        await conn.send_part(address(), "lost", None)
    assert [m.text for m in fake.sent] == ["lost"]


async def test_bad_and_user_tokens_name_the_field_and_never_leak(fake: MessengerFake) -> None:
    wrong = await connector(fake, page_access_token="EAAG-wrong-token").probe()
    assert not wrong.ok and "page_access_token" in wrong.message
    assert "EAAG-wrong-token" not in wrong.message and "190" in wrong.message
    user = await connector(fake, page_access_token=fake.user_access_token).probe()
    assert not user.ok and "user access token" in user.message
    assert fake.user_access_token not in user.message
    proof = await connector(fake, app_secret="another-app-secret").probe()
    assert not proof.ok and "check app_secret" in proof.message


# ---- probe ----------------------------------------------------------------------------------

async def test_probe_and_start_name_the_page(fake: MessengerFake) -> None:
    said = f"connected as {PAGE_NAME} (Page {PAGE_ID})"
    assert (await connector(fake).probe()).message == said
    conn, ctx = await started(fake)
    await conn.stop()
    assert (ChannelState.ONLINE, said) in ctx.states
    missing = await connector(fake, verify_token="").probe()
    assert not missing.ok and "verify_token" in missing.message
    with pytest.raises(FatalConnectorError, match="app_secret"):
        await connector(fake, app_secret="").start(RecordingContext(channel="messenger"))


def test_the_spec_is_a_webhook_channel_without_an_sdk() -> None:
    assert SPEC.requires == () and SPEC.install == ""
    assert SPEC.limits.max_text == 2000 and SPEC.limits.text_length("👍") == 2
    assert not SPEC.capabilities.edit and SPEC.capabilities.typing
    assert MessengerConfig().needs_webhook()
    schema = MessengerConfig.model_json_schema()["properties"]
    assert {k for k, v in schema.items() if v.get("secret")} == set(SECRETS)
    assert all(v.get("description") for k, v in schema.items())
    assert json.dumps(schema)  # the setup form can be generated


# ---- media ----------------------------------------------------------------------------------

@pytest.fixture
async def harness() -> AsyncIterator[MessengerHarness]:
    harness = MessengerHarness()
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()


async def test_a_picture_comes_from_metas_cdn_without_the_page_token_and_is_seen(
        harness: MessengerHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    await online(harness, fake_llm, make_gateway)
    fake, chat = harness.fake, harness.chat(0)
    await harness.deliver(fake.signed(fake.payload(fake.media(chat, "image", data=PNG))))
    assert await reply_to(harness, chat, 0) == "Echo: "  # a picture and no words
    assert fake_llm.images == [("image/png", PNG)]
    [(_, headers)] = fake.downloads
    assert "Authorization" not in headers  # the Page token stayed home


async def test_an_expired_attachment_link_is_explained_to_the_sender(
        harness: MessengerHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    gateway = await online(harness, fake_llm, make_gateway)
    fake, chat = harness.fake, harness.chat(1)
    await harness.deliver(fake.signed(fake.payload(
        fake.media(chat, "image", data=PNG, ttl=-60))))
    assert await reply_to(harness, chat, 0) == (
        "I could not read what you sent: the picture: Messenger's link to the file has "
        "expired (its attachment links are valid for a limited time).")
    assert fake.downloads == [] and fake_llm.requests == []
    assert await gateway.store.logs.page(channel="messenger", search="has expired")
