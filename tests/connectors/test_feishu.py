"""What is Feishu's own: its AES and signature, the Request URL check, the Verification Token,
message content and mentions, threads, the tenant token, rate-limit codes and the edit budget.

Everything a channel shares (journal first, splitting, retries, group rule...) is the
contract suite's (tests/contract, harness_feishu.py). The official SDK, lark-oapi, is the
reference here: it decrypts the published vector and the fake's events, its dispatcher
checks the fake's signed requests, and its client talks to the fake.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

from connectors.feishu._api import classify
from connectors.feishu._crypto import DecryptError, decrypt, signature_matches
from connectors.feishu._parse import (
    Envelope,
    Ignored,
    Malformed,
    Message,
    envelope,
    parse_message,
)
from connectors.feishu.manifest import SAFE_MAX_TEXT, SPEC, FeishuConfig
from connectors.feishu.runtime import EDIT_GAPS, EDIT_LIMIT, FeishuConnector
from pyclaw_app.channels import HttpAnswer, WebhookRequest
from pyclaw_app.control.webhooks import WebhookServer
from pyclaw_app.errors import FatalConnectorError, RetryableError, StoreError
from pyclaw_app.model import Address, ChannelState, Inbound
from tests.conftest import GatewayFactory, provider_section
from tests.contract.harness_feishu import FeishuHarness
from tests.fakes.feishu_api import BOT_NAME, BOT_OPEN_ID, MAX_BODY, FeishuFake
from tests.fakes.openai_api import FakeOpenAI
from tests.support import RecordingContext, eventually
from tests.test_attachments import PNG
from tests.test_attachments_channels import online, reply_to

VECTOR_KEY = "test key"
VECTOR = "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk="
"""Feishu's published decryption example ("Receive events"): it decrypts to "hello world"."""
GROUP = "oc_" + "0b" * 16
CHAT = "oc_" + "0c" * 16


class Clock:
    """A monotonic clock the test moves by hand (token expiry, edit pacing)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def fake(clock: Clock) -> AsyncIterator[FeishuFake]:
    async with FeishuFake(clock=clock) as server:
        yield server  # type: ignore[misc]


def connector(fake: FeishuFake | None = None, clock: Clock | None = None,
              **values: Any) -> FeishuConnector:
    config: dict[str, Any] = {
        "app_id": fake.app_id if fake else "cli_test",
        "app_secret": fake.app_secret if fake else "secret",
        "verification_token": fake.verification_token if fake else "token",
        "encrypt_key": (fake.encrypt_key if fake else VECTOR_KEY) or "",
        "base_url": fake.url if fake else "http://127.0.0.1:9", **values}
    secret = ("app_secret", "verification_token", "encrypt_key")
    conn = FeishuConnector("feishu", FeishuConfig(**{
        k: SecretStr(v) if k in secret and v is not None else v for k, v in config.items()}))
    if clock is not None:
        conn.clock = clock
    return conn


@pytest.fixture
async def running(fake: FeishuFake, clock: Clock
                  ) -> AsyncIterator[tuple[FeishuConnector, RecordingContext]]:
    conn, ctx = connector(fake, clock), RecordingContext(channel="feishu")
    await conn.start(ctx)
    yield conn, ctx
    await conn.stop()


async def post(conn: FeishuConnector, signed: tuple[bytes, dict[str, str]]) -> tuple[int, Any]:
    response = await conn.handle_webhook(WebhookRequest("POST", *signed))
    return response.status, response.body


def _mid(event: dict[str, Any]) -> str:
    return event["event"]["message"]["message_id"]


# ---- encryption and signature ------------------------------------------------------------------

def test_the_published_vector_decrypts_with_ours_and_with_the_sdk() -> None:
    from lark_oapi.core.utils import AESCipher

    assert decrypt(VECTOR_KEY, VECTOR) == b"hello world"
    assert AESCipher(VECTOR_KEY).decrypt_str(VECTOR) == "hello world"
    for broken in ("not base64!", VECTOR[:-8] + "AAAAAAA=", "AAAA"):
        with pytest.raises(DecryptError):
            decrypt(VECTOR_KEY, broken)
    with pytest.raises(DecryptError):
        decrypt("another key", VECTOR)


def test_the_fakes_events_pass_the_sdks_own_dispatcher_and_our_checks_agree() -> None:
    """lark-oapi's EventDispatcherHandler decrypts, checks the token and the signature and
    parses into its model: the fake speaks the SDK's wire, and our verdicts match its."""
    import lark_oapi as lark
    from lark_oapi.core.model import RawRequest

    fake = FeishuFake()
    got: list[Any] = []
    handler = lark.EventDispatcherHandler.builder(
        fake.encrypt_key or "", fake.verification_token).register_p2_im_message_receive_v1(
        got.append).build()
    event = fake.message_event(GROUP, "hi bot", group=True, mention_bot=True)
    cases = {"good": fake.signed(event), "forged": fake.signed(event, encrypt_key="other")}
    body, headers = fake.signed(event)
    cases["tampered"] = (body.replace(b'"encrypt": "', b'"encrypt": "A'), headers)
    for name, (body, headers) in cases.items():
        request = RawRequest()
        request.body, request.headers, request.uri = body, headers, "/webhook/feishu"
        sdk_ok = handler.do(request).status_code == 200
        ours_ok = signature_matches(headers.get("X-Lark-Signature"),
                                    headers["X-Lark-Request-Timestamp"],
                                    headers["X-Lark-Request-Nonce"], fake.encrypt_key or "",
                                    body)
        assert (sdk_ok, ours_ok) == ((True, True) if name == "good" else (False, False)), name
    assert len(got) == 1
    sdk = got[0].event.message
    ours = parse_message(json.loads(json.dumps(event)), channel="feishu", account=fake.app_id,
                         bot_open_id=BOT_OPEN_ID)
    assert isinstance(ours, Message)
    assert (sdk.message_id, sdk.chat_id, sdk.chat_type) == (
        ours.inbound.platform_id, ours.inbound.address.chat, "group")
    assert sdk.mentions[0].id.open_id == BOT_OPEN_ID and ours.inbound.mentioned
    assert got[0].event.sender.sender_id.open_id == ours.inbound.sender_id
    assert ours.inbound.text == "hi bot"


