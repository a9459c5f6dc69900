"""What is Teams' own: the Bot Framework JWT on every request (keys from the OpenID metadata,
issuer, audience, lifetime, the serviceurl claim, endorsements), the service-URL allowlist
our token is confined to, the client-credentials token and its renewal, mentions, channel
threads, attachments, edits, typing, and the errors Teams documents.

Everything a channel shares (journal first, splitting, 429, lost answers, group rule...) is
the contract suite's (tests/contract, harness_teams.py). The Bot Framework publishes no
signature test vectors (its keys rotate); the fake mints its own RSA keys and JWKS.
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

from connectors.teams._auth import AccessToken, SigningKeys, service_url_problem
from connectors.teams._parse import Ignored, Malformed, Message, parse_activity
from connectors.teams.manifest import SPEC, TeamsConfig
from connectors.teams.runtime import TeamsConnector
from pyclaw_app.channels import ChannelHttp, WebhookRequest
from pyclaw_app.errors import FatalConnectorError, RetryableError
from pyclaw_app.model import Address, ChannelState
from tests.conftest import GatewayFactory
from tests.contract.harness_teams import TeamsHarness
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.teams_api import APP_ID, BOT_NAME, TENANT, TeamsFake
from tests.support import MemoryState, RecordingContext
from tests.test_attachments import PNG
from tests.test_attachments_channels import online, reply_to

ACTIVITIES = json.loads((Path(__file__).parent / "teams_activities.json").read_text("utf-8"))
CHAT = "a:1pyclaw-user-0001"
CHANNEL = "19:team0channel@thread.tacv2"
GROUP = "19:group0chat@thread.v2"


@pytest.fixture
async def fake() -> AsyncIterator[TeamsFake]:
    async with TeamsFake() as server:
        yield server  # type: ignore[misc]


def connector(fake: TeamsFake | None = None, *, clock: Any = None, **values: Any
              ) -> TeamsConnector:
    config: dict[str, Any] = {
        "app_id": fake.app_id if fake else APP_ID,
        "app_password": fake.app_password if fake else "secret",
        "token_url": fake.token_url if fake else "http://127.0.0.1:9/{tenant}/token",
        "openid_metadata_url": fake.metadata_url if fake else "http://127.0.0.1:9/meta",
        "service_url_hosts": ["127.0.0.1"], **values}
    if isinstance(config["app_password"], str):
        config["app_password"] = SecretStr(config["app_password"])
    return TeamsConnector("teams", TeamsConfig(**config),
                          **({"clock": clock} if clock is not None else {}))


async def started(fake: TeamsFake, ctx: RecordingContext | None = None, **values: Any
                  ) -> tuple[TeamsConnector, RecordingContext]:
    conn, ctx = connector(fake, **values), ctx or RecordingContext(channel="teams")
    await conn.start(ctx)
    return conn, ctx


@pytest.fixture
async def running(fake: TeamsFake) -> AsyncIterator[tuple[TeamsConnector, RecordingContext]]:
    conn, ctx = await started(fake)
    yield conn, ctx
    await conn.stop()


async def post(conn: TeamsConnector, body: bytes, headers: dict[str, str]) -> int:
    return (await conn.handle_webhook(WebhookRequest("POST", body, headers))).status


def address(chat: str = CHAT, thread: str | None = None) -> Address:
    return Address("teams", chat, f"28:{APP_ID}", thread)


# ---- the inbound JWT -------------------------------------------------------------------------

async def test_a_genuine_activity_is_journaled_with_its_conversation(
        running: tuple[TeamsConnector, RecordingContext], fake: TeamsFake) -> None:
    conn, ctx = running
    activity = fake.message(CHAT, "hello")
    assert await post(conn, *fake.signed(activity)) == 200
    [inbound] = ctx.inbound
    assert (inbound.text, inbound.address.chat, inbound.address.account) == (
        "hello", CHAT, f"28:{APP_ID}")
    assert inbound.platform_id == f"{CHAT}|{activity['id']}" and not inbound.is_group
    assert inbound.sender_name == "User 1" and inbound.sender_id.startswith("29:")
    assert await ctx.state.get(f"ref:{CHAT}") == {
        "serviceUrl": fake.service_url, "bot": {"id": f"28:{APP_ID}", "name": BOT_NAME}}


@pytest.mark.parametrize(("how", "status", "said"), [
    ({"forged": True}, 403, "signature does not verify"),
    ({"audience": "another-bots-app-id"}, 403, "for another bot"),
    ({"issuer": "https://sts.windows.net/evil/"}, 403, "not issued by"),
    ({"lifetime": -400.0}, 403, "expired"),  # beyond the five minutes of clock skew
    ({"service_url": "https://smba.trafficmanager.net/amer/"}, 403, "vouches for"),
])
async def test_tokens_the_bot_framework_did_not_issue_for_this_request_are_refused(
        running: tuple[TeamsConnector, RecordingContext], fake: TeamsFake,
        how: dict[str, Any], status: int, said: str) -> None:
    conn, ctx = running
    assert await post(conn, *fake.signed(fake.message(CHAT, "hi"), **how)) == status
    assert ctx.inbound == []
    assert any("rejected" in m and said in m for _, m, _ in ctx.logs), ctx.logs


async def test_a_sovereign_cloud_issuer_comes_from_its_metadata(fake: TeamsFake) -> None:
    fake.issuer = "https://api.botframework.us"  # US Government's Bot Framework
    conn, ctx = await started(fake)
    try:
        assert await post(conn, *fake.signed(fake.message(CHAT, "gov"))) == 200
        public = fake.signed(fake.message(CHAT, "public"), issuer="https://api.botframework.com")
        assert await post(conn, *public) == 403
        assert [m.text for m in ctx.inbound] == ["gov"]
    finally:
        await conn.stop()


async def test_clock_skew_of_a_few_minutes_is_accepted(
        running: tuple[TeamsConnector, RecordingContext], fake: TeamsFake) -> None:
    conn, ctx = running
    assert await post(conn, *fake.signed(fake.message(CHAT, "late"), lifetime=-60.0)) == 200
    assert [m.text for m in ctx.inbound] == ["late"]


async def test_no_token_or_no_jwt_is_refused_before_the_body_is_read(
        running: tuple[TeamsConnector, RecordingContext], fake: TeamsFake) -> None:
    conn, ctx = running
    assert await post(conn, b"{not json", {}) == 401  # not 400: unread
    assert await post(conn, b"{not json", {"Authorization": "Basic dXNlcjpwYXNz"}) == 401
    assert await post(conn, b"{}", {"Authorization": "Bearer not-a-jwt"}) == 401
    body, headers = fake.signed(b"{not json")  # a genuine token: now the body is read
    assert await post(conn, body, headers) == 400
    get = await conn.handle_webhook(WebhookRequest("GET", b"", {}))
    assert get.status == 405 and ctx.inbound == []


async def test_an_unsigned_or_hmac_token_cannot_pass_for_rs256(
        running: tuple[TeamsConnector, RecordingContext], fake: TeamsFake) -> None:
    import jwt

    conn, ctx = running
    activity = fake.message(CHAT, "hi")
    claims = {"iss": "https://api.botframework.com", "aud": APP_ID, "exp": 4102444800,
              "serviceurl": fake.service_url}
    for token in (jwt.encode(claims, "a guessed secret, long enough for HS256", algorithm="HS256",
                             headers={"kid": fake.signer.kid}),
                  jwt.encode(claims, None, algorithm="none", headers={"kid": fake.signer.kid})):
        status = await post(conn, json.dumps(activity).encode(),
                            {"Authorization": f"Bearer {token}"})
        assert status == 403
    assert ctx.inbound == []


async def test_a_key_not_endorsed_for_the_channel_is_refused(
        running: tuple[TeamsConnector, RecordingContext], fake: TeamsFake) -> None:
    conn, ctx = running
    activity = fake.message(CHAT, "hi", channelId="slack")
    assert await post(conn, *fake.signed(activity)) == 403
    assert any("not endorsed for channel 'slack'" in m for _, m, _ in ctx.logs)


async def test_rotated_keys_are_fetched_when_a_token_names_a_new_one(
        fake: TeamsFake) -> None:
    now = [0.0]
    conn, ctx = connector(fake, clock=lambda: now[0]), RecordingContext(channel="teams")
    await conn.start(ctx)
    try:
        fake.rotate_keys()
        now[0] = 5.0  # keys fetched at the start a moment ago: not fetched again yet
        assert await post(conn, *fake.signed(fake.message(CHAT, "too soon"))) == 403
        now[0] = 61.0
        assert await post(conn, *fake.signed(fake.message(CHAT, "after rotation"))) == 200
        assert fake.metadata_requests == 2
        assert [m.text for m in ctx.inbound] == ["after rotation"]
    finally:
        await conn.stop()


async def test_unknown_key_ids_refetch_the_keys_at_most_once_per_interval(
        fake: TeamsFake) -> None:
    now = [1000.0]
    keys = SigningKeys(fake.metadata_url, clock=lambda: now[0])
    http = ChannelHttp("", platform="Teams")
    try:
        await keys.load(http)
        for kid in ("forged-1", "forged-2", "forged-3"):
            await keys.refresh_for(http, kid)
        assert fake.metadata_requests == 1  # forged ids cannot make us hammer the host
        now[0] += 61
        await keys.refresh_for(http, "forged-4")
        assert fake.metadata_requests == 2
        await keys.refresh_for(http, fake.signer.kid)  # known: nothing fetched
        now[0] += 24 * 3600 + 1
        await keys.refresh_for(http, fake.signer.kid)  # a day old: fetched again
        assert fake.metadata_requests == 3
        fake.fail_next("metadata", 503)
        now[0] += 24 * 3600 + 1
        await keys.refresh_for(http, None)
        assert "503" in keys.problem and keys.get(fake.signer.kid) is not None  # kept
    finally:
        await http.close()


async def test_unreachable_keys_answer_503_so_the_bot_framework_retries(
        fake: TeamsFake) -> None:
    now = [0.0]
    conn, ctx = connector(fake, clock=lambda: now[0]), RecordingContext(channel="teams")
    await conn.start(ctx)
    try:
        fake.rotate_keys()
        fake.fail_next("metadata", 503)
        now[0] = 61.0
        activity = fake.message(CHAT, "wait for me")
        assert await post(conn, *fake.signed(activity)) == 503
        assert any(level == "error" and "signing keys could not be fetched" in m
                   for level, m, _ in ctx.logs)
        now[0] = 122.0  # the Bot Framework's retry, once the metadata answers again
        assert await post(conn, *fake.signed(activity)) == 200
        assert [m.text for m in ctx.inbound] == ["wait for me"]
    finally:
        await conn.stop()


# ---- where answers may go ----------------------------------------------------------------------

def test_the_service_url_allowlist() -> None:
    hosts = ["smba.trafficmanager.net", "*.botframework.com"]
    for good in ("https://smba.trafficmanager.net/amer/", "https://europe.botframework.com/",
                 "https://smba.trafficmanager.net:443/teams/"):
        assert service_url_problem(good, hosts) is None, good
    for bad, said in (("https://smba.trafficmanager.net.evil.com/", "not in"),
                      ("https://botframework.com.evil/", "not in"),
                      ("https://evilbotframework.com/", "not in"),
                      ("http://smba.trafficmanager.net/amer/", "not HTTPS"),
                      ("https://user:pw@smba.trafficmanager.net/", "not a plain"),
                      ("smba.trafficmanager.net/amer", "not a plain"),
                      ("https://smba.trafficmanager.net:99999/", "not a URL")):
        problem = service_url_problem(bad, hosts)
        assert problem is not None and said in problem, (bad, problem)
    assert service_url_problem("http://127.0.0.1:8080/teams/", ["127.0.0.1"]) is None
    assert "not HTTPS" in str(service_url_problem("http://10.0.0.1/", ["10.0.0.1"]))


async def test_a_genuine_activity_naming_an_unlisted_host_gets_no_token(
        running: tuple[TeamsConnector, RecordingContext], fake: TeamsFake) -> None:
    """Signed by the Bot Framework, but its serviceUrl is not on the allowlist (a sovereign
    cloud nobody configured): refused with an error line, and nothing is ever sent there."""
    conn, ctx = running
    elsewhere = fake.service_url.replace("127.0.0.1", "localhost")
    activity = fake.message(CHAT, "hi", serviceUrl=elsewhere)
    assert await post(conn, *fake.signed(activity)) == 403
    assert ctx.inbound == [] and await ctx.state.get(f"ref:{CHAT}") is None
    assert any(level == "error" and "localhost is not in service_url_hosts" in m
               for level, m, _ in ctx.logs)
    with pytest.raises(FatalConnectorError, match="no Teams service URL is known"):
        await conn.send_part(address(), "hello?", None)
    assert fake.posted == []


async def test_a_stored_service_url_off_the_allowlist_is_not_used(fake: TeamsFake) -> None:
    ctx = RecordingContext(channel="teams")
    await ctx.state.set(f"ref:{CHAT}", {"serviceUrl": fake.service_url,
                                        "bot": {"id": f"28:{APP_ID}"}})
    conn, _ = await started(fake, ctx, service_url_hosts=["smba.trafficmanager.net"])
    try:
        with pytest.raises(FatalConnectorError, match="not sending the bot's token"):
            await conn.send_part(address(), "hi", None)
        assert fake.posted == [] and fake.token_requests == 1  # the start's, nothing more
    finally:
        await conn.stop()


async def test_after_a_restart_replies_find_the_stored_service_url(fake: TeamsFake) -> None:
    state = MemoryState()
    first, ctx = await started(fake, RecordingContext(channel="teams", state=state))
    activity = fake.message(CHAT, "before the restart")
    await post(first, *fake.signed(activity))
    await first.stop()
    second, _ = await started(fake, RecordingContext(channel="teams", state=state))
    try:
        await second.send_part(address(), "after it", ctx.inbound[0].platform_id)
        assert [(p.chat, p.text, p.reply_to) for p in fake.posted] == [
            (CHAT, "after it", activity["id"])]
    finally:
        await second.stop()


# ---- our token ---------------------------------------------------------------------------------

async def test_the_token_is_fetched_once_and_renewed_before_it_expires(
        fake: TeamsFake) -> None:
    now = [0.0]
    token = AccessToken(fake.token_url.replace("{tenant}", "botframework.com"), APP_ID,
                        fake.app_password, clock=lambda: now[0])
    http = ChannelHttp("", platform="Teams")
    try:
        first = await token.header(http)
        now[0] = 3000.0
        assert await token.header(http) == first and fake.token_requests == 1
        now[0] = 3300.0  # five minutes before expires_in (3599 s) ran out
        renewed = await token.header(http)
        assert renewed != first and fake.token_requests == 2
        assert renewed["Authorization"].removeprefix("Bearer ") in fake.tokens
    finally:
        await http.close()


async def test_sends_share_the_token_and_a_refused_one_is_replaced(
        running: tuple[TeamsConnector, RecordingContext], fake: TeamsFake) -> None:
    conn, _ = running
    await post(conn, *fake.signed(fake.message(CHAT, "hi")))
    for n in range(3):
        await conn.send_part(address(), f"part {n}", None)
    assert fake.token_requests == 1
    fake.expire_tokens()  # Microsoft revoked it, or it expired early
    with pytest.raises(FatalConnectorError, match="refused the bot's access token"):
        await conn.send_part(address(), "refused", None)
    await conn.send_part(address(), "with a new token", None)
    assert fake.token_requests == 2
    assert [p.text for p in fake.posted] == ["part 0", "part 1", "part 2", "with a new token"]


async def test_a_token_endpoint_outage_is_retryable_and_sends_nothing(
        running: tuple[TeamsConnector, RecordingContext], fake: TeamsFake) -> None:
    conn, _ = running
    await post(conn, *fake.signed(fake.message(CHAT, "hi")))
    fake.expire_tokens()
    with pytest.raises(FatalConnectorError):
        await conn.send_part(address(), "x", None)
    fake.fail_next("token", 503)
    with pytest.raises(RetryableError):
        await conn.send_part(address(), "x", None)
    fake.lose_next_answer("token")  # a lost token answer sent no message: retryable too
    with pytest.raises(RetryableError):
        await conn.send_part(address(), "x", None)
    assert fake.posted == []


@pytest.mark.parametrize(("values", "said"), [
    ({"app_password": "wrong-secret"}, "AADSTS7000215"),
    ({"app_id": "00000000-0000-0000-0000-000000000000"}, "AADSTS700016"),
    ({"tenant_id": TENANT}, "AADSTS90002"),  # a multi-tenant bot given a tenant
])
async def test_bad_credentials_fail_the_probe_with_entra_ids_words(
        fake: TeamsFake, values: dict[str, Any], said: str) -> None:
    result = await connector(fake, **values).probe()
    assert not result.ok and said in result.message
    assert "app_password" in result.message and "wrong-secret" not in result.message


async def test_a_single_tenant_bot_gets_its_token_from_its_tenant() -> None:
    async with TeamsFake(tenant=TENANT) as fake:
        result = await connector(fake, tenant_id=TENANT).probe()
        assert result.ok and fake.token_requests == 1  # type: ignore[attr-defined]


async def test_probe_and_start_check_both_tokens(fake: TeamsFake) -> None:
    assert (await connector(fake).probe()).message == \
        f"connected as app {APP_ID} (1 Bot Framework signing keys)"
    conn, ctx = await started(fake)
    await conn.stop()
    assert ctx.states[-2][0] == ChannelState.ONLINE
    unreachable = await connector(fake, openid_metadata_url=f"{fake.url}/nothing").probe()
    assert not unreachable.ok and "404" in unreachable.message
    for missing, said in (({"app_id": ""}, "app_id"), ({"app_password": ""}, "app_password"),
                          ({"service_url_hosts": []}, "service_url_hosts")):
        with pytest.raises(FatalConnectorError, match=said):
            await connector(fake, **missing).start(RecordingContext(channel="teams"))


# ---- sending, editing, typing ----------------------------------------------------------------

async def test_a_channel_thread_is_answered_in_that_thread(
        running: tuple[TeamsConnector, RecordingContext], fake: TeamsFake) -> None:
    conn, ctx = running
    root = fake.next_id()
    post_in_thread = fake.message(f"{CHANNEL};messageid={root}", "summarise please",
                                  kind="channel", mention=True)
    assert await post(conn, *fake.signed(post_in_thread)) == 200
    [inbound] = ctx.inbound
    assert (inbound.address.chat, inbound.address.thread) == (CHANNEL, root)
    assert inbound.is_group and inbound.mentioned and inbound.text == "summarise please"
    first = await conn.send_part(inbound.address, "part 1", inbound.platform_id)
    await conn.send_part(inbound.address, "part 2", None)
    assert [(p.chat, p.thread, p.reply_to) for p in fake.posted] == [
        (CHANNEL, root, post_in_thread["id"]), (CHANNEL, root, None)]
    assert first == f"{CHANNEL}|{fake.posted[0].id}"
    answer = fake.message(f"{CHANNEL};messageid={root}", "and more", kind="channel",
                          replyToId=fake.posted[0].id)
    await post(conn, *fake.signed(answer))
    assert ctx.inbound[-1].reply_to_bot and not ctx.inbound[-1].mentioned


async def test_a_streamed_draft_is_edited_in_place(
        running: tuple[TeamsConnector, RecordingContext], fake: TeamsFake) -> None:
    conn, _ = running
    await post(conn, *fake.signed(fake.message(CHAT, "hi")))
    draft = await conn.send_part(address(), "Wri", None)
    await conn.edit(address(), draft, "Writing…")
    await conn.edit(address(), draft, "Written.")
    assert [p.history for p in fake.posted] == [["Wri", "Writing…", "Written."]]
    with pytest.raises(FatalConnectorError, match="no longer exists"):
        await conn.edit(address(), f"{CHAT}|1234", "not ours")
    fake.fail_next("update", 429, retry_after=2)
    with pytest.raises(RetryableError) as limited:
        await conn.edit(address(), draft, "again")
    assert limited.value.retry_after == 2.0


async def test_typing_is_a_typing_activity_not_a_message(
        running: tuple[TeamsConnector, RecordingContext], fake: TeamsFake) -> None:
    conn, _ = running
    await post(conn, *fake.signed(fake.message(CHAT, "hi")))
    await conn.typing(address())
    assert fake.typing == [CHAT] and fake.posted == []


@pytest.mark.parametrize(("setup", "error", "said"), [
    ("block", FatalConnectorError, "blocked the bot"),
    ("remove", FatalConnectorError, "no longer part of this conversation"),
    (412, RetryableError, "try again"),
    (413, FatalConnectorError, "lower max_text"),
    (400, FatalConnectorError, "BadArgument"),
])
async def test_teams_documented_errors_are_sorted_and_said(
        running: tuple[TeamsConnector, RecordingContext], fake: TeamsFake,
        setup: str | int, error: type[Exception], said: str) -> None:
    conn, _ = running
    await post(conn, *fake.signed(fake.message(CHAT, "hi")))
    if setup == "block":
        fake.blocked.add(CHAT)
    elif setup == "remove":
        fake.removed.add(CHAT)
    else:
        fake.fail_next("send", int(setup))
    with pytest.raises(error, match=said):
        await conn.send_part(address(), "hello", None)
    assert fake.posted == []


async def test_an_oversized_part_would_be_refused_by_teams(fake: TeamsFake) -> None:
    """The fake enforces Teams' 40 KB; the setting cannot ask for parts that break it."""
    conn, _ = await started(fake, max_text=18000)
    try:
        await post(conn, *fake.signed(fake.message(CHAT, "hi")))
        assert conn.limits.max_text == 18000
        assert await conn.send_part(address(), "😀" * 9000, None)  # 18,000 UTF-16 units
        with pytest.raises(FatalConnectorError, match="MessageSizeTooBig"):
            await conn.send_part(address(), "😀" * 11000, None)
    finally:
        await conn.stop()
    with pytest.raises(ValueError, match="less than or equal"):
        connector(max_text=20000)


