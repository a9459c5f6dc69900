"""The XMPP connector against a real prosody, without a gateway, plus its pure parser.

What every channel must do is the contract suite's (tests/contract); here is what is
XMPP's own: SASL and TLS failures as one clear line, rooms (history not taken for new
messages, our own reflection ignored, nick mentions, a kick logged), XEP-0198 resumption
after a network fault (room messages kept), a replaced connection, XEP-0308
corrections, XEP-0085 chat states, OMEMO refused with a notice, and the parser.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any
from xml.etree.ElementTree import Element, SubElement

import pytest
import slixmpp
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from connectors.xmpp._parse import Skip, bounce_of, nick_mentioned, parse_message
from connectors.xmpp.manifest import XmppConfig, wire_len
from connectors.xmpp.runtime import XmppConnector
from pyclaw_app.model import Address, ChannelState, Inbound
from tests.conftest import GatewayFactory
from tests.contract.harness_xmpp import XmppHarness
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.xmpp_api import UploadService
from tests.fakes.xmpp_user import XmppUser
from tests.servers.prosody import ADMIN, DOMAIN, FAULTS_NS, MUC, Prosody, shared_prosody
from tests.support import RecordingContext, eventually
from tests.test_attachments import PNG
from tests.test_attachments_channels import online as gateway_online
from tests.test_attachments_channels import reply_to

Running = tuple[XmppConnector, RecordingContext]


@pytest.fixture
async def prosody() -> Prosody:
    return await shared_prosody()


@pytest.fixture
async def accounts(prosody: Prosody) -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    return {"bot": prosody.register(f"bot{tag}", "bot-pw"),
            "user": prosody.register(f"user{tag}", "user-pw"),
            "room": f"r{tag}@{MUC}"}


@pytest.fixture
async def start(prosody: Prosody, accounts: dict[str, str]
                ) -> AsyncIterator[Callable[..., Any]]:
    made: list[XmppConnector] = []

    async def factory(**overrides: Any) -> Running:
        settings: dict[str, Any] = {
            "jid": accounts["bot"], "password": SecretStr("bot-pw"), "server": "127.0.0.1",
            "port": prosody.port, "ca_file": prosody.ca_file, "rooms": [accounts["room"]],
            "nick": "pyclaw", **overrides}
        connector = XmppConnector("xmpp", XmppConfig(**settings))
        ctx = RecordingContext()
        made.append(connector)
        await connector.start(ctx)
        return connector, ctx

    yield factory
    for connector in made:
        await connector.stop()


async def user(prosody: Prosody, jid: str, password: str) -> XmppUser:
    return await XmppUser(jid, password, prosody).start()


def online(ctx: RecordingContext) -> bool:
    return bool(ctx.states) and ctx.states[-1][0] == ChannelState.ONLINE


def logged(ctx: RecordingContext, words: str) -> bool:
    return any(words in str(line) for line in ctx.logs)


async def test_wrong_password_stops_with_one_clear_line(start: Callable[..., Any]) -> None:
    _connector, ctx = await start(password=SecretStr("wrong"))
    await eventually(lambda: ctx.states and ctx.states[-1][0] == ChannelState.OFFLINE)
    assert logged(ctx, "refused the login") and logged(ctx, "SASL not-authorized")


async def test_an_untrusted_certificate_is_refused_clearly(start: Callable[..., Any]) -> None:
    _connector, ctx = await start(ca_file="")
    await eventually(lambda: ctx.states and ctx.states[-1][0] == ChannelState.OFFLINE)
    assert logged(ctx, "certificate") and logged(ctx, "ca_file")


async def test_a_second_login_on_the_same_resource_stops_the_first_clearly(
        start: Callable[..., Any]) -> None:
    _first, ctx = await start(rooms=[])
    await eventually(lambda: online(ctx))
    _second, ctx2 = await start(rooms=[])  # prosody replaces the older connection
    await eventually(lambda: online(ctx2))
    await eventually(lambda: ctx.states[-1][0] == ChannelState.OFFLINE)
    assert logged(ctx, "its own resource")
    assert ctx2.states[-1][0] == ChannelState.ONLINE


async def test_probe_logs_in_over_direct_tls(prosody: Prosody, accounts: dict[str, str]) -> None:
    config = XmppConfig(jid=accounts["bot"], password=SecretStr("bot-pw"), server="127.0.0.1",
                        port=prosody.tls_port, tls="direct", ca_file=prosody.ca_file)
    result = await XmppConnector("xmpp", config).probe()
    assert result.ok and accounts["bot"] in result.message


async def test_room_history_own_reflection_and_mentions(
        prosody: Prosody, accounts: dict[str, str], start: Callable[..., Any]) -> None:
    alice = await user(prosody, accounts["user"], "user-pw")
    await alice.join(accounts["room"], "alice")
    await alice.send(accounts["room"], "said before the bot came", kind="groupchat")
    connector, ctx = await start()
    await eventually(lambda: online(ctx))  # the rooms are joined before it goes online
    await alice.send(accounts["room"], "PyClaw, what time is it?", kind="groupchat")
    await alice.send(accounts["room"], "just chatting", kind="groupchat")
    await eventually(lambda: len(ctx.inbound) >= 2)
    texts = [(m.text, m.is_group, m.mentioned) for m in ctx.inbound]
    assert texts == [("what time is it?", True, True), ("just chatting", True, False)]
    room = Address(channel="xmpp", chat=accounts["room"])
    first = await connector.send_part(room, "draft", None)
    await connector.edit(room, first, "final answer")
    await connector.typing(room)
    await asyncio.sleep(0.3)
    assert len(ctx.inbound) == 2  # our own messages, reflected by the room, are not news
    await alice.stop()


async def test_corrections_and_chat_states_reach_the_user(
        prosody: Prosody, accounts: dict[str, str], start: Callable[..., Any]) -> None:
    alice = await user(prosody, accounts["user"], "user-pw")
    seen: list[Element] = []
    alice.client.register_handler(Callback(  # every message, also body-less chat states
        "seen", MatchXPath("{jabber:client}message"), lambda m: seen.append(m.xml)))
    connector, ctx = await start(rooms=[])
    await eventually(lambda: online(ctx))
    await alice.send(accounts["bot"], "hello")  # typing goes to the resource that wrote
    await eventually(lambda: ctx.inbound)
    chat = ctx.inbound[0].address
    await connector.typing(chat)
    first = await connector.send_part(chat, "draft", None)
    await connector.edit(chat, first, "draft, corrected")
    await eventually(lambda: len(seen) >= 3, timeout=5)
    states = [child.tag.partition("}")[2] for m in seen for child in m
              if child.tag.startswith("{http://jabber.org/protocol/chatstates}")]
    assert states[:2] == ["composing", "active"]
    replace = seen[2].find("{urn:xmpp:message-correct:0}replace")
    assert replace is not None and replace.get("id") == first
    assert seen[2].findtext("{jabber:client}body") == "draft, corrected"
    await alice.stop()


async def test_a_kick_from_the_room_is_logged(
        prosody: Prosody, accounts: dict[str, str], start: Callable[..., Any]) -> None:
    owner = await user(prosody, accounts["user"], "user-pw")
    await owner.join(accounts["room"], "owner")  # first in: the room's owner
    _connector, ctx = await start()
    await eventually(lambda: online(ctx))
    await owner.client.plugin["xep_0045"].set_role(
        slixmpp.JID(accounts["room"]), "pyclaw", "none", reason="testing kicks")
    await eventually(lambda: logged(ctx, "kicked from the room (testing kicks)"))
    await owner.stop()


async def test_omemo_messages_get_a_clear_notice_and_no_answer(
        prosody: Prosody, accounts: dict[str, str], start: Callable[..., Any]) -> None:
    _connector, ctx = await start(rooms=[])
    await eventually(lambda: online(ctx))
    alice = await user(prosody, accounts["user"], "user-pw")
    encrypted = Element("{eu.siacs.conversations.axolotl}encrypted")
    SubElement(encrypted, "{eu.siacs.conversations.axolotl}payload").text = "AAAA"
    await alice.send(accounts["bot"], "This message is OMEMO encrypted", extra=encrypted)
    await eventually(lambda: logged(ctx, "OMEMO-encrypted"))
    assert not ctx.inbound
    await alice.stop()


async def test_a_network_fault_resumes_the_session_and_keeps_room_messages(
        prosody: Prosody, accounts: dict[str, str], start: Callable[..., Any]) -> None:
    alice = await user(prosody, accounts["user"], "user-pw")
    await alice.join(accounts["room"], "alice")
    _connector, ctx = await start()
    await eventually(lambda: online(ctx))
    admin = await user(prosody, f"{ADMIN[0]}@{DOMAIN}", ADMIN[1])
    iq = admin.client.make_iq_set(ito=DOMAIN)
    iq.xml.append(Element(f"{{{FAULTS_NS}}}fault", {"jid": accounts["bot"], "kind": "drop"}))
    await iq.send(timeout=10)  # the bot's socket is closed; prosody keeps the session
    await alice.send(accounts["room"], "pyclaw: did you miss this?", kind="groupchat")
    await alice.send(accounts["bot"], "and this?")
    await eventually(lambda: len(ctx.inbound) >= 2)
    assert sorted(m.text for m in ctx.inbound) == ["and this?", "did you miss this?"]
    assert logged(ctx, "resumed the session")
    await alice.stop()
    await admin.stop()


async def test_offline_1to1_messages_arrive_after_a_restart(
        prosody: Prosody, accounts: dict[str, str], start: Callable[..., Any]) -> None:
    alice = await user(prosody, accounts["user"], "user-pw")
    await alice.send(accounts["bot"], "while you were away")  # the bot was never online
    _connector, ctx = await start(rooms=[])
    await eventually(lambda: ctx.inbound)
    assert ctx.inbound[0].text == "while you were away"
    assert ctx.inbound[0].platform_id.startswith(f"{accounts['user']}/")
    await alice.stop()


# ---- the parser ----------------------------------------------------------------------------

ROOM = f"room@{MUC}"


def message(kind: str, sender: str, body: str | None, **children: dict[str, str]) -> Element:
    xml = Element("{jabber:client}message", {"type": kind, "from": sender, "id": "m1"})
    if body is not None:
        SubElement(xml, "{jabber:client}body").text = body
    for tag, attrs in children.items():
        SubElement(xml, tag, attrs)
    return xml


def parse(xml: Element) -> Inbound | Skip:
    return parse_message(xml, channel="xmpp", own=f"bot@{DOMAIN}", rooms={ROOM: "pyclaw"},
                         fallback_id="~x", now=0.0)


def test_parser_sorts_rooms_history_reflections_and_strangers() -> None:
    assert isinstance(parse(message("groupchat", f"{ROOM}/pyclaw", "mine")), Skip)
    history = message("groupchat", f"{ROOM}/bob", "old", **{"{urn:xmpp:delay}delay": {
        "stamp": "2020-01-01T00:00:00Z", "from": ROOM}})
    assert isinstance(parse(history), Skip)
    queued = message("groupchat", f"{ROOM}/bob", "missed", **{"{urn:xmpp:delay}delay": {
        "stamp": "2020-01-01T00:00:00Z", "from": f"bot@{DOMAIN}"}})
    assert isinstance(parse(queued), Inbound)  # held by our server over a resumption
    stray = parse(message("groupchat", f"x@{DOMAIN}/r", "hi"))
    assert isinstance(stray, Skip) and stray.level == "warning"
    dm = parse(message("chat", f"Ann@{DOMAIN}/phone", "hello"))
    assert isinstance(dm, Inbound) and dm.address.chat == f"ann@{DOMAIN}"
    assert dm.platform_id == f"ann@{DOMAIN}/m1" and not dm.is_group
    offline = parse(message("chat", f"ann@{DOMAIN}", "late", **{"{urn:xmpp:delay}delay": {
        "stamp": "2020-01-01T00:00:00Z"}}))
    assert isinstance(offline, Inbound) and offline.ts == 1577836800.0


def test_shared_files_are_attachments_not_text() -> None:
    url = "https://up.example/a/b%20c.png"
    xml = message("chat", f"ann@{DOMAIN}/x", url)
    SubElement(SubElement(xml, "{jabber:x:oob}x"), "{jabber:x:oob}url").text = url
    parsed = parse(xml)
    assert isinstance(parsed, Inbound) and parsed.text == ""
    assert [(a.kind, a.name) for a in parsed.attachments] == [("image", "b c.png")]


def test_mentions_are_words_and_bounces_keep_their_condition() -> None:
    assert nick_mentioned("pyclaw: hi", "pyclaw") and nick_mentioned("hey @PyClaw!", "pyclaw")
    assert not nick_mentioned("pyclawed it", "pyclaw")
    xml = message("error", f"{ROOM}", None)
    error = SubElement(xml, "{jabber:client}error", {"type": "wait"})
    SubElement(error, "{urn:ietf:params:xml:ns:xmpp-stanzas}policy-violation")
    bounce = bounce_of(xml)
    assert bounce is not None and (bounce.type, bounce.condition) == ("wait", "policy-violation")


@pytest.mark.parametrize(("body", "expected"), [
    # XEP-0045's examples address an occupant as "nick: text" (e.g. 7.5, "thirdwitch: ...")
    ("pyclaw: what time is it?", "what time is it?"),
    ("PyClaw, what time is it?", "what time is it?"),
    ("@pyclaw what time is it?", "what time is it?"),
    ("what time is it pyclaw?", "what time is it?"),
    ("what time is it @pyclaw?", "what time is it?"),
    ("ask pyclaw about it", "ask pyclaw about it"),
    ("pyclaw", "@pyclaw"),
    ("pyclaw:", "@pyclaw"),
    ("pyclaw: ask thirdwitch", "ask thirdwitch"),
    ("pyclawed it", "pyclawed it"),
])
def test_a_room_message_reads_without_the_address_to_the_bot(body: str, expected: str) -> None:
    inbound = parse(message("groupchat", f"{ROOM}/thirdwitch", body))
    assert isinstance(inbound, Inbound) and inbound.text == expected


def test_a_direct_message_is_never_cut() -> None:
    inbound = parse(message("chat", f"ann@{DOMAIN}/phone", "pyclaw: hi"))
    assert isinstance(inbound, Inbound) and inbound.text == "pyclaw: hi"


def test_wire_len_counts_escaped_utf8() -> None:
    assert wire_len("a<b") == 6 and wire_len("é") == 2


_text = st.text(max_size=40)


@st.composite
def elements(draw: st.DrawFn) -> Element:
    xml = Element(draw(st.sampled_from(["{jabber:client}message", "message", "x"])),
                  {k: v for k, v in draw(st.dictionaries(
                      st.sampled_from(["type", "from", "id", "to"]), _text, max_size=4)).items()})
    for _ in range(draw(st.integers(0, 4))):
        child = SubElement(xml, draw(st.sampled_from([
            "{jabber:client}body", "{jabber:x:oob}x", "{urn:xmpp:delay}delay",
            "{urn:xmpp:message-correct:0}replace", "{urn:xmpp:sid:0}origin-id",
            "{eu.siacs.conversations.axolotl}encrypted", "{jabber:client}error",
            "{urn:xmpp:reference:0}reference", "{urn:xmpp:reply:0}reply"])),
            draw(st.dictionaries(st.sampled_from(["id", "stamp", "uri", "type", "to"]), _text,
                                 max_size=3)))
        child.text = draw(st.none() | _text)
        if draw(st.booleans()):
            SubElement(child, draw(st.sampled_from([
                "{jabber:x:oob}url", "{urn:ietf:params:xml:ns:xmpp-stanzas}text"]))).text = \
                draw(_text)
    return xml


@given(elements())
def test_the_parser_never_raises(xml: Element) -> None:
    assert isinstance(parse(xml), Inbound | Skip)
    bounce_of(xml)


# ---- attachments through a gateway ----------------------------------------------------------

@pytest.fixture
async def harness() -> AsyncIterator[XmppHarness]:
    made = XmppHarness()
    await made.start()
    try:
        yield made
    finally:
        await made.stop()


@pytest.fixture
async def uploads() -> AsyncIterator[UploadService]:
    async with UploadService() as service:
        yield service  # type: ignore[misc]


def shared(url: str) -> Element:
    """The XEP-0066 element a client adds to a message sharing an upload."""
    oob = Element("{jabber:x:oob}x")
    SubElement(oob, "{jabber:x:oob}url").text = url
    return oob


async def test_an_uploaded_picture_is_fetched_without_credentials_and_seen_by_the_model(
        harness: XmppHarness, uploads: UploadService, fake_llm: FakeOpenAI,
        make_gateway: GatewayFactory) -> None:
    await gateway_online(harness, fake_llm, make_gateway)
    chat = harness.chat(0)
    url = uploads.upload(PNG, "cat.png", "image/png")
    await (await harness._user(chat)).send(harness.bot, "what is this?", extra=shared(url))
    assert await reply_to(harness, chat, 0) == "Echo: what is this?"
    assert fake_llm.images == [("image/png", PNG)]
    assert [auth for _, auth in uploads.downloads] == [None]


async def test_an_expired_upload_and_a_link_to_another_host_are_reported(
        harness: XmppHarness, uploads: UploadService, fake_llm: FakeOpenAI,
        make_gateway: GatewayFactory) -> None:
    await gateway_online(harness, fake_llm, make_gateway)
    chat = harness.chat(1)
    user = await harness._user(chat)
    url = uploads.upload(PNG, "old.png", "image/png")
    uploads.expire(url)
    await user.send(harness.bot, "and this?", extra=shared(url))
    assert await reply_to(harness, chat, 0) == (
        "Echo: and this?\n\n(I could not read what you sent: old.png: the file is no longer "
        "there on localhost (HTTP 404).)")
    await user.send(harness.bot, "and that?", extra=shared("http://198.51.100.7/x.png"))
    reply = await reply_to(harness, chat, 1)
    assert reply.startswith("Echo: and that?") and "the file is on 198.51.100.7, not on " \
        "the sender's server or the bot's" in reply
    assert len(uploads.downloads) == 1 and fake_llm.images == []