async def test_forged_stale_unsigned_and_replayed_events_are_refused(
        running: tuple[FeishuConnector, RecordingContext], fake: FeishuFake) -> None:
    conn, ctx = running
    event = fake.message_event(CHAT, "hello")
    good = fake.signed(event)
    assert (await post(conn, good))[0] == 200
    assert (await post(conn, good))[0] == 401  # byte for byte again: a replay
    for signed in (fake.signed(event, encrypt_key="not-the-key"),
                   fake.signed(event, timestamp=1_600_000_000),
                   fake.signed(event, sign=False)):
        assert (await post(conn, signed))[0] == 401
    assert (await post(conn, fake.signed(fake.redelivery(_mid(event)))))[0] == 200
    assert [i.platform_id for i in ctx.inbound] == [_mid(event)]  # redelivered: one message
    rejected = [m for level, m, _ in ctx.logs if "rejected" in m]
    assert len(rejected) == 4 and any("five minutes" in m for m in rejected)
    assert (await conn.handle_webhook(WebhookRequest("GET", b"", {}))).status == 405


class RefusingContext(RecordingContext):
    """The journal refuses the first message (disk full, say)."""

    refused = False

    async def submit(self, inbound: Inbound) -> Any:
        if not self.refused:
            self.refused = True
            raise StoreError("database is locked")
        return await super().submit(inbound)


async def test_an_event_the_journal_refused_is_not_acknowledged_and_its_retry_passes(
        fake: FeishuFake, clock: Clock) -> None:
    conn, ctx = connector(fake, clock), RefusingContext(channel="feishu")
    await conn.start(ctx)
    try:
        signed = fake.signed(fake.message_event(CHAT, "keep me"))
        assert (await post(conn, signed))[0] == 500  # Feishu sends it again
        assert (await post(conn, signed))[0] == 200  # not taken for a replay
        assert [i.text for i in ctx.inbound] == ["keep me"]
    finally:
        await conn.stop()


