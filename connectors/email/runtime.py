"""The Email connector: a mailbox read over IMAP (IDLE, else polling), replies by SMTP.

``run_connected`` keeps one IMAP connection: log in over TLS, select the folder, read
every mail above the cursor, then wait in IDLE (renewed every :data:`IDLE_RENEW`
seconds, which is also the liveness the supervisor sees on a quiet mailbox) or, on a
server without IDLE, poll every ``poll_interval`` seconds with NOOP and a UID SEARCH.

Resume: the cursor ``{"uidvalidity", "uid"}`` in ``ctx.state`` (key :data:`CURSOR_KEY`)
is the last UID read, saved after that mail was submitted (or skipped), so mail that came
while the channel was down is read on the next start and none twice (a mail read again
after a crash between submit and save has the same Message-ID, which the journal knows).
A mail is flagged ``\\Seen`` only after ``ctx.submit`` returned. The first start, and a
start after the server renumbered the folder (a new UIDVALIDITY), read only mail arriving
from then on: answering a whole mailbox is never what anyone wants.

Replies: one mail per part from ``address`` to the sender, threaded under the mail it
answers (``_compose``); what threading needs of a received mail is kept in ``ctx.state``
per chat (key ``thread:<address>``, the latest :data:`THREADS_KEPT` mails), saved before
the mail is submitted, so a reply finished after a restart still threads.

Sending only (``receives`` false, another instance reads the mailbox): no IMAP connection
at all. Starting checks the SMTP login once (a wrong password fails the start; an
unreachable server is retried), and replies thread from what the receiving instance kept
in ``ctx.state``, which this one only reads: the UID cursor is never written.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from connectors.email._compose import Thread, compose_file, compose_reply, new_message_id
from connectors.email._imap import ImapSession, Mailbox, tls_context
from connectors.email._parse import FALLBACK_SUFFIX, Mail, Skip, parse_mail, part_payloads
from connectors.email._smtp import SmtpSettings, login_check, send_mail
from connectors.email.manifest import SPEC, EmailConfig
from pyclaw_app.channels import ConnectorBase, ProbeResult
from pyclaw_app.channels.contract import AttachmentSource, AttachmentUnavailable, OutboundFile
from pyclaw_app.errors import FatalConnectorError, PyclawError, RetryableError
from pyclaw_app.model import Address, Attachment

__all__ = ["CONNECTOR", "CURSOR_KEY", "IDLE_RENEW", "EmailConnector"]

CURSOR_KEY = "cursor"
IDLE_RENEW = 100.0
"""Seconds of one IDLE before it is ended and begun again: well under the 29 minutes RFC
2177 allows and under the supervisor's stall limit, so a quiet mailbox stays alive."""
THREADS_KEPT = 20


