"""Poison messages, as properties: no text or byte string stops a parser or the journal.

Every connector's parser gets its own valid payload with arbitrary Unicode in every
string, lone surrogates included (what a JSON ``\\ud800`` escape decodes to, and what
``surrogateescape`` makes of undecodable bytes), and the parsers that read bytes get
arbitrary bytes. Whatever message comes out is either stored by the journal, once the
intake has repaired its content, or refused as :class:`UnstorableMessage` for an id,
which the intake keeps as a dead letter; nothing else may happen (issue 17).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.discord._parse import parse_message_create
from connectors.feishu._parse import parse_message as parse_feishu
from connectors.googlechat._parse import parse_event as parse_googlechat
from connectors.line._parse import parse_event as parse_line
from connectors.messenger._parse import parse_payload as parse_messenger
from connectors.nextcloud._parse import BotIdentity as NextcloudBot
from connectors.nextcloud._parse import parse_activity as parse_nextcloud
from connectors.openai_api._parse import ChatRequest, Malformed, parse_chat_request
from connectors.slack._parse import BotIdentity as SlackBot
from connectors.slack._parse import parse_event as parse_slack
from connectors.teams._parse import parse_activity as parse_teams
from connectors.telegram._parse import BotIdentity as TelegramBot
from connectors.telegram._parse import parse_update
from connectors.twilio._parse import parse_form, parse_webhook
from connectors.viber._parse import parse_callback as parse_viber
from connectors.webex._parse import parse_message as parse_webex
from connectors.webhook._parse import parse_request as parse_webhook_channel
from connectors.wechat._parse import parse_callback as parse_wechat
from connectors.wechat._wire import XmlRefused, read_xml
from connectors.wecom._parse import parse_app_callback as parse_wecom
from connectors.whatsapp._parse import parse_payload as parse_whatsapp
from pyclaw_app.gateway.intake import repair_text, storable
from pyclaw_app.model import Address, Attachment, Inbound
from tests.fakes import discord_payloads as discord

SAMPLES_DIR = Path(__file__).parent / "connectors"

# Any code point, with lone surrogates made common (hypothesis leaves them out by default).
_SURROGATE = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, exclude_categories=())
POISON = st.text(st.characters(exclude_categories=()) | _SURROGATE, max_size=40)
BYTES_AS_TEXT = st.binary(max_size=40).map(lambda b: b.decode("utf-8", "surrogateescape"))
ANY_TEXT = POISON | BYTES_AS_TEXT

_IDS = ("channel", "account", "chat", "thread", "platform_id", "sender_id")
"""The fields the intake never rewrites (two ids must not become one): only these may make
the journal refuse a message once its content is repaired."""


_ids = itertools.count()


def _sample(name: str) -> Any:
    return json.loads((SAMPLES_DIR / name).read_text("utf-8"))


_DISCORD_AUTHOR = discord.user("200000000000000001", "bob")
# name -> (a message its platform sends, the parser called as the connector calls it)
JSON_PARSERS: dict[str, tuple[Any, Callable[[Any], Any]]] = {
    "telegram": (
        {"update_id": 1, "message": {
            "message_id": 5, "date": 1700000000, "chat": {"id": 1001, "type": "private"},
            "from": {"id": 7, "is_bot": False, "first_name": "Ann", "last_name": "Lee",
                     "username": "ann"},
            "text": "hi @pyclaw_bot", "entities": [{"type": "mention", "offset": 3,
                                                    "length": 11}],
            "document": {"file_id": "BQAC", "file_name": "a.txt", "mime_type": "text/plain"}}},
        lambda raw: parse_update(raw, channel="telegram", bot=TelegramBot(1, "pyclaw_bot"))),
    "discord": (
        discord.message("300000000000000001", "400000000000000001", _DISCORD_AUTHOR, "hi"),
        lambda raw: parse_message_create(raw, channel="discord", bot_id="42")),
    "feishu": (
        {"schema": "2.0", "header": {"event_id": "e1", "event_type": "im.message.receive_v1",
                                     "app_id": "cli_1"},
         "event": {"sender": {"sender_id": {"open_id": "ou_1"}, "sender_type": "user"},
                   "message": {"message_id": "om_1", "chat_id": "oc_1", "chat_type": "p2p",
                               "message_type": "text", "content": "{\"text\": \"hi\"}",
                               "create_time": "1796170515100", "mentions": []}}},
        lambda raw: parse_feishu(raw, channel="feishu", account="cli_1", bot_open_id="ou_b",
                                 ours=set())),
    "googlechat": (
        {"type": "MESSAGE", "message": {
            "name": "spaces/A/messages/B", "text": "hi", "argumentText": "hi",
            "sender": {"name": "users/1", "displayName": "Ann", "type": "HUMAN"},
            "createTime": "2026-12-02T00:15:15.478858Z", "thread": {"name": "spaces/A/threads/T"},
            "space": {"name": "spaces/A", "type": "DM", "spaceType": "DIRECT_MESSAGE"}},
         "space": {"name": "spaces/A", "type": "DM", "spaceType": "DIRECT_MESSAGE"}},
        lambda raw: parse_googlechat(raw, channel="googlechat", bot_user="users/app",
                                     ours=set())),
    "line": (
        {"type": "message", "mode": "active", "timestamp": 1796170515479,
         "source": {"type": "user", "userId": "U1"}, "webhookEventId": "01M8",
         "replyToken": "00d4", "message": {"id": "600000000000000001", "type": "text",
                                           "quoteToken": "q", "text": "hi"}},
        lambda raw: parse_line(raw, channel="line", bot_user_id="Ubot", ours=set())),
    "messenger": (
        {"object": "page", "entry": [{"id": "106", "time": 1796170515479, "messaging": [
            {"sender": {"id": "1"}, "recipient": {"id": "106"}, "timestamp": 1796170515479,
             "message": {"mid": "m_05a6", "text": "hi", "attachments": [
                 {"type": "image", "payload": {"url": "https://x.example/a.png"}}]}}]}]},
        lambda raw: parse_messenger(raw, channel="messenger", page_id="106")),
    "nextcloud": (
        _sample("nextcloud_bots_md_samples.json")["create"],
        lambda raw: parse_nextcloud(raw, channel="nextcloud", bot=NextcloudBot("pyclaw"))),
    "slack": (
        {"type": "event_callback", "event_id": "Ev1", "event": {
            "type": "message", "channel": "D1", "user": "U0001", "text": "hi",
            "ts": "1796170515.000001", "channel_type": "im"}},
        lambda raw: parse_slack(raw, channel="slack", bot=SlackBot(user_id="U0BOT"))),
    "teams": (
        _sample("teams_activities.json")["personal_message"],
        lambda raw: parse_teams(raw, channel="teams")),
    "viber": (
        {"event": "message", "timestamp": 1796170515692, "message_token": 5741311803571721087,
         "sender": {"id": "u1", "name": "Viber User"}, "message": {"type": "text", "text": "hi"}},
        lambda raw: parse_viber(raw, channel="viber")),
    "webex": (
        _sample("webex_samples.json")["get_message"],
        lambda raw: parse_webex(raw, channel="webex", bot_id="b", ours=())),
    "webhook": (
        {"id": "m-1", "chat": "c1", "text": "hi", "sender": {"id": "user-1", "name": "User 1"},
         "attachments": [{"kind": "file", "name": "a.txt", "mime": "text/plain",
                          "url": "https://x.example/a.txt"}]},
        lambda raw: parse_webhook_channel(raw, channel="webhook")),
    "whatsapp": (
        {"object": "whatsapp_business_account", "entry": [{"id": "4", "changes": [{
            "field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "1555", "phone_number_id": "106"},
                "contacts": [{"profile": {"name": "Ann"}, "wa_id": "1555"}],
                "messages": [{"from": "1555", "id": "wamid.1", "timestamp": "1796170515",
                              "type": "text", "text": {"body": "hi"}}]}}]}]},
        lambda raw: parse_whatsapp(raw, channel="whatsapp", phone_number_id="106")),
    "openai_api": (
        {"model": "m", "user": "ann", "messages": [{"role": "user", "content": "hi"}]},
        parse_chat_request),
}

TWILIO_FORM = {"MessageSid": "SM1", "AccountSid": "AC1", "From": "+1555", "To": "+1666",
               "Body": "hi", "NumMedia": "1", "MediaUrl0": "https://x.example/m.jpg",
               "MediaContentType0": "image/jpeg", "ProfileName": "Ann"}
TENCENT_XML = {"ToUserName": "gh_1", "FromUserName": "oUser", "CreateTime": "1411525903",
               "MsgType": "text", "Content": "hi", "MsgId": "1234567890", "AgentID": "1"}
XML_PARSERS: dict[str, Callable[[dict[str, str]], Any]] = {
    "wechat": lambda fields: parse_wechat(fields, channel="wechat"),
    "wecom": lambda fields: parse_wecom(fields, channel="wecom", agent_id=1),
}


# ---- the journal, over one database for every example -----------------------------------------

@pytest.fixture(scope="module")
def journal() -> Iterator[Callable[[Inbound], str]]:
    """Journal a message from a synchronous property test: "stored" or the refusal's reason.

    A stored row must read back as it was given; the database is opened once (hypothesis
    runs hundreds of examples) on a loop of its own.
    """
    import tempfile

    from pyclaw_app.store import Store, UnstorableMessage

    runner = asyncio.Runner()
    with tempfile.TemporaryDirectory() as tmp:
        store = runner.run(Store(Path(tmp)).open())

        async def submit(inbound: Inbound) -> str:
            try:
                result = await store.journal.submit(inbound)
            except UnstorableMessage as exc:
                return exc.reason
            row = await store.journal.get(result.journal_id)
            assert row is not None and row.text == inbound.text
            assert row.sender_name == inbound.sender_name
            assert row.to_inbound().attachments == inbound.attachments
            return "stored"

        try:
            yield lambda inbound: runner.run(submit(inbound))
        finally:
            runner.run(store.close())
            runner.close()


def _messages(parsed: Any) -> list[Inbound]:
    """The messages in whatever a parser returned (an Inbound, a list, a wrapper)."""
    if isinstance(parsed, Inbound):
        return [parsed]
    if isinstance(parsed, list | tuple):
        return [m for item in parsed for m in _messages(item)]
    inbound = getattr(parsed, "inbound", None)
    return [inbound] if isinstance(inbound, Inbound) else []


def _journaled(journal: Callable[[Inbound], str], parsed: Any) -> None:
    for inbound in _messages(parsed):
        for name in ("text", "sender_id", "sender_name", "platform_id"):
            assert isinstance(getattr(inbound, name), str), name
        assert all(isinstance(a, Attachment) for a in inbound.attachments)
        fixed, _ = storable(inbound)
        # A fresh id for each example (the samples' ids repeat), keeping whatever it holds.
        outcome = journal(replace(fixed, platform_id=f"{next(_ids)}:{fixed.platform_id}"))
        assert outcome == "stored" or outcome.startswith(_IDS), outcome


def _mutated(value: Any, data: st.DataObject) -> Any:
    """``value`` with any of its strings replaced by arbitrary text (a string holding JSON
    is mutated inside and written back with ASCII escapes, as platforms send it)."""
    if isinstance(value, dict):
        return {k: _mutated(v, data) for k, v in value.items()}
    if isinstance(value, list):
        return [_mutated(v, data) for v in value]
    if isinstance(value, str):
        try:
            inner = json.loads(value)
        except ValueError:
            inner = None
        if isinstance(inner, dict | list):
            return json.dumps(_mutated(inner, data))
        # Most strings kept, so that most payloads still get past the parser's checks.
        how = data.draw(st.integers(0, 5))
        return value if how < 4 else data.draw(ANY_TEXT) if how == 4 else value + data.draw(
            ANY_TEXT)
    return value


# ---- the properties ---------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(ANY_TEXT)
def test_repairing_makes_any_text_storable_and_leaves_good_text_alone(text: str) -> None:
    fixed = repair_text(text)
    fixed.encode()
    lone = [c for c in text if 0xD800 <= ord(c) <= 0xDFFF]
    if not lone:
        assert fixed is text
    else:
        assert len(fixed) < len(text) or fixed.count("\ufffd") > text.count("\ufffd")


def test_a_surrogate_pair_is_joined_and_a_lone_one_replaced() -> None:
    assert repair_text("a\ud83d\ude00b\udc00") == "a😀b\ufffd"


@settings(max_examples=200, deadline=None)
@given(text=ANY_TEXT, name=ANY_TEXT, file=ANY_TEXT)
def test_the_journal_stores_any_repaired_text_and_refuses_only_unencodable_text(
        journal: Callable[[Inbound], str], text: str, name: str, file: str) -> None:
    n = next(_ids)
    raw = Inbound(Address("poison", "chat"), f"raw-{n}", text, sender_id="u", sender_name=name,
                  attachments=(Attachment("file", name=file),))
    outcome = journal(raw)
    unencodable = [field for field, value in (("sender_name", name), ("text", text))
                   if value != repair_text(value)]
    if unencodable:  # as it arrived: the journal names the first field it cannot take
        assert outcome.startswith(unencodable[0]) and "UTF-8 cannot encode" in outcome
    else:
        assert outcome == "stored"
    fixed, repaired = storable(raw)
    assert set(unencodable) <= set(repaired)
    assert journal(replace(fixed, platform_id=f"fixed-{n}")) == "stored"


@pytest.mark.parametrize("name", sorted(JSON_PARSERS))
def test_each_sample_is_a_message_its_parser_accepts(name: str) -> None:
    sample, parse = JSON_PARSERS[name]
    parsed = parse(sample)
    assert _messages(parsed) or isinstance(parsed, ChatRequest), parsed


@pytest.mark.parametrize("name", sorted(JSON_PARSERS))
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_a_json_parser_never_raises_and_its_messages_store_or_quarantine(
        journal: Callable[[Inbound], str], name: str, data: st.DataObject) -> None:
    sample, parse = JSON_PARSERS[name]
    parsed = parse(_mutated(sample, data))
    if name == "openai_api":  # the runtime builds the message from the request's fields
        assert isinstance(parsed, ChatRequest | Malformed)
        if isinstance(parsed, ChatRequest):
            _journaled(journal, Inbound(Address("openai_api", parsed.user or "client"),
                                        "req-1", parsed.text, sender_id="client",
                                        attachments=parsed.attachments))
        return
    _journaled(journal, parsed)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), body=st.binary(max_size=300))
def test_the_twilio_parser_takes_any_bytes_and_any_form(
        journal: Callable[[Inbound], str], data: st.DataObject, body: bytes) -> None:
    for raw in (body, _form(_mutated(TWILIO_FORM, data))):
        form = parse_form(raw)
        if form is not None:
            _journaled(journal, parse_webhook(form, channel="twilio", account_sid="AC1"))


def _form(fields: dict[str, str]) -> bytes:
    """Form-encoded as a sender that writes any string would: surrogates as their UTF-8-ish
    bytes, percent-escaped."""
    return "&".join(f"{quote(k)}={quote(v.encode('utf-8', 'surrogatepass'))}"
                    for k, v in fields.items()).encode()


@pytest.mark.parametrize("name", sorted(XML_PARSERS))
@settings(max_examples=200, deadline=None)
@given(data=st.data(), body=st.binary(max_size=300))
def test_a_tencent_parser_takes_any_bytes_and_any_fields(
        journal: Callable[[Inbound], str], name: str, data: st.DataObject, body: bytes) -> None:
    parse = XML_PARSERS[name]
    fields = _mutated(TENCENT_XML, data)
    _journaled(journal, parse(fields))  # fields as decrypted, before any XML
    xml = "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items())
    for raw in (body, f"<xml>{xml}</xml>".encode("utf-8", "surrogatepass")):
        try:
            read = read_xml(raw)
        except XmlRefused:
            continue
        _journaled(journal, parse(read))
