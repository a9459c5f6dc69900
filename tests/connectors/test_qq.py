"""QQ over OneBot v11 beyond the contract: the pure message parsers, and the connector against
the fake bridge (tests/fakes/onebot_server.py) through the real gateway and the fake LLM.

Proven here: both message formats (segment arrays, CQ strings with their escaping) read
alike, checked against the spec's own examples and an independent encoder; the group rule
(an ``at`` of the bot, a reply to the bot's message, also after a restart via ``get_msg``);
groups answered with a ``reply`` segment; a wrong or missing token refused both ways the
bridges refuse it (go-cqhttp's 401/403 handshake, NapCat's in-band 1403), fatal with a
clear line; a silent link found dead by missed heartbeats, or by an unanswered
``get_status`` when the bridge sends none; a NapCat Timeout marked uncertain; a group the
account left refused with a clear line; an /event-only url explained; that a message
sent while the channel is down is lost on the bridge's side, as OneBot has no replay; and
pictures fetched from the segment's link or through get_image, never with the token and
only from QQ's media servers or the bridge's host, a failure's reason told to the sender.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from connectors.qq._conn import AnswerLost, ApiFailed, NotSent
from connectors.qq._errors import send_error
from connectors.qq._files import source_from_answer, source_from_segment
from connectors.qq._parse import Message, Skip, View, parse_event
from connectors.qq._segments import parse_cq, segments, unescape
from connectors.qq.manifest import QqConfig
from connectors.qq.runtime import QqConnector
from pyclaw_app.channels.contract import AttachmentUnavailable
from pyclaw_app.errors import DeliveryUncertain, FatalConnectorError, RetryableError
from pyclaw_app.gateway import Gateway
from pyclaw_app.model import Attachment, ChannelState
from tests.conftest import provider_section
from tests.fakes.onebot_server import OneBotServer, at, cq_string, image, reply, text
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.tls import self_signed
from tests.support import eventually
from tests.test_attachments import PNG

WAIT = 20.0
BOT = "3000000001"
GROUP = 881_234_567

# ---- the pure parts ------------------------------------------------------------------------


def test_the_specs_string_example_reads_as_its_array_example() -> None:
    """message/array.md shows this string and its array form side by side."""
    assert parse_cq("&#91;第一部分&#93;[CQ:image,file=123.jpg]"
                    "图片之后的部分，表情：[CQ:face,id=123]") == [
        {"type": "text", "data": {"text": "[第一部分]"}},
        {"type": "image", "data": {"file": "123.jpg"}},
        {"type": "text", "data": {"text": "图片之后的部分，表情："}},
        {"type": "face", "data": {"id": "123"}}]
    # message/string.md: escaped commas and ampersands inside parameters, '=' in a value
    assert parse_cq("[CQ:share,title=震惊&#44;小伙睡觉前居然...,url=http://baidu.com/?a=1&amp;b=2]"
                    ) == [{"type": "share", "data": {"title": "震惊,小伙睡觉前居然...",
                                                     "url": "http://baidu.com/?a=1&b=2"}}]
    assert parse_cq("[CQ:share,title=标题中有=等号,url=http://baidu.com]")[0]["data"] == {
        "title": "标题中有=等号", "url": "http://baidu.com"}
    assert parse_cq("- &#91;x&#93; 使用 `&amp;data` 获取地址") == [
        {"type": "text", "data": {"text": "- [x] 使用 `&data` 获取地址"}}]
    assert parse_cq("[CQ:shake]") == [{"type": "shake", "data": {}}]
    assert unescape("&amp;#91;") == "&#91;"  # one pass: an escaped entity stays literal
    assert parse_cq("broken [CQ:at,qq=1") == [text("broken [CQ:at,qq=1")]


def test_segments_accept_both_formats_and_one_segment_and_refuse_the_rest() -> None:
    array = [at(BOT), text(" hi")]
    assert segments(array) == segments(cq_string(array)) == array
    assert segments({"type": "face", "data": None}) == [{"type": "face", "data": {}}]
    assert segments([{"type": "text", "data": {"text": "a"}}, "junk", {"data": {}}]) == [
        {"type": "text", "data": {"text": "a"}}]
    assert segments(42) is None and segments(None) is None and segments({"x": 1}) is None


_keys = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
_values = st.text(max_size=20)
_segment = st.one_of(
    st.builds(text, st.text(min_size=1, max_size=30)),
    st.builds(lambda kind, data: {"type": kind, "data": data},
              st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10),
              st.dictionaries(_keys, _values, max_size=3)))


def _merged(segs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Adjacent text segments are one stretch of text in the string format."""
    out: list[dict[str, Any]] = []
    for seg in segs:
        if seg["type"] == "text" and out and out[-1]["type"] == "text":
            out[-1] = text(out[-1]["data"]["text"] + seg["data"]["text"])
        else:
            out.append(seg)
    return out