class EmailConnector(ConnectorBase):
    spec = SPEC
    config: EmailConfig
    rejected_noun = ("a", "mail")

    def __init__(self, name: str, config: EmailConfig) -> None:
        super().__init__(name, config)
        self._session: ImapSession | None = None
        self._last_uid = 0
        self._validity = 0
        self._answering: dict[str, str] = {}

    # ---- config ---------------------------------------------------------------------------

    def _check_config(self) -> str:
        config = self.config
        if "@" not in config.address.strip():
            raise FatalConnectorError("the Email address must be the bot's mail address, such "
                                      f"as assistant@example.org, not {config.address!r}")
        for field in ("imap_host", "smtp_host"):
            if not getattr(config, field).strip():
                raise FatalConnectorError(f"the Email {field} is not set")
        return self.secret("password")

    def _imap(self, password: str) -> ImapSession:
        config = self.config
        return ImapSession(host=config.imap_host.strip(), port=config.imap_port,
                           tls=config.imap_tls, login=config.login, password=password,
                           folder=config.folder, context=tls_context(config.ca_file))

    def _smtp(self, password: str) -> SmtpSettings:
        config = self.config
        return SmtpSettings(host=config.smtp_host.strip(), port=config.smtp_port,
                            tls=config.smtp_tls, login=config.smtp_login,
                            password=self.secret_or_none("smtp_password") or password,
                            context=tls_context(config.ca_file))

    # ---- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        self._check_config()
        if self.receives:
            self.spawn("imap", self.run_connected(self._connect, self._serve))
        else:
            await self.connect_and_keep("smtp", self._smtp_login, self._idle,
                                        platform="the SMTP server")

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def _connect(self) -> str:
        session = self._imap(self._check_config())
        try:
            who = await session.open()
            await self._resume(session.mailbox)
        except BaseException:
            await session.close()
            raise
        self._session = session
        return who

    async def _smtp_login(self) -> str:
        """Sending only: whether the SMTP login works, which is all replies need."""
        await login_check(self._smtp(self._check_config()))
        return f"SMTP login to {self.config.smtp_host.strip()} works (sending only)"

    async def _idle(self) -> None:
        """Sending only: nothing to read, the receiving instance holds the IMAP connection."""
        await asyncio.Event().wait()

    async def _resume(self, mailbox: Mailbox) -> None:
        """Where to read on from: the saved cursor, unless the folder was renumbered."""
        state = self.ctx.state
        cursor = await state.get(CURSOR_KEY)
        if isinstance(cursor, dict) and cursor.get("uidvalidity") == mailbox.uidvalidity \
                and isinstance(cursor.get("uid"), int):
            self._validity, self._last_uid = mailbox.uidvalidity, cursor["uid"]
            return
        if isinstance(cursor, dict):
            self.ctx.log("warning", f"the folder {self.config.folder!r} was renumbered "
                         f"(UIDVALIDITY {cursor.get('uidvalidity')} -> "
                         f"{mailbox.uidvalidity}): the old position means nothing now, so "
                         "only mail arriving from now on is read and nothing already there "
                         "is answered")
        self._validity, self._last_uid = mailbox.uidvalidity, max(mailbox.uidnext - 1, 0)
        await state.set(CURSOR_KEY, {"uidvalidity": self._validity, "uid": self._last_uid})

    async def _serve(self) -> None:
        session = self._session
        if session is None:
            return
        rechecked = 0
        try:
            while True:
                await self._read_new(session)
                self.ctx.heartbeat()
                uidnext = await session.uidnext()
                if uidnext > self._last_uid + 1 and uidnext != rechecked:
                    rechecked = uidnext  # once: a mail expunged unread keeps UIDNEXT up
                    continue  # mail came while these were read
                await session.wait(IDLE_RENEW if session.idle else self.config.poll_interval)
                self.ctx.heartbeat()
        finally:
            if self._session is session:
                self._session = None
            await session.close()

    # ---- inbound --------------------------------------------------------------------------

    async def _read_new(self, session: ImapSession) -> None:
        ctx = self.ctx
        for uid in await session.uids_after(self._last_uid):
            raw = await session.fetch(uid, self.config.max_mail_bytes)
            parsed = parse_mail(raw, channel=self.name, own=self.config.address.strip(),
                                allow=self.config.allow_senders,
                                fallback_id=f"<{self._validity}.{uid}{FALLBACK_SUFFIX}",
                                now=time.time(), source=f"{self._validity}/{uid}",
                                ) if raw is not None else None
            if isinstance(parsed, Skip):
                if parsed.level == "debug":
                    self.log.debug("skipped mail %s: %s", uid, parsed.reason)
                else:
                    ctx.log(parsed.level, f"ignored {parsed.reason} (UID {uid})")
            elif isinstance(parsed, Mail):
                await self._submit(parsed, uid)
                await session.mark_seen(uid)
            self._last_uid = uid
            await ctx.state.set(CURSOR_KEY, {"uidvalidity": self._validity, "uid": uid})

    async def _submit(self, mail: Mail, uid: int) -> None:
        ctx = self.ctx
        key = f"thread:{mail.inbound.address.chat}"
        threads: dict[str, Any] = await ctx.state.get(key) or {}
        threads.pop(mail.inbound.platform_id, None)
        threads[mail.inbound.platform_id] = [mail.message_id, mail.subject,
                                             list(mail.references)]
        await ctx.state.set(key, dict(list(threads.items())[-THREADS_KEPT:]))
        try:
            await ctx.submit(mail.inbound)
        except PyclawError as exc:
            raise RetryableError(f"could not journal mail UID {uid}; it is read again after "
                                 f"reconnecting: {exc}") from exc

    async def fetch_attachment(self, attachment: Attachment) -> AttachmentSource:
        """The part's bytes from the mail itself, fetched again by UID (``BODY.PEEK[]``,
        which leaves the flags alone) on a connection of its own, so the IDLE of the
        reading loop is not disturbed; a renumbered folder (another UIDVALIDITY) no longer
        names the same mail."""
        try:
            validity, uid, index = (int(n) for n in (attachment.platform_id or "").split("/"))
        except ValueError:
            raise AttachmentUnavailable("the mail gave no way to find the file again") \
                from None
        folder = self.config.folder
        session = self._imap(self._check_config())
        try:
            await session.open()
            if session.mailbox.uidvalidity != validity:
                raise AttachmentUnavailable(f"the folder {folder!r} was renumbered since the "
                                            "mail came, so it cannot be found again")
            raw = await session.fetch(uid, self.config.max_mail_bytes)
        finally:
            await session.close()
        if raw is None:
            raise AttachmentUnavailable(f"the mail is no longer in the folder {folder!r}")
        payloads = part_payloads(raw)
        if index >= len(payloads) or payloads[index] is None:
            raise AttachmentUnavailable("the mail no longer has that attachment")
        if len(raw) >= self.config.max_mail_bytes and index == len(payloads) - 1:
            # the read stopped inside the last part it found: only those before it are whole
            raise AttachmentUnavailable(f"the mail is larger than max_mail_bytes "
                                        f"({self.config.max_mail_bytes} bytes), so this "
                                        "attachment was not read whole")
        data = payloads[index]
        assert data is not None
        return AttachmentSource(data=data, size=len(data))

    # ---- outbound -------------------------------------------------------------------------

    async def _thread(self, chat: str, reply_to: str | None) -> Thread | None:
        if reply_to is not None:
            self._answering[chat] = reply_to
        target = reply_to or self._answering.get(chat)
        threads = await self.ctx.state.get(f"thread:{chat}")
        threads = threads if isinstance(threads, dict) else {}
        entry = threads.get(target) if target else None
        if entry is None and reply_to is not None and not reply_to.endswith(FALLBACK_SUFFIX):
            return Thread(reply_to, "", ())  # older than the mails kept: its id only
        if not threads:
            return None
        if entry is None:
            entry = list(threads.values())[-1]
        try:
            message_id, subject, references = entry
            return Thread(str(message_id), str(subject), tuple(map(str, references)))
        except (TypeError, ValueError):  # a state row written by another version
            return None

    async def send_part(self, address: Address, text: str, reply_to: str | None) -> str:
        password = self._check_config()
        config = self.config
        message_id = new_message_id(config.address)
        message = compose_reply(sender=config.address.strip(), sender_name=config.display_name,
                                to=address.chat, text=text,
                                thread=await self._thread(address.chat, reply_to),
                                fallback_subject=config.subject, message_id=message_id)
        await send_mail(self._smtp(password), message, sender=config.address.strip(),
                        recipient=address.chat)
        return message_id

    async def send_file(self, address: Address, file: OutboundFile, reply_to: str | None
                        ) -> str:
        """One threaded mail with the file attached, sent like a text part: one SMTP
        transaction, a lost answer uncertain (never sent again), a refusal (5xx, such as
        552 for its size) final."""
        password = self._check_config()
        config = self.config
        message_id = new_message_id(config.address)
        message = compose_file(sender=config.address.strip(), sender_name=config.display_name,
                               to=address.chat, name=file.name, mime=file.mime,
                               data=file.content(), caption=file.caption,
                               thread=await self._thread(address.chat, reply_to),
                               fallback_subject=config.subject, message_id=message_id)
        await send_mail(self._smtp(password), message, sender=config.address.strip(),
                        recipient=address.chat)
        return message_id

    async def probe(self) -> ProbeResult:
        try:
            password = self._check_config()
            session = self._imap(password)
            try:
                who = await session.open()
            finally:
                await session.close()
            await login_check(self._smtp(password))
        except (FatalConnectorError, RetryableError) as exc:
            return ProbeResult(False, str(exc))
        return ProbeResult(True, f"{who}; SMTP login to {self.config.smtp_host} works")


CONNECTOR = EmailConnector
