"""The XMPP connector: one slixmpp stream at a time, supervised by the kit's reconnect loop.

``run_connected`` (re)connects the channel's one :class:`Session` (resume it by XEP-0198,
or log in over TLS, send presence and join the rooms with no history) and serves each
stream until it ends; a ping
every :data:`PING_INTERVAL` seconds is the liveness the supervisor sees on a quiet
account. A wrong password, an untrusted certificate or a server without TLS stop the
channel with one clear line; anything else reconnects with the shared backoff.

Inbound: the server keeps what arrives while a stream is down for a session it can resume
(XEP-0198, and acknowledges only what we read). While the channel is stopped, 1:1
messages wait in the server's offline storage (XEP-0160) and come when the next session
announces its presence; room messages sent while the bot is out of the room are not
delivered again (rooms keep no per-occupant queue).
Each message is parsed as it arrives (against the rooms joined at that moment) and one
named task submits them in order; ``stop`` ends the stream first and drains what was
already read, because the server does not keep it.

Outbound: a reply part is one ``<message>`` with an ``<active/>`` chat state and an
XEP-0359 origin-id; ``edit`` sends an XEP-0308 correction of the original id (the
gateway's streamed replies), ``typing`` a ``<composing/>`` chat state (XEP-0085), to the
full JID the person last wrote from (servers do not pass a body-less chat state sent to
a bare JID on). How a send learns its outcome is :meth:`Session.send`'s business.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
import uuid
from urllib.parse import urlsplit
from xml.etree.ElementTree import Element

from connectors.xmpp._parse import Skip, bare, parse_message
from connectors.xmpp._session import Session
from connectors.xmpp.manifest import SPEC, XmppConfig
from pyclaw_app.channels import ConnectorBase, ProbeResult, Recent
from pyclaw_app.channels.contract import AttachmentSource, AttachmentUnavailable
from pyclaw_app.errors import FatalConnectorError, RetryableError
from pyclaw_app.model import Address, Attachment, Inbound

__all__ = ["CONNECTOR", "PING_INTERVAL", "XmppConnector"]

PING_INTERVAL = 60.0
_DRAIN_TIMEOUT = 2.0


class XmppConnector(ConnectorBase):
    spec = SPEC
    config: XmppConfig

    def __init__(self, name: str, config: XmppConfig) -> None:
        super().__init__(name, config)
        self._session: Session | None = None
        self._queue: asyncio.Queue[Inbound | None] = asyncio.Queue()
        self._inbound: asyncio.Task[None] | None = None
        self._runner: asyncio.Task[None] | None = None
        self._writes_from: Recent[str, str] = Recent(1000)
        """The full JID each 1:1 chat last wrote from: where chat states go."""

    # ---- lifecycle ------------------------------------------------------------------------

    def _check_config(self) -> str:
        jid = self.config.jid.strip()
        if "@" not in jid or "/" in jid:
            raise FatalConnectorError(f"the XMPP jid must be an account such as "
                                      f"bot@example.org, not {jid!r}")
        return self.secret("password")

    async def open(self) -> None:
        self._session = Session(self.config, self._check_config(), on_message=self._received,
                                log_line=self._log_line)
        self._inbound = self.spawn("inbound", self._consume())
        self._runner = self.spawn("stream", self.run_connected(self._connect, self._serve))

    async def stop(self) -> None:
        """End the stream first (so the server keeps new 1:1 messages offline), then journal
        what was already read from it, then the kit's stop."""
        runner, inbound = self._runner, self._inbound
        if self.running and runner is not None:
            runner.cancel()
            await asyncio.wait({runner}, timeout=_DRAIN_TIMEOUT + 2)
        if self.running and inbound is not None and not inbound.done():
            self._queue.put_nowait(None)
            await asyncio.wait({inbound}, timeout=_DRAIN_TIMEOUT)
        await super().stop()

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def _connect(self) -> str:
        return await self._live(connected=False).open()

    async def _serve(self) -> None:
        session = self._live(connected=False)
        while True:
            ended = asyncio.ensure_future(session.ended())
            done, _ = await asyncio.wait({ended}, timeout=PING_INTERVAL)
            if done:
                session.abort()
                if session.fatal is not None:
                    raise session.fatal
                raise RetryableError(f"XMPP stream ended: {ended.result()}")
            ended.cancel()
            await session.ping()
            self.ctx.heartbeat()

    def _log_line(self, level: str, message: str) -> None:
        if self.running:
            self.ctx.log(level, message)

    # ---- inbound --------------------------------------------------------------------------

    def _received(self, xml: Element) -> None:
        """Every message stanza, parsed now against the rooms joined at this moment."""
        session = self._session
        if not self.running:
            return
        ctx = self.ctx
        ctx.heartbeat()
        rooms = session.rooms if session is not None else {}
        parsed = parse_message(xml, channel=self.name, own=bare(self.config.jid), rooms=rooms,
                               fallback_id=f"~{uuid.uuid4().hex}", now=time.time())
        if isinstance(parsed, Skip):
            if parsed.level == "debug":
                self.log.debug("skipped %s", parsed.reason)
            else:
                ctx.log(parsed.level, f"skipped {parsed.reason}")
            return
        if not parsed.is_group:
            self._writes_from.remember(parsed.address.chat, str(xml.get("from") or ""))
        self._queue.put_nowait(parsed)

    async def _consume(self) -> None:
        while (inbound := await self._queue.get()) is not None:
            try:
                await self.ctx.submit(inbound)
            except Exception as exc:  # one lost message must not stop the channel
                self.log.exception("could not journal XMPP message %s", inbound.platform_id)
                self.ctx.log("error", f"could not journal message {inbound.platform_id}: "
                             f"{exc!r}")

    # ---- outbound -------------------------------------------------------------------------

    def _live(self, *, connected: bool = True) -> Session:
        session = self._session
        if session is None or not self.running or (connected and not session.up):
            raise RetryableError(f"XMPP channel {self.name!r} is not connected",
                                 retry_after=1.0)
        return session

    def _kind(self, session: Session, address: Address) -> str:
        return "groupchat" if address.chat in session.rooms \
            or address.chat in self.config.rooms else "chat"

    async def fetch_attachment(self, attachment: Attachment) -> AttachmentSource:
        """An XEP-0363 file is a plain HTTPS GET of its URL: the link itself is the
        permission, so no credentials are sent. A stanza is not signed, though, so the URL
        is fetched only on the server the message came from or the bot's own (their
        domains and subdomains, where upload services live), never on a host a stranger
        names, such as the gateway's own network."""
        url = attachment.url or ""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower().rstrip(".")
        if parts.scheme not in ("https", "http") or not host:
            raise AttachmentUnavailable("the message gave no web address for the file")
        domains = {bare(self.config.jid).partition("@")[2],
                   (attachment.platform_id or "").lower()} - {""}
        if not any(host == d or host.endswith(f".{d}") for d in domains):
            raise AttachmentUnavailable(f"the file is on {host}, not on the sender's server "
                                        "or the bot's, so pyclaw does not fetch it")
        return AttachmentSource(url=url, size=attachment.size, ssl_context=self._trust())

    def _trust(self) -> ssl.SSLContext | None:
        """The system's certificate authorities plus ``ca_file``'s: the upload service of
        a server with a private CA presents a certificate signed by it."""
        if not self.config.ca_file:
            return None
        context = ssl.create_default_context()
        context.load_verify_locations(self.config.ca_file)
        return context

    async def send_part(self, address: Address, text: str, reply_to: str | None) -> str:
        session = self._live()
        message = session.client.make_message(mto=address.chat, mbody=text,
                                              mtype=self._kind(session, address))
        message["id"] = stanza_id = session.client.new_id()
        message["origin_id"]["id"] = stanza_id
        message["chat_state"] = "active"
        await session.send(message, "send")
        return str(stanza_id)

    async def edit(self, address: Address, platform_id: str, text: str) -> None:
        """An XEP-0308 correction: a new message that replaces ``platform_id`` (always the
        original's id, however often it was corrected)."""
        session = self._live()
        message = session.client.make_message(mto=address.chat, mbody=text,
                                              mtype=self._kind(session, address))
        message["id"] = stanza_id = session.client.new_id()
        message["origin_id"]["id"] = stanza_id
        message["replace"]["id"] = platform_id
        await session.send(message, "edit")

    async def typing(self, address: Address) -> None:
        session = self._live()
        kind = self._kind(session, address)
        to = address.chat if kind == "groupchat" else \
            self._writes_from.get(address.chat) or address.chat
        message = session.client.make_message(mto=to, mtype=kind)
        message["chat_state"] = "composing"
        session.send_now(message)

    async def probe(self) -> ProbeResult:
        try:
            password = self._check_config()
        except FatalConnectorError as exc:
            return ProbeResult(False, str(exc))
        config = self.config.model_copy(update={"rooms": []})
        session = Session(config, password, on_message=lambda _xml: None,
                          log_line=lambda _level, _message: None)
        try:
            return ProbeResult(True, await session.open())
        except (FatalConnectorError, RetryableError) as exc:
            return ProbeResult(False, str(exc))
        finally:
            with contextlib.suppress(Exception):
                await session.close()


CONNECTOR = XmppConnector