# ---- activities --------------------------------------------------------------------------------

def test_microsofts_documented_message_parses() -> None:
    parsed = parse_activity(ACTIVITIES["personal_message"], channel="teams")
    assert isinstance(parsed, Message)
    inbound = parsed.inbound
    doc = ACTIVITIES["personal_message"]
    assert inbound.text == "Hello Teams TestBot.Sending bold-italic rich text"
    assert inbound.platform_id == f"{doc['conversation']['id']}|1485983408511"
    assert inbound.address.thread is None and not inbound.is_group and not inbound.mentioned
    assert inbound.sender_name == "Megan Bowen" and inbound.attachments == ()  # text/html
    assert inbound.ts == pytest.approx(1485983407.437)
    assert parsed.service_url == "https://smba.trafficmanager.net/amer/"
    assert parsed.bot == {"id": "28:c9e8c047-2a74-40a2-b28a-b162d5f5327c",
                          "name": "Teams TestBot"}
    channel_created = parse_activity(ACTIVITIES["channel_created"], channel="teams")
    assert channel_created == Ignored("conversationUpdate activity")


def test_a_file_is_metadata_with_its_presigned_link() -> None:
    """The pre-signed ``downloadUrl`` is the only way a bot can fetch the file."""
    activity = {**ACTIVITIES["personal_message"], "text": "",
                "attachments": [ACTIVITIES["file_attachment"]]}
    parsed = parse_activity(activity, channel="teams")
    assert isinstance(parsed, Message)
    [file] = parsed.inbound.attachments
    assert (file.kind, file.name, file.mime, file.platform_id, file.url) == (
        "file", "file_example.txt", "text/plain", "1150D938-8870-4044-9F2C-5BBDEBA70C9D",
        "https://download.link")


