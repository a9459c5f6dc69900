"""The DingTalk connector against the fake Stream gateway and robot APIs, plus its parsers.

What every channel must do is the contract suite's (tests/contract); here is DingTalk's
own: groups (only @mentions arrive; the mention is cut, the reply goes to the group),
replies through the session webhook while it is valid and through the robot API after
(batchSend for a single chat, groupMessages/send for a group), a webhook DingTalk forgot,
a refreshed access token, a session webhook on a foreign host never used, SYSTEM ping and
disconnect frames, acks only after the journal took a message, wrong credentials as one
clear line, Test connection, a clean stop, DingTalk's throttling and refusal answers, and
the parsers (with a hypothesis test that they never raise).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from connectors.dingtalk._api import DingTalkApi, SessionGone
from connectors.dingtalk._parse import Parsed, Skip, parse_frame, parse_message
from connectors.dingtalk.manifest import MAX_TEXT, DingTalkConfig
from connectors.dingtalk.runtime import DingTalkConnector, markdown_title
from pyclaw_app.channels import SubmitResult
from pyclaw_app.errors import FatalConnectorError, RetryableError, StoreError
from pyclaw_app.model import Address, ChannelState, Inbound
from tests.conftest import GatewayFactory, provider_section
from tests.contract.harness_dingtalk import DingTalkHarness
from tests.fakes.dingtalk_api import MAX_MSG_PARAM, DingTalkFake
from tests.fakes.openai_api import FakeOpenAI
from tests.support import RecordingContext, eventually
from tests.test_attachments import PNG
from tests.test_attachments_channels import online, reply_to

Running = tuple[DingTalkConnector, RecordingContext]


@pytest.fixture
async def fake() -> AsyncIterator[DingTalkFake]:
    server = DingTalkFake()
    await server.start()
    yield server
    await server.stop()


def config(fake: DingTalkFake, **overrides: Any) -> DingTalkConfig:
    settings: dict[str, Any] = {"client_id": fake.client_id,
                                "client_secret": SecretStr(fake.client_secret),
                                "api_base": fake.url, "oapi_base": fake.url, **overrides}
    return DingTalkConfig(**settings)


@pytest.fixture
async def start(fake: DingTalkFake) -> AsyncIterator[Callable[..., Any]]:
    made: list[DingTalkConnector] = []

    async def factory(ctx: RecordingContext | None = None, **overrides: Any) -> Running:
        connector = DingTalkConnector("dingtalk", config(fake, **overrides))
        context = ctx or RecordingContext()
        made.append(connector)
        await connector.start(context)
        return connector, context

    yield factory
    for connector in made:
        await connector.stop()


def logged(ctx: RecordingContext, words: str) -> bool:
    return any(words in line[1] for line in ctx.logs)


# ---- the Stream socket -------------------------------------------------------------------


async def test_a_message_is_journaled_then_acked_and_pings_come_back(
        fake: DingTalkFake, start: Callable[..., Any]) -> None:
    _, ctx = await start()
    await fake.wait_connected()
    assert fake.subscriptions == [{"type": "CALLBACK", "topic": "/v1.0/im/bot/messages/get"}]
    user = fake.user(1)
    msg_id = await fake.deliver(fake.message(user, text="hello"))
    await eventually(lambda: fake.acks, timeout=5)
    assert [i.platform_id for i in ctx.inbound] == [msg_id]
    inbound = ctx.inbound[0]
    assert (inbound.address.chat, inbound.sender_id, inbound.sender_name, inbound.text) == (
        user.staff_id, user.staff_id, "User 1", "hello")
    assert not inbound.is_group
    assert fake.acks[0]["code"] == 200 and json.loads(fake.acks[0]["data"]) == {
        "response": None}
    assert fake.unacked == 0
    ping = await fake.ping()
    await eventually(lambda: ping in fake.pongs, timeout=5)
    assert not fake.bad_acks


class RefusingContext(RecordingContext):
    """A journal that fails its first ``failures`` submits (the disk is full)."""

    failures: int = 1

    async def submit(self, inbound: Inbound) -> SubmitResult:
        if self.failures:
            self.failures -= 1
            raise StoreError("disk full")
        return await super().submit(inbound)


async def test_a_message_the_journal_refused_is_not_acked_and_comes_again(
        fake: DingTalkFake, start: Callable[..., Any]) -> None:
    _, ctx = await start(RefusingContext())
    await fake.wait_connected()
    msg_id = await fake.deliver(fake.message(fake.user(1), text="keep me"))
    await eventually(lambda: [i.platform_id for i in ctx.inbound] == [msg_id], timeout=10)
    assert fake.connections == 2  # reconnected; the unacked callback was pushed again
    assert logged(ctx, "could not journal DingTalk message")
    await eventually(lambda: fake.unacked == 0, timeout=5)
    assert not ctx.crashes


async def test_a_disconnect_frame_opens_a_new_connection_and_nothing_is_lost(
        fake: DingTalkFake, start: Callable[..., Any]) -> None:
    _, ctx = await start()
    await fake.wait_connected()
    await fake.disconnect("rebalancing")
    first = await fake.deliver(fake.message(fake.user(1), text="during the switch"))
    await eventually(lambda: fake.connections == 2 and fake.live_connections == 1,
                     timeout=10)
    second = await fake.deliver(fake.message(fake.user(1), text="after"))
    await eventually(lambda: len(ctx.inbound) == 2, timeout=10)
    assert [i.platform_id for i in ctx.inbound] == [first, second]
    assert logged(ctx, "DingTalk asked to reconnect (rebalancing)")
    assert ctx.states[-1][0] == ChannelState.ONLINE  # a routine switch, not an outage
    assert not any(level == "warning" for level, _, _ in ctx.logs) and not ctx.crashes


async def test_a_cut_socket_is_reopened_and_what_came_meanwhile_arrives(
        fake: DingTalkFake, start: Callable[..., Any]) -> None:
    _, ctx = await start()
    await fake.wait_connected()
    await fake.drop_connection()
    meanwhile = await fake.deliver(fake.message(fake.user(1), text="while cut"))
    await eventually(lambda: [i.platform_id for i in ctx.inbound] == [meanwhile], timeout=10)
    await eventually(lambda: fake.unacked == 0, timeout=10)  # acked once it is journaled
    assert fake.connections == 2
    assert ctx.states[-1][0] == ChannelState.ONLINE and logged(ctx, "reconnected")
    assert not ctx.crashes


async def test_odd_frames_are_logged_and_the_socket_stays(
        fake: DingTalkFake, start: Callable[..., Any]) -> None:
    _, ctx = await start()
    await fake.wait_connected()
    await fake.push_raw("not json at all")
    await fake.push_frame(fake.callback(fake.message(fake.user(2), msgtype="unknownMsgType",
                                                     content={"unknownMsgType": "?"})))
    await fake.deliver(fake.message(fake.user(1), text="still here"))
    await eventually(lambda: ctx.inbound, timeout=5)
    assert logged(ctx, "not JSON") and logged(ctx, "cannot read that kind")
    assert fake.connections == 1 and fake.unacked == 0


async def test_wrong_credentials_fail_the_start_with_one_clear_line(
        fake: DingTalkFake, start: Callable[..., Any]) -> None:
    ctx = RecordingContext()
    with pytest.raises(FatalConnectorError, match="Client ID / Client Secret"):
        await start(ctx, client_secret=SecretStr("wrong"))
    assert [line[1] for line in ctx.logs if line[0] == "error"] == [
        "cannot start: DingTalk refused the Client ID / Client Secret (authFailed: 鉴权失败): "
        "copy both again from the app's Credentials page"]
    connector = DingTalkConnector("dingtalk", config(fake, client_secret=SecretStr("wrong")))
    probe = await connector.probe()
    assert not probe.ok and "invalidClientIdOrSecret" in probe.message


async def test_probe_checks_the_token_and_stream_mode(fake: DingTalkFake) -> None:
    probe = await DingTalkConnector("dingtalk", config(fake)).probe()
    assert probe.ok and fake.client_id in probe.message
    assert fake.tokens_issued == 1
    missing = await DingTalkConnector("dingtalk", config(fake, client_id="")).probe()
    assert not missing.ok and "client_id" in missing.message


async def test_stop_closes_the_socket(fake: DingTalkFake, start: Callable[..., Any]) -> None:
    connector, ctx = await start()
    await fake.wait_connected()
    await connector.stop()
    await eventually(lambda: fake.live_connections == 0, timeout=5)
    assert ctx.states[-1][0] == ChannelState.STOPPED


# ---- replies -------------------------------------------------------------------------------


async def test_replies_use_the_session_webhook_then_the_robot_api(
        fake: DingTalkFake, start: Callable[..., Any]) -> None:
    connector, ctx = await start()
    await fake.wait_connected()
    user = fake.user(1)
    await fake.deliver(fake.message(user, text="hi"))
    await eventually(lambda: ctx.inbound, timeout=5)
    address = ctx.inbound[0].address
    await connector.send_part(address, "# Answer\nfirst", None)
    fake.session_ttl = -1  # the next message names a webhook that is already past its time
    await fake.deliver(fake.message(user, text="again"))
    await eventually(lambda: len(ctx.inbound) == 2, timeout=5)
    key = await connector.send_part(address, "second", None)
    assert [(m.chat, m.text, m.via, m.msgtype, m.title) for m in fake.sent] == [
        (user.staff_id, "# Answer\nfirst", "session", "markdown", "Answer"),
        (user.staff_id, "second", "oto", "markdown", "second")]
    assert key and not key.startswith("session-")


async def test_after_a_restart_a_reply_goes_through_the_robot_api(
        fake: DingTalkFake, start: Callable[..., Any]) -> None:
    """Webhooks live in memory: a fresh connector knows none and addresses by chat id."""
    connector, _ = await start(message_format="text")
    fake.group("Team")
    await connector.send_part(Address("dingtalk", "cidTeamGRP=="), "to the group", None)
    await connector.send_part(Address("dingtalk", fake.user(3).staff_id), "to a user", None)
    assert [(m.chat, m.via, m.msgtype) for m in fake.sent] == [
        ("cidTeamGRP==", "group", "text"), ("staff0003", "oto", "text")]


async def test_a_forgotten_session_webhook_is_retried_through_the_robot_api(
        fake: DingTalkFake, start: Callable[..., Any]) -> None:
    connector, ctx = await start()
    await fake.wait_connected()
    await fake.deliver(fake.message(fake.user(1), text="hi"))
    await eventually(lambda: ctx.inbound, timeout=5)
    fake.expire_sessions()  # DingTalk dropped it earlier than it said
    address = ctx.inbound[0].address
    with pytest.raises(SessionGone):
        await connector.send_part(address, "lost?", None)
    await connector.send_part(address, "found", None)
    assert [(m.text, m.via) for m in fake.sent] == [("found", "oto")]


async def test_a_refused_access_token_is_fetched_again(
        fake: DingTalkFake, start: Callable[..., Any]) -> None:
    connector, _ = await start()
    address = Address("dingtalk", fake.user(1).staff_id)
    await connector.send_part(address, "one", None)
    fake.revoke_tokens()
    with pytest.raises(RetryableError, match="access token"):
        await connector.send_part(address, "two", None)
    await connector.send_part(address, "two", None)
    assert [m.text for m in fake.sent] == ["one", "two"] and fake.tokens_issued == 2


async def test_a_session_webhook_on_another_host_is_never_used(
        fake: DingTalkFake, start: Callable[..., Any]) -> None:
    connector, ctx = await start()
    await fake.wait_connected()
    data = fake.message(fake.user(1), text="hi")
    data["sessionWebhook"] = "https://attacker.example/robot/sendBySession?session=x"
    await fake.deliver(data)
    await eventually(lambda: ctx.inbound, timeout=5)
    assert logged(ctx, "ignored a session webhook")
    await connector.send_part(ctx.inbound[0].address, "safe", None)
    assert [(m.text, m.via) for m in fake.sent] == [("safe", "oto")]


async def test_a_group_mention_is_answered_in_the_group_with_the_mention_cut(
        fake: DingTalkFake, fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    """Through a real gateway: DingTalk pushes only the @mention; its text arrives with
    the mention cut, and the answer goes to the group's session webhook."""
    group = fake.group("Team")
    gateway = await make_gateway({
        "providers": [provider_section(fake_llm)],
        "channels": {"dingtalk": {"type": "dingtalk", "client_id": fake.client_id,
                                  "client_secret": fake.client_secret,
                                  "api_base": fake.url, "oapi_base": fake.url,
                                  "group_policy": "open", "group_reply": "mention",
                                  "rate_limit_per_minute": 0}}})
    await eventually(lambda: gateway.channels["dingtalk"].state == ChannelState.ONLINE,
                     timeout=10)
    msg_id = await fake.deliver(fake.message(fake.user(2), group=group, text="hey bot"))
    sent = await eventually(lambda: fake.sent, timeout=10)
    assert [(m.chat, m.text, m.via) for m in sent] == [(group, "Echo: hey bot", "session")]
    row = await gateway.store.db.fetchone(
        "SELECT chat, text FROM messages WHERE direction='in' AND platform_id=?", (msg_id,))
    assert row is not None and (row["chat"], row["text"]) == (group, "hey bot")


