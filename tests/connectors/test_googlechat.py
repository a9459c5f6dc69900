"""What is Google Chat's own: the bearer token Google signs, its certificates, the service
account's access token, interaction events, threads, and the sync and async reply modes.

Everything a channel shares (journal first, splitting, retries, group rule...) is the
contract suite's (tests/contract, harness_googlechat.py). Google publishes no signed test
vectors for Chat requests; the fake signs with keys of its own and serves their certificates.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from connectors.googlechat import _account, _verify, runtime
from connectors.googlechat._account import SCOPE, ServiceAccount
from connectors.googlechat._parse import ChatMessage, Ignored, Malformed, parse_event
from connectors.googlechat._verify import Audience, Certificates, key_id, verify_bearer
from connectors.googlechat.manifest import GoogleChatConfig
from connectors.googlechat.runtime import GoogleChatConnector
from pyclaw_app.channels import ChannelHttp, WebhookRejected, WebhookRequest
from pyclaw_app.errors import FatalConnectorError, RetryableError
from pyclaw_app.model import Address
from tests.conftest import GatewayFactory
from tests.contract.harness_googlechat import GoogleChatHarness
from tests.fakes.googlechat_api import APP_USER, CHAT_ISSUER, GoogleChatFake
from tests.fakes.googlechat_keys import signing_key
from tests.fakes.openai_api import FakeOpenAI
from tests.support import RecordingContext, eventually
from tests.test_attachments import PNG
from tests.test_attachments_channels import online, reply_to

DM = "spaces/AAAAdm0001"
ROOM = "spaces/AAAAroom01"
FLAT = "spaces/AAAAgroup01"
ENDPOINT = "https://pyclaw.example/webhook/googlechat"


@pytest.fixture
async def fake() -> AsyncIterator[GoogleChatFake]:
    async with GoogleChatFake() as server:
        server.space(DM)
        server.space(ROOM, "SPACE")
        server.space(FLAT, "GROUP_CHAT")
        yield server  # type: ignore[misc]


def connector(fake: GoogleChatFake, **values: Any) -> GoogleChatConnector:
    config: dict[str, Any] = {"project_number": fake.project_number,
                              "service_account_key": SecretStr(fake.service_account_json()),
                              "api_base": fake.url, "certs_url": fake.certs_url, **values}
    return GoogleChatConnector("googlechat", GoogleChatConfig(**config))


@pytest.fixture
async def running(fake: GoogleChatFake
                  ) -> AsyncIterator[tuple[GoogleChatConnector, RecordingContext]]:
    conn, ctx = connector(fake), RecordingContext(channel="googlechat")
    await conn.start(ctx)
    yield conn, ctx
    await conn.stop()


async def post(conn: GoogleChatConnector, fake: GoogleChatFake, event: dict[str, Any] | bytes,
               *, token: str | None = None) -> tuple[int, Any]:
    body, headers = fake.signed(event, token=token)
    answer = await conn.handle_webhook(WebhookRequest("POST", body, headers))
    text = answer.body.decode() if isinstance(answer.body, bytes) else answer.body
    return answer.status, json.loads(text) if answer.content_type == "application/json" \
        else text


# ---- the bearer token -------------------------------------------------------------------------

async def test_a_token_google_chat_signed_for_our_project_is_accepted(
        running: tuple[GoogleChatConnector, RecordingContext], fake: GoogleChatFake) -> None:
    conn, ctx = running
    status, body = await post(conn, fake, fake.message_event(DM, "hello"))
    assert (status, body) == (200, {})
    assert [m.text for m in ctx.inbound] == ["hello"]


@pytest.mark.parametrize("forge", [
    "unknown key", "other project", "other issuer", "expired", "no token", "not bearer",
    "not a jwt"])
async def test_every_other_token_is_refused_before_the_body_is_read(
        running: tuple[GoogleChatConnector, RecordingContext], fake: GoogleChatFake,
        forge: str) -> None:
    conn, ctx = running
    tokens = {
        "unknown key": fake.bearer(key=signing_key("impostor")),
        "other project": fake.bearer(audience="111111111111"),
        "other issuer": fake.bearer(issuer="someone@example.iam.gserviceaccount.com"),
        "expired": fake.bearer(issued=1_700_000_000),
        "not a jwt": "not.a.jwt"}
    headers = {"Authorization": f"Bearer {tokens[forge]}"} if forge in tokens else (
        {"Authorization": f"Basic {fake.bearer()}"} if forge == "not bearer" else {})
    # a body that is not even JSON: the token is checked first, so this is a 401, not a 400
    answer = await conn.handle_webhook(WebhookRequest("POST", b"{not json", headers))
    assert answer.status == 401
    assert ctx.inbound == [] and any("rejected" in m for _, m, _ in ctx.logs)


def test_a_forged_token_with_googles_key_id_fails_on_the_signature() -> None:
    fake = GoogleChatFake()
    now = int(time.time())
    forged = jwt.encode({"iss": CHAT_ISSUER, "aud": fake.project_number, "iat": now,
                         "exp": now + 3600}, signing_key("impostor").private_pem,
                        algorithm="RS256", headers={"kid": fake.chat_key.kid})
    with pytest.raises(WebhookRejected, match="signature"):
        verify_bearer(f"Bearer {forged}", {fake.chat_key.kid: fake.chat_key.certificate_pem},
                      Audience(project_number=fake.project_number))


def test_an_id_token_for_the_endpoint_url_passes_with_google_chats_email_only() -> None:
    fake = GoogleChatFake()
    certs = {fake.id_token_key.kid: fake.id_token_key.certificate_pem}
    audience = Audience(endpoint_url=ENDPOINT, emails=frozenset({CHAT_ISSUER}))
    claims = verify_bearer(f"Bearer {fake.id_token(ENDPOINT)}", certs, audience)
    assert claims["email"] == CHAT_ISSUER
    for token, why in ((fake.id_token(ENDPOINT, email="mallory@example.com"), "email"),
                       (fake.id_token("https://elsewhere.example/hook"), "audience")):
        with pytest.raises(WebhookRejected, match=why):
            verify_bearer(f"Bearer {token}", certs, audience)
    with pytest.raises(WebhookRejected, match="not a Google ID token"):  # a Chat JWT, re-aimed
        verify_bearer(f"Bearer {fake.bearer(audience=ENDPOINT)}",
                      {fake.chat_key.kid: fake.chat_key.certificate_pem}, audience)


async def test_endpoint_url_mode_reads_the_id_token_certificates(fake: GoogleChatFake) -> None:
    conn = connector(fake, audience_type="endpoint_url", endpoint_url=ENDPOINT,
                     certs_url=fake.id_certs_url)
    ctx = RecordingContext(channel="googlechat")
    await conn.start(ctx)
    try:
        newer = f"service-{fake.project_number}@gcp-sa-gsuiteaddons.iam.gserviceaccount.com"
        for email in (CHAT_ISSUER, newer):
            status, _ = await post(conn, fake, fake.message_event(DM, email),
                                   token=fake.id_token(ENDPOINT, email=email))
            assert status == 200
        status, _ = await post(conn, fake, fake.message_event(DM, "x"))  # project JWT
        assert status == 401
    finally:
        await conn.stop()
    assert [m.text for m in ctx.inbound] == [CHAT_ISSUER, newer]
    assert fake.calls("id_certs") == 1 and fake.calls("certs") == 0


async def test_certificates_are_fetched_once_and_forged_key_ids_cause_no_fetch_storm(
        running: tuple[GoogleChatConnector, RecordingContext], fake: GoogleChatFake) -> None:
    conn, _ = running
    for i in range(3):
        assert (await post(conn, fake, fake.message_event(DM, f"m{i}")))[0] == 200
    for _ in range(3):  # unknown key ids right after a fetch: refused, nothing fetched
        assert (await post(conn, fake, fake.message_event(DM, "x"),
                           token=fake.bearer(key=signing_key("impostor"))))[0] == 401
    assert fake.calls("certs") == 1


async def test_the_certificate_cache_follows_max_age_and_survives_a_failed_refresh(
        fake: GoogleChatFake) -> None:
    now = [0.0]
    certs = Certificates(fake.certs_url, clock=lambda: now[0])
    http = ChannelHttp(fake.url, platform="Google Chat")
    try:
        await certs.ensure(http, None)
        now[0] = _verify.UNKNOWN_KEY_REFETCH - 1.0
        await certs.ensure(http, "rotated-key")
        await certs.ensure(http, fake.chat_key.kid)
        assert fake.calls("certs") == 1
        now[0] = _verify.UNKNOWN_KEY_REFETCH  # a key we do not have: Google may have rotated
        await certs.ensure(http, "rotated-key")
        now[0] = fake.certs_max_age - 1.0
        await certs.ensure(http, fake.chat_key.kid)
        assert fake.calls("certs") == 2
        now[0] = _verify.UNKNOWN_KEY_REFETCH + fake.certs_max_age + 1.0
        fake.fail_next("certs", 503)
        await certs.ensure(http, None)  # stale, the refresh failed: the old ones still count
        assert fake.chat_key.kid in certs.current
        now[0] += _verify.UNKNOWN_KEY_REFETCH
        await certs.ensure(http, None)
        assert fake.calls("certs") == 4
        empty = Certificates(fake.certs_url)
        fake.fail_next("certs", 503)
        with pytest.raises(RetryableError):
            await empty.ensure(http, None)
    finally:
        await http.close()


async def test_unreachable_certificates_answer_503_and_say_why(fake: GoogleChatFake) -> None:
    conn, ctx = connector(fake), RecordingContext(channel="googlechat")
    await conn.start(ctx)
    try:
        fake.fail_next("certs", 500)
        status, _ = await post(conn, fake, fake.message_event(DM, "lost?"))
    finally:
        await conn.stop()
    assert status == 503 and ctx.inbound == []
    assert any("certificates could not be fetched" in m for lvl, m, _ in ctx.logs
               if lvl == "error")


def test_the_key_id_is_read_without_trusting_the_token() -> None:
    fake = GoogleChatFake()
    assert key_id(f"Bearer {fake.bearer()}") == fake.chat_key.kid
    assert key_id("Bearer @@@.x.y") is None and key_id(None) is None and key_id("Bearer") is None


async def test_only_posts_are_taken(
        running: tuple[GoogleChatConnector, RecordingContext], fake: GoogleChatFake) -> None:
    conn, _ = running
    _, headers = fake.signed(b"")
    assert (await conn.handle_webhook(WebhookRequest("GET", b"", headers))).status == 405


# ---- events ------------------------------------------------------------------------------------

def _parse(event: dict[str, Any], **kw: Any) -> ChatMessage:
    parsed = parse_event(event, channel="googlechat", **kw)
    assert isinstance(parsed, ChatMessage), parsed
    return parsed


def test_a_room_mention_is_a_mentioned_group_message_in_its_thread() -> None:
    """The shape of Google's own MESSAGE example (a ROOM, an @mention of the app)."""
    event = {
        "type": "MESSAGE", "eventTime": "2024-05-02T19:02:59.910959Z",
        "space": {"name": "spaces/AAAAAAAAAAA", "displayName": "Lunch", "type": "ROOM"},
        "message": {
            "name": "spaces/AAAAAAAAAAA/messages/CCCCCCCCCCC",
            "sender": {"name": "users/12345678901234567890", "displayName": "Ann"},
            "createTime": "2024-05-02T19:02:59.910959123Z",
            "text": "@Pyclaw where shall we eat?",
            "argumentText": " where shall we eat?",
            "thread": {"name": "spaces/AAAAAAAAAAA/threads/BBBBBBBBBBB"},
            "annotations": [{"length": 7, "startIndex": 0, "type": "USER_MENTION",
                             "userMention": {"type": "MENTION", "user": {
                                 "name": "users/1234567890987654321",
                                 "displayName": "Pyclaw", "type": "BOT"}}}]},
        "user": {"name": "users/12345678901234567890", "displayName": "Ann"}}
    parsed = _parse(event)
    inbound = parsed.inbound
    assert inbound.text == "where shall we eat?"
    assert inbound.is_group and inbound.mentioned and not inbound.reply_to_bot
    assert inbound.address == Address("googlechat", "spaces/AAAAAAAAAAA",
                                      thread="spaces/AAAAAAAAAAA/threads/BBBBBBBBBBB")
    assert inbound.platform_id == "spaces/AAAAAAAAAAA/messages/CCCCCCCCCCC"
    assert (inbound.sender_id, inbound.sender_name) == ("users/12345678901234567890", "Ann")
    assert inbound.ts == pytest.approx(1714676579.910959)
    assert not _parse(event, bot_user="users/999").inbound.mentioned  # another app's mention