def test_images_cards_and_empty_messages() -> None:
    fake = TeamsFake()
    image = parse_activity(fake.image(CHAT), channel="teams")
    assert isinstance(image, Message) and image.inbound.text == ""
    [picture] = image.inbound.attachments  # the text/html copy is not a file
    assert picture.kind == "image" and picture.mime == "" and str(picture.url).endswith(
        "/views/original")
    card = fake.message(CHAT, None, attachments=[
        {"contentType": "application/vnd.microsoft.card.adaptive", "content": {}}],
        value={"action": "submit"})
    assert parse_activity(card, channel="teams") == Ignored(
        f"message {card['id']} is a card action")


TESTBOT = {"id": "28:c9e8c047-2a74-40a2-b28a-b162d5f5327c", "name": "Teams TestBot"}
"""The bot of learn.microsoft.com's "Channel and group chat conversations with a bot"
("Receive mentions"): ``text`` "<at>Teams TestBot</at> ..." with a ``mention`` entity of
``"text": "<at>Teams TestBot</at>"`` naming it."""
ADA = {"id": "29:1ada", "name": "Ada Lovelace"}


def teams_said(text: str, *mentioned: dict[str, str], tag: str = "") -> Message:
    """A group-chat message to the docs' Teams TestBot, one ``mention`` entity per account
    in ``mentioned`` (its ``<at>`` tag is ``tag`` for the bot when given)."""
    activity = TeamsFake().message(GROUP, text, kind="groupChat")
    activity["recipient"] = TESTBOT
    for who in mentioned:
        shown = tag if who is TESTBOT and tag else f"<at>{who['name']}</at>"
        activity["entities"].append({"type": "mention", "text": shown, "mentioned": who})
    parsed = parse_activity(activity, channel="teams")
    assert isinstance(parsed, Message)
    return parsed


