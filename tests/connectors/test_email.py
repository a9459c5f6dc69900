"""The Email connector against a real dovecot and SMTP server, without a gateway, plus its
pure parser and composer.

What every channel must do is the contract suite's (tests/contract); here is what is
Email's own: IDLE and the polling fallback, STARTTLS and implicit TLS on both sides,
replies threaded by Message-ID / In-Reply-To / References, ``\\Seen`` only after the
submit, a renumbered folder (UIDVALIDITY) read from new mail on, a wrong password and a
refused TLS as one clear line, the sender allowlist, loop protection, HTML, quoted
history and attachments.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator, Callable
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from connectors.email._compose import Thread, compose_reply, new_message_id
from connectors.email._parse import Mail, Skip, parse_mail, sender_allowed
from connectors.email._text import cut_quoted, html_to_text
from connectors.email.manifest import EmailConfig
from connectors.email.runtime import CURSOR_KEY, EmailConnector
from pyclaw_app.channels import SubmitResult
from pyclaw_app.errors import DeliveryUncertain, FatalConnectorError, RetryableError
from pyclaw_app.model import Address, ChannelState, Inbound
from tests.conftest import GatewayFactory
from tests.contract.harness_email import USERS_DOMAIN, EmailHarness, read_reply, user_mail
from tests.fakes.openai_api import FakeOpenAI, FakeToolCall
from tests.servers.dovecot import DOMAIN, NO_IDLE_HOST, MailServers, shared_mail
from tests.support import RecordingContext, eventually
from tests.test_attachments import PNG
from tests.test_attachments_channels import online, reply_to
from tests.test_outbound_files import calls

BOT = f"bot@{DOMAIN}"


@pytest.fixture
async def mail() -> MailServers:
    return await shared_mail()


@pytest.fixture
async def accounts(mail: MailServers) -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    return {"bot": mail.add_user(f"bot{tag}@{DOMAIN}", "bot-pw"),
            "user": mail.add_user(f"user{tag}@{USERS_DOMAIN}", "user-pw")}


class GatedContext(RecordingContext):
    """A context whose submit waits until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()

    async def submit(self, inbound: Inbound) -> SubmitResult:
        self.waiting.set()
        await self.gate.wait()
        return await super().submit(inbound)


@pytest.fixture
async def start(mail: MailServers, accounts: dict[str, str]
                ) -> AsyncIterator[Callable[..., Any]]:
    made: list[EmailConnector] = []

    async def factory(ctx: RecordingContext | None = None, **overrides: Any
                      ) -> tuple[EmailConnector, RecordingContext]:
        settings: dict[str, Any] = {
            "address": accounts["bot"], "password": SecretStr("bot-pw"),
            "imap_host": "127.0.0.1", "imap_port": mail.imaps_port,
            "smtp_host": "127.0.0.1", "smtp_port": mail.smtps_port, "ca_file": mail.ca_file,
            **overrides}
        connector = EmailConnector("email", EmailConfig(**settings))
        ctx = ctx or RecordingContext()
        made.append(connector)
        await connector.start(ctx)
        return connector, ctx

    yield factory
    for connector in made:
        await connector.stop()


def state_is(ctx: RecordingContext, state: ChannelState) -> bool:
    return bool(ctx.states) and ctx.states[-1][0] == state


def logged(ctx: RecordingContext, words: str) -> bool:
    return any(words in str(line) for line in ctx.logs)


async def send(mail: MailServers, sender: str, to: str, msg: EmailMessage) -> str:
    """The user's mail, delivered into the bot's INBOX as the SMTP server does (the
    contract harness sends through SMTP itself)."""
    await asyncio.to_thread(mail.deliver, sender, to, msg.as_bytes())
    return str(msg["Message-ID"])


def flags(mail: MailServers, address: str) -> list[bytes]:
    client = mail.imap(address)
    try:
        client.select("INBOX")
        _, data = client.uid("FETCH", "1:*", "(FLAGS)")
        return [line for line in data if isinstance(line, bytes)]
    finally:
        client.logout()