PYCLAW_APP = {"name": "users/1234567890987654321", "displayName": "Pyclaw", "type": "BOT"}
ANN = {"name": "users/12345678901234567890", "displayName": "Ann", "type": "HUMAN"}


def chat_said(text: str, *mentions: tuple[int, int, dict[str, str]], **kw: Any) -> ChatMessage:
    """Google's MESSAGE example (the one above: developers.google.com/workspace/chat's
    interaction event, "@TestApp Violets are blue") with ``text`` and one ``USER_MENTION``
    annotation per (startIndex, length, user); ``argumentText`` as Google writes it, every
    app mention cut out."""
    argument = text
    for start, length, user in sorted(mentions, key=lambda m: m[0], reverse=True):
        if user["type"] == "BOT":
            argument = argument[:start] + argument[start + length:]
    event = {
        "type": "MESSAGE", "eventTime": "2024-05-02T19:02:59.910959Z",
        "space": {"name": "spaces/AAAAAAAAAAA", "displayName": "Lunch", "type": "ROOM"},
        "message": {
            "name": "spaces/AAAAAAAAAAA/messages/CCCCCCCCCCC", "sender": ANN,
            "createTime": "2024-05-02T19:02:59.910959123Z", "text": text,
            "argumentText": argument,
            "thread": {"name": "spaces/AAAAAAAAAAA/threads/BBBBBBBBBBB"},
            "annotations": [{"length": length, "startIndex": start, "type": "USER_MENTION",
                             "userMention": {"type": "MENTION", "user": user}}
                            for start, length, user in mentions]},
        "user": ANN}
    return _parse(event, **kw)