@pytest.mark.parametrize(("text", "expected"), [
    ("<at>Teams TestBot</at> what is due today?", "what is due today?"),
    ("<at>Teams TestBot</at>, what is due today?", "what is due today?"),
    ("what is due today <at>Teams TestBot</at>?", "what is due today?"),
    ("ask <at>Teams TestBot</at> about it", "ask @Teams TestBot about it"),
    ("<at>Teams TestBot</at>", "@Teams TestBot"),
    ("<at>Teams TestBot</at> ask <at>Ada Lovelace</at> and me", "ask @Ada Lovelace and me"),
    ("ask <at>Ada Lovelace</at> and me <at>Teams TestBot</at>", "ask @Ada Lovelace and me"),
])
def test_the_bots_mention_is_cut_where_it_addresses_the_bot(text: str, expected: str) -> None:
    parsed = teams_said(text, TESTBOT, ADA)
    assert parsed.inbound.mentioned and parsed.inbound.text == expected


def test_others_mentions_read_as_their_names_and_a_short_tag_of_the_bot_is_cut() -> None:
    other = teams_said("ask <at>Ada</at> and me", {**ADA, "name": ""}, TESTBOT)
    assert other.inbound.text == "ask @Ada and me"  # no name in the entity: the tag's text
    assert not teams_said("ask <at>Ada Lovelace</at>", ADA).inbound.mentioned
    short = teams_said("<at>TestBot</at> hi", TESTBOT, tag="<at>TestBot</at>")
    assert short.inbound.text == "hi"
    twice = teams_said("ask <at>TestBot</at> <at>Teams TestBot</at>", TESTBOT,
                       tag="<at>TestBot</at>")  # tagged twice, described once: by name
    assert twice.inbound.text == "ask @TestBot"
    chatter = parse_activity(TeamsFake().message(GROUP, "no mention here", kind="groupChat"),
                             channel="teams")
    assert isinstance(chatter, Message) and not chatter.inbound.mentioned