@given(st.lists(_segment, max_size=8))
@settings(max_examples=300, deadline=None)
def test_cq_strings_from_an_independent_encoder_read_back_as_their_segments(
        segs: list[dict[str, Any]]) -> None:
    assert parse_cq(cq_string(segs)) == _merged(segs)


@given(st.text(alphabet=st.sampled_from("[]CQ:,=&#;9135amp xé\ud800"), max_size=60)
       | st.text(max_size=60))
@settings(max_examples=300, deadline=None)
def test_parse_cq_never_raises_and_keeps_plain_text(raw: str) -> None:
    out = parse_cq(raw)
    if "[CQ:" not in raw and "&" not in raw:
        assert "".join(s["data"]["text"] for s in out) == raw


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
                     lambda kids: st.lists(kids, max_size=3)
                     | st.dictionaries(st.text(max_size=8), kids, max_size=4), max_leaves=12)
_event = st.fixed_dictionaries({
    "post_type": st.sampled_from(["message", "message_sent", "notice", 3]),
    "message_type": st.sampled_from(["private", "group", "guild", None]),
    "message_id": st.integers() | st.text(max_size=5) | st.none(),
    "user_id": st.integers() | st.sampled_from([BOT, "12", "x"]),
    "group_id": st.integers() | st.none() | st.text(max_size=4),
    "message": _json | st.lists(_segment, max_size=4) | st.text(max_size=30),
    "sender": _json, "anonymous": _json, "time": _json, "sub_type": _json})


@given(_event | _json)
@settings(max_examples=200, deadline=None)
def test_parse_event_never_raises(event: object) -> None:
    assert isinstance(parse_event(event, View("qq", BOT, {"5"})), Message | Skip)


def group_event(segs: list[dict[str, Any]], *, message_id: int = 77,
                user_id: int = 4242, fmt: str = "array", **extra: Any) -> dict[str, Any]:
    return {"time": 1_764_000_000, "self_id": int(BOT), "post_type": "message",
            "message_type": "group", "sub_type": "normal", "message_id": message_id,
            "group_id": GROUP, "user_id": user_id, "anonymous": None,
            "message": cq_string(segs) if fmt == "string" else segs,
            "raw_message": cq_string(segs), "font": 0,
            "sender": {"user_id": user_id, "nickname": "Alice", "card": "Al"}, **extra}


def parsed(event: dict[str, Any], bot_messages: tuple[str, ...] = ()) -> Message:
    result = parse_event(event, View("qq", BOT, bot_messages))
    assert isinstance(result, Message), result
    return result


@pytest.mark.parametrize("fmt", ["array", "string"])
def test_group_rule_mentions_replies_and_other_peoples_ats(fmt: str) -> None:
    msg = parsed(group_event([at(BOT), text(" hello "), at(555, "Carol"), text(" and "),
                              at(666), text(" [ok], & all "), at("all")], fmt=fmt))
    inbound = msg.inbound
    assert inbound.mentioned and inbound.is_group and not inbound.reply_to_bot
    assert inbound.text == "hello @Carol and @666 [ok], & all @all"
    assert inbound.address.chat == f"group:{GROUP}" and inbound.platform_id == "77"
    assert (inbound.sender_id, inbound.sender_name, inbound.ts) == ("4242", "Al", 1_764_000_000)
    quoting = parsed(group_event([reply(901), text("and this?")], fmt=fmt), ("901",))
    assert quoting.inbound.reply_to_bot and not quoting.inbound.mentioned
    assert quoting.quoted is None
    unknown = parsed(group_event([reply(902), text("who said that?")], fmt=fmt), ("901",))
    assert not unknown.inbound.reply_to_bot and unknown.quoted == "902"
    chatter = parsed(group_event([text("just people talking")], fmt=fmt)).inbound
    assert not (chatter.mentioned or chatter.reply_to_bot)


