"""What is Signal's own: signal-cli's event framing, its envelopes (mentions in UTF-16 units,
quotes, groups, attachments, what is not a message), its JSON-RPC errors, accounts of a
multi-account daemon, the receive modes, the event stream's liveness, the url rules.

Everything a channel shares (journal first, splitting, retries, group rule...) is the
contract suite's (tests/contract, harness_signal.py). Wire examples are signal-cli's own
(man/signal-cli-jsonrpc.5.adoc, the json records of AsamK/signal-cli).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

from connectors.signal._parse import Skip, decode_event, parse_event, split_id
from connectors.signal._rpc import rpc_error
from connectors.signal._sse import SseDecoder, SseEvent
from connectors.signal.manifest import SignalConfig
from connectors.signal.runtime import SignalConnector
from pyclaw_app.errors import (
    DeliveryUncertain,
    FatalConnectorError,
    PyclawError,
    RetryableError,
)
from pyclaw_app.model import Address, ChannelState, Inbound
from tests.conftest import GatewayFactory
from tests.contract.harness_signal import SignalHarness
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.signal_cli import SignalCliFake
from tests.fakes.tls import self_signed
from tests.support import RecordingContext, eventually
from tests.test_attachments import PNG
from tests.test_attachments_channels import online, reply_to

BOT = "+15550000001"
MAN_PAGE_EVENT = {  # signal-cli-jsonrpc(5), the receive notification's params
    "envelope": {"source": "+33123456789", "sourceNumber": "+33123456789",
                 "sourceUuid": "uuid", "sourceName": "name", "sourceDevice": 1,
                 "timestamp": 1631458508784,
                 "dataMessage": {"timestamp": 1631458508784, "message": "foobar",
                                 "expiresInSeconds": 0, "viewOnce": False, "mentions": [],
                                 "attachments": [], "contacts": []}}}


def parse(event: dict[str, Any]) -> Inbound | Skip:
    return parse_event(event, channel="signal", bot=BOT)


def data_event(data: dict[str, Any], **envelope: Any) -> dict[str, Any]:
    return {"account": BOT, "envelope": {
        "source": "+4915100000001", "sourceNumber": "+4915100000001",
        "sourceUuid": "0d7a5c1e-5f2a-4b8e-9c1d-2e3f4a5b6c7d", "sourceName": "Ann",
        "sourceDevice": 1, "timestamp": 1700000000000,
        "dataMessage": {"timestamp": 1700000000000, "expiresInSeconds": 0, **data},
        **envelope}}


def mention(who: str, start: int, length: int = 1, uuid: str = "u") -> dict[str, Any]:
    return {"name": who, "number": who, "uuid": uuid, "start": start, "length": length}


# ---- the event stream's framing ---------------------------------------------------------------


def test_the_stream_as_signal_cli_writes_it() -> None:
    """``ServerSentEventSender``: ``event:`` and ``data:`` without a space, a ``:`` keep-alive,
    a bare ``data`` line for an empty list (an event with empty data, as the WHATWG rules
    dispatch it), and a blank line alone, which is no event."""
    decoder = SseDecoder()
    events = decoder.feed(b':\nevent:receive\ndata:{"a":1}\n\n:\n\nevent:receive\ndata\n\n')
    assert events == [SseEvent("receive", '{"a":1}'), SseEvent("receive", "")]


def test_line_endings_data_lines_and_the_default_event_type() -> None:
    decoder = SseDecoder()
    events = decoder.feed(b"data: one\r\ndata: two\r\n\r\nevent: x\rdata:y\r\r")
    assert events == [SseEvent("message", "one\ntwo"), SseEvent("x", "y")]


def test_an_oversized_line_is_dropped_and_counted_and_the_stream_goes_on() -> None:
    decoder = SseDecoder(max_line=16)
    events = decoder.feed(b"event:receive\ndata:" + b"x" * 40 + b"\n\nevent:receive\ndata:ok\n\n")
    assert events == [SseEvent("receive", "ok")] and decoder.oversized == 1


_FRAMES = st.lists(st.tuples(st.sampled_from(["receive", "message"]),
                             st.text(alphabet=st.characters(exclude_characters="\r\n"),
                                     min_size=1, max_size=30)), max_size=6)


@settings(max_examples=100, deadline=None)
@given(frames=_FRAMES, newline=st.sampled_from([b"\n", b"\r\n", b"\r"]),
       cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_any_chunking_gives_the_same_events(frames: list[tuple[str, str]], newline: bytes,
                                            cuts: list[int]) -> None:
    wire = b"".join(b":" + newline + f"event:{e}".encode() + newline + f"data:{d}".encode()
                    + newline + newline for e, d in frames)
    decoder = SseDecoder()
    got: list[SseEvent] = []
    last = 0
    for cut in [*sorted({min(c, len(wire)) for c in cuts}), len(wire)]:
        got += decoder.feed(wire[last:cut])
        last = cut
    assert got == [SseEvent(e, d.removeprefix(" ")) for e, d in frames]  # one space is framing


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_the_decoder_never_raises_on_any_bytes(wire: bytes) -> None:
    SseDecoder(max_line=64).feed(wire)


# ---- envelopes --------------------------------------------------------------------------------


def test_the_man_page_example_is_a_direct_message() -> None:
    inbound = parse(MAN_PAGE_EVENT)
    assert isinstance(inbound, Inbound)
    assert (inbound.address.chat, inbound.platform_id, inbound.text) == (
        "uuid", "uuid:1631458508784", "foobar")
    assert inbound.sender_id == "+33123456789" and inbound.sender_name == "name"
    assert not inbound.is_group and inbound.ts == 1631458508.784


def test_a_sender_without_an_aci_is_named_by_number() -> None:
    event = data_event({"message": "hi"}, sourceUuid=None)
    inbound = parse(event)
    assert isinstance(inbound, Inbound)
    assert inbound.address.chat == "+4915100000001"
    assert split_id(inbound.platform_id) == ("+4915100000001", 1700000000000)


def test_mentions_are_placed_in_utf16_units_and_the_bots_address_is_removed() -> None:
    # "👍🏽" is four UTF-16 units: a code-point offset would put the mention elsewhere
    text = "\ufffc 👍🏽 ask \ufffc about it"
    inbound = parse(data_event({
        "message": text, "mentions": [mention(BOT, 0), mention("+4917600000009", 11)],
        "groupInfo": {"groupId": "R0lE", "groupName": "team", "revision": 3,
                      "type": "DELIVER"}}))
    assert isinstance(inbound, Inbound)
    assert inbound.text == "👍🏽 ask @+4917600000009 about it"
    assert inbound.is_group and inbound.mentioned and not inbound.reply_to_bot
    assert inbound.address.chat == "group:R0lE"


def test_a_message_that_is_only_the_bots_mention_reads_as_the_mention() -> None:
    inbound = parse(data_event({"message": "\ufffc", "mentions": [mention(BOT, 0)],
                                "groupInfo": {"groupId": "R0lE", "type": "DELIVER"}}))
    assert isinstance(inbound, Inbound) and inbound.text == f"@{BOT}" and inbound.mentioned


def test_a_quote_of_the_bots_message_is_a_reply_to_the_bot() -> None:
    quote = {"id": 1699999999000, "author": BOT, "authorNumber": BOT, "authorUuid": "b",
             "text": "earlier answer", "attachments": []}
    inbound = parse(data_event({"message": "and then?", "quote": quote,
                                "groupInfo": {"groupId": "R0lE", "type": "DELIVER"}}))
    assert isinstance(inbound, Inbound) and inbound.reply_to_bot and not inbound.mentioned
    other = parse(data_event({"message": "x", "quote": {**quote, "authorNumber": "+491",
                                                        "author": "+491"}}))
    assert isinstance(other, Inbound) and not other.reply_to_bot


def test_attachments_are_metadata_and_the_long_text_attachment_is_not_one() -> None:
    inbound = parse(data_event({
        "message": None, "sticker": {"packId": "00ab", "stickerId": 2},
        "attachments": [
            {"contentType": "audio/aac", "filename": None, "id": "v.aac", "size": 5000,
             "width": None, "height": None, "caption": None, "uploadTimestamp": None},
            {"contentType": "application/pdf", "filename": "report.pdf", "id": "r.pdf",
             "size": 91234},
            {"contentType": "text/x-signal-plain", "filename": None, "id": "t.txt"}]}))
    assert isinstance(inbound, Inbound)
    assert [(a.kind, a.name, a.mime, a.size, a.platform_id) for a in inbound.attachments] == [
        ("audio", "", "audio/aac", 5000, "v.aac"),
        ("file", "report.pdf", "application/pdf", 91234, "r.pdf"),
        ("sticker", "", "image/webp", None, "00ab:2")]


@pytest.mark.parametrize(("envelope", "words", "level"), [
    ({"typingMessage": {"action": "STARTED", "timestamp": 1, "groupId": None}},
     "typing", "debug"),
    ({"receiptMessage": {"when": 1, "isDelivery": True, "timestamps": [1]}}, "receipt",
     "debug"),
    ({"syncMessage": {"sentMessage": {"message": "mine"}}}, "own account", "debug"),
    ({"editMessage": {"targetSentTimestamp": 1, "dataMessage": {"message": "b"}}},
     "not answered again", "info"),
    ({"callMessage": {"offerMessage": {}}}, "calls", "info"),
])
def test_what_is_not_a_message(envelope: dict[str, Any], words: str, level: str) -> None:
    event = {"account": BOT, "envelope": {"sourceUuid": "x", "timestamp": 5, **envelope}}
    skip = parse(event)
    assert isinstance(skip, Skip) and words in skip.reason and skip.level == level


@pytest.mark.parametrize(("data", "words"), [
    ({"reaction": {"emoji": "👍", "targetAuthor": BOT, "targetSentTimestamp": 1,
                   "isRemove": False}, "message": None}, "a reaction"),
    ({"remoteDelete": {"timestamp": 1}}, "a deleted message"),
    ({"groupInfo": {"groupId": "R0lE", "type": "UPDATE"}}, "a group update"),
    ({"message": None, "isExpirationUpdate": True, "expiresInSeconds": 60}, "timer"),
    ({"message": "  "}, "without text"),
])
def test_data_messages_that_are_not_answered(data: dict[str, Any], words: str) -> None:
    skip = parse(data_event(data))
    assert isinstance(skip, Skip) and words in skip.reason


def test_a_message_signal_cli_could_not_decrypt_names_the_fix() -> None:
    event = {"account": BOT, "exception": {"message": "Untrusted identity key!",
                                           "type": "UntrustedIdentityException"},
             "envelope": {"sourceNumber": "+4915100000001", "sourceUuid": "a-b",
                          "timestamp": 1}}
    skip = parse(event)
    assert isinstance(skip, Skip) and skip.level == "warning"
    assert f"signal-cli -a {BOT} trust -a a-b" in skip.reason


def test_broken_event_data_is_a_warning() -> None:
    assert isinstance(decode_event('{"account": "+1'), Skip)
    assert isinstance(decode_event("[1, 2]"), Skip)


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.sampled_from([
                         "envelope", "dataMessage", "message", "mentions", "start", "length",
                         "number", "groupInfo", "groupId", "quote", "authorNumber",
                         "attachments", "contentType", "size", "sticker", "timestamp",
                         "sourceUuid", "exception", "type", "account", "id"]), inner,
                         max_size=6), max_leaves=20)


@settings(max_examples=150, deadline=None)
@given(event=st.dictionaries(st.sampled_from(["envelope", "account", "exception"]), _JSON),
       text=st.text(max_size=20))
def test_the_parser_never_raises(event: dict[str, Any], text: str) -> None:
    parse(event)
    parse(data_event({"message": text, "mentions": [
        {"start": i, "length": j, "number": BOT} for i, j in ((0, 1), (3, 9), (-1, 2))]}))


# ---- config -----------------------------------------------------------------------------------


def test_plain_http_beyond_loopback_needs_allow_insecure_http() -> None:
    with pytest.raises(ValidationError, match="allow_insecure_http"):
        SignalConfig(url="http://signal.lan:8080", account=BOT)
    assert SignalConfig(url="http://signal.lan:8080", account=BOT, allow_insecure_http=True)
    assert SignalConfig(url="https://signal.example.org/", account=BOT).url == \
        "https://signal.example.org"
    assert SignalConfig(url="http://[::1]:8080", account=BOT)
    with pytest.raises(ValidationError):
        SignalConfig(url="http://user:pw@127.0.0.1:8080", account=BOT)
    with pytest.raises(ValidationError):
        SignalConfig(account="015112345678")  # no country code


# ---- JSON-RPC errors --------------------------------------------------------------------------


def test_a_rate_limit_waits_the_longest_retry_after_and_names_a_captcha() -> None:
    error = {"code": -5, "message": "Failed to send message due to rate limiting", "data": {
        "response": {"timestamp": 1, "results": [
            {"recipientAddress": {"number": "+491"}, "type": "RATE_LIMIT_FAILURE",
             "retryAfterSeconds": 3},
            {"recipientAddress": {"number": "+492"}, "type": "RATE_LIMIT_FAILURE",
             "retryAfterSeconds": 7, "token": "tok-123"}]}}}
    exc = rpc_error("send", error, account=BOT)
    assert isinstance(exc, RetryableError) and exc.retry_after == 7
    assert "submitRateLimitChallenge --challenge tok-123" in str(exc)


@pytest.mark.parametrize(("error", "kind", "words"), [
    ({"code": -4, "message": "Failed to send message due to untrusted identities", "data": {
        "response": {"results": [{"recipientAddress": {"number": "+491"},
                                  "type": "IDENTITY_FAILURE"}]}}},
     FatalConnectorError, f"signal-cli -a {BOT} trust -a +491"),
    ({"code": -1, "message": "Failed to send message", "data": {"response": {"results": [
        {"recipientAddress": {"number": "+491"}, "type": "NETWORK_FAILURE"}]}}},
     RetryableError, "network failure"),
    ({"code": -1, "message": "Failed to send message", "data": {"response": {"results": [
        {"recipientAddress": {"number": "+491"}, "type": "UNREGISTERED_FAILURE"}]}}},
     FatalConnectorError, "+491 is not on Signal"),
    ({"code": -1, "message": "Group not found: R0lE", "data": None},
     FatalConnectorError, "Group not found"),
    ({"code": -32602, "message": "Specified account does not exist", "data": None},
     FatalConnectorError, "register or link it"),
    ({"code": -32603, "message": "Failed to send message: timeout (IOException)",
      "data": None}, RetryableError, "could not carry out"),
    ({"code": -32600, "message": "method field must be set", "data": None},
     FatalConnectorError, "method field must be set"),
])
def test_json_rpc_errors_in_pyclaws_words(error: dict[str, Any], kind: type,
                                          words: str) -> None:
    exc = rpc_error("send", error, account=BOT)
    assert type(exc) is kind and words in str(exc)


# ---- the connector against the daemon ---------------------------------------------------------


@pytest.fixture
async def fake() -> AsyncIterator[SignalCliFake]:
    async with SignalCliFake(account=BOT, keepalive=0.2) as server:
        yield server  # type: ignore[misc]


def connector(fake: SignalCliFake, **values: Any) -> SignalConnector:
    config: dict[str, Any] = {"url": fake.url, "account": BOT, "event_timeout": 5, **values}
    return SignalConnector("signal", SignalConfig(**config))


@pytest.fixture
async def running(fake: SignalCliFake) -> AsyncIterator[tuple[SignalConnector,
                                                              RecordingContext]]:
    conn, ctx = connector(fake), RecordingContext(channel="signal")
    await conn.start(ctx)
    yield conn, ctx
    await conn.stop()


def logged(ctx: RecordingContext, level: str, words: str) -> bool:
    return any(lv == level and words in message for lv, message, _ in ctx.logs)


async def test_a_direct_message_is_answered_quoting_it(
        fake: SignalCliFake, running: tuple[SignalConnector, RecordingContext]) -> None:
    conn, ctx = running
    ann = fake.person("+4915100000001", "Ann")
    await fake.deliver(fake.user_message(ann, "hello"))
    inbound = (await eventually(lambda: ctx.inbound, timeout=5))[0]
    assert inbound.address.chat == ann.uuid and inbound.text == "hello"
    pid = await conn.send_part(inbound.address, "hi Ann", inbound.platform_id)
    sent = fake.messages(ann.uuid)
    assert [(s.text, s.quote) for s in sent] == [("hi Ann", (ann.uuid, int(
        inbound.platform_id.rsplit(":", 1)[1])))]
    assert pid == f"{BOT}:{sent[0].timestamp}"
    at_limit = "ü" * 1000  # 2,000 bytes: signal-cli's limit for a plain body
    await conn.send_part(inbound.address, at_limit, None)
    assert not fake.messages(ann.uuid)[-1].long_text


async def test_group_replies_edits_and_typing(
        fake: SignalCliFake, running: tuple[SignalConnector, RecordingContext]) -> None:
    conn, _ = running
    gid = fake.group("team", [fake.person("+4915100000002", "Bo")])
    address = Address("signal", f"group:{gid}")
    pid = await conn.send_part(address, "draft", None)
    await conn.edit(address, pid, "draft, then more")
    await conn.edit(address, pid, "the whole answer")
    await conn.typing(address)
    assert fake.visible(f"group:{gid}") == ["the whole answer"]
    assert fake.edits(f"group:{gid}") == 2
    assert all(r.edit_of == int(pid.rsplit(":", 1)[1]) for r in fake.sent[1:])
    assert fake.typing == [(BOT, f"group:{gid}", False)]


async def test_refusals_of_signal_cli_reach_the_gateway_as_its_errors(
        fake: SignalCliFake, running: tuple[SignalConnector, RecordingContext]) -> None:
    conn, _ = running
    stranger = Address("signal", "+4915199999999")  # not on Signal
    with pytest.raises(FatalConnectorError, match="is not on Signal"):
        await conn.send_part(stranger, "hello?", None)
    with pytest.raises(FatalConnectorError, match="Group not found"):
        await conn.send_part(Address("signal", "group:" + "A" * 43 + "="), "x", None)
    ann = Address("signal", fake.person("+4915100000001", "Ann").uuid)
    fake.rate_limit_next_send(2.4)
    with pytest.raises(RetryableError, match="rate limit") as limited:
        await conn.send_part(ann, "x", None)
    assert limited.value.retry_after == 3  # signal-cli rounds up to whole seconds
    fake.lose_next_answer("send")
    with pytest.raises(DeliveryUncertain):
        await conn.send_part(ann, "did it go?", None)
    fake.lose_next_answer("send")
    with pytest.raises(RetryableError):  # an edit sent twice is harmless
        await conn.edit(ann, f"{BOT}:{fake.messages()[-1].timestamp}", "edited")
    fake.fail_next("sendTyping", 500)
    await conn.typing(ann)  # a missing indicator fails nothing
    assert [m.text for m in fake.messages(ann.chat)] == ["did it go?"]


async def test_a_multi_account_daemon_is_asked_for_the_configured_account() -> None:
    async with SignalCliFake(account="+15550000009", multi_account=True,
                             keepalive=0.2) as fake:
        fake.add_account(BOT)
        conn, ctx = connector(fake), RecordingContext(channel="signal")
        await conn.start(ctx)
        try:
            ann = fake.person("+4915100000001", "Ann")
            await fake.deliver(fake.user_message(ann, "for the other", account="+15550000009"))
            await fake.deliver(fake.user_message(ann, "for the bot", account=BOT))
            inbound = (await eventually(lambda: ctx.inbound, timeout=5))[0]
            assert [i.text for i in ctx.inbound] == ["for the bot"]
            await conn.send_part(inbound.address, "from the bot", None)
            assert fake.sent[-1].account == BOT
        finally:
            await conn.stop()
        wrong = connector(fake, account="+15550000077")
        result = await wrong.probe()
        assert not result.ok and "no account +15550000077" in result.message
        ctx = RecordingContext(channel="signal")
        with pytest.raises(FatalConnectorError, match="register or link it"):
            await wrong.start(ctx)
        assert logged(ctx, "error", "no account +15550000077")


async def test_probe_says_who_and_why_not(fake: SignalCliFake) -> None:
    fake.group("team", [])
    assert (await connector(fake).probe()).message == \
        f"connected as {BOT} through signal-cli (1 group)"
    down = SignalConnector("signal", SignalConfig(url="http://127.0.0.1:9", account=BOT))
    result = await down.probe()
    assert not result.ok and "unreachable" in result.message


async def test_a_reverse_proxys_token_is_sent_and_a_wrong_one_is_named() -> None:
    async with SignalCliFake(account=BOT, keepalive=0.2, proxy_token="s3cret-proxy") as fake:
        good = connector(fake, bearer_token=SecretStr("s3cret-proxy"))
        assert (await good.probe()).ok
        bad = connector(fake, bearer_token=SecretStr("not-it-at-all"))
        result = await bad.probe()
        assert not result.ok and "check the token" in result.message
        assert "not-it-at-all" not in result.message
        ctx = RecordingContext(channel="signal")
        with pytest.raises(FatalConnectorError, match="bearer_token"):
            await bad.start(ctx)


async def test_the_host_header_pinned_by_signal_cli_is_explained(fake: SignalCliFake) -> None:
    rpc = connector(fake)._make_rpc()
    try:
        with pytest.raises(FatalConnectorError, match="Host header"):
            await rpc.http.call("POST", "/api/v1/rpc", headers={"Host": "signal.lan"},
                                json_body={"jsonrpc": "2.0", "id": 1, "method": "listGroups"})
    finally:
        await rpc.http.close()


async def test_a_silent_stream_is_taken_for_dead_and_opened_again() -> None:
    async with SignalCliFake(account=BOT, keepalive=60) as fake:  # no keep-alive comes
        conn, ctx = connector(fake, event_timeout=1), RecordingContext(channel="signal")
        await conn.start(ctx)
        try:
            await eventually(lambda: fake.streams_opened >= 2, timeout=10)
            assert logged(ctx, "warning", "no keep-alive from signal-cli for 1s")
            ann = fake.person("+4915100000001", "Ann")
            await fake.deliver(fake.user_message(ann, "still there?"))
            await eventually(lambda: ctx.inbound, timeout=5)
            assert not ctx.crashes
        finally:
            await conn.stop()


async def test_manual_receive_mode_keeps_what_came_while_away_once_the_daemon_noticed(
        fake: SignalCliFake) -> None:
    """signal-cli learns that a client left only when a write to it fails: the keep-alive
    after a stop notices it, and from then on messages wait for the next stream. One
    written before that goes into the closed connection and is gone: signal-cli's, not
    fixable by a client (nothing to resume from)."""
    ann = fake.person("+4915100000001", "Ann")
    conn, ctx = connector(fake), RecordingContext(channel="signal")
    await conn.start(ctx)
    await conn.stop()
    await eventually(lambda: fake.open_streams == 0, timeout=5)  # a keep-alive found it gone
    await fake.deliver(fake.user_message(ann, "while away"))
    again, ctx2 = connector(fake), RecordingContext(channel="signal")
    await again.start(ctx2)
    try:
        assert [i.text for i in await eventually(lambda: ctx2.inbound, timeout=5)] == \
            ["while away"]
    finally:
        await again.stop()


async def test_on_start_receive_mode_drops_what_nobody_streams() -> None:
    """The daemon's default: messages are read from Signal while no stream is open, and a
    client never sees them (the setup help asks for --receive-mode manual)."""
    async with SignalCliFake(account=BOT, receive_mode="on-start") as fake:
        ann = fake.person("+4915100000001", "Ann")
        await fake.deliver(fake.user_message(ann, "nobody listens"))
        conn, ctx = connector(fake), RecordingContext(channel="signal")
        await conn.start(ctx)
        try:
            await fake.deliver(fake.user_message(ann, "now someone does"))
            await eventually(lambda: ctx.inbound, timeout=5)
            assert [i.text for i in ctx.inbound] == ["now someone does"]
            assert len(fake.dropped) == 1
        finally:
            await conn.stop()


class _RefusingOnce(RecordingContext):
    def __init__(self) -> None:
        super().__init__(channel="signal")
        self.refused = 0

    async def submit(self, inbound: Inbound) -> Any:
        if not self.refused:
            self.refused += 1
            raise PyclawError("database is locked")
        return await super().submit(inbound)


async def test_a_message_the_journal_refused_is_submitted_again(fake: SignalCliFake) -> None:
    conn, ctx = connector(fake), _RefusingOnce()
    await conn.start(ctx)
    try:
        await fake.deliver(fake.user_message(fake.person("+4915100000001", "Ann"), "keep me"))
        await eventually(lambda: ctx.inbound, timeout=5)
        assert [i.text for i in ctx.inbound] == ["keep me"]
        assert logged(ctx, "error", "could not journal Signal message")
    finally:
        await conn.stop()


async def test_a_daemon_serving_another_number_is_named_once(fake: SignalCliFake) -> None:
    conn, ctx = connector(fake, account="+15550000042"), RecordingContext(channel="signal")
    await conn.start(ctx)  # a single-account daemon ignores the account asked for
    try:
        ann = fake.person("+4915100000001", "Ann")
        for text in ("one", "two"):
            await fake.deliver(fake.user_message(ann, text))
        await eventually(lambda: len(ctx.inbound) == 2, timeout=5)
        warnings = [m for lv, m, _ in ctx.logs if "not the configured" in m]
        assert warnings == [f"signal-cli serves {BOT}, not the configured +15550000042; "
                            f"set account to {BOT}"]
    finally:
        await conn.stop()


async def test_an_unreachable_daemon_is_retried_until_it_is_up() -> None:
    fake = SignalCliFake(account=BOT, keepalive=0.2)
    await fake.start()
    port = fake.port
    await fake.stop()
    conn = SignalConnector("signal", SignalConfig(url=f"http://127.0.0.1:{port}",
                                                  account=BOT, event_timeout=5))
    ctx = RecordingContext(channel="signal")
    await conn.start(ctx)  # not fatal: the daemon may start after the gateway
    try:
        assert ctx.states[-1][0] == ChannelState.DEGRADED
        assert logged(ctx, "warning", "cannot reach signal-cli yet")
    finally:
        await conn.stop()


async def test_a_refused_tls_certificate_stops_the_start_with_a_clear_line(
        tmp_path: Path) -> None:
    async def nothing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    tls = self_signed(tmp_path).server_context()
    server = await asyncio.start_server(nothing, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    try:
        conn = SignalConnector("signal", SignalConfig(url=f"https://127.0.0.1:{port}",
                                                      account=BOT))
        ctx = RecordingContext(channel="signal")
        with pytest.raises(FatalConnectorError, match="TLS certificate"):
            await conn.start(ctx)
        assert logged(ctx, "error", "give the proxy a certificate this machine trusts")
    finally:
        server.close()
        await server.wait_closed()


async def test_the_fake_speaks_the_man_pages_error_example(fake: SignalCliFake) -> None:
    """The fake's reply to the man page's bad request, as the man page prints it."""
    rpc = connector(fake)._make_rpc()
    try:
        answer = await rpc.http.call("POST", "/api/v1/rpc", json_body={"jsonrpc": "2.0"})
    finally:
        await rpc.http.close()
    assert answer.data == json.loads(
        '{"jsonrpc":"2.0","error":{"code":-32600,"message":"method field must be set",'
        '"data":null},"id":null}')


# ---- attachments through a gateway ----------------------------------------------------------

@pytest.fixture
async def harness() -> AsyncIterator[SignalHarness]:
    made = SignalHarness()
    await made.start()
    try:
        yield made
    finally:
        await made.stop()


async def test_a_picture_comes_from_signal_clis_folder_and_is_seen_by_the_model(
        harness: SignalHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    await online(harness, fake_llm, make_gateway)
    chat = harness.chat(0)
    picture = harness.fake.attachment(PNG, "image/png", "cat.png")
    await harness._deliver(harness.fake.user_message(harness._people[chat], "what is this?",
                                                     attachments=[picture]))
    assert await reply_to(harness, chat, 0) == "Echo: what is this?"
    assert fake_llm.images == [("image/png", PNG)]
    assert harness.fake.fetched == [picture["id"]]


async def test_an_attachment_signal_cli_does_not_have_is_reported(
        harness: SignalHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    await online(harness, fake_llm, make_gateway)
    chat = harness.chat(1)
    missing = harness.fake.attachment(PNG, "image/png", "lost.png", stored=False)
    await harness._deliver(harness.fake.user_message(harness._people[chat], "and this?",
                                                     attachments=[missing]))
    reply = await reply_to(harness, chat, 0)
    assert reply.startswith("Echo: and this?\n\n(I could not read what you sent: lost.png: "
                            "signal-cli does not have the file")
    assert f"Could not find attachment with ID: {missing['id']}" in reply
    assert fake_llm.images == []