def test_conversation_types_decide_is_group() -> None:
    fake = TeamsFake()
    for kind, group in (("personal", False), ("groupChat", True), ("channel", True)):
        parsed = parse_activity(fake.message(GROUP, "x", kind=kind), channel="teams")
        assert isinstance(parsed, Message) and parsed.inbound.is_group is group, kind
    legacy = fake.message(GROUP, "x", kind="personal")
    legacy["conversation"] = {"id": GROUP, "isGroup": True}  # no conversationType
    parsed = parse_activity(legacy, channel="teams")
    assert isinstance(parsed, Message) and parsed.inbound.is_group


def test_installation_updates_are_news_for_the_log() -> None:
    removed = parse_activity({"type": "installationUpdate", "action": "remove",
                              "conversation": {"id": CHAT}}, channel="teams")
    assert isinstance(removed, Ignored) and CHAT in removed.notice
    assert "removed" in removed.notice
    assert isinstance(parse_activity({"type": "something new"}, channel="teams"), Ignored)
    assert parse_activity([], channel="teams") == Malformed("the activity is not an object")


async def test_two_chats_may_use_the_same_message_id(
        running: tuple[TeamsConnector, RecordingContext], fake: TeamsFake) -> None:
    """Teams message ids are unique only within a conversation."""
    conn, ctx = running
    one = fake.message("a:1first", "one", activity_id="1700000000123")
    other = fake.message("a:1second", "other", activity_id="1700000000123")
    for activity in (one, other, one):
        assert await post(conn, *fake.signed(activity)) == 200
    assert [m.text for m in ctx.inbound] == ["one", "other"]


