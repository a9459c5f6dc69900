"""What is Webex's own: its signature, notifications without text, bots in group spaces,
mentions, threads, the webhook registration, the 10-edit limit and the byte limit.

Everything a channel shares (journal first, splitting, retries, group rule...) is the
contract suite's (tests/contract, harness_webex.py).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from connectors.webex._edits import FREE_EDITS, MAX_EDITS, SETTLE, EditBudget
from connectors.webex._parse import (
    Ignored,
    Malformed,
    Notice,
    parse_message,
    parse_notification,
    parse_person,
    strip_mention,
)
from connectors.webex.manifest import MAX_TEXT, SPEC, WebexConfig
from connectors.webex.runtime import WebexConnector
from pyclaw_app.channels import WebhookRejected, WebhookRequest, split_text, utf8_len
from pyclaw_app.channels.contract import AttachmentUnavailable
from pyclaw_app.errors import FatalConnectorError, RetryableError
from pyclaw_app.model import Address, Attachment, Inbound
from tests.conftest import GatewayFactory
from tests.contract.harness_webex import WebexHarness
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.webex_api import BOT_NAME, WebexFake, signature, webex_id
from tests.support import RecordingContext
from tests.test_attachments import PNG
from tests.test_attachments_channels import online, reply_to

SAMPLES = json.loads((Path(__file__).parent / "webex_samples.json").read_text("utf-8"))
"""Response examples of webex-openapi-specs' webex-messaging.json, verbatim."""
TARGET = "https://bot.example.com/webhook/webex"


@pytest.fixture
async def fake() -> AsyncIterator[WebexFake]:
    async with WebexFake() as server:
        yield server  # type: ignore[misc]


def connector(fake: WebexFake | None = None, **values: Any) -> WebexConnector:
    config: dict[str, Any] = {
        "access_token": SecretStr(fake.access_token if fake else "t"),
        "webhook_secret": SecretStr(fake.webhook_secret if fake else "somesupersecretphrase"),
        "api_base": fake.api_base if fake else "http://127.0.0.1:9/v1", **values}
    return WebexConnector("webex", WebexConfig(**config))


@pytest.fixture
async def running(fake: WebexFake) -> AsyncIterator[tuple[WebexConnector, RecordingContext]]:
    fake.add_webhook(TARGET)  # made by hand: webhook_url is not set
    conn, ctx = connector(fake), RecordingContext(channel="webex")
    await conn.start(ctx)
    yield conn, ctx
    await conn.stop()


async def deliver(conn: WebexConnector, signed: tuple[bytes, dict[str, str]]) -> int:
    body, headers = signed
    return (await conn.handle_webhook(WebhookRequest("POST", body, headers))).status


async def notify(conn: WebexConnector, fake: WebexFake, message: dict[str, Any]) -> list[int]:
    return [await deliver(conn, signed) for signed in fake.notifications(message)]


def logged(ctx: RecordingContext, level: str, words: str) -> bool:
    return any(lv == level and words in message for lv, message, _ in ctx.logs)


# ---- signature ------------------------------------------------------------------------------

def test_the_signature_is_hex_hmac_sha1_of_the_raw_body_and_nothing_else() -> None:
    """As Webex's "Using a Webhook Secret" computes it: hmac.new(key, raw, sha1).hexdigest()."""
    verify = connector()._verify  # secret "somesupersecretphrase", the blog's example
    body = b'{"id":"Y2lz","resource":"messages","event":"created","data":{"id":"Y2lzMQ"}}'
    good = hmac.new(b"somesupersecretphrase", body, hashlib.sha1).hexdigest()
    verify(WebhookRequest("POST", body, {"x-spark-signature": good}))
    sha256 = hmac.new(b"somesupersecretphrase", body, hashlib.sha256).hexdigest()
    for sent, headers in ((body, {"X-Spark-Signature": sha256}), (body, {}),
                          (body + b" ", {"X-Spark-Signature": good}),
                          (body, {"X-Spark-Signature": good.upper()})):
        with pytest.raises(WebhookRejected) as rejected:
            verify(WebhookRequest("POST", sent, headers))
        assert rejected.value.status == 401
    assert signature(body, "somesupersecretphrase") == good  # the fake signs the same way