@pytest.mark.parametrize(("text", "mentions", "expected"), [
    ("@Pyclaw where shall we eat?", [(0, 7, PYCLAW_APP)], "where shall we eat?"),
    ("@Pyclaw, where shall we eat?", [(0, 7, PYCLAW_APP)], "where shall we eat?"),
    ("where shall we eat @Pyclaw?", [(19, 7, PYCLAW_APP)], "where shall we eat?"),
    ("ask @Pyclaw where to eat", [(4, 7, PYCLAW_APP)], "ask @Pyclaw where to eat"),
    ("@Pyclaw", [(0, 7, PYCLAW_APP)], "@Pyclaw"),
    ("@Pyclaw ask @Ann", [(0, 7, PYCLAW_APP), (12, 4, ANN)], "ask @Ann"),
    ("@Ann and @Pyclaw, lunch?", [(0, 4, ANN), (9, 7, PYCLAW_APP)], "@Ann and @Pyclaw, lunch?"),
    ("🍕 for @Ann @Pyclaw", [(7, 4, ANN), (12, 7, PYCLAW_APP)], "🍕 for @Ann"),  # UTF-16
])
def test_the_apps_mention_is_cut_where_it_addresses_the_app(
        text: str, mentions: list[tuple[int, int, dict[str, str]]], expected: str) -> None:
    inbound = chat_said(text, *mentions).inbound
    assert inbound.mentioned and inbound.text == expected