async def test_a_removed_app_and_a_broken_activity_are_logged(
        running: tuple[TeamsConnector, RecordingContext], fake: TeamsFake) -> None:
    conn, ctx = running
    removed = {"type": "installationUpdate", "action": "remove", "id": "f:1",
               "serviceUrl": fake.service_url, "channelId": "msteams",
               "conversation": {"id": CHAT}}
    assert await post(conn, *fake.signed(removed)) == 200
    broken = fake.message(CHAT, "x")
    broken["text"] = 42
    assert await post(conn, *fake.signed(broken)) == 200
    lines = [(level, m) for level, m, _ in ctx.logs]
    assert ("info", f"the Teams app was removed from {CHAT}: replies there fail until it "
            "is added again") in lines
    assert any(level == "error" and "malformed" in m and "not a string" in m
               for level, m in lines)
    assert ctx.inbound == []


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=12), inner, max_size=5), max_leaves=25))
def test_the_parser_never_raises_on_any_json(value: Any) -> None:
    parse_activity(value, channel="teams")


_ANY = st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.lists(
    st.text(max_size=4), max_size=2) | st.dictionaries(st.text(max_size=6), st.text(max_size=4),
                                                      max_size=2)
_ACCOUNT = st.fixed_dictionaries({"id": st.text(max_size=6) | _ANY},
                                 optional={"name": _ANY, "conversationType": _ANY,
                                           "isGroup": _ANY})


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries(
    {"type": st.sampled_from(["message", "installationUpdate"]) | _ANY, "id": _ANY,
     "serviceUrl": _ANY, "conversation": _ACCOUNT | _ANY, "from": _ACCOUNT | _ANY,
     "recipient": _ACCOUNT | _ANY},
    optional={"text": st.text(max_size=30) | _ANY, "timestamp": _ANY, "replyToId": _ANY,
              "action": _ANY, "value": _ANY,
              "entities": st.lists(st.fixed_dictionaries(
                  {"type": st.just("mention") | _ANY},
                  optional={"text": _ANY, "mentioned": _ACCOUNT | _ANY}), max_size=3) | _ANY,
              "attachments": st.lists(st.fixed_dictionaries(
                  {"contentType": st.sampled_from(
                      ["image/png", "text/html", "application/vnd.microsoft.teams.file."
                       "download.info"]) | _ANY},
                  optional={"content": _ANY, "contentUrl": _ANY, "name": _ANY}),
                  max_size=3) | _ANY}))