# ---- the REST answers -----------------------------------------------------------------------


@pytest.fixture
async def api(fake: DingTalkFake) -> AsyncIterator[DingTalkApi]:
    client = DingTalkApi(api_base=fake.url, oapi_base=fake.url, client_id=fake.client_id,
                         client_secret=fake.client_secret, robot_code=fake.robot_code)
    yield client
    await client.close()


async def test_throttling_is_retryable_after_a_second_on_both_apis(
        fake: DingTalkFake, api: DingTalkApi) -> None:
    fake.rate_limit_next_send(5)
    with pytest.raises(RetryableError, match="QpsLimit") as caught:
        await api.send_robot(group=False, target="staff0001", msg_key="sampleText",
                             msg_param={"content": "x"})
    assert caught.value.retry_after == 1.0
    hook = fake.message(fake.user(1), text="x")["sessionWebhook"]
    fake.rate_limit_next_send(5)
    with pytest.raises(RetryableError, match="90018") as caught:
        await api.send_webhook(hook, {"msgtype": "text", "text": {"content": "x"}})
    assert caught.value.retry_after == 1.0
    fake.fail_next("send", 500)
    with pytest.raises(RetryableError, match="-1"):
        await api.send_webhook(hook, {"msgtype": "text", "text": {"content": "x"}})
    assert fake.sent == []