async def test_a_forged_notification_is_refused_before_anything_is_fetched(
        running: tuple[WebexConnector, RecordingContext], fake: WebexFake) -> None:
    conn, ctx = running
    message = fake.post(fake.direct_room(1), "hi")
    [forged] = fake.notifications(message, secret="not-the-secret")
    assert await deliver(conn, forged) == 401
    assert ctx.inbound == [] and fake.calls("get_message") == 0
    assert logged(ctx, "warning", "rejected")
    request = WebhookRequest("GET", b"", {"X-Spark-Signature": signature(b"", "x")})
    assert (await conn.handle_webhook(request)).status == 405


# ---- notifications name a message; the connector reads it ------------------------------------

async def test_the_notification_carries_no_text_so_the_message_is_fetched(
        running: tuple[WebexConnector, RecordingContext], fake: WebexFake) -> None:
    conn, ctx = running
    room = fake.direct_room(1)
    message = fake.post(room, "what is the weather?")
    [(body, _)] = fake.notifications(message)
    assert "weather" not in body.decode()
    assert await notify(conn, fake, message) == [200]
    assert fake.calls("get_message") == 1
    [inbound] = ctx.inbound
    assert (inbound.text, inbound.platform_id, inbound.sender_id, inbound.sender_name) == (
        "what is the weather?", message["id"], fake.person(1)["id"], "user1@example.com")
    assert inbound.address == Address("webex", room, account=fake.me["id"])
    assert not inbound.is_group and not inbound.mentioned
    assert await notify(conn, fake, message) == [200]  # a redelivery: the journal's duplicate
    assert len(ctx.inbound) == 1


async def test_the_bots_own_messages_are_skipped_without_a_fetch(
        running: tuple[WebexConnector, RecordingContext], fake: WebexFake) -> None:
    conn, ctx = running
    room = fake.direct_room(1)
    await conn.send_part(Address("webex", room), "hello from the bot", None)
    [mine] = fake.sent
    assert await notify(conn, fake, fake.messages[mine.id]) == [200]
    assert ctx.inbound == [] and fake.calls("get_message") == 0


async def test_a_fetch_that_is_rate_limited_briefly_is_tried_again_in_the_request(
        running: tuple[WebexConnector, RecordingContext], fake: WebexFake) -> None:
    conn, ctx = running
    fake.fail_next("get_message", 429, retry_after=0.1)
    assert await notify(conn, fake, fake.post(fake.direct_room(1), "hi")) == [200]
    assert fake.calls("get_message") == 2 and [m.text for m in ctx.inbound] == ["hi"]


async def test_a_fetch_that_keeps_failing_is_answered_503_and_names_the_message(
        running: tuple[WebexConnector, RecordingContext], fake: WebexFake) -> None:
    conn, ctx = running
    fake.fail_next("get_message", 503, count=2)
    message = fake.post(fake.direct_room(1), "hi")
    assert await notify(conn, fake, message) == [503]
    assert ctx.inbound == [] and logged(ctx, "error", f"could not fetch Webex message "
                                                      f"{message['id']}")
    fake.fail_next("get_message", 429, retry_after=60)  # too long to wait out in a request
    assert await notify(conn, fake, message) == [503]
    assert fake.calls("get_message") == 3
    assert await notify(conn, fake, message) == [200]  # Webex sends it again: answered
    assert [m.text for m in ctx.inbound] == ["hi"]


async def test_a_message_deleted_before_it_was_read_is_logged_and_acknowledged(
        running: tuple[WebexConnector, RecordingContext], fake: WebexFake) -> None:
    conn, ctx = running
    message = fake.post(fake.direct_room(1), "oops")
    signed = fake.notifications(message)
    del fake.messages[message["id"]]
    assert [await deliver(conn, s) for s in signed] == [200]
    assert ctx.inbound == [] and logged(ctx, "warning", "was gone before it could be read")