def test_the_parser_never_raises_on_near_valid_activities(activity: dict[str, Any]) -> None:
    parsed = parse_activity(activity, channel="teams", ours={"x|y"})
    if isinstance(parsed, Message):
        assert parsed.inbound.platform_id and parsed.inbound.address.chat
        assert parsed.inbound.text or parsed.inbound.attachments


def test_the_spec() -> None:
    assert SPEC.requires == ("jwt", "cryptography", "microsoft_agents")
    assert SPEC.capabilities.edit and SPEC.capabilities.typing
    assert TeamsConfig().needs_webhook()
    schema = TeamsConfig.model_json_schema()["properties"]
    assert {k for k, v in schema.items() if v.get("secret")} == {"app_password"}
    assert "token goes there only" in schema["service_url_hosts"]["description"]
    assert all(v.get("description") for k, v in schema.items())
    assert connector(max_text=1000).limits.max_text == 1000


# ---- attachments ----------------------------------------------------------------------------

@pytest.fixture
async def harness() -> AsyncIterator[TeamsHarness]:
    harness = TeamsHarness()
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()


async def test_a_pasted_picture_is_fetched_with_the_bots_token_and_seen(
        harness: TeamsHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    await online(harness, fake_llm, make_gateway)
    fake, chat = harness.fake, harness.chat(0)
    activity = fake.image(chat, PNG)
    await harness.deliver(fake.signed(activity))
    assert await reply_to(harness, chat, 0) == "Echo: "  # a picture and no words
    assert fake_llm.images == [("image/png", PNG)]
    view = activity["attachments"][0]["contentUrl"].removeprefix(fake.url)
    [(info_path, info_auth), (view_path, view_auth)] = fake.downloads
    assert (info_path, view_path) == (view.removesuffix("/views/original"), view)
    assert info_auth == view_auth and (view_auth or "").removeprefix("Bearer ") in fake.tokens


async def test_a_file_comes_from_its_presigned_link_without_the_token(
        harness: TeamsHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    await online(harness, fake_llm, make_gateway)
    fake, chat = harness.fake, harness.chat(1)
    await harness.deliver(fake.signed(fake.file(chat, "chart.png", PNG, "image/png")))
    assert await reply_to(harness, chat, 0) == "Echo: "
    assert fake_llm.images == [("image/png", PNG)]
    assert [auth for _, auth in fake.downloads] == [None]  # the bot's token stayed home


@pytest.mark.parametrize(("gone", "says"), [
    ("image", "the picture: Teams no longer has it"),
    ("file", "old.png: the file is not accessible on 127.0.0.1 (HTTP 401)"),
])
async def test_an_attachment_teams_no_longer_hands_over_is_explained_to_the_sender(
        harness: TeamsHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory,
        gone: str, says: str) -> None:
    gateway = await online(harness, fake_llm, make_gateway)
    fake, chat = harness.fake, harness.chat(2)
    activity = fake.image(chat) if gone == "image" else \
        fake.file(chat, "old.png", PNG, "image/png", expired=True)
    await harness.deliver(fake.signed(activity))
    reply = await reply_to(harness, chat, 0)
    assert reply.startswith(f"I could not read what you sent: {says}"), reply
    assert fake_llm.requests == []
    assert await gateway.store.logs.page(channel="teams", search="could not be read")