async def test_refusals_are_fatal_and_name_the_reason(fake: DingTalkFake,
                                                      api: DingTalkApi) -> None:
    with pytest.raises(FatalConnectorError, match="invalidStaffIdList"):
        await api.send_robot(group=False, target="nobody", msg_key="sampleText",
                             msg_param={"content": "x"})
    with pytest.raises(FatalConnectorError, match=r"invalid\.openConversationId"):
        await api.send_robot(group=True, target="cidUnknown==", msg_key="sampleText",
                             msg_param={"content": "x"})
    fake.fail_next("send", 403)
    with pytest.raises(FatalConnectorError, match="qyapi_robot_sendmsg"):
        await api.send_robot(group=False, target="staff0001", msg_key="sampleText",
                             msg_param={"content": "x"})
    hook = fake.message(fake.user(1), text="x")["sessionWebhook"]
    with pytest.raises(FatalConnectorError, match="40035"):
        await api.send_webhook(hook, {"msgtype": "text", "text": {"content": ""}})
    with pytest.raises(FatalConnectorError, match="outside"):
        await api.send_webhook("http://127.0.0.2:9/robot/sendBySession?session=x",
                               {"msgtype": "text", "text": {"content": "x"}})


async def test_the_fake_refuses_what_dingtalk_refuses(fake: DingTalkFake) -> None:
    """Over-long msgParam, no token, a used ticket: the fake is not a rubber stamp."""
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{fake.url}/v1.0/robot/groupMessages/send", json={}) as r:
            assert r.status == 401 and (await r.json())["code"] == "InvalidAuthentication"
        async with session.post(f"{fake.url}/v1.0/oauth2/accessToken", json={
                "appKey": fake.client_id, "appSecret": fake.client_secret}) as r:
            token = (await r.json())["accessToken"]
        fake.user(1)
        big = json.dumps({"content": "x" * (MAX_MSG_PARAM + 1)})
        async with session.post(f"{fake.url}/v1.0/robot/oToMessages/batchSend", json={
                "robotCode": fake.robot_code, "userIds": ["staff0001"], "msgKey": "sampleText",
                "msgParam": big}, headers={"x-acs-dingtalk-access-token": token}) as r:
            assert r.status == 400 and "msgParam" in (await r.json())["code"]
        async with session.post(f"{fake.url}/v1.0/gateway/connections/open", json={
                "clientId": fake.client_id, "clientSecret": fake.client_secret,
                "subscriptions": [{"type": "CALLBACK", "topic": "/v1.0/im/bot/messages/get"}]
                }) as r:
            ticket = (await r.json())["ticket"]
        async with session.ws_connect(f"ws://127.0.0.1:{fake.port}/connect?ticket={ticket}"):
            pass
        with pytest.raises(aiohttp.WSServerHandshakeError):
            async with session.ws_connect(
                    f"ws://127.0.0.1:{fake.port}/connect?ticket={ticket}"):
                pass
    assert fake.sent == []