# ---- against the real servers ------------------------------------------------------------

async def test_idle_reply_is_threaded_and_lands_in_the_users_mailbox(
        start: Callable[..., Any], mail: MailServers, accounts: dict[str, str]) -> None:
    connector, ctx = await start()
    await eventually(lambda: state_is(ctx, ChannelState.ONLINE))
    assert "IDLE" in ctx.states[-1][1]
    first = make_msgid(domain=USERS_DOMAIN)
    msg = user_mail(accounts["user"], accounts["bot"], "What is the plan?\n\n-- \nAlice",
                    subject="Plans")
    msg["References"] = first
    msg["In-Reply-To"] = first
    pid = await send(mail, accounts["user"], accounts["bot"], msg)
    await eventually(lambda: ctx.inbound)
    inbound = ctx.inbound[0]
    assert (inbound.platform_id, inbound.text, inbound.address.chat, inbound.is_group) == (
        pid, "What is the plan?", accounts["user"], False)
    our_id = await connector.send_part(inbound.address, "The plan.\n\n", pid)
    user_box = mail.imap(accounts["user"])
    try:
        user_box.select("INBOX")
        _, found = user_box.uid("SEARCH", None, "ALL")
        _, data = user_box.uid("FETCH", found[0].split()[-1].decode(), "(BODY.PEEK[])")
    finally:
        user_box.logout()
    raw = next(part[1] for part in data if isinstance(part, tuple))
    reply = message_from_bytes(raw, policy=policy.default)
    assert reply["Message-ID"] == our_id and reply["In-Reply-To"] == pid
    assert str(reply["References"]).split() == [first, pid]
    assert reply["Subject"] == "Re: Plans" and reply["Auto-Submitted"] == "auto-replied"
    assert read_reply(raw) == (accounts["user"], pid, "The plan.\n\n")


async def test_seen_is_set_only_after_submit_returned(
        start: Callable[..., Any], mail: MailServers, accounts: dict[str, str]) -> None:
    gated = GatedContext()
    _connector, ctx = await start(gated)
    await eventually(lambda: state_is(ctx, ChannelState.ONLINE))
    await send(mail, accounts["user"], accounts["bot"],
               user_mail(accounts["user"], accounts["bot"], "hold on"))
    await asyncio.wait_for(gated.waiting.wait(), 20)  # fetched; submit has not returned
    assert b"\\Seen" not in b" ".join(flags(mail, accounts["bot"]))
    assert (await ctx.state.get(CURSOR_KEY))["uid"] == 0
    gated.gate.set()
    await eventually(lambda: b"\\Seen" in b" ".join(flags(mail, accounts["bot"])))
    assert (await ctx.state.get(CURSOR_KEY))["uid"] == 1


async def test_mail_that_arrives_while_one_is_handled_is_read_without_waiting_for_idle(
        start: Callable[..., Any], mail: MailServers, accounts: dict[str, str]) -> None:
    """The server reports new mail once, at the end of whatever command is running (here
    the first mail's UID STORE); the IDLE that follows does not say it again, so the
    connector must act on that report, not wait for the IDLE renewal."""
    gated = GatedContext()
    _connector, ctx = await start(gated)
    await eventually(lambda: state_is(ctx, ChannelState.ONLINE))
    await send(mail, accounts["user"], accounts["bot"],
               user_mail(accounts["user"], accounts["bot"], "first"))
    await asyncio.wait_for(gated.waiting.wait(), 20)  # the first is being handled
    await send(mail, accounts["user"], accounts["bot"],
               user_mail(accounts["user"], accounts["bot"], "second"))
    gated.gate.set()
    await eventually(lambda: len(ctx.inbound) == 2, timeout=20)  # IDLE_RENEW is 100 s
    assert [m.text for m in ctx.inbound] == ["first", "second"]