def test_another_apps_mention_reads_as_the_user_saw_it_once_ours_is_known() -> None:
    other = {"name": "users/999", "displayName": "Helper", "type": "BOT"}
    inbound = chat_said("@Helper hi @Pyclaw", (0, 7, other), (11, 7, PYCLAW_APP),
                        bot_user=PYCLAW_APP["name"]).inbound
    assert inbound.mentioned and inbound.text == "@Helper hi"
    outside = chat_said("@Pyclaw hi", (3, 40, PYCLAW_APP)).inbound  # indices past the text
    assert outside.mentioned and outside.text == "@Pyclaw hi"


def test_direct_messages_stay_flat_unless_the_user_writes_in_a_thread() -> None:
    fake = GoogleChatFake()
    flat = _parse(fake.message_event(DM, "hi")).inbound
    assert not flat.is_group and flat.address.thread is None and flat.text == "hi"
    thread = fake.message_event(DM, "start")["message"]["thread"]["name"]
    inside = _parse(fake.message_event(DM, "more", thread=thread), ours={thread}).inbound
    assert inside.address.thread == thread and inside.reply_to_bot
    group = _parse(fake.message_event(fake.space(FLAT, "GROUP_CHAT"), "hey",
                                      mention=True)).inbound
    assert group.is_group and group.mentioned and group.address.thread is None


def test_slash_commands_keep_their_command_and_count_as_addressed() -> None:
    event = GoogleChatFake().message_event(ROOM, "/help")
    event["message"].update(argumentText="", slashCommand={"commandId": "1"})
    inbound = _parse(event).inbound
    assert inbound.text == "/help" and inbound.mentioned