def test_private_messages_media_and_what_is_skipped() -> None:
    private = {"time": 1, "self_id": int(BOT), "post_type": "message",
               "message_type": "private", "sub_type": "friend", "message_id": "12",
               "user_id": 20001, "message": [at(BOT), text("hi")],
               "sender": {"nickname": "Dora"}}
    inbound = parsed(private).inbound
    assert (inbound.address.chat, inbound.text, inbound.is_group, inbound.mentioned) == (
        "private:20001", "hi", False, False)
    media = parsed(group_event([
        image("a.jpg", "https://multimedia.nt.qq.com.cn/a", 1234),
        {"type": "image", "data": {"file": "s.gif", "sub_type": "1"}},
        {"type": "record", "data": {"file": "v.amr", "url": "https://x/v.amr"}},
        {"type": "video", "data": {"file": "m.mp4"}},
        {"type": "file", "data": {"name": "report.pdf", "file_size": "99"}},
        {"type": "location", "data": {"lat": "39.9", "lon": "116.3", "title": "here"}},
        {"type": "face", "data": {"id": "178"}},
        {"type": "share", "data": {"title": "News", "url": "https://news.example"}}])).inbound
    assert [(a.kind, a.name, a.size) for a in media.attachments] == [
        ("image", "a.jpg", 1234), ("sticker", "s.gif", None), ("audio", "v.amr", None),
        ("video", "m.mp4", None), ("file", "report.pdf", 99), ("location", "here", None)]
    assert media.attachments[0].url == "https://multimedia.nt.qq.com.cn/a"
    assert media.attachments[5].url == "geo:39.9,116.3"
    assert media.text == "[QQ face]News https://news.example"
    for event, why in [(group_event([text("x")], user_id=int(BOT)), "our own"),
                       ({**private, "post_type": "message_sent"}, "our own"),
                       (group_event([text("x")], sub_type="notice"), "notice"),
                       ({**private, "message": 42}, "neither segments"),
                       ({**private, "message_id": None}, "without"),
                       ({"post_type": "notice", "notice_type": "group_increase"}, "notice")]:
        skip = parse_event(event, View("qq", BOT))
        assert isinstance(skip, Skip) and why in skip.reason, (event, skip)
    anonymous = parsed(group_event([at(BOT), text("psst")],
                                   anonymous={"id": 90, "name": "匿名者", "flag": "f"})).inbound
    assert (anonymous.sender_id, anonymous.sender_name) == ("anonymous:90", "匿名者")


def test_send_failures_are_sorted_as_rule_3_asks() -> None:
    chat = f"group:{GROUP}"
    assert isinstance(send_error(NotSent("closed"), chat), RetryableError)
    assert isinstance(send_error(AnswerLost("no answer"), chat), DeliveryUncertain)
    cases = {(100, "SEND_MSG_API_ERROR / 发送消息失败"): RetryableError,
             (1200, "发送消息失败"): RetryableError,
             (1200, "Timeout: NTEvent serviceAndMethod:NodeIKernelMsgService/sendMsg"):
                 DeliveryUncertain,
             (100, "GROUP_NOT_FOUND / 群聊不存在"): FatalConnectorError,
             (1200, "无法获取用户信息"): FatalConnectorError,
             (1400, "参数错误"): FatalConnectorError, (1404, "不支持的API"): FatalConnectorError,
             (1403, "token验证失败"): FatalConnectorError,
             (100, "SEND_MSG_API_ERROR / 消息过长"): FatalConnectorError}
    for (retcode, words), kind in cases.items():
        error = send_error(ApiFailed("send_group_msg", retcode, words), chat)
        assert type(error) is kind, (retcode, words, error)