async def test_starttls_imap_and_polling_without_idle(
        start: Callable[..., Any], mail: MailServers, accounts: dict[str, str]) -> None:
    _connector, ctx = await start(imap_host=NO_IDLE_HOST, imap_port=mail.imap_port,
                                  imap_tls="starttls", poll_interval=1.0,
                                  smtp_port=mail.smtp_port, smtp_tls="starttls")
    await eventually(lambda: state_is(ctx, ChannelState.ONLINE))
    assert "polling" in ctx.states[-1][1]
    pid = await send(mail, accounts["user"], accounts["bot"],
                     user_mail(accounts["user"], accounts["bot"], "polled"))
    await eventually(lambda: [m.platform_id for m in ctx.inbound] == [pid])


async def test_a_renumbered_folder_is_read_from_new_mail_on(
        start: Callable[..., Any], mail: MailServers, accounts: dict[str, str]) -> None:
    old = await send(mail, accounts["user"], accounts["bot"],
                     user_mail(accounts["user"], accounts["bot"], "old mail"))
    ctx = RecordingContext()
    await ctx.state.set(CURSOR_KEY, {"uidvalidity": 1, "uid": 0})  # another folder's numbers
    _connector, ctx = await start(ctx)
    await eventually(lambda: state_is(ctx, ChannelState.ONLINE))
    assert logged(ctx, "renumbered") and logged(ctx, "only mail arriving from now on")
    new = await send(mail, accounts["user"], accounts["bot"],
                     user_mail(accounts["user"], accounts["bot"], "new mail"))
    await eventually(lambda: ctx.inbound)
    assert ctx.inbound[0].platform_id == new and old != new  # UIDs ascend: old came first


async def test_wrong_password_stops_with_one_clear_line(start: Callable[..., Any]) -> None:
    _connector, ctx = await start(password=SecretStr("wrong"))
    await eventually(lambda: state_is(ctx, ChannelState.OFFLINE))
    assert logged(ctx, "IMAP login refused") and logged(ctx, "AUTHENTICATIONFAILED")


async def test_tls_refused_and_untrusted_certificate_are_clear(
        start: Callable[..., Any], mail: MailServers) -> None:
    _connector, ctx = await start(imap_port=mail.imap_port)  # implicit TLS on a plain port
    await eventually(lambda: state_is(ctx, ChannelState.OFFLINE))
    assert logged(ctx, "TLS refused by the IMAP server") and logged(ctx, "imap_tls")
    _connector, ctx2 = await start(ca_file="")
    await eventually(lambda: state_is(ctx2, ChannelState.OFFLINE))
    assert logged(ctx2, "certificate") and logged(ctx2, "ca_file")


async def test_probe_checks_both_logins(start: Callable[..., Any], mail: MailServers,
                                        accounts: dict[str, str]) -> None:
    connector, _ctx = await start()
    result = await connector.probe()
    assert result.ok and "SMTP" in result.message
    bad = EmailConnector("email", EmailConfig(
        address=accounts["bot"], password=SecretStr("bot-pw"), imap_host="127.0.0.1",
        imap_port=mail.imaps_port, smtp_host="127.0.0.1", smtp_port=mail.smtps_port,
        smtp_password=SecretStr("wrong"), ca_file=mail.ca_file))
    result = await bad.probe()
    assert not result.ok and "SMTP login refused" in result.message
    plain = EmailConnector("email", connector.config.model_copy(
        update={"smtp_port": mail.smtp_port}))  # implicit TLS on the STARTTLS port
    result = await plain.probe()
    assert not result.ok and "TLS refused by the SMTP server" in result.message


async def test_smtp_refusals_deferrals_and_lost_answers(
        start: Callable[..., Any], mail: MailServers, accounts: dict[str, str]) -> None:
    connector, ctx = await start()
    await eventually(lambda: state_is(ctx, ChannelState.ONLINE))
    to = Address(channel="email", chat=accounts["user"])
    mail.fail_next(accounts["bot"], 451)
    with pytest.raises(RetryableError, match="deferred"):
        await connector.send_part(to, "one", None)
    mail.fail_next(accounts["bot"], 550)
    with pytest.raises(FatalConnectorError, match="refused"):
        await connector.send_part(to, "two", None)
    mail.lose_next(accounts["bot"])
    with pytest.raises(DeliveryUncertain):
        await connector.send_part(to, "three", None)
    assert [read_reply(a.data)[2] for a in mail.sent_by(accounts["bot"])] == ["three"]