async def test_broken_notifications_and_messages_are_logged_and_acknowledged(
        running: tuple[WebexConnector, RecordingContext], fake: WebexFake) -> None:
    conn, ctx = running
    hook = next(iter(fake.webhooks.values()))
    message = fake.post(fake.direct_room(1), "x")
    envelope = fake.envelope(message, hook)
    envelope["data"]["id"] = "../webhooks"  # never let a payload choose the request path
    assert await deliver(conn, fake.signed(envelope, hook["secret"])) == 200
    assert fake.calls("get_message") == 0 and logged(ctx, "error", "malformed Webex "
                                                                   "notification")
    fake.messages[message["id"]]["roomType"] = "huddle"
    assert await notify(conn, fake, message) == [200]
    assert ctx.inbound == [] and logged(ctx, "error", "malformed Webex message")
    other = {**envelope, "resource": "memberships", "data": {"id": "x"}}
    assert await deliver(conn, fake.signed(other, hook["secret"])) == 200
    assert len([line for line in ctx.logs if line[0] == "error"]) == 2


async def test_files_are_metadata_and_a_voice_clip_is_audio(
        running: tuple[WebexConnector, RecordingContext], fake: WebexFake) -> None:
    conn, ctx = running
    room, url = fake.direct_room(1), fake.content_url("minutes.pdf")
    await notify(conn, fake, fake.post(room, "the minutes", files=(url,)))
    await notify(conn, fake, fake.post(room, files=(fake.content_url("clip"),), voice=True))
    first, clip = ctx.inbound
    assert first.text == "the minutes"
    assert [(a.kind, a.url, a.platform_id) for a in first.attachments] == [
        ("file", url, url.rpartition("/")[2])]
    assert clip.text == "" and clip.attachments[0].kind == "audio"


# ---- group spaces, mentions and threads ---------------------------------------------------

async def test_a_bot_in_a_group_space_hears_only_its_mentions_without_its_name(
        running: tuple[WebexConnector, RecordingContext], fake: WebexFake) -> None:
    conn, ctx = running
    room = fake.group_room()
    assert fake.notifications(fake.post(room, "people talking", sender=2)) == []
    asked = fake.post(room, "what is due today?", sender=2, mention=True)
    assert asked["text"] == f"{BOT_NAME} what is due today?"
    assert await notify(conn, fake, asked) == [200]
    [inbound] = ctx.inbound
    assert inbound.text == "what is due today?"
    assert inbound.is_group and inbound.mentioned and not inbound.reply_to_bot
    assert inbound.address.thread == asked["id"]  # answered in a thread under it

    await conn.send_part(inbound.address, "Three things.", asked["id"])
    assert fake.sent[-1].parent == asked["id"]
    follow = fake.post(room, "and tomorrow?", sender=2, mention=True, parent=asked["id"])
    await notify(conn, fake, follow)
    assert ctx.inbound[-1].address.thread == asked["id"] and ctx.inbound[-1].reply_to_bot
    await conn.send_part(ctx.inbound[-1].address, "Nothing.", follow["id"])
    assert fake.sent[-1].parent == asked["id"]  # Webex refuses a reply to a reply


async def test_a_person_token_hears_everything_and_replies_in_its_threads_count(
        fake: WebexFake) -> None:
    fake.me["type"] = "person"
    fake.add_webhook(TARGET)
    conn, ctx = connector(fake), RecordingContext(channel="webex")
    await conn.start(ctx)
    try:
        room = fake.group_room()
        asked = fake.post(room, "question", sender=2, mention=True)
        await notify(conn, fake, asked)
        await conn.send_part(ctx.inbound[0].address, "answer", asked["id"])
        await notify(conn, fake, fake.post(room, "thanks", sender=3, parent=asked["id"]))
        await notify(conn, fake, fake.post(room, "chatter", sender=3))
        thanks, chatter = ctx.inbound[1:]
        assert (thanks.mentioned, thanks.reply_to_bot) == (False, True)
        assert (chatter.mentioned, chatter.reply_to_bot, chatter.is_group) == (False, False,
                                                                               True)
    finally:
        await conn.stop()


