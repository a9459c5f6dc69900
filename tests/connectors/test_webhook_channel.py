"""What is the signed webhook's own: its signature and replay window, its body, the callback
allowlist, callbacks signed the same way, probe and sync mode, and files sent inline.

Everything a channel shares (journal first, splitting, retries, group rule...) is the
contract suite's (tests/contract, harness_webhook.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from connectors.webhook._files import KEPT, InlineFiles
from connectors.webhook._parse import Malformed, Ping, WebhookMessage, parse_request
from connectors.webhook.manifest import SPEC, SYNC_MAX_TEXT, WebhookConfig
from connectors.webhook.runtime import WebhookConnector
from pyclaw_app.channels import WebhookRequest, WebhookResponse
from pyclaw_app.channels.contract import AttachmentUnavailable
from pyclaw_app.control.webhooks import WebhookServer
from pyclaw_app.errors import DeliveryUncertain, FatalConnectorError, RetryableError
from pyclaw_app.model import Address, Attachment, ChannelState
from tests.conftest import provider_section
from tests.fakes.webhook_client import WebhookClientFake, attachment, sign
from tests.support import RecordingContext, eventually
from tests.test_attachments import PNG

SECRET = "fake-webhook-shared-secret"


@pytest.fixture
async def fake() -> AsyncIterator[WebhookClientFake]:
    async with WebhookClientFake(secret=SECRET) as server:
        yield server  # type: ignore[misc]


@pytest.fixture
async def elsewhere() -> AsyncIterator[WebhookClientFake]:
    """A second receiver: where a caller would like the gateway to POST."""
    async with WebhookClientFake(secret=SECRET) as server:
        yield server  # type: ignore[misc]


def connector(fake: WebhookClientFake | None = None, **values: Any) -> WebhookConnector:
    config: dict[str, Any] = {"secret": SecretStr(SECRET),
                              "callback_url": fake.callback_url if fake else "", **values}
    return WebhookConnector("hooks", WebhookConfig(**config))


async def started(conn: WebhookConnector, ctx: RecordingContext | None = None
                  ) -> tuple[WebhookConnector, RecordingContext]:
    ctx = ctx or RecordingContext(channel="hooks")
    await conn.start(ctx)
    return conn, ctx


@pytest.fixture
async def running(fake: WebhookClientFake
                  ) -> AsyncIterator[tuple[WebhookConnector, RecordingContext]]:
    conn, ctx = await started(connector(fake))
    yield conn, ctx
    await conn.stop()


async def post(conn: WebhookConnector, message: dict[str, Any] | bytes, *,
               secret: str = SECRET, timestamp: int | None = None,
               headers: dict[str, str] | None = None) -> WebhookResponse:
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    signed = sign(secret, body, timestamp)
    return await conn.handle_webhook(WebhookRequest("POST", body, {**signed, **(headers or {})}))


def answer(response: WebhookResponse) -> Any:
    return json.loads(response.body)


def address(chat: str) -> Address:
    return Address("hooks", chat)


# ---- signature and replay window ------------------------------------------------------------

async def test_a_signed_request_is_stored_and_answered_202(
        running: tuple[WebhookConnector, RecordingContext]) -> None:
    conn, ctx = running
    response = await post(conn, {"id": "m1", "chat": "kitchen", "text": "lights off",
                                 "sender": {"id": "ha", "name": "Home Assistant"}})
    assert response.status == 202 and response.content_type == "application/json"
    assert answer(response) == {"id": "m1", "status": "accepted"}
    [inbound] = ctx.inbound
    assert (inbound.platform_id, inbound.address.chat, inbound.text, inbound.sender_id,
            inbound.sender_name, inbound.is_group) == ("m1", "kitchen", "lights off", "ha",
                                                       "Home Assistant", False)
    again = await post(conn, {"id": "m1", "chat": "kitchen", "text": "lights off"})
    assert again.status == 202 and answer(again)["status"] == "duplicate"
    assert len(ctx.inbound) == 1


@pytest.mark.parametrize("case", ["wrong secret", "no signature", "no timestamp", "no prefix",
                                  "body only", "other timestamp", "tampered body"])
async def test_a_badly_signed_request_is_refused_and_nothing_is_stored(
        running: tuple[WebhookConnector, RecordingContext], case: str) -> None:
    conn, ctx = running
    body = json.dumps({"id": "m1", "chat": "c", "text": "x"}).encode()
    headers = sign(SECRET, body)
    stamp, signature = headers["X-Pyclaw-Timestamp"], headers["X-Pyclaw-Signature"]
    if case == "wrong secret":
        headers = sign("not-the-secret", body)
    elif case == "no signature":
        del headers["X-Pyclaw-Signature"]
    elif case == "no timestamp":
        del headers["X-Pyclaw-Timestamp"]
    elif case == "no prefix":
        headers["X-Pyclaw-Signature"] = signature.removeprefix("sha256=")
    elif case == "body only":  # an HMAC of the body alone does not bind the timestamp
        import hashlib
        import hmac
        headers["X-Pyclaw-Signature"] = "sha256=" + hmac.new(
            SECRET.encode(), body, hashlib.sha256).hexdigest()
    elif case == "other timestamp":
        headers["X-Pyclaw-Timestamp"] = str(int(stamp) - 10)
    elif case == "tampered body":
        body = body.replace(b'"x"', b'"y"')
    response = await conn.handle_webhook(WebhookRequest("POST", body, headers))
    assert response.status == 401
    assert ctx.inbound == []
    assert any(level == "warning" and "rejected" in message for level, message, _ in ctx.logs)


@pytest.mark.parametrize(("age", "status"), [(0, 202), (290, 202), (-290, 202), (301, 401),
                                             (-301, 401), (3600, 401)])
async def test_a_timestamp_outside_five_minutes_is_a_replay(
        running: tuple[WebhookConnector, RecordingContext], age: int, status: int) -> None:
    conn, ctx = running
    response = await post(conn, {"id": f"m{age}", "chat": "c", "text": "x"},
                          timestamp=int(time.time()) - age)
    assert response.status == status
    assert len(ctx.inbound) == (status == 202)
    if status == 401:
        assert "replay" in str(response.body)


async def test_only_posts_are_taken_and_a_stopped_channel_takes_nothing(fake: WebhookClientFake
                                                                        ) -> None:
    conn, ctx = await started(connector(fake))
    body = b"{}"
    assert (await conn.handle_webhook(WebhookRequest("GET", body, sign(SECRET, body)))
            ).status == 405
    await conn.stop()
    assert (await post(conn, {"id": "m", "chat": "c"})).status == 503
    assert ctx.inbound == []


# ---- the body -------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "reason"), [
    (b"not json", "body is not JSON"),
    (b"[1, 2]", "body must be a JSON object"),
    (b'{"chat": "c", "text": "x"}', "id must be a non-empty string"),
    (b'{"id": "", "chat": "c"}', "id must be a non-empty string"),
    (b'{"id": true, "chat": "c"}', "id must be a non-empty string"),
    (b'{"id": "m", "chat": ["c"]}', "chat must be a non-empty string"),
    (b'{"id": "m", "chat": "c", "text": 5}', "text must be a string"),
    (b'{"id": "m", "chat": "c", "sender": "bob"}', "sender must be an object"),
    (b'{"id": "m", "chat": "c", "sender": {"id": 1.5}}', "sender.id must be"),
    (b'{"id": "m", "chat": "c", "group": "yes"}', "group must be true or false"),
    (b'{"id": "m", "chat": "c", "mentioned": 1}', "mentioned must be true or false"),
    (b'{"id": "m", "chat": "c", "attachments": {}}', "attachments must be a list"),
    (b'{"id": "m", "chat": "c", "attachments": ["x"]}', "attachments[0] must be an object"),
    (b'{"id": "m", "chat": "c", "attachments": [{"size": -1}]}', "attachments[0].size"),
    (b'{"id": "m", "chat": "c", "callback_url": 5}', "callback_url must be"),
    (json.dumps({"id": "m" * 300, "chat": "c"}).encode(), "id is longer than 256"),
])
async def test_a_malformed_body_is_400_with_the_reason(
        running: tuple[WebhookConnector, RecordingContext], body: bytes, reason: str) -> None:
    conn, ctx = running
    response = await post(conn, body)
    assert response.status == 400
    assert reason in str(response.body)
    assert ctx.inbound == []
    assert any(level == "error" for level, _, _ in ctx.logs)


async def test_unknown_fields_are_ignored_and_optional_ones_default(
        running: tuple[WebhookConnector, RecordingContext]) -> None:
    conn, ctx = running
    response = await post(conn, {"id": 42, "chat": 7, "text": "hi", "priority": "high",
                                 "sender": {"name": "script", "extra": 1}, "group": True,
                                 "mentioned": True, "reply_to_bot": True, "attachments": [
                                     {"kind": "image", "name": "a.jpg", "mime": "image/jpeg",
                                      "url": "https://x.example/a.jpg", "size": 10},
                                     {"kind": "hologram"}]})
    assert response.status == 202
    [inbound] = ctx.inbound
    assert (inbound.platform_id, inbound.address.chat, inbound.sender_id) == ("42", "7", "7")
    assert inbound.is_group and inbound.mentioned and inbound.reply_to_bot
    assert [(a.kind, a.name, a.mime, a.url, a.size) for a in inbound.attachments] == [
        ("image", "a.jpg", "image/jpeg", "https://x.example/a.jpg", 10),
        ("file", "", "", None, None)]


async def test_a_signed_ping_is_answered_and_not_stored(
        running: tuple[WebhookConnector, RecordingContext]) -> None:
    conn, ctx = running
    response = await post(conn, {"type": "ping"})
    assert (response.status, answer(response)) == (200, {"ok": True})
    assert ctx.inbound == []
    assert (await post(conn, {"type": "ping"}, secret="wrong")).status == 401


_ANY = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6) | st.lists(
    st.integers(), max_size=2) | st.dictionaries(st.text(max_size=4), st.integers(), max_size=2)
_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                     lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=12), inner, max_size=5), max_leaves=25)


@settings(max_examples=300, deadline=None)
@given(_JSON)
def test_the_parser_never_raises_on_any_json(value: Any) -> None:
    assert isinstance(parse_request(value, channel="hooks"), WebhookMessage | Ping | Malformed)


@settings(max_examples=500, deadline=None)
@given(st.fixed_dictionaries({}, optional={
    "id": _ANY, "chat": _ANY, "text": _ANY, "group": _ANY, "mentioned": _ANY,
    "reply_to_bot": _ANY, "callback_url": _ANY, "type": _ANY,
    "sender": _ANY | st.fixed_dictionaries({}, optional={"id": _ANY, "name": _ANY}),
    "attachments": _ANY | st.lists(_ANY | st.fixed_dictionaries({}, optional={
        "kind": _ANY, "name": _ANY, "mime": _ANY, "url": _ANY, "size": _ANY}), max_size=3)}))
def test_the_parser_never_raises_on_requests_of_any_shape(body: dict[str, Any]) -> None:
    parsed = parse_request(body, channel="hooks")
    if isinstance(parsed, WebhookMessage):  # then every field has its promised type
        inbound = parsed.inbound
        assert inbound.platform_id.strip() and inbound.address.chat.strip()
        assert isinstance(inbound.text, str) and isinstance(inbound.is_group, bool)
        assert all(a.size is None or a.size >= 0 for a in inbound.attachments)
    elif isinstance(parsed, Malformed):
        assert parsed.reason


# ---- callbacks ------------------------------------------------------------------------------

async def test_reply_parts_are_posted_signed_and_numbered(
        running: tuple[WebhookConnector, RecordingContext], fake: WebhookClientFake) -> None:
    conn, _ = running
    first = await conn.send_part(address("kitchen"), "part one", "m1")
    second = await conn.send_part(address("kitchen"), "part two", None)
    assert fake.refused == []  # the receiver's own check of the signature passed
    assert [(c.chat, c.text, c.in_reply_to, c.part) for c in fake.received] == [
        ("kitchen", "part one", "m1", 1), ("kitchen", "part two", "m1", 2)]
    assert [first, second] == [c.id for c in fake.received]  # the receiver's ids
    fake.answer_id = False
    made = await conn.send_part(address("kitchen"), "a new reply", "m2")
    assert made.startswith("m2:1:")


async def test_callback_outcomes_map_to_the_retry_contract(
        running: tuple[WebhookConnector, RecordingContext], fake: WebhookClientFake) -> None:
    conn, _ = running
    fake.rate_limit_next_send(3)
    with pytest.raises(RetryableError) as limited:
        await conn.send_part(address("c"), "x", "m1")
    assert limited.value.retry_after == 3
    fake.fail_next("callback", 503)
    with pytest.raises(RetryableError):
        await conn.send_part(address("c"), "x", "m1")
    await conn.send_part(address("c"), "x", "m1")
    fake.fail_next("callback", 500)
    with pytest.raises(RetryableError):
        await conn.send_part(address("c"), "second", None)
    await conn.send_part(address("c"), "second", None)
    assert [c.part for c in fake.received] == [1, 2]  # refused attempts did not count
    fake.fail_next("callback", 400)
    with pytest.raises(FatalConnectorError, match="HTTP 400"):
        await conn.send_part(address("c"), "y", None)
    fake.lose_next_answer("callback")
    with pytest.raises(DeliveryUncertain):
        await conn.send_part(address("c"), "z", None)
    assert SECRET not in str(limited.value)


async def test_without_a_callback_url_a_callback_reply_cannot_be_sent() -> None:
    conn, ctx = await started(connector())
    try:
        assert ctx.states[-1] == (ChannelState.ONLINE, "ready: waiting for signed requests")
        with pytest.raises(FatalConnectorError, match="callback_url"):
            await conn.send_part(address("c"), "x", "m1")
    finally:
        await conn.stop()


async def test_a_request_cannot_name_its_callback_by_default(
        fake: WebhookClientFake, elsewhere: WebhookClientFake) -> None:
    conn, ctx = await started(connector(fake))
    try:
        response = await post(conn, {"id": "m1", "chat": "c", "text": "x",
                                     "callback_url": elsewhere.callback_url})
        assert response.status == 403 and "allow_request_callback is off" in str(response.body)
        assert ctx.inbound == []  # nothing stored, so nothing will be answered
        await conn.send_part(address("c"), "reply", "m0")
        assert [c.text for c in fake.received] == ["reply"]
        assert elsewhere.received == [] and elsewhere.calls("callback") == 0
    finally:
        await conn.stop()


@pytest.mark.parametrize("url", [
    "http://localhost:{port}/callback",  # another host name than the allowed one
    "http://127.0.0.1:1/callback",  # the allowed host on another port
    "file:///etc/passwd",
    "http://user:pw@127.0.0.1:{port}/callback",
    "http://[::1/callback",
])
async def test_a_request_callback_outside_the_allowlist_is_refused(
        fake: WebhookClientFake, elsewhere: WebhookClientFake, url: str) -> None:
    conn, ctx = await started(connector(
        fake, allow_request_callback=True, callback_hosts=[f"127.0.0.1:{elsewhere.port}"]))
    try:
        response = await post(conn, {"id": "m1", "chat": "c", "text": "x",
                                     "callback_url": url.format(port=elsewhere.port)})
        assert response.status == 403
        assert ctx.inbound == []
        await conn.send_part(address("c"), "reply", "m0")
        assert elsewhere.calls("callback") == 0 and [c.text for c in fake.received] == ["reply"]
    finally:
        await conn.stop()


async def test_an_allowlisted_request_callback_gets_that_chats_replies(
        fake: WebhookClientFake, elsewhere: WebhookClientFake) -> None:
    values = {"allow_request_callback": True, "callback_hosts": ["hooks.example", "127.0.0.1"]}
    conn, ctx = await started(connector(fake, **values))
    try:
        response = await post(conn, {"id": "m1", "chat": "c", "text": "x",
                                     "callback_url": elsewhere.callback_url})
        assert response.status == 202
        await conn.send_part(address("c"), "to the caller", "m1")
        await conn.send_part(address("other"), "to the configured receiver", "m9")
        assert [c.text for c in elsewhere.received] == ["to the caller"]
        assert [c.text for c in fake.received] == ["to the configured receiver"]
    finally:
        await conn.stop()

    # After a restart the chat's replies still go where its latest request asked...
    conn, _ = await started(connector(fake, **values), ctx)
    try:
        await conn.send_part(address("c"), "after a restart", None)
        assert [c.text for c in elsewhere.received][-1] == "after a restart"
        # ...until a request without callback_url sends them back to the configured one.
        assert (await post(conn, {"id": "m2", "chat": "c", "text": "y"})).status == 202
        await conn.send_part(address("c"), "back home", "m2")
        assert [c.text for c in fake.received][-1] == "back home"
    finally:
        await conn.stop()

    ctx.state.values[f"callback:{'c'}"] = json.dumps(elsewhere.callback_url)
    narrowed = {**values, "callback_hosts": ["hooks.example"]}  # the allowlist shrank
    conn, _ = await started(connector(fake, **narrowed), ctx)
    try:
        await conn.send_part(address("c"), "not outside the allowlist", "m3")
        assert [c.text for c in fake.received][-1] == "not outside the allowlist"
        assert len(elsewhere.received) == 2
    finally:
        await conn.stop()


# ---- probe, start, limits -------------------------------------------------------------------

async def test_probe_pings_the_callback_signed(fake: WebhookClientFake) -> None:
    result = await connector(fake).probe()
    assert result.ok and fake.pings == 1 and fake.refused == []
    fake.fail_next("ping", 500)
    result = await connector(fake).probe()
    assert not result.ok and "HTTP 500" in result.message
    wrong = await connector(fake, secret=SecretStr("a-different-secret")).probe()
    assert not wrong.ok and "401" in wrong.message and fake.pings == 1
    idle = await connector().probe()
    assert (idle.ok, idle.message) == (True, "ready: waiting for signed requests")
    unset = await connector(fake, secret=None).probe()
    assert not unset.ok and "secret" in unset.message


async def test_start_needs_a_secret_and_a_usable_callback_url(fake: WebhookClientFake) -> None:
    with pytest.raises(FatalConnectorError, match="secret is not set"):
        await connector(fake, secret=None).start(RecordingContext(channel="hooks"))
    with pytest.raises(FatalConnectorError, match="callback_url must be an http"):
        await connector(callback_url="ftp://x.example/").start(RecordingContext())


def test_spec_config_and_limits() -> None:
    assert SPEC.name == "webhook" and SPEC.title == "Signed webhook" and SPEC.requires == ()
    assert SPEC.runtime == "connectors.webhook.runtime:WebhookConnector"
    assert WebhookConfig().needs_webhook()
    schema = WebhookConfig.model_json_schema()["properties"]
    assert schema["secret"].get("secret") is True and not schema["callback_url"].get("secret")
    assert "X-Pyclaw-Signature" in SPEC.description and "<timestamp>." in SPEC.description
    assert connector().limits.max_text == 4000
    assert connector(max_text=1234).limits.max_text == 1234
    assert connector(reply_mode="sync").limits.max_text == SYNC_MAX_TEXT


# ---- sync mode ------------------------------------------------------------------------------

async def test_sync_mode_answers_with_the_reply_and_posts_nothing(
        fake: WebhookClientFake) -> None:
    conn, ctx = await started(connector(fake, reply_mode="sync"))
    try:
        held = asyncio.create_task(post(conn, {"id": "m1", "chat": "c", "text": "x"}))
        await eventually(lambda: ctx.inbound, timeout=5)
        assert not held.done()
        await conn.send_part(address("other"), "another chat's reply", "m1")  # not this one
        pid = await conn.send_part(address("c"), "the answer", "m1")
        response = await asyncio.wait_for(held, 5)
        assert response.status == 200
        assert answer(response) == {"id": "m1", "chat": "c", "reply": "the answer"}
        assert pid.startswith("sync-")
        assert [c.text for c in fake.received] == ["another chat's reply"]
        duplicate = await post(conn, {"id": "m1", "chat": "c", "text": "x"})
        assert (duplicate.status, answer(duplicate)["status"]) == (202, "duplicate")
    finally:
        await conn.stop()


async def test_sync_mode_falls_back_to_the_callback_after_its_timeout(
        fake: WebhookClientFake) -> None:
    conn, _ = await started(connector(fake, reply_mode="sync", sync_timeout=0.2))
    try:
        response = await post(conn, {"id": "m1", "chat": "c", "text": "x"})
        assert (response.status, answer(response)) == (202, {"id": "m1", "status": "timeout"})
        await conn.send_part(address("c"), "late answer", "m1")
        assert [(c.text, c.in_reply_to) for c in fake.received] == [("late answer", "m1")]
        held = asyncio.create_task(post(conn, {"id": "m2", "chat": "c", "text": "x"}))
        await asyncio.sleep(0.05)
    finally:
        await conn.stop()  # a request held when the channel stops is answered 202
    assert (await asyncio.wait_for(held, 5)).status == 202


# ---- end to end -----------------------------------------------------------------------------

async def test_callback_mode_end_to_end_over_http(fake: WebhookClientFake, fake_llm: Any,
                                                  make_gateway: Any) -> None:
    gw = await make_gateway({"providers": [provider_section(fake_llm)], "channels": {
        "hooks": {"type": "webhook", "secret": SECRET, "callback_url": fake.callback_url,
                  "dm_policy": "open", "rate_limit_per_minute": 0}}})
    await eventually(lambda: gw.channels["hooks"].state == ChannelState.ONLINE, timeout=10)
    server = WebhookServer(gw, "127.0.0.1", 0)
    await server.start()
    try:
        body, headers = fake.signed(fake.message("porch", "motion detected", mid="ev-1"))
        status, data = await fake.post(f"{server.url}/webhook/hooks", body, headers)
        assert (status, data) == (202, {"id": "ev-1", "status": "accepted"})
        received = await eventually(lambda: fake.received, timeout=10)
        assert [(c.chat, c.text, c.in_reply_to, c.part) for c in received] == [
            ("porch", "Echo: motion detected", "ev-1", 1)]

        async def recorded_id() -> object:
            """The reply's platform id, journaled once the callback's answer is back (the
            fake counts the callback before the gateway has read that answer)."""
            row = await gw.store.db.fetchone(
                "SELECT platform_id FROM messages WHERE direction='out'")
            return row["platform_id"] if row is not None else None

        assert await eventually(recorded_id, timeout=10) == received[0].id
    finally:
        await server.stop()


# ---- files ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("sent", "note"), [
    (attachment(PNG, "porch.png", "image/png", "image"), ""),
    ({"kind": "image", "name": "porch.jpg", "url": "http://169.254.169.254/latest/"},
     "\n\n(I could not read what you sent: porch.jpg: the webhook channel reads files sent "
     "as base64 data only; a url is never fetched.)"),
])
async def test_a_picture_sent_as_data_reaches_the_model_and_a_url_is_never_fetched(
        fake: WebhookClientFake, fake_llm: Any, make_gateway: Any, sent: dict[str, Any],
        note: str) -> None:
    gw = await make_gateway({"providers": [provider_section(fake_llm, vision=True)],
                             "channels": {"hooks": {
                                 "type": "webhook", "secret": SECRET, "dm_policy": "open",
                                 "callback_url": fake.callback_url,
                                 "rate_limit_per_minute": 0}}})
    await eventually(lambda: gw.channels["hooks"].state == ChannelState.ONLINE, timeout=10)
    server = WebhookServer(gw, "127.0.0.1", 0)
    await server.start()
    try:
        body, headers = fake.signed(fake.message("porch", "who is it?", mid="ev-9",
                                                 attachments=[sent]))
        status, _ = await fake.post(f"{server.url}/webhook/hooks", body, headers)
        assert status == 202
        received = await eventually(lambda: fake.received, timeout=10)
        assert received[0].text == f"Echo: who is it?{note}"
    finally:
        await server.stop()
    assert fake_llm.images == ([("image/png", PNG)] if "data" in sent else [])
    row = await gw.store.db.fetchone("SELECT attachments FROM messages WHERE direction='in'")
    assert row is not None and sent.get("data", "-") not in str(row["attachments"])
    held = await gw.store.db.fetchall("SELECT key FROM channel_state WHERE channel='hooks'")
    assert [r["key"] for r in held if "file" in r["key"]] == []  # never in the database


@pytest.mark.parametrize(("data", "why"), [
    ("not base64!", "attachments[0].data is not valid base64"),
    ("", "attachments[0].data is empty"),
    (12, "attachments[0].data must be a string"),
])
async def test_bad_attachment_data_is_400_and_nothing_is_stored(
        running: tuple[WebhookConnector, RecordingContext], data: Any, why: str) -> None:
    conn, ctx = running
    response = await post(conn, {"id": "f", "chat": "c", "attachments": [{"data": data}]})
    assert (response.status, response.body) == (400, why)
    assert ctx.inbound == []


async def test_held_files_go_once_answered_or_not_taken_and_the_oldest_go_first(
        running: tuple[WebhookConnector, RecordingContext]) -> None:
    conn, ctx = running
    await post(conn, {"id": "x", "chat": "c", "attachments": [attachment(b"one", "a", "")]})
    [inbound] = ctx.inbound
    assert (await conn.fetch_attachment(inbound.attachments[0])).data == b"one"
    await post(conn, {"id": "x", "chat": "c", "attachments": [attachment(b"one", "a", "")]})
    assert (await conn.fetch_attachment(inbound.attachments[0])).data == b"one"  # still held
    await conn.send_part(address("c"), "done", "x")
    with pytest.raises(AttachmentUnavailable, match="no longer holds"):
        await conn.fetch_attachment(inbound.attachments[0])
    files = InlineFiles()
    for i in range(KEPT + 1):
        assert await files.hold(f"t{i}", {0: "b2s="})
    assert (await files.source(Attachment("file", platform_id=f"inline:t{KEPT}/0"))).data \
        == b"ok"
    with pytest.raises(AttachmentUnavailable, match=f"at most {KEPT}"):
        await files.source(Attachment("file", platform_id="inline:t0/0"))