async def test_ignored_senders_and_automatic_mail_are_never_answered(
        start: Callable[..., Any], mail: MailServers, accounts: dict[str, str]) -> None:
    _connector, ctx = await start(allow_senders=[USERS_DOMAIN])
    await eventually(lambda: state_is(ctx, ChannelState.ONLINE))
    stranger = mail.add_user(f"x{uuid.uuid4().hex[:6]}@elsewhere.test", "pw")
    await send(mail, stranger, accounts["bot"], user_mail(stranger, accounts["bot"], "hi"))
    auto = user_mail(accounts["user"], accounts["bot"], "I am on holiday")
    auto["Auto-Submitted"] = "auto-replied"
    await send(mail, accounts["user"], accounts["bot"], auto)
    ok = await send(mail, accounts["user"], accounts["bot"],
                    user_mail(accounts["user"], accounts["bot"], "real"))
    await eventually(lambda: ctx.inbound)
    assert [m.platform_id for m in ctx.inbound] == [ok]
    assert logged(ctx, "not in allow_senders") and logged(ctx, "Auto-Submitted")


# ---- pure: parser, text, composer ------------------------------------------------------

def parse(msg: EmailMessage | bytes, **kw: Any) -> Mail | Skip:
    raw = msg if isinstance(msg, bytes) else msg.as_bytes()
    return parse_mail(raw, channel="email", own=kw.pop("own", BOT), allow=kw.pop("allow", []),
                      fallback_id="<1.1@imap>", now=0.0)


def a_mail(text: str = "hi", **headers: str) -> EmailMessage:
    msg = user_mail("Alice <alice@users.test>", BOT, text)
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    return msg


def test_html_is_read_as_text_and_plain_is_preferred() -> None:
    html = ("<html><head><style>p{color:red}</style><title>t</title></head><body>"
            "<p>Hello&nbsp;<b>there</b> &amp; welcome</p><script>alert(1)</script>"
            "<div>second<br>line</div></body></html>")
    assert html_to_text(html) == "Hello\xa0there & welcome\n\nsecond\nline"
    msg = a_mail("plain version")
    msg.add_alternative(html, subtype="html")
    parsed = parse(msg)
    assert isinstance(parsed, Mail) and parsed.inbound.text == "plain version"
    only_html = EmailMessage()
    only_html["From"] = "alice@users.test"
    only_html.set_content(html, subtype="html")
    parsed = parse(only_html)
    assert isinstance(parsed, Mail) and parsed.inbound.text.startswith("Hello\xa0there")


def test_quoted_history_and_signatures_are_cut() -> None:
    assert cut_quoted("Yes please.\n\nOn Mon, 1 Dec 2026 at 10:00, Bot <b@x> wrote:\n> hi\n"
                      "> there") == "Yes please."
    assert cut_quoted("Sure\nOn Mon, 1 Dec 2026, Bot <b@x>\nwrote:\n> q") == "Sure"
    assert cut_quoted("> quoted\nmy answer\n> more") == "my answer"
    assert cut_quoted("Thanks\n-- \nAlice\nACME") == "Thanks"
    assert cut_quoted("ok\n-----Original Message-----\nFrom: x") == "ok"
    assert cut_quoted("fine\nFrom: Bot\nSent: Monday\nTo: me\nSubject: x") == "fine"
    assert cut_quoted("> only a quote") == "> only a quote"


def test_loops_are_prevented() -> None:
    cases = [a_mail(Auto_Submitted="auto-replied"), a_mail(Precedence="bulk"),
             a_mail(List_Id="<team.lists.example>"), a_mail(X_Autoreply="yes")]
    bounce = a_mail()
    bounce.replace_header("From", "MAILER-DAEMON@mx.example")
    own = a_mail()
    own.replace_header("From", BOT)
    ours = a_mail()
    ours.replace_header("Message-ID", new_message_id(BOT))
    for msg in [*cases, bounce, own, ours]:
        assert isinstance(parse(msg), Skip), msg
    assert isinstance(parse(a_mail(Auto_Submitted="no")), Mail)