async def test_without_an_encrypt_key_the_verification_token_decides(clock: Clock) -> None:
    async with FeishuFake(encrypt_key=None, clock=clock) as fake:
        conn, ctx = connector(fake, clock), RecordingContext(channel="feishu")
        await conn.start(ctx)
        try:
            event = fake.message_event(CHAT, "plain")
            assert (await post(conn, fake.signed(event)))[0] == 200
            event = fake.message_event(CHAT, "forged")
            event["header"]["token"] = "guessed"
            assert (await post(conn, fake.signed(event)))[0] == 401
            encrypted = fake.signed(fake.message_event(CHAT, "x"), encrypt_key="some key")
            assert (await post(conn, encrypted))[0] == 400
            v1 = {"uuid": "41b5f371157e3d5341b38b20396e77a3", "token": fake.verification_token,
                  "ts": "1550038209.428520", "type": "event_callback",
                  "event": {"type": "message", "text": "old style"}}
            assert (await post(conn, fake.signed(v1)))[0] == 200
            assert (await post(conn, fake.signed({**v1, "token": "no"})))[0] == 401
        finally:
            await conn.stop()
    assert [i.text for i in ctx.inbound] == ["plain"]
    levels = {(level, m.split(":")[0]) for level, m, _ in ctx.logs}
    assert ("error", "rejected a webhook request") in levels  # the encrypted one: set a key
    assert any(level == "warning" and "v1 (legacy)" in m for level, m, _ in ctx.logs)


# ---- the Request URL check -------------------------------------------------------------------

async def test_the_request_url_check_echoes_the_challenge_only_for_our_token(
        running: tuple[FeishuConnector, RecordingContext], fake: FeishuFake) -> None:
    conn, ctx = running
    # Feishu does not sign this one; with an Encrypt Key it comes encrypted.
    for key in (None, ""):
        status, body = await post(conn, fake.signed(fake.url_verification("c-123"),
                                                    encrypt_key=key, sign=False))
        assert (status, json.loads(body)) == (200, {"challenge": "c-123"})
    status, body = await post(conn, fake.signed(fake.url_verification("c-456", token="nope"),
                                                sign=False))
    assert status == 401 and "c-456" not in str(body)
    assert ctx.inbound == []


async def test_the_request_url_check_through_the_real_webhook_server(
        fake: FeishuFake, fake_llm: Any, make_gateway: Any) -> None:
    gw = await make_gateway({"providers": [provider_section(fake_llm)], "channels": {
        "feishu": {"type": "feishu", "app_id": fake.app_id, "app_secret": fake.app_secret,
                   "verification_token": fake.verification_token,
                   "encrypt_key": fake.encrypt_key, "base_url": fake.url}}})
    await eventually(lambda: gw.channels["feishu"].state == ChannelState.ONLINE)
    server = WebhookServer(gw, "127.0.0.1", 0)
    await server.start()
    try:
        body, headers = fake.signed(fake.url_verification("ch-789"), sign=False)
        async with aiohttp.ClientSession() as session, session.post(
                f"{server.url}/webhook/feishu", data=body, headers=headers) as resp:
            assert resp.status == 200
            assert resp.content_type == "application/json"
            assert await resp.json() == {"challenge": "ch-789"}
    finally:
        await server.stop()


# ---- parsing ---------------------------------------------------------------------------------

_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(_JSON)
def test_the_parser_never_raises_on_any_json(value: Any) -> None:
    envelope(value)
    parse_message(value if isinstance(value, dict) else {"event": value}, channel="feishu",
                  account="cli", bot_open_id=BOT_OPEN_ID, ours={"om_1"})


_ANY = st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.lists(
    st.text(max_size=4), max_size=2) | st.dictionaries(st.text(max_size=4), st.integers(),
                                                       max_size=2)
_CONTENT = st.one_of(_ANY, _JSON.map(json.dumps), st.fixed_dictionaries({}, optional={
    k: _ANY for k in ("text", "image_key", "file_key", "file_name", "title", "latitude",
                      "longitude", "name")}).map(json.dumps), st.fixed_dictionaries({
                          "content": st.lists(st.lists(st.dictionaries(st.sampled_from(
                              ["tag", "text", "href", "user_id", "image_key", "file_key",
                               "emoji_type"]), _ANY | st.sampled_from(
                              ["text", "a", "at", "img", "media", "emotion", "hr"])),
                              max_size=3), max_size=3)}).map(json.dumps))


@settings(max_examples=400, deadline=None)
@given(st.fixed_dictionaries({}, optional={
    "message_id": _ANY, "chat_id": _ANY, "chat_type": st.sampled_from(["p2p", "group"]) | _ANY,
    "message_type": st.sampled_from(["text", "post", "image", "file", "audio", "media",
                                     "sticker", "location", "share_chat"]) | _ANY,
    "content": _CONTENT, "thread_id": _ANY, "root_id": _ANY, "parent_id": _ANY,
    "create_time": _ANY, "mentions": _ANY | st.lists(st.fixed_dictionaries({}, optional={
        "key": st.sampled_from(["@_user_1", "@_user_10", "@_all"]) | _ANY,
        "name": _ANY, "id": _ANY | st.fixed_dictionaries({"open_id": _ANY})}), max_size=3)}),
    _ANY | st.fixed_dictionaries({}, optional={"sender_type": _ANY, "sender_id": _ANY}))