def test_config_wants_a_websocket_url_and_the_token_out_of_it() -> None:
    assert QqConfig(url=" ws://127.0.0.1:3001 ").url == "ws://127.0.0.1:3001"
    for bad in ("http://127.0.0.1:3001", "ws://", "ws://h:1/?access_token=s"):
        with pytest.raises(ValidationError):
            QqConfig(url=bad)


# ---- against the fake bridge -----------------------------------------------------------------


@pytest.fixture
async def bridge() -> AsyncIterator[OneBotServer]:
    server = OneBotServer(token="s3cret-token", heartbeat_ms=300, groups=(GROUP,))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def section(server: OneBotServer, **overrides: Any) -> dict[str, Any]:
    return {"url": server.ws_url, "access_token": server.token, "api_timeout": 3.0,
            "dm_policy": "open", "group_policy": "open", "rate_limit_per_minute": 0,
            **overrides}


async def gateway_with(make_gateway: Any, fake_llm: FakeOpenAI, config: dict[str, Any], *,
                       state: ChannelState = ChannelState.ONLINE) -> Gateway:
    gw: Gateway = await make_gateway({"providers": [provider_section(fake_llm)],
                                      "channels": {"qq": {"type": "qq", **config}}})
    await eventually(lambda: gw.channels["qq"].state == state, timeout=WAIT)
    return gw


async def channel_log(gw: Gateway, search: str = "") -> list[str]:
    return [str(r["message"]) for r in await gw.store.logs.page(channel="qq", search=search)]


@pytest.mark.parametrize("flavor", ["gocq", "napcat"])
@pytest.mark.parametrize("given_token", ["", "not-the-token-0x1"])
async def test_a_refused_token_is_fatal_with_the_fix_in_the_log(
        flavor: str, given_token: str, make_gateway: Any, fake_llm: FakeOpenAI) -> None:
    server = OneBotServer(token="the-right-token", flavor=flavor)  # type: ignore[arg-type]
    async with server:
        config = section(server, access_token=given_token or None)
        if not given_token:
            config.pop("access_token")
        gw = await gateway_with(make_gateway, fake_llm, config, state=ChannelState.OFFLINE)
        wanted = "wants an access token (401" if flavor == "gocq" and not given_token \
            else "refused the access token (wrong token, 403"

        async def explained() -> bool:
            return any(wanted in line and "set access_token" in line
                       for line in await channel_log(gw, "access"))

        await eventually(explained, timeout=WAIT)  # the log is written in batches
        assert server.refused == [401 if not given_token else 403] if flavor == "gocq" \
            else server.refused == [1403]
        probe = await QqConnector("qq", QqConfig(**config)).probe()
        assert not probe.ok and "access token" in probe.message
        if given_token:
            assert not any(given_token in line for line in await channel_log(gw))


async def test_groups_in_string_format_are_answered_quoting_the_user(
        make_gateway: Any, fake_llm: FakeOpenAI) -> None:
    """go-cqhttp style: CQ strings, the token checked at the handshake."""
    server = OneBotServer(token="tok", flavor="gocq", message_format="string",
                          heartbeat_ms=300, groups=(GROUP,))
    async with server:
        gw = await gateway_with(make_gateway, fake_llm, section(server))
        assert "connected as Pyclaw Bot (3000000001)" in gw.channels["qq"].reason
        probe = await gw.channels["qq"].connector.probe()  # type: ignore[union-attr]
        assert probe.ok and "Pyclaw Bot" in probe.message
        await server.push_group(GROUP, 4242, [text("people [talking] & laughing")])
        pid = await server.push_group(GROUP, 4242, [at(BOT), text(" what is "), at(555, "Carol"),
                                                    text(" [up], & why?")])
        await eventually(lambda: server.sent(f"group:{GROUP}"), timeout=WAIT)
        await gw.lanes.join()
        sent = server.sent(f"group:{GROUP}")
        assert [(s.text, s.reply_to) for s in sent] == [
            ("Echo: what is @Carol [up], & why?", str(pid))]
        assert sent[0].segments[0] == reply(pid)  # the quote comes first, then the text