def test_allowlist_addresses_and_domains() -> None:
    assert sender_allowed("a@x.org", [])
    assert sender_allowed("A@X.org", ["a@x.org"]) and sender_allowed("b@x.org", ["x.org"])
    assert sender_allowed("b@x.org", ["@x.org"])
    assert not sender_allowed("b@evil-x.org", ["x.org"]) and not sender_allowed("b@y.org",
                                                                                ["a@y.org"])
    skipped = parse(a_mail(), allow=["other.test"])
    assert isinstance(skipped, Skip) and "allow_senders" in skipped.reason


def test_dmarc_fail_from_the_receiving_server_is_dropped() -> None:
    forged = a_mail(Authentication_Results="mx.example.test; spf=fail; dmarc=fail "
                    "header.from=users.test")
    skipped = parse(forged)
    assert isinstance(skipped, Skip) and "dmarc=fail" in skipped.reason
    planted = EmailMessage()  # a sender's own header sits below the server's
    planted["Authentication-Results"] = "mx.example.test; dmarc=pass"
    planted["Authentication-Results"] = "evil; dmarc=fail"
    planted["From"] = "alice@users.test"
    planted.set_content("hi")
    assert isinstance(parse(planted), Mail)


def test_attachments_are_metadata() -> None:
    msg = a_mail("see attached")
    msg.add_attachment(PNG, maintype="image", subtype="png", filename="dot.png")
    msg.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="a.pdf")
    parsed = parse(msg)
    assert isinstance(parsed, Mail)
    assert [(a.kind, a.name, a.mime, a.size) for a in parsed.inbound.attachments] == [
        ("image", "dot.png", "image/png", len(PNG)), ("file", "a.pdf", "application/pdf", 8)]
    assert parsed.inbound.text == "see attached"


def test_threading_fields_and_fallback_id() -> None:
    msg = a_mail("hi", In_Reply_To="<pyclaw.1@example.test>",
                 References="<root@x> <pyclaw.1@example.test>")
    parsed = parse(msg)
    assert isinstance(parsed, Mail)
    assert parsed.references == ("<root@x>", "<pyclaw.1@example.test>")
    assert parsed.inbound.reply_to_bot and parsed.inbound.mentioned
    del msg["Message-ID"]
    again = parse(msg)
    assert isinstance(again, Mail) and again.inbound.platform_id == "<1.1@imap>"


@given(st.text(), st.text(max_size=80))
def test_a_composed_reply_carries_the_exact_text(text: str, subject: str) -> None:
    clean = text.encode("utf-8", "replace").decode("utf-8").replace("\r", "")
    msg = compose_reply(sender=BOT, sender_name="Bot", to="a@users.test", text=clean,
                        thread=Thread("<m@x>", subject, ("<r@x>",)),
                        fallback_subject="Hello", message_id="<pyclaw.1@example.test>")
    raw = msg.as_bytes()
    assert read_reply(raw)[2] == clean
    back = message_from_bytes(raw, policy=policy.default)
    assert back["In-Reply-To"] == "<m@x>" and str(back["References"]) == "<r@x> <m@x>"
    assert str(back["Subject"]).startswith("Re:") or not subject.split()


@given(st.binary(max_size=2000))
def test_the_parser_never_raises_on_bytes(raw: bytes) -> None:
    assert isinstance(parse(raw), Mail | Skip)


_HEADER = st.sampled_from(["From", "To", "Cc", "Subject", "Message-ID", "References",
                           "In-Reply-To", "Content-Type", "Content-Transfer-Encoding",
                           "Auto-Submitted", "Authentication-Results", "Date",
                           "Content-Disposition"])