def test_the_parser_never_raises_on_message_events_of_any_shape(
        message: dict[str, Any], sender: Any) -> None:
    body = {"schema": "2.0", "header": {"event_type": "im.message.receive_v1"},
            "event": {"sender": sender, "message": message}}
    result = parse_message(body, channel="feishu", account="cli", bot_open_id=BOT_OPEN_ID,
                           ours={"om_1"})
    assert isinstance(result, Message | Ignored | Malformed)


def _parse(event: dict[str, Any], ours: set[str] | None = None) -> Inbound:
    parsed = parse_message(event, channel="feishu", account="cli", bot_open_id=BOT_OPEN_ID,
                           ours=ours or set())
    assert isinstance(parsed, Message), parsed
    return parsed.inbound


def test_envelopes_are_told_apart_and_carry_their_token() -> None:
    fake = FeishuFake()
    assert envelope(fake.url_verification("c")) == Envelope("challenge", fake.verification_token,
                                                            challenge="c")
    event = fake.message_event(CHAT, "x")
    assert envelope(event) == Envelope("v2", fake.verification_token,
                                       event_type="im.message.receive_v1",
                                       event_id=event["header"]["event_id"])
    assert envelope({"uuid": "u", "token": "t", "event": {"type": "message"}}) == Envelope(
        "v1", "t", event_type="message", event_id="u")
    for broken in ([], {"type": "url_verification"}, {"schema": "2.0", "header": {}}, {"a": 1}):
        assert isinstance(envelope(broken), Malformed)


def test_mentions_become_names_and_the_bots_own_is_cut() -> None:
    fake = FeishuFake()
    event = fake.message_event(GROUP, group=True, content={
        "text": "@_user_1 ask @_user_10 and @_user_2 about it @_all"})
    event["event"]["message"]["mentions"] = [
        {"key": "@_user_1", "id": {"open_id": BOT_OPEN_ID}, "name": BOT_NAME},
        {"key": "@_user_2", "id": {"open_id": "ou_ann"}, "name": "Ann"},
        {"key": "@_user_10", "id": {"open_id": "ou_bob"}, "name": "Bob"}]
    inbound = _parse(event)
    assert inbound.text == "ask @Bob and @Ann about it @all"  # cut: it opens the text
    assert inbound.mentioned and inbound.is_group and inbound.sender_id.startswith("ou_")
    others = fake.message_event(GROUP, group=True, content={"text": "@_user_1 look"})
    others["event"]["message"]["mentions"] = [
        {"key": "@_user_1", "id": {"open_id": "ou_ann"}, "name": "Ann"}]
    assert (_parse(others).text, _parse(others).mentioned) == ("@Ann look", False)
    direct = _parse(fake.message_event(CHAT, "  spaced  as typed "))
    assert direct.text == "  spaced  as typed " and not direct.is_group


DOCS_MENTION = {"key": "@_user_1", "id": {"union_id": "on_8ed6aa67826108097d9ee143816345",
                                          "user_id": "e33ggbyz", "open_id": BOT_OPEN_ID},
                "name": "Tom", "tenant_key": "736588c9260f175e"}
"""The mention of the open platform's "Receive message" event example (content
``{"text":"@_user_1 hello"}``), here naming the bot."""
ANN = {"key": "@_user_2", "id": {"open_id": "ou_ann"}, "name": "Ann"}


@pytest.mark.parametrize(("text", "expected"), [
    ("@_user_1 hello", "hello"),
    ("@_user_1, hello", "hello"),
    ("what time is it @_user_1?", "what time is it?"),
    ("ask @_user_1 about it", "ask @Tom about it"),
    ("@_user_1", "@Tom"),
    ("@_user_1 ", "@Tom"),
    ("@_user_1 ask @_user_2", "ask @Ann"),
    ("@_user_2 and @_user_1 look", "@Ann and @Tom look"),
])
def test_the_bots_placeholder_is_cut_where_it_addresses_the_bot(text: str,
                                                                expected: str) -> None:
    event = FeishuFake().message_event(GROUP, group=True, content={"text": text})
    event["event"]["message"]["mentions"] = [DOCS_MENTION, ANN]
    inbound = _parse(event)
    assert inbound.mentioned and inbound.text == expected