async def test_direct_spaces_are_answered_flat_unless_the_user_wrote_in_a_thread(
        running: tuple[WebexConnector, RecordingContext], fake: WebexFake) -> None:
    conn, ctx = running
    room = fake.direct_room(1)
    root = fake.post(room, "first")
    await notify(conn, fake, root)
    await notify(conn, fake, fake.post(room, "in a thread", parent=root["id"]))
    flat, threaded = ctx.inbound
    assert flat.address.thread is None and threaded.address.thread == root["id"]
    await conn.send_part(flat.address, "one", flat.platform_id)
    await conn.send_part(threaded.address, "two", threaded.platform_id)
    assert [m.parent for m in fake.sent] == [None, root["id"]]


_TAG = '<spark-mention data-object-type="person" data-object-id="{}">{}</spark-mention>'
"""A person mention in a message's ``html``, as developer.webex.com's "Bots" guide shows it."""
WEBEX_BOT = webex_id("PEOPLE", "account")


def webex_said(text: str, markup: str) -> str:
    """What the model reads of webex-openapi-specs' ``get_message`` example (its text and
    html replaced) when it @mentions the bot, whose displayName is Pyclaw."""
    raw = {**SAMPLES["get_message"], "text": text, "html": markup,
           "mentionedPeople": [WEBEX_BOT]}
    item = parse_message(raw, channel="webex", bot_id=WEBEX_BOT, ours=(), bot_name="Pyclaw")
    assert isinstance(item, Inbound) and item.mentioned
    return item.text


@pytest.mark.parametrize(("text", "markup", "expected"), [
    ("Pyclaw, hi", f"<p>{_TAG.format(WEBEX_BOT, 'Pyclaw')}, hi</p>", "hi"),
    ("Pyclaw what is due today?", f"<p>{_TAG.format(WEBEX_BOT, 'Pyclaw')} what is due "
     "today?</p>", "what is due today?"),
    ("what is due today Pyclaw?", f"<p>what is due today {_TAG.format(WEBEX_BOT, 'Pyclaw')}"
     "?</p>", "what is due today?"),
    ("ask Pyclaw now", f"<p>ask {_TAG.format(WEBEX_BOT, 'Pyclaw')} now</p>", "ask Pyclaw now"),
    ("Pyclaw", f"<p>{_TAG.format(WEBEX_BOT, 'Pyclaw')}</p>", "@Pyclaw"),
    ("Mike C. and Pyclaw, look", f"<p>{_TAG.format(webex_id('PEOPLE', 'mike'), 'Mike C.')} "
     f"and {_TAG.format(WEBEX_BOT, 'Pyclaw')}, look</p>", "Mike C. and Pyclaw, look"),
    ("Pyclaw ask Mike C.", f"<p>{_TAG.format(WEBEX_BOT, 'Pyclaw')} ask "
     f"{_TAG.format(webex_id('PEOPLE', 'mike'), 'Mike C.')}</p>", "ask Mike C."),
])
def test_the_bots_mention_is_cut_where_it_addresses_the_bot(
        text: str, markup: str, expected: str) -> None:
    assert webex_said(text, markup) == expected


def test_a_mention_is_matched_by_id_in_either_form_and_only_the_bots() -> None:
    uuid = __import__("base64").urlsafe_b64decode(WEBEX_BOT + "==").decode().rpartition("/")[2]
    assert strip_mention("Py hi", _TAG.format(uuid, "Py") + " hi", WEBEX_BOT,
                         bot_name="Pyclaw") == "hi"  # shortened, the UUID form of the id
    other = _TAG.format(webex_id("PEOPLE", "someone"), "Ann")
    assert strip_mention("Ann hi", other + " hi", WEBEX_BOT, bot_name="Pyclaw") == "Ann hi"
    assert strip_mention("Pyclaw hi", "", WEBEX_BOT, bot_name="Pyclaw") == "Pyclaw hi"


def test_the_published_examples_parse() -> None:
    raw = SAMPLES["get_message"]
    item = parse_message(raw, channel="webex", bot_id="not-mentioned", ours=())
    assert isinstance(item, Inbound)
    assert item.text == raw["text"] and item.is_group and not item.mentioned
    assert item.address.chat == raw["roomId"] and item.address.thread == raw["parentId"]
    assert item.sender_name == "matt@example.com"
    assert item.ts == pytest.approx(1445178376.0)
    assert [a.url for a in item.attachments] == ["http://www.example.com/images/media.png"]
    person = parse_person(SAMPLES["people_me"])
    assert person is not None and (person.name, person.kind) == ("John Andersen", "person")
    own = parse_message(raw, channel="webex", bot_id=raw["personId"], ours=())
    assert own == Ignored("the bot's own message")


