"""What is WeCom's own: msg_signature over an encrypted echostr and Encrypt (against wechatpy's
published WeCom vectors), the CorpID as receive id, AgentID, gettoken and agent/get, the
app message API's errcodes, its silent truncation and per-member drop, trusted IPs.

Everything a channel shares (journal first, splitting, retries, redelivery...) is the
contract suite's (tests/contract, harness_wecom.py). The envelope itself is tested with
the WeChat channel (tests/connectors/test_wechat.py), whose module both use.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from connectors.wechat._crypto import Envelope
from connectors.wechat._tencent import TencentRefused
from connectors.wechat._wire import XmlRefused, read_xml
from connectors.wecom._parse import Followed, Ignored, Message, parse_app_callback
from connectors.wecom.manifest import SPEC, WeComConfig
from connectors.wecom.runtime import PER_MEMBER, WeComConnector, signed_echo, signed_encrypt
from pyclaw_app.channels import WebhookRequest, utf8_len
from pyclaw_app.control.webhooks import WebhookServer
from pyclaw_app.errors import DeliveryUncertain, FatalConnectorError, RetryableError
from pyclaw_app.gateway.delivery import reply_parts
from pyclaw_app.model import Address, ChannelState
from tests.conftest import GatewayFactory, provider_section
from tests.contract.harness_wecom import WeComHarness
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.wecom_api import AGENT_NAME, WeComFake
from tests.support import RecordingContext, eventually
from tests.test_attachments import PNG
from tests.test_attachments_channels import online, reply_to

USER = "zhangsan"
SECRETS = ("corp_secret", "token", "encoding_aes_key")

# tests/test_crypto.py of github.com/wechatpy/wechatpy (5b8502e): wechatpy.work.crypto
V_TOKEN, V_KEY, V_CORP = "123456", "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", \
    "wx49f0ab532d5d035a"
V_ECHOSTR = ("4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6"
             "p+Q==")
V_CALLBACK = (
    b"<xml><ToUserName><![CDATA[wx49f0ab532d5d035a]]></ToUserName>\n<Encrypt><![CDATA["
    b"RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHC"
    b"rsTyeDXzF6Bv283dGymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXp"
    b"XaG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkV"
    b"QiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAP"
    b"OQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0=]]>"
    b"</Encrypt>\n<AgentID><![CDATA[1]]></AgentID>\n</xml>")


@pytest.fixture
async def fake() -> AsyncIterator[WeComFake]:
    async with WeComFake() as server:
        yield server  # type: ignore[misc]


def connector(fake: WeComFake, **values: Any) -> WeComConnector:
    config: dict[str, Any] = {
        "corp_id": fake.corp_id, "agent_id": fake.agent_id, "corp_secret": fake.corp_secret,
        "token": fake.token, "encoding_aes_key": fake.encoding_aes_key, "api_base": fake.url,
        **values}
    return WeComConnector("wecom", WeComConfig(**{
        k: SecretStr(v) if k in SECRETS else v for k, v in config.items()}))


async def started(fake: WeComFake, **values: Any) -> tuple[WeComConnector, RecordingContext]:
    conn, ctx = connector(fake, **values), RecordingContext(channel="wecom")
    await conn.start(ctx)
    return conn, ctx


@pytest.fixture
async def running(fake: WeComFake) -> AsyncIterator[tuple[WeComConnector, RecordingContext]]:
    conn, ctx = await started(fake)
    yield conn, ctx
    await conn.stop()


async def post(conn: WeComConnector, signed: tuple[bytes, dict[str, str]]) -> int:
    body, query = signed
    return (await conn.handle_webhook(WebhookRequest("POST", body, {}, query))).status


# ---- the published vectors ------------------------------------------------------------------

def test_wechatpys_url_check_vector_verifies_and_its_echostr_opens_with_the_corp_id() -> None:
    query = {"msg_signature": "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96",
             "timestamp": "1411443780", "nonce": "437374425", "echostr": V_ECHOSTR}
    assert signed_echo(V_TOKEN, query) == V_ECHOSTR
    assert Envelope(V_KEY, V_CORP).open(V_ECHOSTR) == b"5927782489442352469"
    assert signed_echo(V_TOKEN, {**query, "nonce": "437374424"}) is None  # wechatpy's fail case
    assert signed_echo("654321", query) is None
    assert signed_echo(V_TOKEN, {**query, "echostr": ""}) is None


def test_wechatpys_callback_vector_verifies_decrypts_and_parses() -> None:
    query = {"msg_signature": "74d92dfeb87ba7c714f89d98870ae5eb62dff26d",
             "timestamp": "1411525903", "nonce": "461056294"}
    encrypted = signed_encrypt(V_TOKEN, query, V_CALLBACK)
    assert encrypted is not None
    fields = read_xml(Envelope(V_KEY, V_CORP).open(encrypted))
    parsed = parse_app_callback(fields, channel="wecom", agent_id=1)
    assert isinstance(parsed, Message)
    inbound = parsed.inbound
    assert (inbound.text, inbound.sender_id, inbound.address.account, inbound.platform_id) == (
        "test", "messense", V_CORP, "4363689963896700987")
    assert signed_encrypt(V_TOKEN, {**query, "timestamp": "1411525904"}, V_CALLBACK) is None
    with pytest.raises(XmlRefused):
        signed_encrypt(V_TOKEN, query, b"<!DOCTYPE x><xml/>")


def test_another_apps_callbacks_are_not_this_channels() -> None:
    base = {"ToUserName": "ww1", "FromUserName": "lisi", "CreateTime": "1", "MsgType": "text",
            "Content": "hi", "MsgId": "5"}
    assert isinstance(parse_app_callback({**base, "AgentID": "2"}, channel="c", agent_id=1),
                      Ignored)
    assert isinstance(parse_app_callback({**base, "AgentID": "1"}, channel="c", agent_id=1),
                      Message)
    assert isinstance(parse_app_callback(base, channel="c", agent_id=1), Message)
    event = {**base, "MsgType": "event", "Event": "subscribe", "AgentID": "1"}
    assert parse_app_callback(event, channel="c", agent_id=1) == Followed("lisi", True)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["AgentID", "FromUserName", "ToUserName", "MsgType",
                                        "MsgId", "Content", "Event"]) | st.text(max_size=5),
                       st.text(max_size=10) | st.none() | st.integers() | st.sampled_from(
                           ["1", "text", "event", "subscribe"]), max_size=8),
       st.integers(min_value=0, max_value=10**7))
def test_the_app_parser_never_raises(fields: dict[str, Any], agent_id: int) -> None:
    parse_app_callback(fields, channel="wecom", agent_id=agent_id)


# ---- the URL check and callbacks ------------------------------------------------------------

async def test_the_url_check_answers_the_decrypted_echostr_only_when_signed(
        running: tuple[WeComConnector, RecordingContext], fake: WeComFake) -> None:
    conn, ctx = running
    query, plain = fake.url_check()
    good = await conn.handle_webhook(WebhookRequest("GET", b"", {}, query))
    assert (good.status, good.body) == (200, plain.encode())
    forged, _ = fake.url_check(token="guess")
    assert (await conn.handle_webhook(WebhookRequest("GET", b"", {}, forged))).status == 401
    unsigned = {k: v for k, v in query.items() if k != "msg_signature"}
    assert (await conn.handle_webhook(WebhookRequest("GET", b"", {}, unsigned))).status == 401
    assert sum("rejected" in m for _, m, _ in ctx.logs) == 2


async def test_an_envelope_for_another_company_is_refused(
        running: tuple[WeComConnector, RecordingContext], fake: WeComFake) -> None:
    conn, ctx = running
    # signed with our token and sealed with our key, but for another CorpID
    other = WeComFake(corp_id="ww0000000000000000", token=fake.token,
                      encoding_aes_key=fake.encoding_aes_key)
    query, _ = other.url_check()
    assert (await conn.handle_webhook(WebhookRequest("GET", b"", {}, query))).status == 400
    assert await post(conn, other.callback(other.message(USER, "x"))) == 400
    assert ctx.inbound == []
    assert sum("does not open" in m and "corp_id" in m for _, m, _ in ctx.logs) == 2


async def test_the_url_check_and_a_message_through_the_real_webhook_server(
        fake: WeComFake, fake_llm: Any, make_gateway: Any) -> None:
    gw = await make_gateway({"providers": [provider_section(fake_llm)], "channels": {
        "wecom": {"type": "wecom", "dm_policy": "open", "corp_id": fake.corp_id,
                  "agent_id": fake.agent_id, "corp_secret": fake.corp_secret,
                  "token": fake.token, "encoding_aes_key": fake.encoding_aes_key,
                  "api_base": fake.url}}})
    await eventually(lambda: gw.channels["wecom"].state == ChannelState.ONLINE)
    server = WebhookServer(gw, "127.0.0.1", 0)
    await server.start()
    try:
        url = f"{server.url}/webhook/wecom"
        query, plain = fake.url_check()
        assert await fake.get_url_check(url, query) == (200, plain)
        assert await fake.post_signed(url, *fake.callback(fake.message(USER, "你好"))) == (
            200, "")
        sent = await eventually(lambda: fake.sent)
        assert [(m.to, m.text) for m in sent] == [(USER, "Echo: 你好")]
    finally:
        await server.stop()


async def test_forged_stale_and_foreign_callbacks_are_refused_before_decrypting(
        running: tuple[WeComConnector, RecordingContext], fake: WeComFake) -> None:
    conn, ctx = running
    assert await post(conn, fake.callback(fake.message(USER, "x"), token="guess")) == 401
    body, query = fake.callback(fake.message(USER, "original"))
    _, other = fake.callback(fake.message(USER, "another"))
    assert await post(conn, (body, {**query, "msg_signature": other["msg_signature"]})) == 401
    assert await post(conn, fake.callback(fake.message(USER, "old"),
                                          timestamp=1_411_525_903)) == 401
    assert await post(conn, (b'<!DOCTYPE x [<!ENTITY e "e">]><xml>&e;</xml>', query)) == 400
    assert ctx.inbound == []
    assert any(level == "error" and "DOCTYPE" in m for level, m, _ in ctx.logs)


async def test_messages_media_and_events_arrive_as_wecom_sends_them(
        running: tuple[WeComConnector, RecordingContext], fake: WeComFake) -> None:
    conn, ctx = running
    text, image = fake.message(USER, "看看这个"), fake.media(USER, "image")
    for fields in (text, image, fake.event(USER, "subscribe"),
                   fake.event(USER, "enter_agent"), fake.redelivery(str(text["MsgId"]))):
        assert await post(conn, fake.callback(fields)) == 200
    assert [(i.text, i.address.chat, i.address.account) for i in ctx.inbound] == [
        ("看看这个", USER, fake.corp_id), ("", USER, fake.corp_id)]
    assert ctx.inbound[1].attachments[0].kind == "image"
    assert f"{USER} added the app" in [m for _, m, _ in ctx.logs]
    other_app = {**fake.message(USER, "for app 5"), "AgentID": 5}
    assert await post(conn, fake.callback(other_app)) == 200
    assert len(ctx.inbound) == 2


# ---- the token, the app, trusted IPs --------------------------------------------------------

async def test_start_names_the_app_and_one_token_serves_until_wecom_refuses_it(
        fake: WeComFake) -> None:
    conn, ctx = await started(fake)
    try:
        assert (ChannelState.ONLINE, f"connected as {AGENT_NAME} ({fake.agent_id})") in \
            ctx.states
        for n in range(3):
            assert await conn.send_part(Address("wecom", USER), f"part {n}", None)
        assert fake.token_requests == 1
        fake.expire_token()  # 42001
        await conn.send_part(Address("wecom", USER), "after expiry", None)
        fake.revoke_token()  # 40014
        await conn.send_part(Address("wecom", USER), "after revocation", None)
        assert fake.token_requests == 3
        fake.fail_next("send", 401, count=2)
        with pytest.raises(TencentRefused) as refused:
            await conn.send_part(Address("wecom", USER), "refused twice", None)
        assert refused.value.code == 40014
        assert [m.text for m in fake.sent] == ["part 0", "part 1", "part 2", "after expiry",
                                               "after revocation"]
    finally:
        await conn.stop()


@pytest.mark.parametrize(("change", "words"), [
    ({"corp_secret": "wrong"}, "check corp_secret"),
    ({"corp_id": "ww0000000000000000"}, "check corp_id"),
    ({"agent_id": 1000009}, "check corp_secret and agent_id"),
])
async def test_bad_settings_fail_the_probe_and_the_start_with_what_to_fix(
        fake: WeComFake, change: dict[str, Any], words: str) -> None:
    probe = await connector(fake, **change).probe()
    assert not probe.ok and words in probe.message and "wrong" not in probe.message
    with pytest.raises(FatalConnectorError, match=words):
        await started(fake, **change)


async def test_an_untrusted_ip_is_a_fatal_error_naming_the_trusted_ip_setting(
        fake: WeComFake) -> None:
    fake.ip_allowed = False
    probe = await connector(fake).probe()
    assert not probe.ok and "60020" in probe.message and "企业可信IP" in probe.message
    fake.ip_allowed = True
    conn, _ = await started(fake)
    try:
        fake.ip_allowed = False
        with pytest.raises(FatalConnectorError, match="Enterprise Trusted IP"):
            await conn.send_part(Address("wecom", USER), "x", None)
    finally:
        await conn.stop()


# ---- sending --------------------------------------------------------------------------------

async def test_errcodes_are_sorted_and_no_error_names_a_secret(
        running: tuple[WeComConnector, RecordingContext], fake: WeComFake) -> None:
    conn, _ = running
    errors: list[str] = []
    fake.fail_next("send", 429)
    with pytest.raises(RetryableError) as busy:
        await conn.send_part(Address("wecom", USER), "x", None)
    assert busy.value.retry_after == 1.0
    errors.append(str(busy.value))
    with pytest.raises(TencentRefused, match="visible range") as stranger:
        await conn.send_part(Address("wecom", "nobody"), "x", None)
    errors.append(str(stranger.value))
    fake.lose_next_answer("send")
    with pytest.raises(DeliveryUncertain) as lost:
        await conn.send_part(Address("wecom", USER), "lost", None)
    errors.append(str(lost.value))
    assert [m.text for m in fake.sent] == ["lost"]
    assert not any(s in e for s in (fake.issued_token, fake.corp_secret) for e in errors)
    limit = WeComConnector.refusal(45009, "api freq out of limit", "the reply")
    assert isinstance(limit, RetryableError) and limit.retry_after == 60.0


async def test_an_answer_listing_the_user_as_invalid_is_a_refusal(
        running: tuple[WeComConnector, RecordingContext], fake: WeComFake) -> None:
    conn, _ = running
    fake.invalid_as_ok = True
    with pytest.raises(TencentRefused, match="invaliduser"):
        await conn.send_part(Address("wecom", "Nobody"), "x", None)


async def test_the_thirty_first_message_a_minute_waits_instead_of_being_dropped(
        running: tuple[WeComConnector, RecordingContext], fake: WeComFake) -> None:
    conn, _ = running
    for n in range(PER_MEMBER):
        await conn.send_part(Address("wecom", USER), f"part {n}", None)
    with pytest.raises(RetryableError) as wait:
        await conn.send_part(Address("wecom", USER), "part 30", None)
    assert wait.value.retry_after is not None and 1.0 <= wait.value.retry_after <= 60.0
    assert fake.calls("send") == PER_MEMBER and fake.dropped == []
    await conn.send_part(Address("wecom", "lisi"), "another member", None)
    assert fake.sent[-1].to == "lisi"


def test_parts_fit_the_2048_bytes_wecom_would_silently_cut() -> None:
    assert SPEC.limits.max_text == 2048 and not SPEC.capabilities.typing
    text = "企业微信的文本消息最长两千零四十八个字节。" * 300
    parts = reply_parts(text, SPEC.limits)
    assert "".join(parts) == text and all(utf8_len(p) <= 2048 for p in parts)


async def test_the_fake_cuts_what_is_too_long_as_wecom_does(
        running: tuple[WeComConnector, RecordingContext], fake: WeComFake) -> None:
    conn, _ = running
    await conn.send_part(Address("wecom", USER), "长" * 700, None)  # 2,100 bytes
    assert utf8_len(fake.sent[-1].text) <= 2048 and fake.sent[-1].text == "长" * 682


# ---- attachments through a gateway ----------------------------------------------------------

@pytest.fixture
async def harness() -> AsyncIterator[WeComHarness]:
    made = WeComHarness()
    await made.start()
    try:
        yield made
    finally:
        await made.stop()


async def test_a_picture_is_fetched_as_temporary_media_and_seen_by_the_model(
        harness: WeComHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    await online(harness, fake_llm, make_gateway)
    chat = harness.chat(0)
    fields = harness.fake.media(chat, "image")
    fields["MediaId"] = harness.fake.keep_media(PNG, "image/png")
    await harness.deliver(harness.fake.callback(fields))
    assert (await reply_to(harness, chat, 0)).startswith("Echo:")  # a picture, no text
    assert fake_llm.images == [("image/png", PNG)]
    assert harness.fake.media_fetches == [fields["MediaId"]]


async def test_media_wecom_no_longer_keeps_is_reported_to_the_sender(
        harness: WeComHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    await online(harness, fake_llm, make_gateway)
    chat = harness.chat(1)
    await harness.deliver(harness.fake.callback(harness.fake.media(chat, "image")))
    reply = await reply_to(harness, chat, 0)
    assert reply.startswith("I could not read what you sent: the picture: WeCom would not "
                            "hand the file over (errcode 40007: invalid media_id")
    assert reply.endswith("WeCom keeps what users send for three days only, so it is gone "
                          "(or never was).")
    assert fake_llm.images == []
