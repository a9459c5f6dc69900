"""The IRC connector: one connection kept by the kit's ``run_connected``.

``connect`` opens the socket (TLS verified against the system's or ``ca_file``'s CAs),
registers (CAP, SASL PLAIN, a fallback nick on 433) and joins the configured channels,
again after every reconnect. ``serve`` reads until the connection ends: it answers the
server's PING, sends its own when the server falls silent and takes a connection whose
PING goes unanswered for dead (reconnect). Kicks, bans and refused joins are logged with
the server's reason.

Inbound: each PRIVMSG is judged by ``_inbound.parse_privmsg`` and journaled. IRC has no
acknowledgements and no queue for an absent nick; what it has is channel history
replayed on JOIN (InspIRCd's chanhistory, ergo, ... in a ``chathistory`` batch, with the
original ``msgid`` and ``time``). The newest server time journaled per channel is kept
in ``ctx.state["seen"]`` after the submit: a replay after a reconnect or restart
delivers the lines from that second on (earlier ones are skipped, same-second ones are
recognised by msgid), so channel messages sent while the bot was away are answered once,
and a replay into a channel without a cursor (the first join) is not answered at all.
Direct messages sent while the bot is away are refused by the server (401) and never
reach it.

Outbound: each line of a part is one PRIVMSG, paced by the token bucket. With
``echo-message`` and ``labeled-response`` every line is labeled and waits for its echo,
whose msgid is the platform id (the first line's for the part); a numeric error with
the label (404 cannot send to channel) is a refusal. The server answers in order and
ends a connection with ERROR, so a line whose echo had not come when ERROR came was
never processed (retryable), while a connection that just vanished leaves it uncertain.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from pathlib import Path

from connectors.irc._conn import IrcConnection, Registration, TokenBucket, register, tls_context
from connectors.irc._inbound import Skip, Viewpoint, parse_privmsg
from connectors.irc._parse import Line, casefold, format_line, message_lines
from connectors.irc.manifest import SPEC, IrcConfig, fallback_nicks, line_budget
from pyclaw_app.channels import ConnectorBase, Limits, ProbeResult, Recent, utf8_len
from pyclaw_app.errors import (
    ConnectorError,
    DeliveryUncertain,
    FatalConnectorError,
    PyclawError,
    RetryableError,
)
from pyclaw_app.model import Address

__all__ = ["CONNECTOR", "IrcConnector"]

CURSOR_KEY = "seen"
_ECHO_TIMEOUT = 20.0
_QUIT_TIMEOUT = 2.0
_HISTORY_BATCHES = ("chathistory", "draft/chathistory")
_JOIN_ERRORS = {
    "403": "no such channel", "405": "joined too many channels", "471": "the channel is full",
    "473": "the channel is invite-only", "474": "the bot is banned from it",
    "475": "it needs a key (write `#channel key` in channels)",
    "477": "it needs a registered, logged-in nick (set sasl_account)",
}
_SEND_ERRORS = {"401": "no such nick or channel", "404": "cannot send to the channel "
                "(not joined, banned, or the channel is moderated)",
                "406": "no such nick", "412": "no text to send"}


class _NotProcessed(Exception):
    """The server closed the link (ERROR) before it answered a labeled line."""


class IrcConnector(ConnectorBase):
    spec = SPEC
    config: IrcConfig

    def __init__(self, name: str, config: IrcConfig) -> None:
        super().__init__(name, config)
        self._bucket = TokenBucket(config.send_burst, config.send_rate)
        self._conn: IrcConnection | None = None
        self._reg: Registration | None = None
        self._labels = itertools.count(1)
        self._pending: dict[str, asyncio.Future[str]] = {}
        self._batches: dict[str, str] = {}
        self._own_ids: Recent[str, bool] = Recent(1024)
        self._cursor: dict[str, str] = {}
        self._closing_error = ""

    @property
    def limits(self) -> Limits:
        return Limits(max_text=line_budget(self.config), text_length=utf8_len)

    # ---- lifecycle ------------------------------------------------------------------------

    def _check_config(self) -> None:
        if self.config.sasl_account:
            self.secret("sasl_password")
        if self.config.ca_file and not Path(self.config.ca_file).is_file():
            raise FatalConnectorError(f"ca_file {self.config.ca_file!r} does not exist")

    async def open(self) -> None:
        self._check_config()
        saved = await self.ctx.state.get(CURSOR_KEY, {})
        self._cursor = {str(k): str(v) for k, v in saved.items()} if isinstance(saved,
                                                                                 dict) else {}
        self.spawn("connection", self.run_connected(self._connect, self._serve))

    async def stop(self) -> None:
        """Say QUIT before the tasks are cancelled, so the nick is free for the next start."""
        conn = self._conn
        if self.running and conn is not None and not conn.closed:
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                await asyncio.wait_for(conn.send("QUIT :pyclaw is stopping"), _QUIT_TIMEOUT)
        await super().stop()

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    async def _open_registered(self, on_nick_in_use: Callable[[str, str], None] | None = None
                               ) -> tuple[IrcConnection, Registration]:
        cfg = self.config
        tls = None
        if cfg.tls:
            try:
                tls = tls_context(cfg.tls_verify, cfg.ca_file)
            except (OSError, ValueError) as exc:
                raise FatalConnectorError(f"cannot read ca_file {cfg.ca_file!r}: {exc}") from exc
        conn = await IrcConnection.open(cfg.host, cfg.port, tls=tls, bucket=self._bucket)
        try:
            reg = await register(
                conn, nicks=fallback_nicks(cfg), username=cfg.username, realname=cfg.realname,
                password=self.secret_or_none("server_password"), account=cfg.sasl_account,
                account_password=self.secret_or_none("sasl_password"),
                on_nick_in_use=on_nick_in_use or _ignore)
        except BaseException:
            await conn.close()
            raise
        return conn, reg

    async def _connect(self) -> str:
        conn, reg = await self._open_registered(self._nick_in_use)
        self._conn, self._reg, self._closing_error = conn, reg, ""
        self._batches.clear()
        try:
            await self._join_all(conn)
        except OSError as exc:
            await conn.close()
            raise RetryableError(f"connection lost while joining channels: {exc!r}") from exc
        login = f", logged in as {reg.account}" if reg.account else ""
        return f"connected as {reg.nick} to {self.config.host}:{self.config.port}{login}"

    def _nick_in_use(self, old: str, new: str) -> None:
        self.ctx.log("warning", f"the nick {old} is in use; trying {new}")

    async def _join_all(self, conn: IrcConnection) -> None:
        """JOIN every configured channel, as few lines as fit in 512 bytes."""
        names, keys = [], []
        for entry in self.config.channels:
            name, _, key = entry.partition(" ")
            names.append(name)
            keys.append(key.strip())
        batch: list[int] = []
        for i in range(len(names)):
            trial = [*batch, i]
            if batch and len(_join_line(names, keys, trial).encode()) > 500:
                await conn.send(_join_line(names, keys, batch))
                trial = [i]
            batch = trial
        if batch:
            await conn.send(_join_line(names, keys, batch))

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
            self._fail_pending()
            await conn.close()

    async def _read_loop(self, conn: IrcConnection) -> None:
        cfg = self.config
        ping_token = ""
        while True:
            try:
                line = await asyncio.wait_for(conn.read(),
                                              cfg.ping_timeout if ping_token else cfg.ping_interval)
            except TimeoutError:
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

    def _fail_pending(self) -> None:
        error = self._closing_error
        for future in self._pending.values():
            if not future.done():
                future.set_exception(_NotProcessed(error) if error
                                     else ConnectionResetError("connection lost"))
        self._pending.clear()

    # ---- what the server says ---------------------------------------------------------------

    async def _dispatch(self, conn: IrcConnection, line: Line) -> None:
        cmd = line.command
        label = line.tags.get("label")
        if label is not None and label in self._pending:
            self._answer(label, line)
        if cmd == "PING":
            await conn.send(format_line("PONG", line.param(-1)))
        elif cmd == "PRIVMSG":
            await self._on_privmsg(line)
        elif cmd == "BATCH":
            ref = line.param(0)
            if ref.startswith("+"):
                self._batches[ref[1:]] = line.param(1)
            else:
                self._batches.pop(ref[1:], None)
        elif cmd == "005":
            self._isupport(line)
        elif cmd == "NICK" and self._is_me(line):
            if self._reg is not None:
                self._reg.nick = line.param(0)
        elif cmd == "JOIN" and self._is_me(line):
            await self._joined(line)
        elif cmd == "KICK" and self._same(line.param(1), self._nick):
            self.ctx.log("warning", f"kicked from {line.param(0)} by "
                         f"{line.source.nick if line.source else 'the server'}: "
                         f"{line.param(2)}; the bot joins it again on its next reconnect")
        elif cmd in _JOIN_ERRORS and line.param(1)[:1] in self._chantypes:
            self.ctx.log("warning", f"cannot join {line.param(1)}: {_JOIN_ERRORS[cmd]} "
                         f"({cmd} {line.param(-1)})")
        elif cmd == "ERROR":
            self._closing_error = line.param(-1)
            raise RetryableError(f"the server closed the link: {line.param(-1)}")

    def _answer(self, label: str, line: Line) -> None:
        future = self._pending.pop(label)
        if future.done():
            return
        if line.command in ("PRIVMSG", "TAGMSG", "ACK"):
            future.set_result(line.tags.get("msgid", ""))
            return
        reason = _SEND_ERRORS.get(line.command, f"refused ({line.command})")
        future.set_exception(FatalConnectorError(
            f"cannot send to {line.param(1) or 'the target'}: {reason}: {line.param(-1)}"))

    def _isupport(self, line: Line) -> None:
        if self._reg is None:
            return
        for token in line.params[1:-1]:
            key, _, value = token.partition("=")
            self._reg.isupport[key.upper()] = value

    async def _joined(self, line: Line) -> None:
        """A JOIN of ours (asked for or forced): the channel's cursor starts at this moment
        if it had none, so a later replay carries only what was said after it."""
        chat = casefold(line.param(0), self._casemapping)
        stamp = line.tags.get("time", "")[:19]
        self.log.info("joined %s", line.param(0))
        if chat not in self._cursor and stamp:
            self._cursor[chat] = stamp
            await self.ctx.state.set(CURSOR_KEY, dict(self._cursor))

    async def _on_privmsg(self, line: Line) -> None:
        ctx = self.ctx
        if self._is_me(line):
            if line.tags.get("msgid"):
                self._own_ids.remember(line.tags["msgid"], True)
            return
        msgid = line.tags.get("msgid", "")
        if msgid and msgid in self._own_ids:
            return
        view = Viewpoint(channel=self.name, nick=self._nick, chantypes=self._chantypes,
                         casemapping=self._casemapping)
        parsed = parse_privmsg(line, view, own_ids=self._own_ids)
        if isinstance(parsed, Skip):
            if parsed.level:
                ctx.log(parsed.level, f"skipped {parsed.reason}")
            return
        stamp = line.tags.get("time", "")[:19]
        chat = parsed.address.chat
        if self._batches.get(line.tags.get("batch", "")) in _HISTORY_BATCHES:
            seen = self._cursor.get(chat, "")
            if not (seen and msgid and stamp and stamp >= seen):
                return  # history from before the bot's time in the channel, or unmatchable
        try:
            await ctx.submit(parsed)
        except PyclawError as exc:  # one lost message must not end the connection
            ctx.log("error", f"could not journal message {parsed.platform_id}: {exc}")
            return
        if parsed.is_group and stamp and stamp > self._cursor.get(chat, ""):
            self._cursor[chat] = stamp
            await ctx.state.set(CURSOR_KEY, dict(self._cursor))

    @property
    def _nick(self) -> str:
        return self._reg.nick if self._reg is not None else self.config.nick

    @property
    def _casemapping(self) -> str:
        return self._reg.casemapping if self._reg is not None else "rfc1459"

    @property
    def _chantypes(self) -> str:
        return self._reg.chantypes if self._reg is not None else "#&"

    def _same(self, a: str, b: str) -> bool:
        return casefold(a, self._casemapping) == casefold(b, self._casemapping)

    def _is_me(self, line: Line) -> bool:
        return line.source is not None and self._same(line.source.nick, self._nick)

    # ---- outbound -------------------------------------------------------------------------

    def _live(self) -> tuple[IrcConnection, Registration]:
        conn, reg = self._conn, self._reg
        if conn is None or reg is None or conn.closed or not self.running:
            raise RetryableError("not connected to the IRC server", retry_after=1.0)
        return conn, reg

    async def send_part(self, address: Address, text: str, reply_to: str | None) -> str:
        """Each line of the part as one PRIVMSG; the first carries ``+draft/reply``."""
        conn, reg = self._live()
        lines = message_lines(text)
        confirmed = {"echo-message", "labeled-response"} <= reg.caps
        first_id = ""
        for i, body in enumerate(lines):
            tags: dict[str, str] = {}
            if i == 0 and reply_to and "message-tags" in reg.caps \
                    and not reply_to.startswith("irc-"):
                tags["+draft/reply"] = reply_to
            msgid = await self._send_line(conn, "PRIVMSG", address.chat, body, tags,
                                          confirmed=confirmed, first=i == 0)
            first_id = first_id or msgid
        return first_id or f"irc-{time.time_ns()}"

    async def _send_line(self, conn: IrcConnection, command: str, target: str, body: str | None,
                         tags: dict[str, str], *, confirmed: bool, first: bool) -> str:
        """One line; with echo + labels, waits for the echo and returns its msgid."""
        future: asyncio.Future[str] | None = None
        if confirmed:
            label = f"p{next(self._labels)}"
            tags = {"label": label, **tags}
            future = self._pending[label] = asyncio.get_running_loop().create_future()
        params = (target,) if body is None else (target, body)
        written = conn.written
        try:
            await conn.send(format_line(command, *params, tags=tags))
            if future is None:
                return ""
            return await asyncio.wait_for(asyncio.shield(future), _ECHO_TIMEOUT)
        except _NotProcessed as exc:
            if first:
                raise RetryableError(f"the server closed the link before it took the "
                                     f"message ({exc})", retry_after=1.0) from exc
            raise DeliveryUncertain("the server closed the link in the middle of a "
                                    "multi-line part; its first lines went out") from exc
        except FatalConnectorError as exc:
            if first:
                self.ctx.log("warning", str(exc))
                raise
            raise DeliveryUncertain(f"{exc}, after the part's first lines went out") from exc
        except (OSError, TimeoutError) as exc:
            if first and conn.written == written:
                raise RetryableError(f"not sent: {exc!r}", retry_after=1.0) from exc
            raise DeliveryUncertain(f"the connection was lost before the server confirmed "
                                    f"the line ({exc!r}); it may have been delivered") from exc
        finally:
            if future is not None:
                self._pending = {k: f for k, f in self._pending.items() if f is not future}

    async def typing(self, address: Address) -> None:
        """IRCv3 ``+typing=active`` on a TAGMSG, where the server carries client tags."""
        conn, reg = self._live()
        if "message-tags" in reg.caps:
            with contextlib.suppress(ConnectorError):
                await self._send_line(conn, "TAGMSG", address.chat, None,
                                      {"+typing": "active"}, confirmed=False, first=True)

    async def probe(self) -> ProbeResult:
        try:
            self._check_config()
            conn, reg = await self._open_registered()
        except ConnectorError as exc:
            return ProbeResult(False, str(exc))
        try:
            with contextlib.suppress(OSError):
                await conn.send("QUIT :pyclaw connection test")
        finally:
            await conn.close()
        login = f", logged in as {reg.account}" if reg.account else ""
        return ProbeResult(True, f"connected as {reg.nick} to {self.config.host}:"
                                 f"{self.config.port}{login}")


def _ignore(_old: str, _new: str) -> None:
    """Nick fallbacks during Test connection are not the running channel's news."""


def _join_line(names: list[str], keys: list[str], picked: list[int]) -> str:
    """``JOIN #a,#b key_a,key_b`` with the keyed channels first, as RFC 2812 pairs them."""
    order = sorted(picked, key=lambda i: not keys[i])
    channels = ",".join(names[i] for i in order)
    used = [keys[i] for i in order if keys[i]]
    return format_line("JOIN", channels, ",".join(used)) if used else format_line("JOIN",
                                                                                   channels)


CONNECTOR = IrcConnector
