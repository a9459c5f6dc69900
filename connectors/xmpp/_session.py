"""The XMPP session through slixmpp, across reconnects, with outcomes in pyclaw's words.

One slixmpp client lives as long as the channel, so XEP-0198 stream management can
resume the session after a network fault: the server has kept it (and queued what came
for us meanwhile), slixmpp resends what the server had not acknowledged, the rooms stay
joined. When the server cannot resume it (it restarted, or had given the session up), a
new session starts: presence again (the server then hands over offline messages) and the
rooms joined again without history. slixmpp's own reconnect loop is never left running:
the first failed round of addresses ends an attempt and the kit's ``run_connected``
decides when to try again.

Sending has no answer in XMPP, so :meth:`Session.send` makes one: it writes the message
and then pings the server (XEP-0199). The server handles a stream's stanzas in order, so
by the ping's answer the message was routed, and a refusal of a local user or room (an
error message with our id) was already written back before it. The refusal maps to a
pyclaw error. A stream that ends before the answer waits for the reconnect: a resumed
session has the message (acknowledged, or resent first thing), so the answer is awaited
again there; a new session cannot say, and the part is :class:`DeliveryUncertain`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from xml.etree.ElementTree import Element

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout, PresenceError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from connectors.xmpp._errors import bounce_error, join_error_hint, left_room_reason
from connectors.xmpp._parse import Bounce, bare, bounce_of
from connectors.xmpp.manifest import XmppConfig
from pyclaw_app.errors import DeliveryUncertain, FatalConnectorError, RetryableError

__all__ = ["Session"]

LOGIN_TIMEOUT = 30.0
JOIN_TIMEOUT = 15.0
ANSWER_TIMEOUT = 20.0
_PLUGINS = ("xep_0030", "xep_0045", "xep_0085", "xep_0198", "xep_0199", "xep_0308",
            "xep_0359")
_STREAMS = "http://etherx.jabber.org/streams"
_STARTTLS = "urn:ietf:params:xml:ns:xmpp-tls"

LogLine = Callable[[str, str], None]


class Session:
    """The channel's session: :meth:`open` (re)connects, :meth:`ended` waits for a stream's
    end, :meth:`send` writes one message and learns its outcome."""

    def __init__(self, config: XmppConfig, password: str, *,
                 on_message: Callable[[Element], None], log_line: LogLine) -> None:
        self.config = config
        self.own = bare(config.jid)
        self.domain = self.own.partition("@")[2]
        self.rooms: dict[str, str] = {}
        """Rooms joined on this stream, with our nick in each."""
        self._log = log_line
        self._on_message = on_message
        self._login: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        """This connection attempt: True when it resumed the session, False for a new one."""
        self._ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._next_login: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        """The outcome of the connection after the current one (for sends caught between)."""
        self._waiting: dict[str, asyncio.Future[Bounce]] = {}
        self._auth_condition = ""
        self._last_failure: BaseException | None = None
        self.fatal: FatalConnectorError | None = None
        """Set when the server ended a stream for a reason reconnecting cannot fix."""
        client = self.client = slixmpp.ClientXMPP(f"{config.jid}/{config.resource}", password)
        for plugin in _PLUGINS:
            client.register_plugin(plugin)
        client.enable_direct_tls = config.tls == "direct"
        client.enable_starttls = config.tls == "starttls"
        client.enable_plaintext = False
        if config.ca_file:
            client.ca_certs = config.ca_file
        client.register_handler(Callback("pyclaw tls check", MatchXPath(
            f"{{{_STREAMS}}}features"), self._check_features))
        for event, handler in (("session_start", self._session_start),
                               ("session_resumed", self._session_resumed),
                               ("failed_auth", self._failed_auth),
                               ("failed_all_auth", self._failed_all_auth),
                               ("connection_failed", self._connection_failed),
                               ("reconnect_delay", self._reconnect_delay),
                               ("ssl_invalid_chain", self._invalid_chain),
                               ("stream_error", self._stream_error),
                               ("disconnected", self._disconnected),
                               ("message", self._message),
                               ("message_error", self._message_error),
                               ("groupchat_presence", self._room_presence)):
            client.add_event_handler(event, handler)

    # ---- connecting ---------------------------------------------------------------------

    async def open(self) -> str:
        """Connect and resume the session, or log in, announce presence and join the rooms;
        returns what the channel state should say."""
        loop = asyncio.get_running_loop()
        if self._login.done():  # a reconnect: fresh outcomes for this attempt
            self._login, self._ended = loop.create_future(), loop.create_future()
        self._last_failure = None
        if self.config.server:
            self.client.connect(self.config.server, self.config.port)
        else:
            self.client.connect()
        try:
            async with asyncio.timeout(LOGIN_TIMEOUT):
                resumed = await asyncio.shield(self._login)
        except TimeoutError:
            self.abort()
            raise RetryableError(f"no XMPP session within {LOGIN_TIMEOUT:.0f}s") from None
        except FatalConnectorError:
            self._tell_next(False)  # no session to come back: sends caught between give up
            self.abort()
            raise
        except BaseException:
            self.abort()
            raise
        self._tell_next(resumed)
        if resumed:
            return f"resumed the session of {self.client.boundjid.full}"
        self.rooms.clear()
        self.client.send_presence()  # priority 0: the server delivers offline messages now
        for room in self.config.rooms:
            await self._join(room)
        return f"connected as {self.client.boundjid.full}"

    def _tell_next(self, resumed: bool) -> None:
        waiting, self._next_login = self._next_login, asyncio.get_running_loop().create_future()
        waiting.set_result(resumed)

    def _fail(self, error: BaseException) -> None:
        if not self._login.done():
            self._login.set_exception(error)
            self.client.cancel_connection_attempt()

    def _check_features(self, features: slixmpp.StanzaBase) -> None:
        """Refuse to log in over a stream that is neither TLS nor about to become TLS."""
        encrypted = self.client.transport is not None and \
            self.client.transport.get_extra_info("ssl_object") is not None
        if not encrypted and features.xml.find(f"{{{_STARTTLS}}}starttls") is None:
            self._fail(FatalConnectorError(
                f"the XMPP server for {self.domain} does not offer TLS (STARTTLS); the "
                f"channel never logs in unencrypted"))
            self.client.abort()

    def _session_start(self, _event: object) -> None:
        if not self._login.done():
            self._login.set_result(False)

    def _session_resumed(self, _event: object) -> None:
        if not self._login.done():
            self._login.set_result(True)

    def _failed_auth(self, stanza: slixmpp.StanzaBase) -> None:
        with contextlib.suppress(Exception):
            self._auth_condition = str(stanza["condition"] or "")

    def _failed_all_auth(self, _event: object) -> None:
        condition = self._auth_condition or "not-authorized"
        self._fail(FatalConnectorError(
            f"the XMPP server refused the login of {self.own} (SASL {condition}): check the "
            f"JID and the password"))

    def _connection_failed(self, error: object) -> None:
        if isinstance(error, ssl.SSLCertVerificationError):
            self._invalid_chain(error)
        elif isinstance(error, ssl.SSLError):
            self._fail(FatalConnectorError(
                f"TLS with {self._where()} failed: {error}. With tls: direct the port must "
                f"speak TLS from the first byte (usually 5223; 5222 is STARTTLS)"))
        elif isinstance(error, BaseException):
            self._last_failure = error

    def _reconnect_delay(self, _delay: object) -> None:
        """slixmpp tried every address once and wants to wait: this attempt failed."""
        self._fail(RetryableError(f"cannot reach {self._where()}: {self._last_failure!r}"))

    def _invalid_chain(self, error: object) -> None:
        self._fail(FatalConnectorError(
            f"the TLS certificate of {self._where()} is not valid for {self.domain}: "
            f"{error}. For a private or self-signed certificate set ca_file to its CA"))
        self.client.abort()

    def _stream_error(self, error: slixmpp.StanzaBase) -> None:
        condition = str(error["condition"] or "")
        text = str(error["text"] or "")
        detail = f"stream error {condition}{f': {text}' if text else ''}"
        if condition in ("host-unknown", "host-gone", "not-authorized"):
            self._fail(FatalConnectorError(f"the XMPP server closed the stream: {detail} "
                                           f"(does it serve {self.domain}?)"))
        elif condition == "conflict":
            self.fatal = FatalConnectorError(
                f"another connection logged in as {self.client.boundjid.full} and replaced "
                f"this one ({detail}): give each program on this account its own resource")
        self._last_failure = RuntimeError(detail)

    def _disconnected(self, reason: object) -> None:
        if isinstance(reason, ssl.SSLCertVerificationError):  # STARTTLS refused our trust
            self._invalid_chain(reason)
        why = str(self._last_failure or reason or "connection closed")
        self._fail(RetryableError(f"the XMPP server closed the connection during login: {why}"))
        if not self._ended.done():
            self._ended.set_result(why)

    def _where(self) -> str:
        return f"{self.config.server}:{self.config.port}" if self.config.server else self.domain

    # ---- rooms ----------------------------------------------------------------------------

    async def _join(self, room: str) -> None:
        nick = self.config.room_nick
        try:
            await self.client.plugin["xep_0045"].join_muc_wait(
                slixmpp.JID(room), nick, maxstanzas=0, timeout=JOIN_TIMEOUT)
        except PresenceError as exc:
            condition = str(exc.condition or "")
            self._log("error", f"cannot join room {room} as {nick}: {condition}"
                      f"{f' ({exc.text})' if exc.text else ''}{join_error_hint(condition)}")
            return
        except TimeoutError:
            self._log("error", f"room {room} did not answer the join within "
                      f"{JOIN_TIMEOUT:.0f}s; it is retried on the next reconnect")
            return
        self.rooms[room] = nick

    def _room_presence(self, presence: slixmpp.StanzaBase) -> None:
        """Our own occupant left a room: kicked, banned, the room destroyed or shut down."""
        if presence["type"] != "unavailable":
            return
        sender = str(presence["from"])
        room = bare(sender)
        nick = self.rooms.get(room)
        if nick is None or sender.partition("/")[2] != nick:
            return
        del self.rooms[room]
        self._log("error", f"left room {room}: {left_room_reason(presence.xml)}; it is "
                  f"joined again on the next reconnect")

    # ---- traffic --------------------------------------------------------------------------

    def _message(self, message: slixmpp.StanzaBase) -> None:
        self._on_message(message.xml)

    def _message_error(self, message: slixmpp.StanzaBase) -> None:
        bounce = bounce_of(message.xml)
        waiter = self._waiting.get(bounce.id) if bounce is not None else None
        if bounce is not None and waiter is not None and not waiter.done():
            waiter.set_result(bounce)
        elif bounce is not None:
            self._log("warning", f"{message['from']} answered message {bounce.id or '?'} with "
                      f"an error: {bounce.type}/{bounce.condition}"
                      f"{f' ({bounce.text})' if bounce.text else ''}")

    @property
    def up(self) -> bool:
        return self._login.done() and not self._login.exception() and not self._ended.done()

    async def send(self, message: slixmpp.Message, what: str) -> None:
        """Write one message and wait for the server to have handled it (see the module)."""
        if not self.up or self.client.transport is None:
            raise RetryableError("not connected to the XMPP server", retry_after=1.0)
        stanza_id = str(message["id"])
        waiter = self._waiting[stanza_id] = asyncio.get_running_loop().create_future()
        try:
            message.send()
            while True:
                next_login = self._next_login  # taken before this stream can end
                if await self._confirmed(waiter):
                    break
                try:  # the stream ended first: did the session survive?
                    resumed = await asyncio.wait_for(asyncio.shield(next_login),
                                                     LOGIN_TIMEOUT)
                except TimeoutError:
                    resumed = False
                if not resumed:
                    raise DeliveryUncertain(
                        f"{what}: the connection to the XMPP server ended before it "
                        f"confirmed the message and the session could not be resumed; it "
                        f"may have been delivered and is not sent again")
            if waiter.done():
                raise bounce_error(waiter.result(), what)
        finally:
            self._waiting.pop(stanza_id, None)

    async def _confirmed(self, waiter: asyncio.Future[Bounce]) -> bool:
        """Ping on the current stream: True once answered (or refused), False if it ended."""
        ended = self._ended
        if ended.done():
            return False
        ping = self.client.plugin["xep_0199"].send_ping(
            slixmpp.JID(self.domain), timeout=ANSWER_TIMEOUT)
        await asyncio.wait({ping, waiter, ended}, timeout=ANSWER_TIMEOUT,
                           return_when=asyncio.FIRST_COMPLETED)
        if waiter.done():
            ping.cancel()
            return True
        if not ping.done():
            ping.cancel()
            if ended.done():
                return False
            raise DeliveryUncertain(f"the XMPP server did not confirm the message within "
                                    f"{ANSWER_TIMEOUT:.0f}s; it is not sent again")
        with contextlib.suppress(IqError, IqTimeout):
            ping.result()  # an error answer confirms the order just as well
        return True

    def send_now(self, message: slixmpp.Message) -> None:
        """Write a stanza nobody answers (a chat state); not connected: RetryableError."""
        if not self.up:
            raise RetryableError("not connected to the XMPP server", retry_after=1.0)
        message.send()

    async def ping(self) -> None:
        """Liveness: the server answers (an error counts) within ANSWER_TIMEOUT."""
        try:
            await self.client.plugin["xep_0199"].send_ping(
                slixmpp.JID(self.domain), timeout=ANSWER_TIMEOUT)
        except IqError:
            return
        except IqTimeout:
            raise RetryableError(f"the XMPP server did not answer a ping within "
                                 f"{ANSWER_TIMEOUT:.0f}s") from None

    async def ended(self) -> str:
        """Wait for the stream to end; returns why."""
        return await asyncio.shield(self._ended)

    async def close(self) -> None:
        """Leave cleanly (unavailable presence, ``</stream>``), or cut it after 2 s."""
        if self.client.transport is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.client.disconnect(wait=1.0), 2.0)
        self.abort()

    def abort(self) -> None:
        self.client.cancel_connection_attempt()
        self.client.abort()