def test_a_full_part_fits_the_robot_apis_msg_param() -> None:
    text = ("\"line\"\n" * 2000)[:MAX_TEXT]
    param = json.dumps({"title": markdown_title(text), "text": text}, ensure_ascii=False)
    assert len(param.encode("utf-8")) <= MAX_MSG_PARAM


def test_markdown_titles_are_short_and_never_empty() -> None:
    assert markdown_title("## Plan for today\nmore") == "Plan for today"
    assert markdown_title("1. first step") == "first step"
    assert markdown_title("\n\n") == "Reply"
    assert len(markdown_title("x" * 100)) == 24


# ---- files -------------------------------------------------------------------------------

@pytest.fixture
async def harness() -> AsyncIterator[DingTalkHarness]:
    harness = DingTalkHarness()
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()


@pytest.mark.parametrize(("msgtype", "content", "said"), [
    ("picture", {"pictureDownloadCode": "pWjA"}, ""),
    ("richText", {"richText": [{"text": "what is it?"}, {"type": "picture",
                                                         "pictureDownloadCode": "pWjA"}]},
     "what is it?"),
])
async def test_a_picture_s_download_code_becomes_a_url_fetched_without_the_token(
        harness: DingTalkHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory,
        msgtype: str, content: dict[str, Any], said: str) -> None:
    await online(harness, fake_llm, make_gateway)
    fake, chat = harness.fake, harness.chat(0)
    code = fake.add_file(PNG)
    if msgtype == "picture":
        content["downloadCode"] = code
    else:
        content["richText"][1]["downloadCode"] = code
    await fake.deliver(fake.message(fake.user(1), msgtype=msgtype, content=content))
    assert await reply_to(harness, chat, 0) == f"Echo: {said}"
    assert fake_llm.images == [("image/png", PNG)]
    assert fake.file_requests == [(code, fake.robot_code)]
    assert len(fake.downloads) == 1 and fake.downloads[0][1] is None


