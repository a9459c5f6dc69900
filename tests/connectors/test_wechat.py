"""What is the WeChat Official Account's own: the signature and the AES envelope (against
wechatpy's published vectors), safe XML, the three message modes, the URL check, message
and event XML, the access_token's life, the customer-service window, quota and errcodes,
and typing.

Everything a channel shares (journal first, splitting, retries, redelivery...) is the
contract suite's (tests/contract, harness_wechat.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from connectors.wechat._crypto import CryptoError, Envelope, signature, signature_matches
from connectors.wechat._parse import Followed, Ignored, Malformed, Message, parse_callback
from connectors.wechat._tencent import TencentRefused
from connectors.wechat._wire import TokenCache, XmlRefused, read_xml
from connectors.wechat.manifest import SPEC, WeChatConfig
from connectors.wechat.runtime import WeChatConnector
from pyclaw_app.channels import WebhookRequest, utf8_len
from pyclaw_app.control.webhooks import WebhookServer
from pyclaw_app.errors import DeliveryUncertain, FatalConnectorError, RetryableError
from pyclaw_app.gateway.delivery import reply_parts
from pyclaw_app.model import Address, ChannelState
from tests.conftest import GatewayFactory, provider_section
from tests.contract.harness_wechat import WeChatHarness
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.wechat_api import ORIGINAL_ID, WeChatFake, tencent_open, tencent_seal, to_xml
from tests.support import RecordingContext, eventually
from tests.test_attachments import PNG
from tests.test_attachments_channels import online, reply_to

USER = "oLVPpjqs9BhvzwPj5A-vTYAX3GLc"
SECRETS = ("app_secret", "token", "encoding_aes_key")

# tests/test_crypto.py and tests/test_utils.py of github.com/wechatpy/wechatpy (5b8502e)
V_TOKEN, V_KEY, V_ID = "123456", "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", \
    "wx49f0ab532d5d035a"
V_REPLY = """<xml>
<MsgType><![CDATA[text]]></MsgType>
<Content><![CDATA[test]]></Content>
<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>
<ToUserName><![CDATA[messense]]></ToUserName>
<AgentID>1</AgentID>
<CreateTime>1411525903</CreateTime>
</xml>"""
V_ENCRYPTED = (
    "9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNc"
    "BqGsL8GqxlhZgURnAtObvesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5w"
    "Y0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muX"
    "sVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nTYjxxEE8kv3kFx"
    "tAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3")
V_MSG_SIGNATURE = "407518b7649e86ef23978113f92d27afa9296533"
V_ECHOSTR = ("4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6"
             "p+Q==")
V_INCOMING = (
    "RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHC"
    "rsTyeDXzF6Bv283dGymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXp"
    "XaG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkV"
    "QiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAP"
    "OQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0=")


@pytest.fixture
async def fake() -> AsyncIterator[WeChatFake]:
    async with WeChatFake() as server:
        yield server  # type: ignore[misc]


def connector(fake: WeChatFake | None = None, **values: Any) -> WeChatConnector:
    config: dict[str, Any] = {
        "app_id": fake.app_id if fake else V_ID,
        "app_secret": fake.app_secret if fake else "secret",
        "token": fake.token if fake else V_TOKEN,
        "encoding_aes_key": fake.encoding_aes_key if fake else V_KEY,
        "api_base": fake.url if fake else "http://127.0.0.1:9", **values}
    return WeChatConnector("wechat", WeChatConfig(**{
        k: SecretStr(v) if k in SECRETS else v for k, v in config.items()}))


async def started(fake: WeChatFake, **values: Any) -> tuple[WeChatConnector, RecordingContext]:
    conn, ctx = connector(fake, **values), RecordingContext(channel="wechat")
    await conn.start(ctx)
    return conn, ctx


@pytest.fixture
async def running(fake: WeChatFake) -> AsyncIterator[tuple[WeChatConnector, RecordingContext]]:
    conn, ctx = await started(fake)
    yield conn, ctx
    await conn.stop()


async def post(conn: WeChatConnector, signed: tuple[bytes, dict[str, str]]) -> tuple[int, str]:
    body, query = signed
    response = await conn.handle_webhook(WebhookRequest("POST", body, {}, query))
    return response.status, str(response.body)


def rejections(ctx: RecordingContext) -> list[str]:
    return [m for _, m, _ in ctx.logs if "rejected" in m]


# ---- the published vectors ------------------------------------------------------------------

def test_wechatpys_signature_vectors() -> None:
    assert signature("test", "1410685589", "test") == "f21891de399b4e33a1a93c9a7b8a8fffb5a443ff"
    assert signature_matches("dd6b9c95b495b3f7e2901bfbc76c664930ffdb96", V_TOKEN,
                             "1411443780", "437374425", V_ECHOSTR)
    assert not signature_matches("dd6b9c95b495b3f7e2901bfbc76c664930ffdb96", V_TOKEN,
                                 "1411443780", "437374424", V_ECHOSTR)  # nonce off by one
    assert not signature_matches(None, V_TOKEN, "1411443780", "437374425", V_ECHOSTR)


def test_wechatpys_encrypt_vector_with_its_fixed_random_string() -> None:
    envelope = Envelope(V_KEY, V_ID)
    encrypted = envelope.seal(V_REPLY.encode(), random16=b"1234567890123456")
    assert encrypted == V_ENCRYPTED
    assert signature(V_TOKEN, "1411525903", "461056294", encrypted) == V_MSG_SIGNATURE
    # the fake's own implementation agrees with the published vector too
    assert tencent_seal(V_KEY, V_ID, V_REPLY.encode(), b"1234567890123456") == V_ENCRYPTED
    assert envelope.open(encrypted) == V_REPLY.encode()


def test_wechatpys_decrypt_vector() -> None:
    assert signature(V_TOKEN, "1411525903", "461056294", V_INCOMING) == \
        "74d92dfeb87ba7c714f89d98870ae5eb62dff26d"
    fields = read_xml(Envelope(V_KEY, V_ID).open(V_INCOMING))
    assert (fields["Content"], fields["FromUserName"]) == ("test", "messense")
    assert Envelope(V_KEY, V_ID).open(V_ECHOSTR) == tencent_open(V_KEY, V_ECHOSTR)[0]


def test_an_envelope_that_is_not_ours_does_not_open() -> None:
    with pytest.raises(CryptoError, match="not 'wx0000000000000000'"):
        Envelope(V_KEY, "wx0000000000000000").open(V_INCOMING)
    other_key = "A" * 43
    with pytest.raises(CryptoError, match="bad padding"):
        Envelope(other_key, V_ID).open(V_INCOMING)
    for broken in ("not base64!", "", "QUJD", V_INCOMING[:-8] + "========"):
        with pytest.raises(CryptoError):
            Envelope(V_KEY, V_ID).open(broken)
    for key in ("short", V_KEY + "x", "!" * 43):
        with pytest.raises(CryptoError):
            Envelope(key, V_ID)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000))
def test_sealed_messages_of_any_length_open_again(message: bytes) -> None:
    envelope = Envelope(V_KEY, V_ID)
    assert envelope.open(envelope.seal(message)) == message


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.hex()))
def test_opening_any_string_fails_only_with_crypto_error(value: str) -> None:
    try:
        Envelope(V_KEY, V_ID).open(value)
    except CryptoError:
        pass


# ---- safe XML -------------------------------------------------------------------------------

def test_xml_with_declarations_or_over_the_cap_is_refused_before_parsing() -> None:
    laughs = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 '
              b'"&lol;&lol;&lol;">]><xml><Content>&lol2;</Content></xml>')
    external = b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><a>&e;</a></xml>'
    for body in (laughs, external, b"<!doctype xml><xml/>"):
        with pytest.raises(XmlRefused, match="DOCTYPE or ENTITY"):
            read_xml(body)
    with pytest.raises(XmlRefused, match="cap"):
        read_xml(b"<xml>" + b"<a>x</a>" * 10_000 + b"</xml>")
    for body, why in ((b"<html></html>", "root"), (b"<xml><a>", "not XML"), (b"", "not XML")):
        with pytest.raises(XmlRefused, match=why):
            read_xml(body)
    assert read_xml(b"<?xml version='1.0'?><xml><A><![CDATA[<b>&]]></A><N>1</N>"
                    b"<N>2</N><Nested><x>y</x></Nested></xml>") == {
        "A": "<b>&", "N": "1", "Nested": ""}


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400) | st.text(max_size=200).map(lambda t: f"<xml>{t}</xml>".encode()))
def test_reading_any_body_fails_only_with_xml_refused(body: bytes) -> None:
    try:
        read_xml(body)
    except XmlRefused:
        pass


# ---- messages and events (the XML of wechatpy's tests/test_parser.py) -----------------------

def _fields(xml: str) -> dict[str, str]:
    return read_xml(xml.encode())


def test_every_message_type_parses_with_its_ids_and_nothing_downloaded() -> None:
    head = ("<ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[fromUser]]>"
            "</FromUserName><CreateTime>1348831860</CreateTime>")
    mid = "<MsgId>1234567890123456</MsgId>"
    cases = {
        "text": "<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[this is a test]]>"
                "</Content>",
        "image": "<MsgType><![CDATA[image]]></MsgType><PicUrl><![CDATA[http://mmbiz.qpic.cn/"
                 "x/0]]></PicUrl><MediaId><![CDATA[media_id]]></MediaId>",
        "voice": "<MsgType><![CDATA[voice]]></MsgType><MediaId><![CDATA[media_id]]></MediaId>"
                 "<Format><![CDATA[Format]]></Format><Recognition><![CDATA[腾讯微信团队]]>"
                 "</Recognition>",
        "video": "<MsgType><![CDATA[video]]></MsgType><MediaId><![CDATA[media_id]]></MediaId>"
                 "<ThumbMediaId><![CDATA[thumb_media_id]]></ThumbMediaId>",
        "location": "<MsgType><![CDATA[location]]></MsgType><Location_X>23.134521</Location_X>"
                    "<Location_Y>113.358803</Location_Y><Scale>20</Scale><Label>"
                    "<![CDATA[位置信息]]></Label>",
        "link": "<MsgType><![CDATA[link]]></MsgType><Title><![CDATA[公众平台官网链接]]></Title>"
                "<Description><![CDATA[公众平台官网链接]]></Description><Url><![CDATA[url]]>"
                "</Url>",
    }
    parsed = {kind: parse_callback(_fields(f"<xml>{head}{body}{mid}</xml>"), channel="wechat")
              for kind, body in cases.items()}
    assert all(isinstance(p, Message) for p in parsed.values())
    inbound = {kind: p.inbound for kind, p in parsed.items() if isinstance(p, Message)}
    text = inbound["text"]
    assert (text.text, text.platform_id, text.sender_id, text.ts) == (
        "this is a test", "1234567890123456", "fromUser", 1348831860.0)
    assert text.address == Address(channel="wechat", chat="fromUser", account="toUser")
    image = inbound["image"].attachments[0]
    assert (image.kind, image.platform_id, image.url) == ("image", "media_id",
                                                          "http://mmbiz.qpic.cn/x/0")
    voice = inbound["voice"]
    assert voice.text == "腾讯微信团队" and voice.attachments[0].kind == "audio"
    assert voice.attachments[0].mime == "audio/format"
    assert inbound["video"].attachments[0].platform_id == "media_id"
    place = inbound["location"].attachments[0]
    assert (place.kind, place.name, place.url) == ("location", "位置信息",
                                                   "geo:23.134521,113.358803")
    assert inbound["link"].text == "公众平台官网链接\n公众平台官网链接\nurl"


def test_events_follows_unknown_types_and_broken_messages_are_told_apart() -> None:
    event = ("<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[FromUser]]>"
             "</FromUserName><CreateTime>123456789</CreateTime><MsgType><![CDATA[event]]>"
             "</MsgType><Event><![CDATA[{}]]></Event></xml>")
    assert parse_callback(_fields(event.format("subscribe")), channel="c") == Followed(
        "FromUser", True)
    assert parse_callback(_fields(event.format("unsubscribe")), channel="c") == Followed(
        "FromUser", False)
    assert isinstance(parse_callback(_fields(event.format("CLICK")), channel="c"), Ignored)
    base = {"ToUserName": "gh", "FromUserName": "o", "CreateTime": "1", "MsgId": "1"}
    assert isinstance(parse_callback({**base, "MsgType": "miniprogrampage"}, channel="c"),
                      Ignored)
    for broken in ({**base, "MsgType": "text"}, {**base, "MsgType": "image"},
                   {**base, "MsgType": "text", "Content": "x", "MsgId": "12a"},
                   {**base, "MsgType": "location", "Location_X": "north", "Location_Y": "1"},
                   {"MsgType": "text", "Content": "no sender", "MsgId": "1"}):
        assert isinstance(parse_callback(broken, channel="c"), Malformed), broken


_KEYS = ["ToUserName", "FromUserName", "CreateTime", "MsgType", "MsgId", "Content", "PicUrl",
         "MediaId", "Format", "Recognition", "Location_X", "Location_Y", "Label", "Title",
         "Url", "Event"]


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=6),
                       st.text(max_size=12) | st.sampled_from(
                           ["text", "image", "voice", "video", "shortvideo", "location", "link",
                            "event", "subscribe", "1", "-1.5"]) | st.none() | st.integers(),
                       max_size=10))
def test_the_parser_never_raises_on_any_fields(fields: dict[str, Any]) -> None:
    parse_callback(fields, channel="wechat")


# ---- the URL check and the three modes ------------------------------------------------------

async def test_the_url_check_echoes_echostr_only_when_signed_with_our_token(
        running: tuple[WeChatConnector, RecordingContext], fake: WeChatFake) -> None:
    conn, ctx = running
    good = await conn.handle_webhook(WebhookRequest("GET", b"", {}, fake.url_check("5566")))
    assert (good.status, good.body) == (200, "5566")
    forged = await conn.handle_webhook(WebhookRequest("GET", b"", {}, fake.url_check(
        "5566", token="guess")))
    unsigned = await conn.handle_webhook(WebhookRequest("GET", b"", {}, {"echostr": "5566"}))
    assert forged.status == unsigned.status == 401
    assert "5566" not in str(forged.body) + str(unsigned.body)
    query = fake.url_check()
    del query["echostr"]
    assert (await conn.handle_webhook(WebhookRequest("GET", b"", {}, query))).status == 400
    assert len(rejections(ctx)) == 2 and ctx.inbound == []


async def test_the_url_check_through_the_real_webhook_server(fake: WeChatFake, fake_llm: Any,
                                                             make_gateway: Any) -> None:
    gw = await make_gateway({"providers": [provider_section(fake_llm)], "channels": {
        "wechat": {"type": "wechat", "dm_policy": "open", "app_id": fake.app_id,
                   "app_secret": fake.app_secret, "token": fake.token,
                   "encoding_aes_key": fake.encoding_aes_key, "api_base": fake.url}}})
    await eventually(lambda: gw.channels["wechat"].state == ChannelState.ONLINE)
    server = WebhookServer(gw, "127.0.0.1", 0)
    await server.start()
    try:
        url = f"{server.url}/webhook/wechat"
        assert await fake.get_url_check(url, fake.url_check("90817")) == (200, "90817")
        assert (await fake.get_url_check(url, fake.url_check("1", token="x")))[0] == 401
        status, body = await fake.post_signed(url, *fake.callback(fake.message(USER, "你好")))
        assert (status, body) == (200, "success")
        sent = await eventually(lambda: fake.sent)
        assert [(m.to, m.text) for m in sent] == [(USER, "Echo: 你好")]
    finally:
        await server.stop()


@pytest.mark.parametrize("mode", ["safe", "compatible", "plaintext"])
async def test_each_message_mode_is_read_as_wechat_sends_it(fake: WeChatFake, mode: str
                                                            ) -> None:
    conn, ctx = await started(fake, encryption=mode)
    try:
        fields = fake.message(USER, "模式 " + mode)
        assert await post(conn, fake.callback(fields, mode=mode)) == (200, "success")
        assert [i.text for i in ctx.inbound] == ["模式 " + mode]
        assert ctx.inbound[0].address.account == ORIGINAL_ID
    finally:
        await conn.stop()


async def test_a_mode_mismatch_is_refused_with_what_to_set(fake: WeChatFake) -> None:
    safe, safe_ctx = await started(fake, encryption="safe")
    plain, plain_ctx = await started(fake, encryption="plaintext")
    try:
        plaintext = fake.callback(fake.message(USER, "x"), mode="plaintext")
        assert (await post(safe, plaintext))[0] == 400
        assert (await post(plain, fake.callback(fake.message(USER, "y"), mode="safe")))[0] == 400
        for ctx in (safe_ctx, plain_ctx):
            assert ctx.inbound == []
            assert any(level == "error" and "set encryption" in m for level, m, _ in ctx.logs)
    finally:
        await safe.stop()
        await plain.stop()


async def test_a_body_not_covered_by_msg_signature_is_refused(
        running: tuple[WeChatConnector, RecordingContext], fake: WeChatFake) -> None:
    conn, ctx = running
    body, query = fake.callback(fake.message(USER, "original"))
    _, other = fake.callback(fake.message(USER, "another"))
    # the query's signature is good (it covers only token, timestamp, nonce), the body is not
    query["msg_signature"] = other["msg_signature"]
    assert (await post(conn, (body, query)))[0] == 401
    del query["msg_signature"]
    assert (await post(conn, (body, query)))[0] == 401
    assert ctx.inbound == [] and len(rejections(ctx)) == 2


async def test_a_wrong_aes_key_is_said_and_a_malformed_one_stops_the_start(
        fake: WeChatFake) -> None:
    conn, ctx = await started(fake, encoding_aes_key="B" * 43)
    try:
        assert (await post(conn, fake.callback(fake.message(USER, "x"))))[0] == 400
        assert any("does not open" in m and "encoding_aes_key" in m for _, m, _ in ctx.logs)
    finally:
        await conn.stop()
    with pytest.raises(FatalConnectorError, match="encoding_aes_key"):
        await started(fake, encoding_aes_key="too-short")


async def test_a_stale_signed_timestamp_is_a_replay(
        running: tuple[WeChatConnector, RecordingContext], fake: WeChatFake) -> None:
    conn, ctx = running
    old = fake.callback(fake.message(USER, "old"), timestamp=1_411_525_903)
    assert (await post(conn, old))[0] == 401
    assert any("five minutes" in m for m in rejections(ctx)) and ctx.inbound == []


async def test_follows_are_logged_not_journaled_and_other_events_ignored(
        running: tuple[WeChatConnector, RecordingContext], fake: WeChatFake) -> None:
    conn, ctx = running
    for event in ("subscribe", "unsubscribe", "CLICK", "VIEW"):
        assert await post(conn, fake.callback(fake.event(USER, event, EventKey="k"))) == (
            200, "success")
    assert ctx.inbound == []
    said = [m for level, m, _ in ctx.logs if level == "info" and USER in m]
    assert said == [f"{USER} followed the account", f"{USER} unfollowed the account"]


async def test_a_retried_callback_is_submitted_once(
        running: tuple[WeChatConnector, RecordingContext], fake: WeChatFake) -> None:
    conn, ctx = running
    fields = fake.message(USER, "once")
    for _ in range(4):  # the first delivery and WeChat's three retries
        assert await post(conn, fake.callback(fake.redelivery(str(fields["MsgId"])))) == (
            200, "success")
    assert [i.platform_id for i in ctx.inbound] == [str(fields["MsgId"])]


# ---- the access_token -----------------------------------------------------------------------

async def test_one_token_serves_many_sends_and_is_renewed_once_when_refused(
        running: tuple[WeChatConnector, RecordingContext], fake: WeChatFake) -> None:
    conn, _ = running
    fake.message(USER, "hi")
    for n in range(3):
        assert await conn.send_part(Address("wechat", USER), f"part {n}", None) == ""
    assert fake.token_requests == ["stable_token"]
    fake.expire_tokens()  # 42001
    await conn.send_part(Address("wechat", USER), "after expiry", None)
    fake.revoke_tokens()  # 40001
    await conn.send_part(Address("wechat", USER), "after revocation", None)
    assert fake.token_requests == ["stable_token"] * 3
    assert [m.text for m in fake.sent] == ["part 0", "part 1", "part 2", "after expiry",
                                           "after revocation"]


async def test_a_token_refused_again_after_renewal_is_not_renewed_forever(
        running: tuple[WeChatConnector, RecordingContext], fake: WeChatFake) -> None:
    conn, _ = running
    fake.message(USER, "hi")
    fake.fail_next("send", 401, count=3)
    with pytest.raises(TencentRefused) as refused:
        await conn.send_part(Address("wechat", USER), "x", None)
    assert refused.value.code == 40001 and fake.calls("send") == 2


async def test_the_token_is_renewed_before_it_expires() -> None:
    now = [0.0]
    fetched: list[str] = []

    async def fetch() -> tuple[str, float]:
        fetched.append(f"t{len(fetched)}")
        return fetched[-1], 7200.0

    tokens = TokenCache(fetch, clock=lambda: now[0])
    assert await tokens.get() == "t0"
    now[0] = 7200 - 301
    assert await tokens.get() == "t0"
    now[0] = 7200 - 299  # inside the five-minute margin
    assert await tokens.get() == "t1"
    assert await tokens.renew("t0") == "t1"  # someone else already renewed it
    assert await tokens.renew("t1") == "t2"


async def test_the_classic_token_endpoint_works_too(fake: WeChatFake) -> None:
    conn, _ = await started(fake, token_endpoint="token")
    try:
        fake.message(USER, "hi")
        await conn.send_part(Address("wechat", USER), "classic", None)
        assert fake.token_requests == ["token"] and fake.sent[-1].text == "classic"
    finally:
        await conn.stop()


@pytest.mark.parametrize(("change", "words"), [
    ({"app_secret": "wrong"}, "check app_secret"),
    ({"app_id": "wx0000000000000000"}, "check app_id"),
])
async def test_bad_credentials_fail_the_start_and_the_probe_with_what_to_fix(
        fake: WeChatFake, change: dict[str, str], words: str) -> None:
    probe = await connector(fake, **change).probe()
    assert not probe.ok and words in probe.message
    assert "wrong" not in probe.message  # the secret itself is never said
    with pytest.raises(FatalConnectorError, match=words):
        await started(fake, **change)


async def test_an_ip_outside_the_whitelist_is_named(fake: WeChatFake) -> None:
    fake.ip_allowed = False
    probe = await connector(fake).probe()
    assert not probe.ok and "IP whitelist" in probe.message and "203.0.113.7" in probe.message
    fake.ip_allowed = True
    assert (await connector(fake).probe()).message == f"connected as Official Account " \
        f"{fake.app_id}"


# ---- sending: the window, the quota, errcodes ---------------------------------------------

async def test_outside_the_48_hour_window_the_reply_is_refused_clearly(
        running: tuple[WeChatConnector, RecordingContext], fake: WeChatFake) -> None:
    conn, _ = running
    fake.message(USER, "long ago")
    fake.close_window(USER)
    with pytest.raises(FatalConnectorError, match="48 hours") as refused:
        await conn.send_part(Address("wechat", USER), "too late", None)
    assert "45015" in str(refused.value) and fake.sent == []


async def test_a_reply_outside_the_window_leaves_a_clear_line_in_the_channel_log(
        fake: WeChatFake, fake_llm: Any, make_gateway: Any) -> None:
    gw = await make_gateway({"providers": [provider_section(fake_llm)], "channels": {
        "wechat": {"type": "wechat", "dm_policy": "open", "app_id": fake.app_id,
                   "app_secret": fake.app_secret, "token": fake.token,
                   "encoding_aes_key": fake.encoding_aes_key, "api_base": fake.url}}})
    await eventually(lambda: gw.channels["wechat"].state == ChannelState.ONLINE)
    fake.window = 0.0  # the window closes as soon as the message arrives
    body, query = fake.callback(fake.message(USER, "are you there?"))
    assert (await gw.webhook("wechat", WebhookRequest("POST", body, {}, query))).status == 200

    async def said() -> list[Any]:
        return await gw.store.logs.page(channel="wechat", search="48 hours")

    rows = await eventually(said)
    assert "not delivered" in str(rows[0]["message"]) and fake.sent == []


async def test_five_messages_per_user_message_then_a_clear_refusal(
        running: tuple[WeChatConnector, RecordingContext], fake: WeChatFake) -> None:
    conn, _ = running
    fake.message(USER, "tell me everything")
    for n in range(5):
        await conn.send_part(Address("wechat", USER), f"part {n}", None)
    with pytest.raises(FatalConnectorError, match="five customer-service messages"):
        await conn.send_part(Address("wechat", USER), "part 5", None)
    fake.message(USER, "go on")  # the user writes again: five more
    await conn.send_part(Address("wechat", USER), "part 5", None)
    assert len(fake.sent) == 6


async def test_busy_is_retryable_after_a_second_and_other_refusals_are_fatal(
        running: tuple[WeChatConnector, RecordingContext], fake: WeChatFake) -> None:
    conn, _ = running
    fake.message(USER, "hi")
    fake.fail_next("send", 429)
    with pytest.raises(RetryableError) as busy:
        await conn.send_part(Address("wechat", USER), "x", None)
    assert busy.value.retry_after == 1.0
    fake.fail_next("send", 403)
    with pytest.raises(FatalConnectorError, match="verified accounts"):
        await conn.send_part(Address("wechat", USER), "x", None)
    with pytest.raises(FatalConnectorError, match="not a follower"):
        await conn.send_part(Address("wechat", "o_never_wrote"), "x", None)
    fake.lose_next_answer("send")
    with pytest.raises(DeliveryUncertain):
        await conn.send_part(Address("wechat", USER), "lost", None)
    assert [m.text for m in fake.sent] == ["lost"]


def test_quota_codes_are_sorted_with_their_waits_and_advice() -> None:
    minute = WeChatConnector.refusal(45011, "api minute-quota reach limit", "the reply")
    assert isinstance(minute, RetryableError) and minute.retry_after == 60.0
    daily = WeChatConnector.refusal(45009, "reach max api daily quota limit", "the reply")
    assert isinstance(daily, TencentRefused) and "midnight" in str(daily)
    other = WeChatConnector.refusal(40008, "invalid message type", "the reply")
    assert isinstance(other, TencentRefused) and "40008" in str(other)


async def test_no_error_names_the_access_token(
        running: tuple[WeChatConnector, RecordingContext], fake: WeChatFake) -> None:
    conn, _ = running
    fake.message(USER, "hi")
    errors: list[str] = []
    for status in (429, 403, 503):
        fake.fail_next("send", status)
        try:
            await conn.send_part(Address("wechat", USER), "x", None)
        except (RetryableError, FatalConnectorError) as exc:
            errors.append(str(exc))
    fake.lose_next_answer("send")
    with pytest.raises(DeliveryUncertain) as lost:
        await conn.send_part(Address("wechat", USER), "x", None)
    tokens = fake.issued_tokens
    assert len(errors) == 3 and tokens
    assert not any(t in e for t in tokens for e in [*errors, str(lost.value)])
    assert not any(fake.app_secret in e for e in errors)


def test_parts_are_cut_at_2048_bytes_of_utf8() -> None:
    assert SPEC.limits.max_text == 2048 and utf8_len("微信") == 6
    parts = reply_parts("这是一个很长的回答。" * 400, SPEC.limits)
    assert len(parts) >= 6 and "".join(parts) == "这是一个很长的回答。" * 400
    assert all(utf8_len(p) <= 2048 for p in parts)


# ---- typing ---------------------------------------------------------------------------------

async def test_typing_is_shown_once_and_its_expected_refusals_are_quiet(
        running: tuple[WeChatConnector, RecordingContext], fake: WeChatFake) -> None:
    conn, _ = running
    fake.message(USER, "thinking?")
    await conn.typing(Address("wechat", USER))
    await conn.typing(Address("wechat", USER))  # 45081: already typing
    assert fake.typing == [(USER, "Typing")] and fake.calls("typing") == 2
    fake.followers[USER].last_exchange -= 60  # nothing exchanged in the last 30 s: 45080
    fake.followers[USER].typing_until = 0.0
    await conn.typing(Address("wechat", USER))
    assert fake.typing == [(USER, "Typing")]
    with pytest.raises(TencentRefused, match="40003"):
        await conn.typing(Address("wechat", "o_stranger"))


def test_the_fakes_xml_is_what_the_reader_reads() -> None:
    assert read_xml(to_xml({"A": "x <y>", "N": 1})) == {"A": "x <y>", "N": "1"}


# ---- attachments through a gateway ----------------------------------------------------------

@pytest.fixture
async def harness() -> AsyncIterator[WeChatHarness]:
    made = WeChatHarness()
    await made.start()
    try:
        yield made
    finally:
        await made.stop()


async def test_a_picture_is_fetched_as_temporary_media_and_seen_by_the_model(
        harness: WeChatHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    await online(harness, fake_llm, make_gateway)
    chat = harness.chat(0)
    fields = harness.fake.media(chat, "image")
    fields["MediaId"] = harness.fake.keep_media(PNG, "image/png")
    await harness.deliver(harness.fake.callback(fields))
    assert (await reply_to(harness, chat, 0)).startswith("Echo:")  # a picture, no text
    assert fake_llm.images == [("image/png", PNG)]
    assert harness.fake.media_fetches == [fields["MediaId"]]


async def test_media_wechat_no_longer_keeps_is_reported_to_the_sender(
        harness: WeChatHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    await online(harness, fake_llm, make_gateway)
    chat = harness.chat(1)
    await harness.deliver(harness.fake.callback(harness.fake.media(chat, "image")))
    reply = await reply_to(harness, chat, 0)
    assert reply.startswith("I could not read what you sent: the picture: WeChat would not "
                            "hand the file over (errcode 40007: invalid media_id")
    assert reply.endswith("WeChat keeps what users send for three days only, so it is gone "
                          "(or never was).")
    assert fake_llm.images == []