def test_a_post_that_opens_with_the_bots_at_is_addressed_and_only_it_reads_as_its_name() -> None:
    fake = FeishuFake()
    rows = [[{"tag": "at", "user_id": "@_user_1", "user_name": "Tom"},
             {"tag": "text", "text": " ask "}, {"tag": "at", "user_id": "@_user_2"}]]
    event = fake.message_event(GROUP, group=True, kind="post",
                               content={"title": "", "content": rows})
    event["event"]["message"]["mentions"] = [DOCS_MENTION, ANN]
    assert _parse(event).text == "ask @Ann"
    only = fake.message_event(GROUP, group=True, kind="post",
                              content={"title": "", "content": [rows[0][:1]]})
    only["event"]["message"]["mentions"] = [DOCS_MENTION]
    assert _parse(only).text == "@Tom"


def test_a_post_reads_as_lines_with_its_images_as_attachments() -> None:
    fake = FeishuFake()
    event = fake.message_event(GROUP, group=True, kind="post", content={
        "title": "Weekly", "content": [
            [{"tag": "at", "user_id": "@_user_1", "user_name": BOT_NAME},
             {"tag": "text", "text": " see "},
             {"tag": "a", "text": "the doc", "href": "https://example.com/d"}],
            [{"tag": "img", "image_key": "img_v3_1"}, {"tag": "emotion", "emoji_type": "OK"}],
            [{"tag": "at", "user_id": "@_user_2", "user_name": "Ann"},
             {"tag": "code_block", "language": "PYTHON", "text": "print(1)"}]]})
    event["event"]["message"]["mentions"] = [
        {"key": "@_user_1", "id": {"open_id": BOT_OPEN_ID}, "name": BOT_NAME},
        {"key": "@_user_2", "id": {"open_id": "ou_ann"}, "name": "Ann"}]
    inbound = _parse(event)
    assert inbound.text == "Weekly\nsee the doc (https://example.com/d)\n:OK:\n@Annprint(1)"
    assert inbound.mentioned
    assert [(a.kind, a.platform_id) for a in inbound.attachments] == [
        ("image", f"{_mid(event)}/img_v3_1")]


def test_media_are_metadata_with_their_keys_and_other_kinds_are_skipped() -> None:
    fake = FeishuFake()
    cases = {
        "image": ({"image_key": "img_1"}, ("image", "", "img_1", None)),
        "file": ({"file_key": "file_1", "file_name": "a.pdf"}, ("file", "a.pdf", "file_1", None)),
        "audio": ({"file_key": "file_2", "duration": 2000}, ("audio", "", "file_2", None)),
        "media": ({"file_key": "file_3", "image_key": "img_3", "file_name": "v.mp4",
                   "duration": 9}, ("video", "v.mp4", "file_3", None)),
        "sticker": ({"file_key": "v2_stk"}, ("sticker", "", "v2_stk", None)),
        "location": ({"name": "Office", "longitude": "116.397128", "latitude": "39.916527"},
                     ("location", "Office", None, "geo:39.916527,116.397128")),
    }
    for kind, (content, expected) in cases.items():
        event = fake.message_event(CHAT, kind=kind, content=content)
        inbound = _parse(event)
        (a,) = inbound.attachments
        key = expected[2] and f"{_mid(event)}/{expected[2]}"  # fetched by message and key
        assert (a.kind, a.name, a.platform_id, a.url) == (*expected[:2], key, expected[3])
        assert inbound.text == ""
    for kind in ("share_chat", "interactive", "merge_forward", "system"):
        parsed = parse_message(fake.message_event(CHAT, kind=kind, content={}),
                               channel="feishu", account="cli", bot_open_id=BOT_OPEN_ID)
        assert isinstance(parsed, Ignored)
    by_app = fake.message_event(CHAT, "x")
    by_app["event"]["sender"]["sender_type"] = "app"
    assert isinstance(parse_message(by_app, channel="feishu", account="cli",
                                    bot_open_id=BOT_OPEN_ID), Ignored)
    no_key = fake.message_event(CHAT, kind="image", content={})
    assert isinstance(parse_message(no_key, channel="feishu", account="cli",
                                    bot_open_id=BOT_OPEN_ID), Malformed)