async def test_a_reply_to_the_bot_is_answered_also_after_a_restart(
        bridge: OneBotServer, make_gateway: Any, fake_llm: FakeOpenAI) -> None:
    gw = await gateway_with(make_gateway, fake_llm, section(bridge))
    chat = f"group:{GROUP}"
    await bridge.push_group(GROUP, 4242, [at(BOT), text(" first")])
    await eventually(lambda: bridge.sent(chat), timeout=WAIT)
    bot_id = bridge.sent(chat)[0].message_id
    await bridge.push_group(GROUP, 4242, [reply(bot_id), text("more please")])
    await eventually(lambda: len(bridge.sent(chat)) == 2, timeout=WAIT)
    assert ("get_msg", {"message_id": bot_id}) not in bridge.calls  # it knew its own id
    await gw.stop_channel("qq")
    await gw.start_channel("qq")
    await eventually(lambda: gw.channels["qq"].state == ChannelState.ONLINE, timeout=WAIT)
    await bridge.wait_client()
    await bridge.push_group(GROUP, 4242, [reply(bot_id), text("and after the restart?")])
    await bridge.push_group(GROUP, 4242, [reply(bot_id + 1000), text("not the bot's")])
    await eventually(lambda: len(bridge.sent(chat)) == 3, timeout=WAIT)
    await gw.lanes.join()
    assert [s.text for s in bridge.sent(chat)] == [
        "Echo: first", "Echo: more please", "Echo: and after the restart?"]
    assert ("get_msg", {"message_id": bot_id}) in bridge.calls  # asked the bridge instead


async def test_missed_heartbeats_mean_a_dead_link_that_is_made_again(
        bridge: OneBotServer, make_gateway: Any, fake_llm: FakeOpenAI) -> None:
    gw = await gateway_with(make_gateway, fake_llm, section(bridge, api_timeout=1.0))
    beats = bridge.beats
    await eventually(lambda: bridge.beats > beats, timeout=WAIT)  # the bot knows the interval
    bridge.freeze()
    await eventually(lambda: channel_log(gw, "no heartbeat from the bridge"), timeout=WAIT)
    bridge.freeze(False)
    await eventually(lambda: gw.channels["qq"].state == ChannelState.ONLINE, timeout=WAIT)
    await bridge.wait_client()
    await bridge.push_private(20001, [text("still there?")])
    await eventually(lambda: [s.text for s in bridge.sent("private:20001")]
                     == ["Echo: still there?"], timeout=WAIT)
    assert gw.channels["qq"].crashed is None


async def test_without_heartbeats_silence_is_checked_with_get_status(
        make_gateway: Any, fake_llm: FakeOpenAI) -> None:
    server = OneBotServer(token="tok", heartbeat_ms=0)
    async with server:
        gw = await gateway_with(make_gateway, fake_llm,
                                section(server, idle_check=1.0, api_timeout=1.0))
        await eventually(lambda: ("get_status", {}) in server.calls, timeout=WAIT)
        assert gw.channels["qq"].state == ChannelState.ONLINE
        server.freeze()
        await eventually(lambda: channel_log(gw, "no answer to get_status"), timeout=WAIT)
        server.freeze(False)
        await eventually(lambda: gw.channels["qq"].state == ChannelState.ONLINE, timeout=WAIT)


async def test_a_napcat_timeout_is_uncertain_and_a_left_group_is_refused(
        bridge: OneBotServer, make_gateway: Any, fake_llm: FakeOpenAI) -> None:
    gw = await gateway_with(make_gateway, fake_llm, section(bridge))
    bridge.fail_next("send", "timeout")
    pid = await bridge.push_private(20002, [text("did it go?")])

    async def status(pid: int) -> str | None:
        row = await gw.store.db.fetchone(
            "SELECT status, error FROM messages WHERE direction='in' AND platform_id=?",
            (str(pid),))
        return f"{row['status']}: {row['error']}" if row and row["status"] == "failed" else None

    assert str(await eventually(lambda: status(pid), timeout=WAIT)).startswith("failed: uncertain")
    assert len(bridge.sent("private:20002")) == 1  # QQ took it; it was not sent again
    other = 881_000_999
    pid = await bridge.push_group(other, 4242, [at(BOT), text(" hello")], bot_is_member=False)
    assert "not in that group" in str(await eventually(lambda: status(pid), timeout=WAIT))
    assert await eventually(lambda: channel_log(gw, "not in that group"), timeout=WAIT)