def test_attachments_drive_files_and_gifs_are_metadata() -> None:
    fake = GoogleChatFake()
    event = fake.message_event(DM, "look", attachments=[
        {"contentName": "door.jpg", "contentType": "image/jpeg"},
        {"contentName": "plan.pdf", "contentType": "application/pdf", "source": "DRIVE_FILE",
         "driveDataRef": {"driveFileId": "1AbCdEf"}, "attachmentDataRef": {}}])
    event["message"]["attachedGifs"] = [{"uri": "https://media.tenor.com/x.gif"}]
    image, pdf, gif = _parse(event).inbound.attachments
    assert (image.kind, image.name, image.mime) == ("image", "door.jpg", "image/jpeg")
    assert image.platform_id and image.platform_id.startswith("ClxDaGF0")  # media resource
    assert image.url and "DOWNLOAD_URL" in image.url
    assert (pdf.kind, pdf.platform_id) == ("file", "drive:1AbCdEf")
    assert (gif.kind, gif.mime, gif.url) == ("image", "image/gif",
                                             "https://media.tenor.com/x.gif")


def test_membership_card_and_bot_events_are_not_messages() -> None:
    fake = GoogleChatFake()
    removed = parse_event(fake.membership_event(ROOM, "REMOVED_FROM_SPACE"), channel="g")
    added = parse_event(fake.membership_event(ROOM, "ADDED_TO_SPACE"), channel="g")
    assert isinstance(removed, Ignored) and removed.level == "warning"
    assert "removed the app" in removed.note
    assert isinstance(added, Ignored) and "added the app" in added.note
    clicked = parse_event({"type": "CARD_CLICKED", "action": {}}, channel="g")
    assert isinstance(clicked, Ignored) and not clicked.note
    by_app = fake.message_event(DM, "beep")
    by_app["message"]["sender"]["type"] = "BOT"
    assert isinstance(parse_event(by_app, channel="g"), Ignored)
    with_message = fake.message_event(ROOM, "hello all", mention=True,
                                      event_type="ADDED_TO_SPACE")  # added by an @mention
    assert _parse(with_message).inbound.text == "hello all"


@pytest.mark.parametrize("path", [
    ("message", "name"), ("message", "space", "name"), ("message", "thread", "name")])
def test_names_that_would_leave_their_rest_path_are_malformed(path: tuple[str, ...]) -> None:
    event = GoogleChatFake().message_event(ROOM, "x")
    target = event
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = "spaces/AAAAroom01/../../token"
    assert isinstance(parse_event(event, channel="g"), Malformed)


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=12), inner, max_size=5), max_leaves=25))
def test_the_parser_never_raises_on_any_json(value: Any) -> None:
    parse_event(value, channel="g", bot_user=APP_USER, ours={"x"})


_ANY = st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.lists(
    st.integers(), max_size=2) | st.dictionaries(st.text(max_size=4), st.integers(), max_size=2)


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({}, optional={
    "name": st.just("spaces/A/messages/B") | _ANY, "text": _ANY, "argumentText": _ANY,
    "sender": _ANY | st.fixed_dictionaries({"name": _ANY, "type": _ANY}),
    "thread": _ANY | st.fixed_dictionaries({"name": st.just("spaces/A/threads/T") | _ANY}),
    "threadReply": _ANY, "createTime": _ANY, "slashCommand": _ANY,
    "space": _ANY | st.fixed_dictionaries({"name": st.just("spaces/A") | _ANY,
                                           "spaceType": _ANY, "type": _ANY}),
    "annotations": _ANY | st.lists(st.dictionaries(
        st.sampled_from(["type", "userMention"]), _ANY), max_size=3),
    "attachment": _ANY | st.lists(st.dictionaries(st.sampled_from(
        ["contentType", "contentName", "driveDataRef", "attachmentDataRef"]), _ANY),
        max_size=3),
    "attachedGifs": _ANY, "quotedMessageMetadata": _ANY}),
    st.sampled_from(["MESSAGE", "ADDED_TO_SPACE"]), _ANY)
def test_the_parser_never_raises_on_messages_of_any_shape(
        message: dict[str, Any], kind: str, space: Any) -> None:
    parse_event({"type": kind, "message": message, "space": space, "user": space},
                channel="g", bot_user=APP_USER, ours={"spaces/A/threads/T"})


async def test_malformed_and_membership_events_are_logged_and_answered(
        running: tuple[GoogleChatConnector, RecordingContext], fake: GoogleChatFake) -> None:
    conn, ctx = running
    broken = fake.message_event(DM, "x")
    del broken["message"]["sender"], broken["user"]
    assert await post(conn, fake, broken) == (200, {})
    assert await post(conn, fake, fake.membership_event(ROOM, "REMOVED_FROM_SPACE")) == (200, {})
    assert [lvl for lvl, m, _ in ctx.logs if "malformed" in m or "removed" in m] == [
        "error", "warning"]
    assert ctx.inbound == []