def test_threads_and_replies_to_the_bot_are_reported() -> None:
    fake = FeishuFake()
    root = fake.thread(GROUP)
    in_thread = _parse(fake.message_event(GROUP, "more", group=True, thread_root=root))
    assert in_thread.address.thread == root and not in_thread.reply_to_bot
    assert _parse(fake.message_event(GROUP, "x", group=True, thread_root=root),
                  ours={root}).reply_to_bot  # a thread the bot started
    quoted = fake.message_event(GROUP, "an answer", group=True)
    quote = fake.message_event(GROUP, "yes", group=True, quoting=_mid(quoted))
    inbound = _parse(quote, ours={_mid(quoted)})
    assert inbound.reply_to_bot and inbound.address.thread is None
    assert not _parse(quote).reply_to_bot
    assert _parse(quote).ts == fake.messages[_mid(quote)].created / 1000


# ---- sending ---------------------------------------------------------------------------------

async def _inbound(conn: FeishuConnector, fake: FeishuFake, chat: str = CHAT, **kw: Any) -> str:
    event = fake.message_event(chat, "question", **kw)
    assert (await post(conn, fake.signed(event)))[0] == 200
    return _mid(event)


async def test_the_first_part_quotes_later_parts_are_new_and_text_survives_both_encodings(
        running: tuple[FeishuConnector, RecordingContext], fake: FeishuFake) -> None:
    conn, _ = running
    asked = await _inbound(conn, fake)
    tricky = 'He said "hi" \\ then\n\ttab </at> <at user_id="all"></at> 😀 שלום'
    first = await conn.send_part(Address("feishu", CHAT), tricky, asked)
    second = await conn.send_part(Address("feishu", CHAT), "part two", None)
    sent = fake.sent
    assert [(m.id, m.via, m.parent, m.text) for m in sent] == [
        (first, "reply", asked, tricky), (second, "send", "", "part two")]


async def test_in_a_thread_every_part_goes_into_the_thread(
        running: tuple[FeishuConnector, RecordingContext], fake: FeishuFake) -> None:
    conn, ctx = running
    root = fake.thread(GROUP)
    asked = await _inbound(conn, fake, GROUP, group=True, mention_bot=True, thread_root=root)
    address = ctx.inbound[-1].address
    assert address.thread == root
    await conn.send_part(address, "one", asked)
    await conn.send_part(address, "two", None)
    assert [(m.via, m.parent, m.thread) for m in fake.sent] == [
        ("reply", asked, fake.messages[root].thread), ("reply", root, fake.messages[root].thread)]


async def test_a_reply_to_a_recalled_message_becomes_a_plain_message(
        running: tuple[FeishuConnector, RecordingContext], fake: FeishuFake) -> None:
    conn, _ = running
    asked = await _inbound(conn, fake)
    fake.recall(asked)
    await conn.send_part(Address("feishu", CHAT), "still here", asked)
    assert [(m.via, m.text) for m in fake.sent] == [("send", "still here")]