async def test_an_event_only_url_is_explained(make_gateway: Any, fake_llm: FakeOpenAI) -> None:
    """go-cqhttp's /event pushes events and reads no calls, so get_login_info goes unanswered."""
    server = OneBotServer(token="tok", flavor="gocq")
    async with server:
        gw = await gateway_with(make_gateway, fake_llm,
                                section(server, url=f"{server.ws_url}event", api_timeout=0.5),
                                state=ChannelState.DEGRADED)
        lines = await eventually(lambda: channel_log(gw, "universal endpoint"), timeout=WAIT)
        assert "not /event" in lines[0]


async def test_messages_sent_while_the_channel_is_down_are_lost_by_the_bridge(
        bridge: OneBotServer, make_gateway: Any, fake_llm: FakeOpenAI) -> None:
    gw = await gateway_with(make_gateway, fake_llm, section(bridge))
    first = await bridge.push_private(20003, [text("before")])
    await eventually(lambda: bridge.sent("private:20003"), timeout=WAIT)
    await gw.stop_channel("qq")
    await eventually(lambda: not bridge.clients, timeout=WAIT)
    await bridge.push_private(20003, [text("while down")])
    assert bridge.dropped == 1  # the bridge keeps nothing for an absent client
    await gw.start_channel("qq")
    await bridge.wait_client()
    await bridge.push_again(first)  # a bridge pushing an old event again: not answered twice
    await bridge.push_private(20003, [text("after")])
    await eventually(lambda: len(bridge.sent("private:20003")) == 2, timeout=WAIT)
    await gw.lanes.join()
    await asyncio.sleep(0.2)
    assert [s.text for s in bridge.sent("private:20003")] == ["Echo: before", "Echo: after"]


async def test_without_a_token_the_channel_warns_and_works(make_gateway: Any,
                                                          fake_llm: FakeOpenAI) -> None:
    server = OneBotServer(heartbeat_ms=300)
    async with server:
        config = section(server)
        config.pop("access_token")
        gw = await gateway_with(make_gateway, fake_llm, config)
        assert await eventually(lambda: channel_log(gw, "no access_token is set"), timeout=WAIT)
        await server.push_private(20004, [text("open door")])
        await eventually(lambda: server.sent("private:20004"), timeout=WAIT)


async def test_the_bridge_saying_the_account_is_offline_is_logged(
        bridge: OneBotServer, make_gateway: Any, fake_llm: FakeOpenAI) -> None:
    gw = await gateway_with(make_gateway, fake_llm, section(bridge))
    bridge.account_online = False
    await eventually(lambda: channel_log(gw, "the QQ account is offline"), timeout=WAIT)
    bridge.account_online = True
    await eventually(lambda: channel_log(gw, "the QQ account is online again"), timeout=WAIT)


async def test_an_unreachable_bridge_is_retried_and_said(make_gateway: Any,
                                                        fake_llm: FakeOpenAI) -> None:
    server = OneBotServer()
    async with server:
        url = server.ws_url  # a port nobody listens on once the server is gone
    gw = await gateway_with(make_gateway, fake_llm, section(server, url=url),
                            state=ChannelState.DEGRADED)
    assert await eventually(lambda: channel_log(gw, "cannot reach the OneBot bridge"),
                            timeout=WAIT)
    assert gw.channels["qq"].crashed is None
    probe = await QqConnector("qq", QqConfig(url=url)).probe()
    assert not probe.ok and "cannot reach" in probe.message