def test_only_messages_created_name_a_message() -> None:
    envelope = {"id": "w", "resource": "messages", "event": "created",
                "data": {"id": "bWVzc2FnZQ", "roomId": "cm9vbQ", "personId": "p"}}
    assert parse_notification(envelope) == Notice("bWVzc2FnZQ", "cm9vbQ", "p", "w")
    assert isinstance(parse_notification({**envelope, "event": "deleted"}), Ignored)
    assert isinstance(parse_notification({**envelope, "data": []}), Malformed)
    assert isinstance(parse_notification([envelope]), Malformed)


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                     lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=12), inner, max_size=5), max_leaves=25)
_FIELD = st.none() | st.booleans() | st.integers() | st.text(max_size=12) | st.lists(
    st.text(max_size=8), max_size=2) | st.dictionaries(st.text(max_size=4), st.integers(),
                                                       max_size=2)


@settings(max_examples=300, deadline=None)
@given(_JSON)
def test_the_parsers_never_raise_on_any_json(value: Any) -> None:
    parse_notification(value)
    parse_message(value, channel="webex", bot_id="b", ours={"x"})
    parse_person(value)


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({}, optional={
    k: _FIELD for k in ("id", "roomId", "roomType", "personId", "personEmail", "text", "html",
                        "parentId", "files", "mentionedPeople", "created", "isVoiceClip")}))
def test_a_message_of_odd_fields_is_an_inbound_or_a_reason(raw: dict[str, Any]) -> None:
    item = parse_message(raw, channel="webex", bot_id="b", ours={"x"})
    assert isinstance(item, Inbound | Ignored | Malformed)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.text(max_size=80))
def test_stripping_a_mention_only_ever_shortens_the_text(text: str, markup: str) -> None:
    out = strip_mention(text, markup, "b", bot_name="Pyclaw")
    assert out in text or out == "@Pyclaw"


# ---- sending, edits and limits ----------------------------------------------------------------

async def test_parts_are_markdown_or_text_and_a_byte_over_the_limit_is_refused(
        fake: WebexFake) -> None:
    fake.add_webhook(TARGET)
    for fmt in ("markdown", "text"):
        conn, ctx = connector(fake, message_format=fmt), RecordingContext(channel="webex")
        await conn.start(ctx)
        room = fake.direct_room(1)
        mid = await conn.send_part(Address("webex", room), "**hi**", None)
        assert fmt in fake.messages[mid] and fake.messages[mid][fmt] == "**hi**"
        await conn.stop()
    assert SPEC.limits.max_text == MAX_TEXT == 7439 and SPEC.limits.text_length is utf8_len
    parts = split_text("é" * 7439, SPEC.limits.max_text, SPEC.limits.text_length)
    assert [utf8_len(p) for p in parts] == [7438, 7438, 2]  # two bytes a letter
    conn, ctx = connector(fake), RecordingContext(channel="webex")
    await conn.start(ctx)
    try:
        await conn.send_part(Address("webex", room), "é" * 3719 + "e", None)  # 7,439 bytes
        with pytest.raises(FatalConnectorError, match="7439 bytes"):
            await conn.send_part(Address("webex", room), "é" * 3720, None)
    finally:
        await conn.stop()


async def test_an_edit_replaces_the_text_and_an_unchanged_one_costs_nothing(
        running: tuple[WebexConnector, RecordingContext], fake: WebexFake) -> None:
    conn, _ = running
    room = fake.direct_room(1)
    mid = await conn.send_part(Address("webex", room), "draft", None)
    await conn.edit(Address("webex", room), mid, "draft grows")
    await conn.edit(Address("webex", room), mid, "draft grows")
    assert fake.visible(room) == ["draft grows"] and fake.edit_counts[mid] == 1
    with pytest.raises(FatalConnectorError):
        await conn.edit(Address("webex", room), "../people/me", "x")