async def test_the_largest_allowed_part_fits_feishus_150_kb_in_the_worst_case(
        running: tuple[FeishuConnector, RecordingContext], fake: FeishuFake) -> None:
    conn, _ = running
    await _inbound(conn, fake)
    worst = "\x01" * SAFE_MAX_TEXT  # 7 bytes each after both JSON encodings
    await conn.send_part(Address("feishu", CHAT), worst, None)
    assert fake.sent[-1].text == worst
    with pytest.raises(FatalConnectorError, match="lower max_text"):
        await conn.send_part(Address("feishu", CHAT), "\x01" * (MAX_BODY // 6), None)
    assert connector(max_text=12_000).limits.max_text == 12_000
    with pytest.raises(ValidationError):
        FeishuConfig(max_text=SAFE_MAX_TEXT + 1)


async def test_a_group_the_bot_left_is_a_clear_fatal_error(
        running: tuple[FeishuConnector, RecordingContext], fake: FeishuFake) -> None:
    conn, _ = running
    await _inbound(conn, fake, GROUP, group=True, mention_bot=True)
    fake.remove_bot_from(GROUP)
    with pytest.raises(FatalConnectorError, match="add it to the group again"):
        await conn.send_part(Address("feishu", GROUP), "hello?", None)


async def test_a_rate_limit_waits_out_x_ogw_ratelimit_reset(
        running: tuple[FeishuConnector, RecordingContext], fake: FeishuFake) -> None:
    conn, _ = running
    await _inbound(conn, fake)
    fake.fail_next("send", 429, retry_after=7)
    with pytest.raises(RetryableError) as limited:
        await conn.send_part(Address("feishu", CHAT), "slow", None)
    assert limited.value.retry_after == 7.0
    assert fake.sent == []  # a 429 carries nothing out
    await conn.send_part(Address("feishu", CHAT), "slow", None)
    assert [m.text for m in fake.sent] == ["slow"]


def test_feishus_own_codes_are_sorted_before_the_http_status() -> None:
    def answer(status: int, code: int, headers: dict[str, str] | None = None) -> HttpAnswer:
        return HttpAnswer(status, headers or {}, {"code": code, "msg": "m"})

    old_style = classify(answer(400, 99991400, {"x-ogw-ratelimit-reset": "52"}), "send", "m")
    assert isinstance(old_style, RetryableError) and old_style.retry_after == 52
    per_chat = classify(answer(400, 230020), "send", "m")
    assert isinstance(per_chat, RetryableError) and per_chat.retry_after == 1.0
    scope = classify(answer(400, 230013), "send", "m")
    assert isinstance(scope, FatalConnectorError) and "availability scope" in str(scope)
    assert classify(answer(400, 230001), "send", "m") is None  # the kit's 4xx mapping


# ---- the tenant token --------------------------------------------------------------------------

async def test_the_token_is_cached_renewed_before_it_expires_and_once_when_refused(
        running: tuple[FeishuConnector, RecordingContext], fake: FeishuFake,
        clock: Clock) -> None:
    conn, _ = running
    await _inbound(conn, fake)
    address = Address("feishu", CHAT)
    await conn.send_part(address, "one", None)
    await conn.send_part(address, "two", None)
    assert fake.token_calls == 1  # the start's token serves every call
    clock.now += 7200 - 30 * 60 + 1  # under 30 minutes left: Feishu issues a new one
    await conn.send_part(address, "three", None)
    assert fake.token_calls == 2
    fake.revoke_tokens()
    await conn.send_part(address, "four", None)  # 99991663: a new token, the call again
    assert fake.token_calls == 3
    assert [m.text for m in fake.sent] == ["one", "two", "three", "four"]
    fake.fail_next("send", 401, count=2)
    with pytest.raises(FatalConnectorError, match="check app_id and app_secret"):
        await conn.send_part(address, "five", None)


async def test_a_wrong_app_secret_fails_the_start_and_the_probe_and_is_never_shown(
        fake: FeishuFake) -> None:
    conn = connector(fake, app_secret="the-wrong-secret")
    probe = await conn.probe()
    assert not probe.ok and "app_secret" in probe.message
    assert "the-wrong-secret" not in probe.message
    ctx = RecordingContext(channel="feishu")
    with pytest.raises(FatalConnectorError):
        await conn.start(ctx)
    assert ctx.states[-1][0] == ChannelState.OFFLINE
    assert all("the-wrong-secret" not in m for _, m, _ in ctx.logs)


async def test_probe_names_the_bot_and_warns_when_the_app_is_not_enabled(
        fake: FeishuFake) -> None:
    assert (await connector(fake).probe()).message == f"connected as {BOT_NAME}"
    fake.activate_status = 3
    probe = await connector(fake).probe()
    assert not probe.ok and "activate_status 3" in probe.message
    assert not (await connector(fake, app_id="").probe()).ok


def test_the_base_url_is_an_origin_feishu_or_lark() -> None:
    for good in ("https://open.feishu.cn", "https://open.larksuite.com/", "http://127.0.0.1:8"):
        assert FeishuConfig(base_url=good).base_url == good.rstrip("/")
    for bad in ("http://open.feishu.cn", "https://open.feishu.cn/open-apis",
                "https://user:pw@open.feishu.cn", "ftp://open.feishu.cn"):
        with pytest.raises(ValidationError):
            FeishuConfig(base_url=bad)


# ---- edits -------------------------------------------------------------------------------------

async def test_edits_are_paced_so_twenty_last_and_an_unchanged_text_is_not_sent(
        running: tuple[FeishuConnector, RecordingContext], fake: FeishuFake,
        clock: Clock) -> None:
    conn, _ = running
    await _inbound(conn, fake)
    address = Address("feishu", CHAT)
    draft = await conn.send_part(address, "d", None)
    await conn.edit(address, draft, "d")  # what it already says: no request
    assert fake.edit_log == []
    waits = []
    for n in range(EDIT_LIMIT):
        try:
            await conn.edit(address, draft, f"draft {n}")
        except RetryableError as exc:
            waits.append((n, exc.retry_after))
            clock.now += exc.retry_after or 0
            await conn.edit(address, draft, f"draft {n}")
    assert [n for n, _ in waits] == list(range(10, EDIT_LIMIT))
    assert [w for _, w in waits] == list(EDIT_GAPS[10:])
    assert len(fake.edit_log) == EDIT_LIMIT and fake.sent[-1].text == f"draft {EDIT_LIMIT - 1}"
    clock.now += 60
    with pytest.raises(FatalConnectorError, match="20 edits"):
        await conn.edit(address, draft, "one too many")


async def test_the_platform_refusing_an_edit_is_fatal_with_its_reason(
        running: tuple[FeishuConnector, RecordingContext], fake: FeishuFake) -> None:
    conn, _ = running
    asked = await _inbound(conn, fake)
    with pytest.raises(FatalConnectorError, match="230071"):
        await conn.edit(Address("feishu", CHAT), asked, "not ours to edit")


# ---- the official SDK against the fake -----------------------------------------------------------

async def test_the_official_client_speaks_to_the_fake() -> None:
    """lark-oapi's own client (token manager included) gets what the fake documents."""
    import lark_oapi as lark
    from lark_oapi.api.im.v1 import (
        CreateMessageRequest,
        CreateMessageRequestBody,
        ReplyMessageRequest,
        ReplyMessageRequestBody,
        UpdateMessageRequest,
        UpdateMessageRequestBody,
    )

    async with FeishuFake(app_id="cli_sdk_check_0001") as fake:
        asked = _mid(fake.message_event(CHAT, "hi"))
        client = lark.Client.builder().app_id(fake.app_id).app_secret(fake.app_secret) \
            .domain(fake.url).build()
        text = json.dumps({"text": "from the sdk"})

        def calls() -> tuple[Any, Any, Any]:
            created = client.im.v1.message.create(
                CreateMessageRequest.builder().receive_id_type("chat_id").request_body(
                    CreateMessageRequestBody.builder().receive_id(CHAT).msg_type("text")
                    .content(text).build()).build())
            replied = client.im.v1.message.reply(
                ReplyMessageRequest.builder().message_id(asked).request_body(
                    ReplyMessageRequestBody.builder().msg_type("text").content(text)
                    .build()).build())
            updated = client.im.v1.message.update(
                UpdateMessageRequest.builder().message_id(created.data.message_id)
                .request_body(UpdateMessageRequestBody.builder().msg_type("text").content(
                    json.dumps({"text": "edited"})).build()).build())
            return created, replied, updated

        created, replied, updated = await asyncio.to_thread(calls)
    assert created.success() and replied.success() and updated.success()
    assert replied.data.parent_id == asked and created.data.chat_id == CHAT
    assert [m.text for m in fake.sent] == ["edited", "from the sdk"]


def test_the_spec_is_a_webhook_channel_that_edits() -> None:
    assert SPEC.transport == "webhook" and SPEC.capabilities.edit
    assert not SPEC.capabilities.typing and SPEC.requires == ("cryptography",)
    assert FeishuConfig().needs_webhook()


# ---- attachments through a gateway ----------------------------------------------------------

@pytest.fixture
async def harness() -> AsyncIterator[FeishuHarness]:
    made = FeishuHarness()
    await made.start()
    try:
        yield made
    finally:
        await made.stop()


async def test_a_picture_is_fetched_as_a_message_resource_and_seen_by_the_model(
        harness: FeishuHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    await online(harness, fake_llm, make_gateway)
    chat = harness.chat(0)
    event = harness.fake.media_event(chat, "image", PNG, "image/png")
    await harness._post(event)
    assert (await reply_to(harness, chat, 0)).startswith("Echo:")  # a picture, no text
    assert fake_llm.images == [("image/png", PNG)]
    (mid, _, kind), = harness.fake.downloads
    assert mid == _mid(event) and kind == "image"


async def test_a_resource_feishu_no_longer_has_is_reported(
        harness: FeishuHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    await online(harness, fake_llm, make_gateway)
    chat = harness.chat(1)
    event = harness.fake.media_event(chat, "file", PNG, "image/png", name="gone.png")
    harness.fake.resources.clear()
    await harness._post(event)
    assert await reply_to(harness, chat, 0) == (
        "I could not read what you sent: gone.png: 127.0.0.1 answered HTTP 400.")
    assert fake_llm.images == []