# ---- the service account -----------------------------------------------------------------------

async def test_the_assertion_is_a_jwt_bearer_grant_for_chat_bot(fake: GoogleChatFake) -> None:
    account = ServiceAccount(fake.service_account_json(), clock=lambda: 1_800_000_000.0)
    claims = jwt.decode(account.assertion(), fake.account_key.public_pem, algorithms=["RS256"],
                        audience=fake.token_uri,
                        options={"verify_exp": False, "verify_iat": False})
    assert claims == {"iss": fake.client_email, "scope": SCOPE, "aud": fake.token_uri,
                      "iat": 1_800_000_000, "exp": 1_800_003_600}
    assert jwt.get_unverified_header(account.assertion())["kid"] == fake.account_key.kid


async def test_the_access_token_is_shared_renewed_before_it_ends_and_forgotten_when_refused(
        fake: GoogleChatFake) -> None:
    now = [1_800_000_000.0]
    fake.clock = account_clock = lambda: now[0]  # Google and we agree on the time
    account = ServiceAccount(fake.service_account_json(), clock=account_clock)
    http = ChannelHttp(fake.url, platform="Google Chat")
    try:
        first, second = await asyncio.gather(account.token(http), account.token(http))
        assert first == second and fake.tokens_issued == 1
        now[0] += fake.token_ttl - 400
        assert await account.token(http) == first
        now[0] += 150  # within five minutes of the end: renewed
        renewed = await account.token(http)
        assert renewed != first and fake.tokens_issued == 2
        assert account.refused(renewed) is False  # brand new and refused: no retry helps
        now[0] += 120
        older = await account.token(http)  # the refused one was forgotten
        assert fake.tokens_issued == 3
        now[0] += 120
        assert account.refused(older) is True  # two minutes old: expired or revoked early
        assert await account.token(http) != older and fake.tokens_issued == 4
    finally:
        await http.close()


async def test_a_refused_token_is_renewed_for_the_retry(
        running: tuple[GoogleChatConnector, RecordingContext], fake: GoogleChatFake,
        monkeypatch: pytest.MonkeyPatch) -> None:
    conn, _ = running
    monkeypatch.setattr(_account, "FRESH", 0.0)  # the token from the start counts as old
    fake.revoke_tokens()
    with pytest.raises(RetryableError, match="renewed"):
        await conn.send_part(Address("googlechat", DM), "hello", None)
    await conn.send_part(Address("googlechat", DM), "hello", None)
    assert [r.text for r in fake.sent(DM)] == ["hello"] and fake.tokens_issued == 2


async def test_a_fresh_token_refused_is_fatal_and_says_what_to_check(
        running: tuple[GoogleChatConnector, RecordingContext], fake: GoogleChatFake) -> None:
    conn, _ = running
    fake.revoke_tokens()  # refused moments after Google issued it: the project, not time
    with pytest.raises(FatalConnectorError, match="enable the Chat API"):
        await conn.send_part(Address("googlechat", DM), "hello", None)
    assert fake.sent() == []


async def test_a_bad_key_stops_the_start_with_a_reason(fake: GoogleChatFake) -> None:
    impostor = json.loads(fake.service_account_json())
    impostor["private_key"] = signing_key("impostor").private_pem
    cases = {"not json": "not JSON", json.dumps({"type": "service_account"}): "client_email",
             json.dumps(impostor): "refused the service account key"}
    for key, why in cases.items():
        with pytest.raises(FatalConnectorError, match=why):
            await connector(fake, service_account_key=SecretStr(key)).start(
                RecordingContext(channel="googlechat"))


async def test_settings_a_channel_cannot_run_without_are_named(fake: GoogleChatFake) -> None:
    for values, why in (({"project_number": ""}, "project_number"),
                        ({"service_account_key": None}, "service_account_key"),
                        ({"audience_type": "endpoint_url"}, "endpoint_url")):
        with pytest.raises(FatalConnectorError, match=why):
            await connector(fake, **values).start(RecordingContext(channel="googlechat"))


# ---- sending, threads, edits ---------------------------------------------------------------------