async def test_rapid_edits_never_pass_ten_and_wait_with_retry_after(
        running: tuple[WebexConnector, RecordingContext], fake: WebexFake) -> None:
    conn, _ = running
    address = Address("webex", fake.direct_room(1))
    mid = await conn.send_part(address, "0", None)
    waits = []
    for i in range(1, 30):
        try:
            await conn.edit(address, mid, str(i))
        except RetryableError as exc:
            waits.append(exc.retry_after)
    assert FREE_EDITS <= fake.edit_counts[mid] < MAX_EDITS  # the spacing holds the rest back
    assert waits and all(w is not None and 0 < w <= SETTLE for w in waits)


def test_the_budget_keeps_the_last_edit_for_the_text_that_settles() -> None:
    now = [0.0]
    budget = EditBudget(10, clock=lambda: now[0])
    budget.sent("m", "")
    texts = iter(range(1000))

    def stream_edit() -> float:
        text = f"text {next(texts)}"
        wait = budget.wait("m", text)
        if not wait:
            budget.edited("m", text)
        return wait

    while budget.left("m") != 1:  # a long reply being written, an edit asked every second
        stream_edit()
        now[0] += 1.0
    assert now[0] >= FREE_EDITS + 2 + 4 + 8 + 16  # the spacing doubled after FREE_EDITS
    for _ in range(90):  # still writing: every text is new, none takes the last edit
        assert stream_edit() > 0
        now[0] += 1.0
    final = "the whole reply"
    wait = budget.wait("m", final)
    assert 0 < wait <= SETTLE
    now[0] += wait
    assert budget.wait("m", final) == 0  # asked again unchanged: it has settled
    budget.edited("m", final)
    assert budget.left("m") == 0 and budget.showing("m", final)
    with pytest.raises(FatalConnectorError, match=f"{MAX_EDITS} edits"):
        budget.wait("m", "more")
    assert budget.wait("unknown", "x") == 0  # sent before a restart: Webex judges


# ---- errors -------------------------------------------------------------------------------------

async def test_429_and_423_are_retryable_with_their_retry_after(
        running: tuple[WebexConnector, RecordingContext], fake: WebexFake) -> None:
    conn, _ = running
    address = Address("webex", fake.direct_room(1))
    for status in (429, 423):
        fake.fail_next("send", status, retry_after=7)
        with pytest.raises(RetryableError) as raised:
            await conn.send_part(address, "hi", None)
        assert raised.value.retry_after == 7
    fake.fail_next("send", 404)
    with pytest.raises(FatalConnectorError, match="a member of the space"):
        await conn.send_part(address, "hi", None)
    assert fake.sent == []


async def test_a_bad_token_fails_the_start_and_the_probe_with_advice(fake: WebexFake) -> None:
    conn = connector(fake, access_token=SecretStr("revoked"))
    ctx = RecordingContext(channel="webex")
    with pytest.raises(FatalConnectorError, match="check the token"):
        await conn.start(ctx)
    result = await connector(fake, access_token=SecretStr("revoked")).probe()
    assert not result.ok and "check the token" in result.message
    assert "revoked" not in result.message
    assert (await connector(fake).probe()).message == f"connected as {BOT_NAME} (bot)"
    no_secret = WebexConnector("webex", WebexConfig(
        access_token=SecretStr(fake.access_token), api_base=fake.api_base))
    with pytest.raises(FatalConnectorError, match="webhook_secret is not set"):
        await no_secret.start(RecordingContext(channel="webex"))


# ---- the webhook registration -----------------------------------------------------------------

async def test_the_webhook_is_registered_once_and_updated_on_every_start(
        fake: WebexFake) -> None:
    for url in (TARGET, TARGET, "https://new.example.com/webhook/webex"):
        conn, ctx = connector(fake, webhook_url=url), RecordingContext(channel="webex")
        await conn.start(ctx)
        await conn.stop()
        [hook] = fake.webhooks.values()
        assert (hook["name"], hook["targetUrl"], hook["resource"], hook["event"],
                hook["secret"], hook["status"]) == ("pyclaw webex", url, "messages",
                                                    "created", fake.webhook_secret, "active")
    assert (fake.calls("create_webhook"), fake.calls("update_webhook")) == (1, 2)
    fake.deactivate(hook["id"])
    conn, ctx = connector(fake, webhook_url=TARGET), RecordingContext(channel="webex")
    await conn.start(ctx)
    await conn.stop()
    assert hook["status"] == "active" and logged(ctx, "info", "reactivated")