async def test_a_certificate_the_system_does_not_trust_is_tls_refused(
        tmp_path: Path, make_gateway: Any, fake_llm: FakeOpenAI) -> None:
    server = OneBotServer(token="tok", tls=self_signed(tmp_path).server_context())
    async with server:
        assert server.ws_url.startswith("wss://")
        gw = await gateway_with(make_gateway, fake_llm, section(server),
                                state=ChannelState.OFFLINE)
        assert await eventually(lambda: channel_log(gw, "TLS refused by wss://127.0.0.1"),
                                timeout=WAIT)


# ---- pictures and files ----------------------------------------------------------------------

async def vision_gateway(make_gateway: Any, fake_llm: FakeOpenAI,
                         server: OneBotServer) -> Gateway:
    gw: Gateway = await make_gateway({
        "providers": [provider_section(fake_llm, vision=True)],
        "channels": {"qq": {"type": "qq", **section(server)}}})
    await eventually(lambda: gw.channels["qq"].state == ChannelState.ONLINE, timeout=WAIT)
    return gw


@pytest.mark.parametrize("where", ["segment url on the bridge", "asked with get_image"])
async def test_a_picture_reaches_the_model_without_the_token(
        bridge: OneBotServer, make_gateway: Any, fake_llm: FakeOpenAI, where: str) -> None:
    await vision_gateway(make_gateway, fake_llm, bridge)
    url = bridge.add_media("B8E3.png", PNG)
    if where == "asked with get_image":  # a link on a host pyclaw does not fetch from
        url = "https://files.example.net/B8E3.png"
    await bridge.push_private(20001, [image("B8E3.png", url, len(PNG)), text("what is it?")])
    await eventually(lambda: bridge.sent("private:20001"), timeout=WAIT)
    assert bridge.sent("private:20001")[0].text == "Echo: what is it?"
    assert fake_llm.images == [("image/png", PNG)]
    assert bridge.downloads == [("B8E3.png", None)]
    asked = [c for c in bridge.calls if c[0] == "get_image"]
    assert asked == ([("get_image", {"file": "B8E3.png"})]
                     if where == "asked with get_image" else [])


@pytest.mark.parametrize(("known", "urls", "why"), [
    (False, True, "did not hand the file over (get_image failed: retcode 1200 文件B8E3.png不存在)"),
    (True, False, "answered get_image with a path on its own disk only"),
])
async def test_a_picture_the_bridge_cannot_hand_over_is_explained_to_the_sender(
        bridge: OneBotServer, make_gateway: Any, fake_llm: FakeOpenAI, known: bool, urls: bool,
        why: str) -> None:
    gw = await vision_gateway(make_gateway, fake_llm, bridge)
    if known:
        bridge.add_media("B8E3.png", PNG)
    bridge.media_urls = urls
    await bridge.push_private(20002, [image("B8E3.png", "https://files.example.net/B8E3.png")])
    await eventually(lambda: bridge.sent("private:20002"), timeout=WAIT)
    reply = bridge.sent("private:20002")[0].text
    assert reply.startswith("I could not read what you sent: B8E3.png: the OneBot bridge")
    assert why in reply
    assert bridge.downloads == [] and fake_llm.requests == []
    assert await channel_log(gw, "the OneBot bridge")


@pytest.mark.parametrize(("url", "fetched"), [
    ("https://multimedia.nt.qq.com.cn/download?appid=1406&rkey=x", True),
    ("http://gchat.qpic.cn/gchatpic_new/1/2-3-ABC/0", True),
    ("http://127.0.0.1:3001/files/a.png", True),  # the bridge's own host
    ("https://multimedia.nt.qq.com.cn.example.net/a", False),
    ("file:///etc/passwd", False),
    ("http://169.254.169.254/latest/meta-data", False),
])
def test_only_qq_media_servers_and_the_bridge_host_are_fetched(url: str, fetched: bool) -> None:
    picture = Attachment("image", name="a.png", url=url, platform_id="a.png")
    found = source_from_segment(picture, "127.0.0.1")
    assert (found is not None) is fetched
    if not fetched:
        with pytest.raises(AttachmentUnavailable, match="neither its own host nor QQ"):
            source_from_answer("get_image", {"file": "/tmp/a.png", "url": url}, picture,
                               "127.0.0.1")
    assert source_from_answer("get_image", {"base64": "aGk="}, picture, "x").data == b"hi"
