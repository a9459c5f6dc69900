"""The Twitch chat connector: one IRC connection to Twitch, kept by the kit's ``run_connected``.

``connect`` opens the socket (TLS verified), asks for Twitch's capabilities (tags,
commands, membership), logs in with ``PASS oauth:<token>`` and ``NICK <login>`` (a wrong
or expired token is Twitch's NOTICE "Login authentication failed": fatal, with a
sentence saying what to do), and JOINs the configured channels, again after every
reconnect. ``serve`` reads until the connection ends: it answers PING, sends its own
when the server falls silent, and on RECONNECT (Twitch's maintenance notice) lets the
message in flight be answered and reconnects at once.

Inbound: each PRIVMSG is read by ``_inbound.parse_privmsg`` and journaled; Twitch keeps
no history and delivers nothing to a bot that is not in the channel, so there is no
cursor to resume (a copy that arrives twice has the same ``id`` tag, which the journal
recognises). Whispers are not chat on Twitch any more (its Helix API) and are not read.

Outbound: one PRIVMSG per part, one at a time, paced by ``_pace.ChatPacer`` to Twitch's
limits (known per channel from USERSTATE: moderator, VIP, broadcaster). Twitch answers
an accepted message with USERSTATE (its ``id`` tag is the platform id) and a dropped
one with a NOTICE whose ``msg-id`` says why; a reply quotes its message with the
``reply-parent-msg-id`` tag. A line written whose answer never came (the connection
ended first) is uncertain.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from connectors.irc._conn import IrcConnection, TokenBucket, tls_context
from connectors.irc._parse import Line, format_line
from connectors.twitch._inbound import Skip, chat_line, elevated, parse_privmsg, send_outcome
from connectors.twitch._pace import ChatPacer
from connectors.twitch.manifest import SPEC, TwitchConfig
from pyclaw_app.channels import ConnectorBase, ProbeResult
from pyclaw_app.errors import (
    ConnectorError,
    DeliveryUncertain,
    FatalConnectorError,
    PyclawError,
    RetryableError,
)
from pyclaw_app.model import Address

__all__ = ["CONNECTOR", "TwitchConnector"]

CAPS = "twitch.tv/tags twitch.tv/commands twitch.tv/membership"
_LOGIN_TIMEOUT = 30.0
_CONFIRM_TIMEOUT = 15.0
_JOIN_WAIT = 10.0
"""Seconds a send waits for the bot to be (back) in the channel before it is retried."""
_RECONNECT_GRACE = 3.0
"""Seconds after RECONNECT during which the message in flight may still be answered."""
_AUTH_FAILURES = {
    "login authentication failed": "Twitch refused the login (Login authentication failed): "
    "the oauth_token is wrong or expired, or it is not a token of the account {login!r}; "
    "make a new user access token with the chat:read and chat:edit scopes",
    "improperly formatted auth": "Twitch refused the login (Improperly formatted auth): "
    "the oauth_token is not a Twitch user access token",
}


def _auth_failure(line: Line, login: str) -> FatalConnectorError | None:
    text = line.param(-1).strip().lower()
    if line.command == "NOTICE" and text in _AUTH_FAILURES:
        return FatalConnectorError(_AUTH_FAILURES[text].format(login=login))
    return None


class TwitchConnector(ConnectorBase):
    spec = SPEC
    config: TwitchConfig

    def __init__(self, name: str, config: TwitchConfig) -> None:
        super().__init__(name, config)
        self._pacer = ChatPacer(config.messages_per_window,
                                config.moderator_messages_per_window, config.rate_window)
        self._lines = TokenBucket(100, 10.0)
        """Every line we write: only a guard against a runaway loop; PRIVMSGs are paced by
        ``_pacer`` and JOINs by ``_joins``."""
        self._joins = TokenBucket(config.joins_per_10s, config.joins_per_10s / 10)
        """A token per channel joined: Twitch counts each channel of a JOIN line."""
        self._conn: IrcConnection | None = None
        self._login = config.login
        self._user_id = ""
        self._joined: set[str] = set()
        self._change = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self._pending: tuple[str, asyncio.Future[str]] | None = None
        self._draining = False
        self._drain_until = 0.0

    # ---- lifecycle ------------------------------------------------------------------------

    def _check_config(self) -> str:
        if not self.config.channels:
            raise FatalConnectorError("no channels to join: add the channels whose chat the "
                                      "bot should read (e.g. #yourstream)")
        if self.config.ca_file and not Path(self.config.ca_file).is_file():
            raise FatalConnectorError(f"ca_file {self.config.ca_file!r} does not exist")
        return self.secret("oauth_token").removeprefix("oauth:")

    async def open(self) -> None:
        self._check_config()
        self.spawn("connection", self.run_connected(self._connect, self._serve))

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    async def _logged_in(self) -> tuple[IrcConnection, str, str]:
        """A connection Twitch accepted the login on: (connection, login, user id)."""
        token = self._check_config()
        cfg = self.config
        tls = None
        if cfg.tls:
            try:
                tls = tls_context(cfg.tls_verify, cfg.ca_file)
            except (OSError, ValueError) as exc:
                raise FatalConnectorError(f"cannot read ca_file {cfg.ca_file!r}: {exc}") from exc
        conn = await IrcConnection.open(cfg.host, cfg.port, tls=tls, bucket=self._lines)
        try:
            login, user_id = await asyncio.wait_for(self._log_in(conn, token), _LOGIN_TIMEOUT)
        except TimeoutError as exc:
            await conn.close()
            raise RetryableError(f"Twitch did not finish the login in {_LOGIN_TIMEOUT:.0f}s"
                                 ) from exc
        except (OSError, EOFError) as exc:
            await conn.close()
            raise RetryableError(f"connection lost during the login: {exc}") from exc
        except BaseException:
            await conn.close()
            raise
        return conn, login, user_id

    async def _log_in(self, conn: IrcConnection, token: str) -> tuple[str, str]:
        """CAP REQ, PASS, NICK; done at GLOBALUSERSTATE (or at the end of the MOTD when the
        server did not grant Twitch's tags, as a plain IRC server would not)."""
        await conn.send(f"CAP REQ :{CAPS}")
        await conn.send(f"PASS oauth:{token}")
        await conn.send(format_line("NICK", self.config.login))
        tagged = False
        login = self.config.login
        while True:
            line = await conn.read()
            if line is None:
                continue
            failure = _auth_failure(line, self.config.login)
            if failure is not None:
                raise failure
            if line.command == "CAP" and line.param(1) == "ACK":
                tagged = "twitch.tv/tags" in line.param(-1).split()
            elif line.command == "001":
                login = line.param(0).lower() or login
            elif line.command == "GLOBALUSERSTATE":
                return login, line.tags.get("user-id", "")
            elif line.command == "376" and not tagged:
                return login, ""
            elif line.command == "PING":
                await conn.send(format_line("PONG", line.param(-1)))

    async def _connect(self) -> str:
        conn, login, user_id = await self._logged_in()
        self._conn, self._login, self._user_id = conn, login, user_id
        self._joined.clear()
        self._draining = False
        try:
            await self._join_all(conn)
        except OSError as exc:
            await conn.close()
            raise RetryableError(f"connection lost while joining channels: {exc!r}") from exc
        return f"connected as {login} to {self.config.host}:{self.config.port}"

    async def _join_all(self, conn: IrcConnection) -> None:
        """JOIN the channels in lines of up to 10, paced to Twitch's join limit."""
        names = self.config.channels
        for start in range(0, len(names), 10):
            batch = names[start:start + 10]
            for _ in batch:
                await self._joins.take()
            await conn.send(format_line("JOIN", ",".join(batch)))

    async def _serve(self) -> None:
        conn = self._conn
        if conn is None:
            raise RetryableError("not connected")
        try:
            await self._read_loop(conn)
        except (OSError, EOFError) as exc:
            raise RetryableError(f"connection lost: {exc}") from exc
        finally:
            self._conn = None
            self._joined.clear()
            self._changed()
            if self._pending is not None and not self._pending[1].done():
                self._pending[1].set_exception(ConnectionResetError("connection lost"))
            await conn.close()

    async def _read_loop(self, conn: IrcConnection) -> None:
        cfg = self.config
        ping_token = ""
        while True:
            if self._draining:
                if self._pending is None or time.monotonic() >= self._drain_until:
                    raise RetryableError("Twitch asked the bot to reconnect (RECONNECT: "
                                         "server maintenance)", retry_after=0.0)
                timeout = self._drain_until - time.monotonic()
            else:
                timeout = cfg.ping_timeout if ping_token else cfg.ping_interval
            try:
                line = await asyncio.wait_for(conn.read(), max(timeout, 0.01))
            except TimeoutError:
                if self._draining:
                    continue
                if ping_token:
                    raise RetryableError(f"no answer to PING in {cfg.ping_timeout:.0f}s: "
                                         "the connection is dead") from None
                ping_token = f"pyclaw-{time.monotonic_ns()}"
                await conn.send(format_line("PING", ping_token))
                continue
            ping_token = ""  # any line proves the connection alive
            self.ctx.heartbeat()
            if line is not None:
                await self._dispatch(conn, line)

    def _changed(self) -> None:
        """Wake the sends waiting for a channel to be joined (or the connection to end)."""
        event, self._change = self._change, asyncio.Event()
        event.set()

    # ---- what the server says ---------------------------------------------------------------

    async def _dispatch(self, conn: IrcConnection, line: Line) -> None:
        cmd = line.command
        chat = line.param(0).lower()
        if cmd == "PING":
            await conn.send(format_line("PONG", line.param(-1)))
        elif cmd == "PRIVMSG":
            await self._on_privmsg(line)
        elif cmd == "USERSTATE":
            self._pacer.elevated[chat] = elevated(line.tags)
            pending = self._pending
            if pending is not None and pending[0] == chat and not pending[1].done():
                pending[1].set_result(line.tags.get("id") or f"twitch-sent-{time.time_ns()}")
            elif chat not in self._joined:
                self._joined.add(chat)
                self.log.info("joined %s", chat)
                self._changed()
        elif cmd == "ROOMSTATE" and line.tags.get("slow", "").isdigit():
            self._pacer.slow[chat] = float(line.tags["slow"])
        elif cmd == "NOTICE":
            self._on_notice(line, chat)
        elif cmd == "PART" and self._is_me(line):
            self._joined.discard(chat)
            self.ctx.log("warning", f"the bot left {chat}; it joins again on its next "
                         "reconnect")
        elif cmd == "CLEARCHAT" and line.param(1) and (
                line.param(1).lower() == self._login
                or (self._user_id and line.tags.get("target-user-id") == self._user_id)):
            duration = line.tags.get("ban-duration")
            what = f"timed out for {duration} s" if duration else "banned"
            self.ctx.log("warning", f"the bot was {what} in {chat} by its moderators")
        elif cmd == "RECONNECT" and not self._draining:
            self.ctx.log("info", "Twitch asked the bot to reconnect (server maintenance)")
            self._draining = True
            self._drain_until = time.monotonic() + _RECONNECT_GRACE
            self._changed()
        elif cmd == "GLOBALUSERSTATE":
            self._user_id = line.tags.get("user-id", self._user_id)
        # USERNOTICE (subs, raids), CLEARMSG, HOSTTARGET, JOIN/PART of others, WHISPER:
        # events of the channel, not messages for the assistant.

    def _on_notice(self, line: Line, chat: str) -> None:
        msg_id = line.tags.get("msg-id", "")
        text = line.param(-1)
        pending = self._pending
        if pending is not None and pending[0] == chat and not pending[1].done():
            outcome = send_outcome(msg_id, text, chat, self.config.rate_window)
            if outcome is not None:
                if msg_id == "msg_ratelimit":
                    self._pacer.pause()
                pending[1].set_exception(outcome)
                return
        failure = _auth_failure(line, self._login)
        if failure is not None:
            raise failure
        if msg_id == "msg_channel_suspended":
            self.ctx.log("warning", f"cannot join {chat}: the channel does not exist or has "
                         f"been suspended (Twitch: {text})")
        elif msg_id:
            self.ctx.log("info", f"Twitch notice in {chat} ({msg_id}): {text}")

    async def _on_privmsg(self, line: Line) -> None:
        ctx = self.ctx
        parsed = parse_privmsg(line, channel=self.name, login=self._login,
                               user_id=self._user_id)
        if isinstance(parsed, Skip):
            if parsed.level:
                ctx.log(parsed.level, f"skipped {parsed.reason}")
            return
        try:
            await ctx.submit(parsed)
        except PyclawError as exc:  # one lost message must not end the connection
            ctx.log("error", f"could not journal message {parsed.platform_id}: {exc}")

    def _is_me(self, line: Line) -> bool:
        return line.source is not None and line.source.nick.lower() == self._login

    # ---- outbound -------------------------------------------------------------------------

    def _ready_now(self, chat: str) -> IrcConnection | None:
        conn = self._conn
        if (self.running and conn is not None and not conn.closed and not self._draining
                and chat in self._joined):
            return conn
        return None

    async def _ready(self, chat: str) -> IrcConnection:
        """The live connection once the bot is in ``chat``, waiting a little for a
        reconnect or a JOIN to finish."""
        if chat not in self.config.channels:
            raise FatalConnectorError(f"cannot send to {chat}: it is not one of the "
                                      "channels the bot joins")
        deadline = time.monotonic() + _JOIN_WAIT
        while (conn := self._ready_now(chat)) is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.running:
                raise RetryableError(f"not in {chat}'s chat yet (connecting or joining)",
                                     retry_after=1.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._change.wait(), remaining)
        return conn

    async def send_part(self, address: Address, text: str, reply_to: str | None) -> str:
        """One PRIVMSG, paced, answered by USERSTATE (sent) or NOTICE (dropped, and why)."""
        chat = address.chat.lower()
        body = chat_line(text)
        if not body:
            raise FatalConnectorError("nothing to send: the part is blank")
        async with self._send_lock:
            await self._ready(chat)
            body = self._pacer.unique(chat, body)
            await self._pacer.take(chat)
            conn = await self._ready(chat)
            tags = ({"reply-parent-msg-id": reply_to}
                    if reply_to and not reply_to.startswith("twitch-") else None)
            future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            self._pending = (chat, future)
            written = conn.written
            try:
                await conn.send(format_line("PRIVMSG", chat, body, tags=tags))
                self._pacer.record(chat, body)
                return await asyncio.wait_for(asyncio.shield(future), _CONFIRM_TIMEOUT)
            except FatalConnectorError as exc:
                self.ctx.log("warning", str(exc))
                raise
            except (OSError, EOFError, TimeoutError) as exc:
                if conn.written == written:
                    raise RetryableError(f"not sent: {exc!r}", retry_after=1.0) from exc
                raise DeliveryUncertain(f"the connection ended before Twitch answered the "
                                        f"message ({exc!r}); it may have been delivered"
                                        ) from exc
            finally:
                self._pending = None
                if not future.done():
                    future.cancel()

    async def probe(self) -> ProbeResult:
        try:
            conn, login, _user_id = await self._logged_in()
        except ConnectorError as exc:
            return ProbeResult(False, str(exc))
        await conn.close()
        return ProbeResult(True, f"logged in to Twitch chat as {login}")


CONNECTOR = TwitchConnector