async def test_a_hand_made_webhook_for_the_same_url_is_adopted(fake: WebexFake) -> None:
    own = fake.add_webhook(TARGET, secret="an old secret")
    conn, ctx = connector(fake, webhook_url=TARGET), RecordingContext(channel="webex")
    await conn.start(ctx)
    await conn.stop()
    assert list(fake.webhooks) == [own] and fake.webhooks[own]["secret"] == fake.webhook_secret


async def test_without_webhook_url_nothing_is_registered_and_the_log_says_how(
        fake: WebexFake) -> None:
    conn, ctx = connector(fake, group_reply="all"), RecordingContext(channel="webex")
    await conn.start(ctx)
    await conn.stop()
    assert fake.webhooks == {} and logged(ctx, "info", "create one for resource messages")
    assert logged(ctx, "warning", "only of the group-space messages that @mention it")


async def test_a_refused_registration_fails_the_start_naming_the_url(fake: WebexFake) -> None:
    fake.fail_next("create_webhook", 400)
    conn, ctx = connector(fake, webhook_url=TARGET), RecordingContext(channel="webex")
    with pytest.raises(FatalConnectorError, match=f"register the Webex webhook for {TARGET}"):
        await conn.start(ctx)


# ---- files ----------------------------------------------------------------------------------

@pytest.fixture
async def harness() -> AsyncIterator[WebexHarness]:
    harness = WebexHarness()
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()


async def post_through(harness: WebexHarness, message: dict[str, Any]) -> None:
    for request in harness.fake.notifications(message):
        await harness.deliver(request)


async def test_a_picture_is_fetched_from_contents_with_the_token_and_seen(
        harness: WebexHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    await online(harness, fake_llm, make_gateway)
    fake, chat = harness.fake, harness.chat(0)
    url = fake.content_url("photo.png", PNG)
    await post_through(harness, fake.post(chat, "what is this?", files=(url,)))
    assert await reply_to(harness, chat, 0) == "Echo: what is this?"
    assert fake_llm.images == [("image/png", PNG)]
    auth = f"Bearer {fake.access_token}"
    cid = url.rpartition("/")[2]
    assert fake.downloads == [("HEAD", cid, auth), ("GET", cid, auth)]


@pytest.mark.parametrize(("scan", "says"), [
    ("unsafe", "Webex's malware scan found the file unsafe, so it cannot be downloaded"),
    ("unscannable", "Webex could not scan the file for malware (it may be encrypted)"),
])
async def test_a_file_the_malware_scan_holds_back_is_explained_to_the_sender(
        harness: WebexHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory,
        scan: str, says: str) -> None:
    gateway = await online(harness, fake_llm, make_gateway)
    fake, chat = harness.fake, harness.chat(1)
    url = fake.content_url("tool.pdf", PNG, "application/pdf", scan=scan)
    await post_through(harness, fake.post(chat, files=(url,)))
    reply = await reply_to(harness, chat, 0)
    assert reply.startswith(f"I could not read what you sent: the file: {says}"), reply
    assert [verb for verb, _, _ in fake.downloads] == ["HEAD"] and fake_llm.requests == []
    assert await gateway.store.logs.page(channel="webex", search="malware")


async def test_the_token_never_goes_to_a_file_url_off_the_api_host(
        harness: WebexHarness) -> None:
    conn = WebexConnector("webex", WebexConfig(**{
        k: SecretStr(v) if k in ("access_token", "webhook_secret") else v
        for k, v in harness.channel_config().items()}))
    foreign = Attachment(kind="file", url="https://evil.example.com/v1/contents/abc")
    with pytest.raises(AttachmentUnavailable, match="not sent there"):
        await conn.fetch_attachment(foreign)
