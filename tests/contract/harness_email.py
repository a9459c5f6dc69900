"""The contract suite's view of Email: a real dovecot and SMTP server, aiosmtplib as the users.

Each harness gets its own accounts on the process-wide mail servers
(``tests/servers/dovecot.py``): the bot ``bot<n>@example.test`` and one user per test
chat (a chat's id is the user's address). A user mails the bot through the SMTP server
(STARTTLS, logged in), which puts the mail into the bot's INBOX on dovecot; the bot reads
it over IMAPS through a :class:`TcpProxy` that ``drop_connection`` cuts, and answers
through the same SMTP server, whose record of what it accepted from the bot is
``sent()``. A redelivered mail is the same bytes sent again (an MTA retrying after a lost
``250``); the malformed one has no From header.

Faults are the SMTP server's answers to the bot's mail: a failed send is a 451 (500: a
transient failure) or a 550 (400: a refusal); a lost answer is a mail taken and the
connection cut before the ``250``. SMTP has no rate-limit answer with a delay (a 421 or
451 says nothing of when), so ``supports_rate_limit`` is off. Mail sent while the bot
is stopped waits in its mailbox: ``queues_while_down``. Mail is one to one: no groups.
A reply is one mail (up to ``MAX_TEXT`` characters), so the split test does not apply.
"""

from __future__ import annotations

import itertools
import ssl
import uuid
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import aiosmtplib

from connectors.email.manifest import MAX_TEXT
from connectors.email.runtime import CURSOR_KEY
from tests.contract.harness import PlatformHarness, SentMessage
from tests.servers.dovecot import DOMAIN, MailServers, TcpProxy, shared_mail

__all__ = ["HARNESS", "EmailHarness", "read_reply"]

USERS_DOMAIN = "users.test"
_IDS = itertools.count(1)
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


def read_reply(data: bytes) -> tuple[str, str, str]:
    """(To, In-Reply-To, text) of a reply mail as a mail client shows it."""
    msg = message_from_bytes(data, policy=policy.default)
    part = msg.get_body(preferencelist=("plain",))
    payload = part.get_payload(decode=True) if part is not None else b""
    charset = (part.get_content_charset() if part is not None else None) or "utf-8"
    text = payload.decode(charset, "replace").replace("\r\n", "\n")
    return str(msg.get("To", "")), str(msg.get("In-Reply-To", "")), text


def user_mail(sender: str, to: str, text: str, *, subject: str = "Hello",
              message_id: str | None = None) -> EmailMessage:
    """A plain mail as a mail client writes it; text UTF-8 cannot carry (a lone surrogate)
    goes as UTF-16, the one charset that can."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = message_id or make_msgid(domain=USERS_DOMAIN)
    try:
        text.encode("utf-8")
        msg.set_content(text)
    except UnicodeEncodeError:
        msg.set_content(text.encode("utf-16", "surrogatepass"), maintype="text",
                        subtype="plain", cte="base64", params={"charset": "utf-16"})
    return msg


class EmailHarness(PlatformHarness):
    type_name = "email"
    max_text = MAX_TEXT
    supports_rate_limit = False
    supports_groups = False
    splits_replies = False
    quotes_replies = True
    cursor_key = CURSOR_KEY
    queues_while_down = True

    def __init__(self) -> None:
        self.tag = f"{next(_IDS)}{uuid.uuid4().hex[:6]}"
        self.bot = f"bot{self.tag}@{DOMAIN}"
        self.bot_password = f"bot-secret-{self.tag}"
        self.servers: MailServers | None = None
        self.proxy: TcpProxy | None = None
        self.raw: dict[str, tuple[str, bytes]] = {}

    @property
    def mail(self) -> MailServers:
        assert self.servers is not None, "harness not started"
        return self.servers

    async def start(self) -> None:
        self.servers = await shared_mail()
        self.mail.add_user(self.bot, self.bot_password)
        self.proxy = await TcpProxy(self.mail.imaps_port).start()

    async def stop(self) -> None:
        if self.proxy is not None:
            await self.proxy.close()

    def channel_config(self) -> dict[str, Any]:
        assert self.proxy is not None
        return {"address": self.bot, "password": self.bot_password,
                "imap_host": "127.0.0.1", "imap_port": self.proxy.port, "imap_tls": "implicit",
                "smtp_host": "127.0.0.1", "smtp_port": self.mail.smtp_port,
                "smtp_tls": "starttls", "ca_file": self.mail.ca_file}

    def chat(self, i: int) -> str:
        address = f"user{self.tag}x{i}@{USERS_DOMAIN}"
        if address not in self.mail.users:
            self.mail.add_user(address, f"user-secret-{i}")
        return address

    async def _send(self, sender: str, data: bytes) -> None:
        await aiosmtplib.send(
            data, sender=sender, recipients=[self.bot], hostname="127.0.0.1",
            port=self.mail.smtp_port, start_tls=True, username=sender,
            password=self.mail.users[sender],
            tls_context=ssl.create_default_context(cafile=self.mail.ca_file))

    async def _mail(self, sender: str, msg: EmailMessage) -> str:
        data = msg.as_bytes()
        message_id = str(msg["Message-ID"])
        self.raw[message_id] = (sender, data)
        await self._send(sender, data)
        return message_id

    async def inject_message(self, chat: str, text: str, *, thread: str | None = None,
                             sender: int = 1) -> str:
        return await self._mail(chat, user_mail(chat, self.bot, text))

    async def redeliver(self, platform_id: str) -> None:
        await self._send(*self.raw[platform_id])

    async def inject_malformed(self) -> None:
        sender = self.chat(99)
        data = (f"To: {self.bot}\r\nSubject: no sender\r\nMessage-ID: "
                f"{make_msgid(domain=USERS_DOMAIN)}\r\nContent-Type: multipart/mixed\r\n\r\n"
                "not MIME at all\r\n").encode()
        await self._send(sender, data)

    async def inject_media_only(self, chat: str) -> str:
        msg = EmailMessage()
        msg["From"] = chat
        msg["To"] = self.bot
        msg["Subject"] = "a picture"
        msg["Message-ID"] = make_msgid(domain=USERS_DOMAIN)
        msg.make_mixed()
        msg.add_attachment(PNG, maintype="image", subtype="png", filename="dot.png")
        return await self._mail(chat, msg)

    def sent(self, chat: str | None = None) -> list[SentMessage]:
        found: list[SentMessage] = []
        for accepted in self.mail.sent_by(self.bot):
            _, in_reply_to, text = read_reply(accepted.data)
            if chat in (None, accepted.rcpt):
                found.append(SentMessage(chat=accepted.rcpt, text=text,
                                         reply_to=in_reply_to or None, ts=accepted.ts))
        return found

    def rate_limit_next_send(self, retry_after: float) -> None:
        raise NotImplementedError("SMTP has no rate-limit answer with a delay")

    def rate_limit_log(self) -> list[tuple[float, float]]:
        raise NotImplementedError("SMTP has no rate-limit answer with a delay")

    def fail_next_send(self, status: int, *, skip: int = 0) -> None:
        self.mail.fail_next(self.bot, 451 if status >= 500 else 550, skip=skip)

    def lose_next_send_answer(self) -> None:
        self.mail.lose_next(self.bot)

    async def drop_connection(self) -> None:
        assert self.proxy is not None
        self.proxy.cut()


HARNESS = EmailHarness