async def test_a_download_code_dingtalk_refuses_is_explained_to_the_sender(
        harness: DingTalkHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    gateway = await online(harness, fake_llm, make_gateway)
    fake, chat = harness.fake, harness.chat(1)
    await fake.deliver(fake.message(fake.user(2), msgtype="picture",
                                    content={"downloadCode": "mIofExpired"}))
    reply = await reply_to(harness, chat, 0)
    assert reply.startswith("I could not read what you sent: the picture: DingTalk did not "
                            "hand the file over") and "下载码无效或已过期" in reply
    assert fake.downloads == [] and fake_llm.requests == []
    assert await gateway.store.logs.page(channel="dingtalk", search="did not hand the file")


# ---- the parsers --------------------------------------------------------------------------


def robot(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"msgId": "msgA==", "conversationId": "cidDM==",
                            "conversationType": "1", "senderStaffId": "s1", "senderId": "$:x",
                            "senderNick": "Ann", "msgtype": "text", "text": {"content": "hi"},
                            "sessionWebhook": "https://oapi.dingtalk.com/robot/sendBySession"
                            "?session=a", "sessionWebhookExpiredTime": 1690367502152,
                            "createAt": 1690362101894}
    return {**base, **fields}


def parsed(data: object, **kwargs: Any) -> Parsed:
    result = parse_message(data, channel="dingtalk", **kwargs)
    assert isinstance(result, Parsed), result
    return result


def test_single_chats_are_addressed_by_staff_id_with_their_webhook() -> None:
    result = parsed(robot())
    assert result.inbound.address.chat == "s1" and result.inbound.text == "hi"
    assert result.inbound.ts == pytest.approx(1690362101.894)
    assert result.conversation.webhook.endswith("session=a")
    assert result.conversation.webhook_expires == pytest.approx(1690367502.152)
    outsider = parsed(robot(senderStaffId=None))  # no staff id: the conversation it is
    assert outsider.inbound.address.chat == "cidDM==" and outsider.inbound.sender_id == "$:x"


def test_group_mentions_are_reported_and_the_mention_cut() -> None:
    plain = parsed(robot(conversationType="2", conversationId="cidG==", isInAtList=True,
                         text={"content": " what now?"}))
    assert plain.inbound.address.chat == "cidG==" and plain.inbound.text == "what now?"
    assert plain.inbound.is_group and plain.inbound.mentioned
    rich = parsed(robot(conversationType="2", conversationId="cidG==", isInAtList=True,
                        msgtype="richText", content={"richText": [
                            {"text": "@Pyclaw Bot look"},
                            {"type": "picture", "downloadCode": "dc1"}]}),
                  bot_name="Pyclaw Bot")
    assert rich.inbound.text == "look" and rich.inbound.attachments[0].platform_id == "dc1"
    only = parsed(robot(conversationType="2", isInAtList=True, text={"content": " "}),
                  bot_name="Pyclaw Bot")
    assert only.inbound.text == "@Pyclaw Bot"
    unaddressed = parsed(robot(conversationType="2", isInAtList=False))
    assert unaddressed.inbound.is_group and not unaddressed.inbound.mentioned


def test_attachments_are_metadata() -> None:
    cases = {"picture": ({"downloadCode": "p"}, "image", ""),
             "audio": ({"downloadCode": "a", "recognition": "spoken words"}, "audio",
                       "spoken words"),
             "video": ({"downloadCode": "v", "videoType": "mp4"}, "video", ""),
             "file": ({"downloadCode": "f", "fileName": "a.zip"}, "file", "")}
    for msgtype, (content, kind, text) in cases.items():
        result = parsed(robot(msgtype=msgtype, content=content, text=None))
        assert [a.kind for a in result.inbound.attachments] == [kind]
        assert result.inbound.text == text
    assert parsed(robot(msgtype="file", content={"fileName": "a.zip", "downloadCode": "f"})
                  ).inbound.attachments[0].name == "a.zip"


def test_broken_and_unknown_messages_are_skipped_with_a_reason() -> None:
    broken = parse_message(robot(msgId=None), channel="dingtalk")
    assert isinstance(broken, Skip) and broken.level == "error"
    assert isinstance(parse_message(robot(text={"content": 5}), channel="d"), Skip)
    unknown = parse_message(robot(msgtype="unknownMsgType", content={}), channel="d")
    assert isinstance(unknown, Skip) and unknown.level == "info"
    assert parse_frame("[1, 2]") is None and parse_frame(b"\xff") is None
    frame = parse_frame(json.dumps({"type": "CALLBACK", "headers": {"messageId": "m",
                                                                    "topic": "t"},
                                    "data": "{not json"}))
    assert frame is not None and frame.data is None and frame.message_id == "m"


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                     | st.text(max_size=20),
                     lambda children: st.lists(children, max_size=4)
                     | st.dictionaries(st.text(max_size=12), children, max_size=6),
                     max_leaves=25)
_FIELDS = st.fixed_dictionaries({}, optional={
    key: _JSON | st.text(max_size=20) for key in (
        "msgId", "conversationId", "conversationType", "senderStaffId", "senderId",
        "senderNick", "msgtype", "text", "content", "isInAtList", "createAt",
        "sessionWebhook", "sessionWebhookExpiredTime")})


@given(data=_JSON | _FIELDS, name=st.text(max_size=10))
def test_parse_message_never_raises(data: object, name: str) -> None:
    assert isinstance(parse_message(data, channel="d", bot_name=name), Parsed | Skip)


@given(raw=st.text(max_size=200) | st.binary(max_size=200) | _JSON.map(json.dumps))
def test_parse_frame_never_raises(raw: str | bytes) -> None:
    parse_frame(raw)