async def test_a_space_reply_goes_into_the_thread_and_a_dm_reply_stays_flat(
        running: tuple[GoogleChatConnector, RecordingContext], fake: GoogleChatFake) -> None:
    conn, ctx = running
    await post(conn, fake, fake.message_event(ROOM, "question", mention=True))
    await post(conn, fake, fake.message_event(DM, "question"))
    room, dm = ctx.inbound
    first = await conn.send_part(room.address, "answer", room.platform_id)
    await conn.send_part(dm.address, "answer", dm.platform_id)
    (_, _, room_query, room_body), (_, _, dm_query, dm_body) = fake.calls_seen
    assert room_query == {"messageReplyOption": "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD"}
    assert room_body == {"text": "answer", "thread": {"name": room.address.thread}}
    assert (dm_query, dm_body) == ({}, {"text": "answer"})
    assert fake.sent(ROOM)[0].thread == room.address.thread and first == fake.sent(ROOM)[0].name
    other = fake.message_event(ROOM, "@other bot", mention=True)
    other["message"]["annotations"][0]["userMention"]["user"]["name"] = "users/other-app"
    await post(conn, fake, other)  # the app's own user is known now: not our mention
    reply = fake.message_event(ROOM, "and?", thread=room.address.thread)
    await post(conn, fake, reply)
    assert not ctx.inbound[2].mentioned and ctx.inbound[3].reply_to_bot


async def test_a_streamed_draft_is_edited_with_an_update_mask(
        running: tuple[GoogleChatConnector, RecordingContext], fake: GoogleChatFake) -> None:
    conn, _ = running
    name = await conn.send_part(Address("googlechat", DM), "draft", None)
    await conn.edit(Address("googlechat", DM), name, "draft, grown")
    assert fake.calls_seen[-1][1:] == (f"/v1/{name}", {"updateMask": "text"},
                                      {"text": "draft, grown"})
    assert [(r.text, r.edits) for r in fake.sent(DM)] == [("draft, grown", 1)]
    for bad in ("sync:spaces/AAAAdm0001/messages/1", name.replace(DM, ROOM)):
        with pytest.raises(FatalConnectorError, match="cannot edit"):
            await conn.edit(Address("googlechat", DM), bad, "x")


async def test_googles_refusals_in_pyclaws_words(
        running: tuple[GoogleChatConnector, RecordingContext], fake: GoogleChatFake) -> None:
    conn, _ = running
    fake.fail_next("create", 429)
    with pytest.raises(RetryableError) as limited:
        await conn.send_part(Address("googlechat", DM), "hi", None)
    assert limited.value.retry_after == runtime.RATE_LIMIT_WAIT  # Google sends no Retry-After
    fake.fail_next("create", 503)
    with pytest.raises(RetryableError):
        await conn.send_part(Address("googlechat", DM), "hi", None)
    fake.remove_app(ROOM)
    with pytest.raises(FatalConnectorError, match="removed from the space"):
        await conn.send_part(Address("googlechat", ROOM), "hi", None)
    fake.fail_next("create", 403)
    with pytest.raises(FatalConnectorError, match="still a member"):
        await conn.send_part(Address("googlechat", DM), "hi", None)
    with pytest.raises(FatalConnectorError, match="longer than 4096"):
        await conn.send_part(Address("googlechat", DM), "x" * 4097, None)
    for chat, thread in (("spaces/../token", None), (DM, "spaces/AAAAroom01/threads/1")):
        with pytest.raises(FatalConnectorError, match="not a Google Chat"):
            await conn.send_part(Address("googlechat", chat, thread=thread), "hi", None)
    assert fake.sent() == [] and fake.calls("create") == 5


# ---- sync mode ---------------------------------------------------------------------------------

async def _sync(fake: GoogleChatFake, **values: Any
                ) -> tuple[GoogleChatConnector, RecordingContext]:
    conn = connector(fake, reply_mode="sync", **values)
    ctx = RecordingContext(channel="googlechat")
    await conn.start(ctx)
    return conn, ctx


async def test_sync_mode_answers_in_the_http_response_without_a_service_account(
        fake: GoogleChatFake) -> None:
    conn, ctx = await _sync(fake, service_account_key=None)
    try:
        assert not conn.capabilities.edit  # a streamed draft would be the response
        event = fake.message_event(DM, "hi")
        pending = asyncio.create_task(post(conn, fake, event))
        await eventually(lambda: ctx.inbound)
        assert not pending.done()  # stored, and held for the reply
        pid = ctx.inbound[0].platform_id
        sent = await conn.send_part(ctx.inbound[0].address, "hello back", pid)
        assert await pending == (200, {"text": "hello back"})
        assert sent.startswith(runtime.SYNC_PREFIX)
        with pytest.raises(FatalConnectorError, match="service_account_key"):
            await conn.send_part(ctx.inbound[0].address, "a second part", None)
        assert await post(conn, fake, event) == (200, {})  # a redelivery: no second answer
    finally:
        await conn.stop()
    assert fake.calls("create") == 0 and fake.tokens_issued == 0