@given(st.lists(st.tuples(_HEADER, st.text(max_size=60)), max_size=12), st.text(max_size=300))
def test_the_parser_never_raises_on_odd_headers(headers: list[tuple[str, str]],
                                                body: str) -> None:
    lines = "".join(f"{name}: {' '.join(value.split())}\r\n" for name, value in headers)
    raw = (lines + "\r\n" + body).encode("utf-8")
    assert isinstance(parse(raw), Mail | Skip)
    assert isinstance(parse(b"From: a@b.c\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                            + base64.b64encode(raw)[:-1]), Mail | Skip)


@given(st.text())
def test_text_helpers_never_raise(text: str) -> None:
    assert isinstance(html_to_text(text), str) and isinstance(cut_quoted(text), str)


# ---- attachments through a gateway ----------------------------------------------------------

class SmallMailHarness(EmailHarness):
    """The channel reads at most 10 000 bytes of a mail."""

    def channel_config(self) -> dict[str, Any]:
        return {**super().channel_config(), "max_mail_bytes": 10_000}


@pytest.fixture(params=[EmailHarness, SmallMailHarness], ids=["whole", "small"])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[EmailHarness]:
    made: EmailHarness = request.param()
    await made.start()
    try:
        yield made
    finally:
        await made.stop()


def with_picture(harness: EmailHarness, chat: str, padding: int) -> EmailMessage:
    """A mail with a text, then a PNG picture of ``padding`` more bytes."""
    msg = user_mail(chat, harness.bot, "what is this?")
    msg.add_attachment(PNG + bytes(padding), maintype="image", subtype="png",
                       filename="cat.png")
    return msg


async def test_a_picture_in_a_mail_reaches_the_model_or_a_cut_one_is_explained(
        harness: EmailHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    await online(harness, fake_llm, make_gateway)
    chat = harness.chat(0)
    small = isinstance(harness, SmallMailHarness)
    await harness._mail(chat, with_picture(harness, chat, 20_000 if small else 0))
    reply = await reply_to(harness, chat, 0)
    if not small:
        assert reply == "Echo: what is this?"
        assert fake_llm.images == [("image/png", PNG)]
        return
    assert reply.startswith("Echo: what is this?")
    assert "cat.png: the mail is larger than max_mail_bytes (10000 bytes), so this " \
           "attachment was not read whole" in reply
    assert fake_llm.images == []


async def test_a_file_the_assistant_sends_is_a_threaded_mail_with_it_attached(
        fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    """``send_file`` by mail: the picture someone sent, listed and sent back, arrives as a
    reply in the same thread with the caption as its text and the same bytes attached."""
    def send_back(results: list[str]) -> FakeToolCall:
        [listed] = json.loads(results[0])
        return FakeToolCall("send_file", {"file_id": listed["id"], "caption": "the map"})

    harness = EmailHarness()
    await harness.start()
    try:
        gateway = await online(harness, fake_llm, make_gateway)
        chat = harness.chat(0)
        await harness._mail(chat, with_picture(harness, chat, 0))
        assert await reply_to(harness, chat, 0) == "Echo: what is this?"
        await gateway.lanes.join()

        fake_llm.responder = calls(lambda results: FakeToolCall("list_files"), send_back)
        asked = user_mail(chat, harness.bot, "send the map back")
        await harness._mail(chat, asked)
        await eventually(lambda: len(harness.sent(chat)) == 3, timeout=30)
        await gateway.lanes.join()
        mails = [message_from_bytes(a.data, policy=policy.default)
                 for a in harness.mail.sent_by(harness.bot) if a.rcpt == chat]
    finally:
        await harness.stop()

    with_file = mails[1]
    assert with_file["In-Reply-To"] == asked["Message-ID"]
    assert with_file["Auto-Submitted"] == "auto-replied"
    body = with_file.get_body(preferencelist=("plain",))
    assert body is not None and body.get_content().strip() == "the map"
    [attached] = list(with_file.iter_attachments())
    assert (attached.get_filename(), attached.get_content_type()) == ("cat.png", "image/png")
    assert attached.get_content() == PNG
    assert read_reply(mails[2].as_bytes())[2] == (f"Done: sent cat.png ({len(PNG)} bytes) to "
                                                  "this conversation")
