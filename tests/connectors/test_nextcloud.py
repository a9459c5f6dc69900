"""What is Nextcloud Talk's own: both signatures, the backend header, activities and their
rich-object parameters, the bot API's answers, and the capabilities read at start.

Everything a channel shares (journal first, splitting, retries, group rule...) is the
contract suite's (tests/contract, harness_nextcloud.py). Talk publishes no signature test
vector (docs/bots.md gives a PHP snippet and a bash script, spreed's own unit test draws
a random secret), so the outbound signature is checked against the docs' bash recipe run
through openssl, and the inbound one against the fake's independent HMAC.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from connectors.nextcloud._parse import BotIdentity, Ignored, Membership, parse_activity
from connectors.nextcloud.manifest import MAX_TEXT, NextcloudConfig
from connectors.nextcloud.runtime import BOT_IDS_KEY, NextcloudConnector
from pyclaw_app.channels import WebhookRejected, WebhookRequest
from pyclaw_app.errors import FatalConnectorError, RetryableError
from pyclaw_app.model import Address, Inbound
from tests.fakes.nextcloud_api import BOT_NAME, NextcloudFake
from tests.support import RecordingContext

SAMPLES = json.loads((Path(__file__).parent / "nextcloud_bots_md_samples.json")
                     .read_text("utf-8"))
"""The sample requests of docs/bots.md (github.com/nextcloud/spreed), verbatim."""
ROOM = "n3xtc10ud"
BOT = BotIdentity(BOT_NAME)


@pytest.fixture
async def fake() -> AsyncIterator[NextcloudFake]:
    async with NextcloudFake() as server:
        yield server  # type: ignore[misc]


def connector(fake: NextcloudFake | None = None, **values: Any) -> NextcloudConnector:
    config: dict[str, Any] = {"server_url": fake.url if fake else "https://cloud.example.com",
                              "secret": SecretStr(fake.secret if fake else "s" * 40),
                              "bot_name": BOT_NAME, **values}
    return NextcloudConnector("nextcloud", NextcloudConfig(**config))


@pytest.fixture
async def running(fake: NextcloudFake
                  ) -> AsyncIterator[tuple[NextcloudConnector, RecordingContext]]:
    conn, ctx = connector(fake), RecordingContext(channel="nextcloud")
    await conn.start(ctx)
    yield conn, ctx
    await conn.stop()


async def post(conn: NextcloudConnector, fake: NextcloudFake, activity: Any, **kw: Any) -> int:
    body, headers = fake.signed(activity, **kw)
    return (await conn.handle_webhook(WebhookRequest("POST", body, headers))).status


def parse(activity: Any, bot: BotIdentity = BOT, direct: frozenset[str] = frozenset()
          ) -> Inbound:
    parsed = parse_activity(activity, channel="nextcloud", bot=bot, direct=direct)
    assert isinstance(parsed, Inbound), parsed
    return parsed


# ---- signatures ------------------------------------------------------------------------------

def test_the_webhook_signature_covers_the_random_and_the_raw_body() -> None:
    fake = NextcloudFake()
    verify = connector(server_url=fake.url, secret=SecretStr(fake.secret))._verify
    body, headers = fake.signed(SAMPLES["create"])
    verify(WebhookRequest("POST", body, headers))
    again, fresh = fake.signed(SAMPLES["create"])  # PHP compares the signature lower-cased
    verify(WebhookRequest("POST", again, {**fresh, "X-Nextcloud-Talk-Signature":
                                          fresh["X-Nextcloud-Talk-Signature"].upper()}))
    other_random = {**headers, "X-Nextcloud-Talk-Random": "A" * 64}
    without_random = {k: v for k, v in headers.items() if k != "X-Nextcloud-Talk-Random"}
    for sent, sent_headers in ((body + b" ", headers), (body, other_random),
                               (body, without_random), (body, {})):
        with pytest.raises(WebhookRejected) as rejected:
            verify(WebhookRequest("POST", sent, sent_headers))
        assert rejected.value.status == 401


def test_a_replayed_request_and_a_foreign_backend_are_refused() -> None:
    fake = NextcloudFake()
    conn = connector(server_url=fake.url + "/", secret=SecretStr(fake.secret),
                     backend_url="http://localhost")
    signed = fake.signed(SAMPLES["create"])
    conn._verify(WebhookRequest("POST", *signed))  # trailing slashes do not matter
    with pytest.raises(WebhookRejected, match="replayed") as replayed:
        conn._verify(WebhookRequest("POST", *signed))
    assert replayed.value.status == 403
    conn._verify(WebhookRequest("POST", *fake.signed(SAMPLES["create"],
                                                      backend="http://LOCALHOST:80/")))
    for backend in ("https://evil.example/", "", fake.url.replace("http:", "https:")):
        with pytest.raises(WebhookRejected, match="backend_url") as foreign:
            conn._verify(WebhookRequest("POST", *fake.signed(SAMPLES["create"],
                                                              backend=backend)))
        assert foreign.value.status == 403
    with pytest.raises(WebhookRejected) as get:
        conn._verify(WebhookRequest("GET", b""))
    assert get.value.status == 405


def test_a_reply_is_signed_as_the_docs_bash_recipe_signs_it() -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    secret = "53CR3T-" + "0" * 40
    text = "Grüße 👋 \"quoted\" / slashed"
    headers = connector(secret=SecretStr(secret))._signed(text)
    random = headers["X-Nextcloud-Talk-Bot-Random"]
    assert len(random) >= 32  # BotController refuses a shorter random with 400
    # MESSAGE_TO_SIGN="${RANDOM_HEADER}${MESSAGE}"; echo -n ... | openssl dgst -sha256 -hmac
    digest = subprocess.run([openssl, "dgst", "-sha256", "-hmac", secret],
                            input=(random + text).encode(), capture_output=True, check=True)
    assert headers["X-Nextcloud-Talk-Bot-Signature"] == digest.stdout.split()[-1].decode()
    assert connector(secret=SecretStr(secret))._signed(text)["X-Nextcloud-Talk-Bot-Random"] \
        != random


# ---- activities --------------------------------------------------------------------------------

def test_the_docs_samples_parse() -> None:
    message = parse(SAMPLES["create"])
    assert (message.platform_id, message.address.chat, message.text) == ("1567", ROOM,
                                                                        "hi @world !")
    assert (message.sender_id, message.sender_name) == ("users/ada-lovelace", "Ada Lovelace")
    assert message.is_group and not message.mentioned and not message.reply_to_bot
    assert not parse(SAMPLES["create"], direct=frozenset({ROOM})).is_group
    for kind in ("like", "undo"):
        assert isinstance(parse_activity(SAMPLES[kind], channel="n", bot=BOT), Ignored)
    joined = parse_activity(SAMPLES["join"], channel="n", bot=BOT)
    left = parse_activity(SAMPLES["leave"], channel="n", bot=BOT)
    assert joined == Membership(True, ROOM, "world",
                                "bots/bot-a78f46c5c203141b247554e180e1aa3553d282c6", "Bot123")
    assert isinstance(left, Membership) and not left.joined


def test_other_peoples_mentions_render_as_the_user_saw_them() -> None:
    fake = NextcloudFake()
    people = {"mention-user1": {"type": "user", "id": "bob", "name": "Bob Builder"},
              "mention-guest1": {"type": "guest", "id": "guest/0a1b", "name": "Visitor"},
              "mention-user-group1": {"type": "user-group", "id": "sales", "name": "Sales"}}
    seen = parse(fake.message(ROOM, "{mention-user1}, {mention-guest1} and "
                                    "{mention-user-group1}: see {unknown}", parameters=people))
    assert seen.text == "@Bob Builder, @Visitor and @Sales: see {unknown}"
    assert not seen.mentioned
    for other in ("mail me at x@pyclaw.org", "@pyclawed is not me"):
        assert not parse(fake.message(ROOM, other)).mentioned


BOT_PARAM = {"type": "user", "id": "bot-abc", "name": "pyclaw (Bot)"}


def docs_create(message: str, **parameters: dict[str, str]) -> dict[str, Any]:
    """docs/bots.md's ``Create`` sample ("hi {mention-call1} !") with its content's message
    and parameters replaced; its {mention-call1} (the conversation "world") is kept."""
    activity = json.loads(json.dumps(SAMPLES["create"]))
    sample = json.loads(activity["object"]["content"])
    params = {**sample["parameters"], **parameters}
    activity["object"]["content"] = json.dumps({"message": message, "parameters": params})
    return activity


@pytest.mark.parametrize(("message", "expected"), [
    ("@pyclaw, what is up?", "what is up?"),
    ('@"pyclaw" go', "go"),
    ("what do you think @pyclaw?", "what do you think?"),
    ("thanks @PyClaw, that helps", "thanks @PyClaw, that helps"),  # inside: as typed
    ("@pyclaw", "@pyclaw"),
    ("@pyclaw hi {mention-call1} !", "hi @world !"),
    ("{mention-user1} hi", "hi"),  # the bot as a rich object (Talk made it a chip)
    ("hi {mention-call1} {mention-user1}?", "hi @world?"),
    ("ask {mention-user1} about {mention-call1}", "ask @pyclaw (Bot) about @world"),
    ("{mention-user1}", "@pyclaw"),
])
def test_the_bots_mention_is_cut_where_it_addresses_the_bot(message: str,
                                                            expected: str) -> None:
    inbound = parse(docs_create(message, **{"mention-user1": BOT_PARAM}))
    assert (inbound.mentioned, inbound.text) == (True, expected)


def test_files_and_locations_are_attachments_and_bots_are_never_answered() -> None:
    fake = NextcloudFake()
    image = parse(fake.file_message(ROOM, "cat.png", "image/png", 1234))
    assert image.text == ""
    (shown,) = image.attachments
    assert (shown.kind, shown.name, shown.mime, shown.size) == ("image", "cat.png",
                                                                 "image/png", 1234)
    assert shown.url is not None and shown.url.startswith(fake.url) and shown.platform_id
    voice = parse(fake.file_message(ROOM, "voice.ogg", "audio/ogg")).attachments[0]
    assert voice.kind == "audio"
    where = parse(fake.message(ROOM, "here {geo-location}", parameters={"geo-location": {
        "type": "geo-location", "id": "geo:52.52,13.40", "name": "Berlin",
        "latitude": "52.52", "longitude": "13.40"}}))
    assert where.text == "here" and where.attachments[0].url == "geo:52.52,13.40"
    other_bot = fake.message(ROOM, "hello", sender="bots/bot-0123", sender_name="Other")
    assert isinstance(parse_activity(other_bot, channel="n", bot=BOT), Ignored)
    system = {**fake.message(ROOM, "x"), "type": "Activity"}
    assert isinstance(parse_activity(system, channel="n", bot=BOT), Ignored)
    broken = fake.message(ROOM, "x")
    broken["target"]["id"] = "../../apps"  # never a path segment of a reply
    assert parse_activity(broken, channel="n", bot=BOT) is None


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=12), inner, max_size=5), max_leaves=25))
def test_the_parser_never_raises_on_any_json(value: Any) -> None:
    parse_activity(value, channel="n", bot=BotIdentity("pyclaw", frozenset({"bots/bot-1"})))


_ANY = st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.lists(
    st.integers(), max_size=2) | st.dictionaries(st.text(max_size=4), st.integers(), max_size=2)
_PARAM = st.dictionaries(st.sampled_from(["type", "id", "name", "mimetype", "size", "link",
                                          "latitude", "longitude"]),
                         st.sampled_from(["file", "user", "geo-location", "call"]) | _ANY)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40) | st.sampled_from(["{file}", "@pyclaw {mention-user1}", "{x}"]),
       st.dictionaries(st.sampled_from(["file", "mention-user1", "x"]), _PARAM | _ANY,
                       max_size=3) | _ANY,
       st.fixed_dictionaries({}, optional={"id": _ANY, "name": _ANY, "type": _ANY}),
       _ANY, st.sampled_from(["Create", "Join", "Leave", "Activity"]))
def test_the_parser_never_raises_on_activities_of_any_shape(
        message: str, params: Any, actor: dict[str, Any], mid: Any, kind: str) -> None:
    content = json.dumps({"message": message, "parameters": params})
    activity = {"type": kind, "actor": actor, "target": {"id": ROOM},
                "object": {"type": "Note", "id": mid, "content": content,
                           "inReplyTo": {"actor": actor}}}
    parse_activity(activity, channel="n", bot=BOT)


# ---- the webhook path -----------------------------------------------------------------------

async def test_joins_are_logged_and_teach_the_bot_its_id_for_replies(
        running: tuple[NextcloudConnector, RecordingContext], fake: NextcloudFake) -> None:
    conn, ctx = running
    assert await post(conn, fake, fake.membership(ROOM)) == 200
    assert await ctx.state.get(BOT_IDS_KEY) == [fake.bot_actor_id]
    assert any(m == f"added to conversation '{ROOM}' ({ROOM})" for _, m, _ in ctx.logs)
    await conn.send_part(Address("nextcloud", ROOM), "I am the bot", None)
    renamed = BotIdentity("someone-else", frozenset(await ctx.state.get(BOT_IDS_KEY)))
    reply = fake.message(ROOM, "thanks", reply_to=fake.sent[0].id)
    assert parse(reply, bot=renamed).reply_to_bot  # by the learned id, not the name
    assert await post(conn, fake, reply) == 200 and ctx.inbound[-1].reply_to_bot
    assert not parse(fake.message(ROOM, "re", reply_to=ctx.inbound[-1].platform_id)
                     ).reply_to_bot
    fake.bot_name = "Helper"
    assert await post(conn, fake, fake.membership(ROOM, joined=False)) == 200
    assert any(lvl == "warning" and "'Helper'" in m for lvl, m, _ in ctx.logs)
    again, later = connector(fake, bot_name="renamed"), RecordingContext(
        channel="nextcloud", state=ctx.state)  # a restart: the id comes from ctx.state
    await again.start(later)
    try:
        reply = fake.message(ROOM, "and again", reply_to=fake.sent[0].id)
        assert await post(again, fake, reply) == 200
        assert later.inbound[-1].reply_to_bot
    finally:
        await again.stop()


async def test_a_malformed_activity_is_logged_and_answered_400(
        running: tuple[NextcloudConnector, RecordingContext], fake: NextcloudFake) -> None:
    conn, ctx = running
    broken = fake.message(ROOM, "x")
    broken["object"]["content"] = "{not json"
    assert await post(conn, fake, broken) == 400
    assert ctx.inbound == []
    assert [lvl for lvl, m, _ in ctx.logs if "not a Talk activity" in m] == ["error"]
    assert await post(conn, fake, fake.message(ROOM, "fine")) == 200
    assert [m.text for m in ctx.inbound] == ["fine"]


# ---- replies ------------------------------------------------------------------------------------

async def test_a_reply_quotes_its_message_and_its_id_is_the_reference_id(
        running: tuple[NextcloudConnector, RecordingContext], fake: NextcloudFake) -> None:
    conn, _ = running
    question = fake.message(ROOM, "question")
    pid = await conn.send_part(Address("nextcloud", ROOM), "answer", question["object"]["id"])
    (sent,) = fake.sent
    assert (sent.text, sent.reply_to, sent.reference_id) == ("answer", question["object"]["id"],
                                                             pid)
    assert len(pid) == 64 and int(pid, 16) >= 0


async def test_a_reply_talk_refuses_to_thread_is_posted_plainly(
        running: tuple[NextcloudConnector, RecordingContext], fake: NextcloudFake) -> None:
    conn, _ = running
    fake.conversation(ROOM).messages["900"] = "system"  # a system message cannot be answered
    await conn.send_part(Address("nextcloud", ROOM), "still said", "900")
    assert [(m.text, m.reply_to) for m in fake.sent] == [("still said", None)]
    assert fake.calls("message") == 2


async def test_a_bot_not_enabled_is_a_clear_401_and_repeated_ones_a_block(
        running: tuple[NextcloudConnector, RecordingContext], fake: NextcloudFake) -> None:
    conn, _ = running
    fake.conversation("elsewhere", bot_enabled=False)
    with pytest.raises(FatalConnectorError, match=r"HTTP 401.*Conversation settings > Bots"
                       r".*--feature response.*secret") as refused:
        await conn.send_part(Address("nextcloud", "elsewhere"), "hello", None)
    assert fake.secret not in str(refused.value)
    for _ in range(fake.max_attempts):
        with pytest.raises(FatalConnectorError, match="HTTP 401"):
            await conn.send_part(Address("nextcloud", "elsewhere"), "hello", None)
    with pytest.raises(FatalConnectorError, match=r"brute-force.*security:bruteforce:reset"):
        await conn.send_part(Address("nextcloud", ROOM), "hello", None)  # every token now
    assert fake.sent == []


async def test_a_proxy_rate_limit_is_retryable_and_oversized_parts_are_fatal(
        running: tuple[NextcloudConnector, RecordingContext], fake: NextcloudFake) -> None:
    conn, _ = running
    fake.conversation(ROOM)
    fake.fail_next("message", 429, retry_after=7)
    with pytest.raises(RetryableError) as limited:
        await conn.send_part(Address("nextcloud", ROOM), "hello", None)
    assert limited.value.retry_after == 7
    fake.max_length = 10
    with pytest.raises(FatalConnectorError, match=r"HTTP 413.*longer than this server"):
        await conn.send_part(Address("nextcloud", ROOM), "x" * 11, None)
    with pytest.raises(FatalConnectorError, match="not a Talk conversation token"):
        await conn.send_part(Address("nextcloud", "../x"), "hello", None)
    assert fake.sent == []


# ---- start, probe, settings -----------------------------------------------------------------

async def test_start_reads_the_servers_limit_and_the_probe_says_where(
        fake: NextcloudFake) -> None:
    fake.max_length = 1000  # Talk before 16.0.1
    conn, ctx = connector(fake), RecordingContext(channel="nextcloud")
    assert conn.limits.max_text == MAX_TEXT
    await conn.start(ctx)
    try:
        assert conn.limits.max_text == 1000
    finally:
        await conn.stop()
    result = await connector(fake).probe()
    host = fake.url.removeprefix("http://")
    assert result.ok and result.message == \
        f"connected as bot pyclaw on {host} (Nextcloud 31.0.4, Talk 21.1.0)"


async def test_a_server_without_bots_or_with_a_bad_setting_does_not_start(
        fake: NextcloudFake) -> None:
    fake.talk_features.remove("bots-v1")  # Talk before 17.1
    with pytest.raises(FatalConnectorError, match="has no bots"):
        await connector(fake).start(RecordingContext(channel="nextcloud"))
    fake.talk_features.append("bots-v1")
    for values, wanted in (({"secret": SecretStr("short")}, "40 to 128"),
                           ({"server_url": "cloud.example.com"}, "not an http"),
                           ({"backend_url": "ftp://x"}, "backend_url"),
                           ({"bot_name": " "}, "bot_name is empty")):
        with pytest.raises(FatalConnectorError, match=wanted):
            await connector(fake, **values).start(RecordingContext(channel="nextcloud"))
        if "server_url" not in values:
            assert wanted in (await connector(fake, **values).probe()).message