async def test_a_slow_sync_reply_goes_through_the_rest_api(fake: GoogleChatFake) -> None:
    conn, ctx = await _sync(fake, sync_timeout=0.05)
    try:
        assert await post(conn, fake, fake.message_event(DM, "slow")) == (200, {})
        inbound = ctx.inbound[0]
        await conn.send_part(inbound.address, "late answer", inbound.platform_id)
    finally:
        await conn.stop()
    assert [r.text for r in fake.sent(DM)] == ["late answer"]
    assert any("sync_timeout" in m and "REST API" in m for lvl, m, _ in ctx.logs
               if lvl == "warning")


async def test_a_slow_sync_reply_without_a_key_says_it_cannot_be_delivered(
        fake: GoogleChatFake) -> None:
    conn, ctx = await _sync(fake, sync_timeout=0.05, service_account_key=None)
    try:
        assert await post(conn, fake, fake.message_event(DM, "slow")) == (200, {})
    finally:
        await conn.stop()
    assert any("cannot be delivered" in m for _, m, _ in ctx.logs)


async def test_stopping_answers_a_held_request_without_a_reply(fake: GoogleChatFake) -> None:
    conn, ctx = await _sync(fake)
    pending = asyncio.create_task(post(conn, fake, fake.message_event(DM, "bye")))
    await eventually(lambda: ctx.inbound)
    await conn.stop()
    assert await pending == (200, {})
    assert not [m for lvl, m, _ in ctx.logs if lvl == "warning"]


# ---- probe -------------------------------------------------------------------------------------

async def test_the_probe_checks_the_key_the_chat_api_and_the_certificates(
        fake: GoogleChatFake) -> None:
    result = await connector(fake).probe()
    assert result.ok and fake.client_email in result.message and "1 Google" in result.message
    assert fake.calls("list_spaces") == 1
    fake.fail_next("list_spaces", 404)
    assert "not configured" in (await connector(fake).probe()).message
    broken = await connector(fake, certs_url=f"{fake.url}/v1/spaces").probe()
    assert not broken.ok
    sync = await connector(fake, reply_mode="sync", service_account_key=None).probe()
    assert sync.ok and "no service account" in sync.message


# ---- attachments ----------------------------------------------------------------------------

@pytest.fixture
async def harness() -> AsyncIterator[GoogleChatHarness]:
    harness = GoogleChatHarness()
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()


async def test_an_uploaded_picture_is_media_download_as_the_app_and_seen(
        harness: GoogleChatHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    await online(harness, fake_llm, make_gateway)
    fake, chat = harness.fake, harness.chat(0)
    event = fake.message_event(chat, "what is it?", attachments=[
        {"contentName": "chart.png", "contentType": "image/png", "data": PNG}])
    await harness.deliver(fake.signed(event))
    assert await reply_to(harness, chat, 0) == "Echo: what is it?"
    assert fake_llm.images == [("image/png", PNG)]
    resource = event["message"]["attachment"][0]["attachmentDataRef"]["resourceName"]
    [(fetched, auth)] = fake.downloads
    assert fetched == resource and (auth or "").startswith("Bearer ")


async def test_a_drive_file_is_explained_to_the_sender_and_not_fetched(
        harness: GoogleChatHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    gateway = await online(harness, fake_llm, make_gateway)
    fake, chat = harness.fake, harness.chat(1)
    await harness.deliver(fake.signed(fake.message_event(chat, attachments=[
        {"contentName": "plan.pdf", "contentType": "application/pdf", "source": "DRIVE_FILE",
         "driveDataRef": {"driveFileId": "1AbCdEf"}, "attachmentDataRef": {}}])))
    assert await reply_to(harness, chat, 0) == (
        "I could not read what you sent: plan.pdf: it is a Google Drive file, and a Chat app "
        "may only download files uploaded to the chat (share it as an upload instead).")
    assert fake.downloads == [] and fake_llm.requests == []
    assert await gateway.store.logs.page(channel="googlechat", search="Google Drive file")
