"""One IRC connection: the socket (TLS or not), paced writes, and registration.

Every line we write passes one token bucket (``send_burst`` lines at once, then
``send_rate`` a second), so no burst of reply lines, JOINs or PONGs can get the bot
killed for Excess Flood. Registration negotiates IRCv3 capabilities (CAP LS 302),
logs in with SASL PLAIN, falls back to another nick on 433, and ends at 001; its
failures are sorted the way the reconnect loop needs them: a wrong password or an
untrusted certificate is fatal with a sentence a user can act on, a refused or
dropped connection is retryable.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from connectors.irc._parse import Line, format_line, parse_line
from pyclaw_app.errors import FatalConnectorError, RetryableError

__all__ = ["WANTED_CAPS", "IrcConnection", "Registration", "TokenBucket", "register",
           "tls_context"]


WANTED_CAPS = ("message-tags", "echo-message", "labeled-response", "server-time", "batch",
               "account-tag", "multi-prefix")
"""Capabilities used when the server offers them (``sasl`` is asked for only with an
account): msgid and time tags, our own lines echoed with their msgid, replies matched
to what we sent, history replays marked as such, senders' accounts."""
_READ_LIMIT = 16 * 1024  # 8191 bytes of tags + 512 of message, with room to spare
_SASL_CHUNK = 400
_REGISTER_TIMEOUT = 30.0
_FATAL_NUMERICS = {
    "432": "the server refuses the nick {nick!r} (432 erroneous nickname)",
    "464": "the server refused the server password (464 password mismatch)",
    "465": "this host is banned from the server (465)",
    "904": "SASL login failed for account {account!r}: wrong account name or password (904)",
    "902": "SASL login refused: the account {account!r} is locked (902)",
    "908": "the server does not accept SASL PLAIN (908)",
}


def tls_context(verify: bool, ca_file: str) -> ssl.SSLContext:
    """The system's trusted CAs, or ``ca_file``'s; no verification only when asked."""
    context = ssl.create_default_context(cafile=ca_file or None)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class TokenBucket:
    """``burst`` lines at once, then ``rate`` lines a second; FIFO for every writer."""

    def __init__(self, burst: int, rate: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.burst = burst
        self.rate = rate
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def wait_time(self) -> float:
        """Seconds until a line may go (0 when a token is there)."""
        self._refill()
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate

    async def take(self) -> None:
        async with self._lock:
            wait = self.wait_time()
            if wait > 0:  # one sleep is enough: nobody else takes tokens while we hold the lock
                await asyncio.sleep(wait)
                self._refill()
            self._tokens -= 1


@dataclass
class Registration:
    """What registration settled: the nick we got and what the server offers."""

    nick: str
    caps: set[str] = field(default_factory=set)
    isupport: dict[str, str] = field(default_factory=dict)
    account: str = ""
    server: str = ""

    @property
    def casemapping(self) -> str:
        return self.isupport.get("CASEMAPPING", "rfc1459")

    @property
    def chantypes(self) -> str:
        return self.isupport.get("CHANTYPES", "#&")


class _LineProtocol(asyncio.Protocol):
    """Bytes in, whole lines out, in order, and the end of the connection only after every
    line that came before it: asyncio's StreamReader raises a failed write's error before
    the lines still in its buffer, which would hide the server's last words (ERROR)."""

    def __init__(self) -> None:
        self.lines: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._can_write = asyncio.Event()
        self._can_write.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (end := self._buffer.find(b"\n")) >= 0:
            self.lines.put_nowait(bytes(self._buffer[:end + 1]))
            del self._buffer[:end + 1]
        if len(self._buffer) > _READ_LIMIT and self.transport is not None:
            self.transport.abort()  # no line is that long: not an IRC server

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lines.put_nowait(None)
        self._can_write.set()

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    async def writable(self) -> None:
        await self._can_write.wait()


class IrcConnection:
    """A socket to the server with paced, CR LF-terminated writes and decoded reads."""

    def __init__(self, transport: asyncio.Transport, protocol: _LineProtocol,
                 bucket: TokenBucket) -> None:
        self._transport = transport
        self._protocol = protocol
        self._bucket = bucket
        self.written = 0
        """Lines handed to the socket: a send that failed before its line was written
        certainly did not go out."""

    @classmethod
    async def open(cls, host: str, port: int, *, tls: ssl.SSLContext | None,
                   bucket: TokenBucket, timeout: float = 20.0) -> IrcConnection:
        loop = asyncio.get_running_loop()
        try:
            transport, protocol = await asyncio.wait_for(
                loop.create_connection(_LineProtocol, host, port, ssl=tls,
                                       server_hostname=host if tls else None), timeout)
        except ssl.SSLCertVerificationError as exc:
            raise FatalConnectorError(
                f"TLS refused: the certificate of {host}:{port} is not trusted "
                f"({exc.verify_message}); set ca_file to the CA that signed it") from exc
        except ssl.SSLError as exc:
            raise RetryableError(f"TLS handshake with {host}:{port} failed: {exc.reason or exc}"
                                 " (is this a TLS port? turn tls off for a plain one)") from exc
        except (OSError, TimeoutError) as exc:
            raise RetryableError(f"cannot reach {host}:{port}: {exc!r}") from exc
        assert isinstance(transport, asyncio.Transport)
        return cls(transport, protocol, bucket)

    @property
    def closed(self) -> bool:
        return self._transport.is_closing()

    async def send(self, line: str) -> None:
        """Write one line once the bucket allows it; ConnectionResetError when the socket
        is already gone (then the line was certainly not written)."""
        await self._bucket.take()
        await self._protocol.writable()
        if self._transport.is_closing():
            raise ConnectionResetError("the IRC connection is closed")
        self._transport.write(line.encode("utf-8", "replace")[:8191 + 512] + b"\r\n")
        self.written += 1

    async def read(self) -> Line | None:
        """The next line (``None`` for one without a command); EOFError once the server
        closed the connection and every line before that was read."""
        raw = await self._protocol.lines.get()
        if raw is None:
            self._protocol.lines.put_nowait(None)  # every later read ends too
            raise EOFError("the server closed the connection")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:  # a legacy client's Latin-1, relayed as it was typed
            text = raw.decode("cp1252", "replace")
        return parse_line(text)

    async def close(self) -> None:
        if not self._transport.is_closing():
            self._transport.close()
        await asyncio.sleep(0)
        if not self._transport.is_closing():
            self._transport.abort()


async def register(conn: IrcConnection, *, nicks: list[str], username: str, realname: str,
                   password: str | None, account: str, account_password: str | None,
                   on_nick_in_use: Callable[[str, str], None]) -> Registration:
    """CAP LS 302, PASS/NICK/USER, CAP REQ, SASL PLAIN, CAP END; returns at 001."""
    try:
        return await asyncio.wait_for(
            _register(conn, nicks=nicks, username=username, realname=realname,
                      password=password, account=account, account_password=account_password,
                      on_nick_in_use=on_nick_in_use), _REGISTER_TIMEOUT)
    except TimeoutError as exc:
        raise RetryableError(f"the server did not finish registration in "
                             f"{_REGISTER_TIMEOUT:.0f}s") from exc
    except (OSError, EOFError) as exc:
        raise RetryableError(f"connection lost during registration: {exc}") from exc


async def _register(conn: IrcConnection, *, nicks: list[str], username: str, realname: str,
                    password: str | None, account: str, account_password: str | None,
                    on_nick_in_use: Callable[[str, str], None]) -> Registration:
    reg = Registration(nick=nicks[0])
    tried = 0
    offered: set[str] = set()
    cap_done = False
    await conn.send("CAP LS 302")
    if password:
        await conn.send(format_line("PASS", password))
    await conn.send(format_line("NICK", reg.nick))
    await conn.send(format_line("USER", username, "0", "*", realname))
    while True:
        line = await conn.read()
        if line is None:
            continue
        cmd = line.command
        if cmd == "PING":
            await conn.send(format_line("PONG", line.param(-1)))
        elif cmd == "CAP" and line.param(1) == "LS":
            offered |= {c.partition("=")[0] for c in line.param(-1).split()}
            if line.param(2) != "*":  # the last LS line
                wanted = [c for c in WANTED_CAPS if c in offered]
                if account:
                    if "sasl" not in offered:
                        raise FatalConnectorError(
                            "the server does not offer SASL, so the account "
                            f"{account!r} cannot log in; clear sasl_account or use a "
                            "server with SASL")
                    wanted.append("sasl")
                if wanted:
                    await conn.send(format_line("CAP", "REQ", " ".join(wanted)))
                else:
                    cap_done = True
                    await conn.send("CAP END")
        elif cmd == "CAP" and line.param(1) in ("ACK", "NAK"):
            granted = set(line.param(-1).split()) if line.param(1) == "ACK" else set()
            reg.caps |= {c.lstrip("-~=") for c in granted}
            if "sasl" in reg.caps and account and not reg.account:
                await conn.send("AUTHENTICATE PLAIN")
            elif not cap_done:
                if account and line.param(1) == "NAK":
                    raise FatalConnectorError("the server refused the SASL capability")
                cap_done = True
                await conn.send("CAP END")
        elif cmd == "AUTHENTICATE" and line.param(0) == "+":
            await _send_plain(conn, account, account_password or "")
        elif cmd in ("900", "903"):
            reg.account = line.param(2) if cmd == "900" else (reg.account or account)
            if cmd == "903" and not cap_done:
                cap_done = True
                await conn.send("CAP END")
        elif cmd in _FATAL_NUMERICS:
            raise FatalConnectorError(_FATAL_NUMERICS[cmd].format(nick=reg.nick,
                                                                   account=account))
        elif cmd in ("433", "436"):
            tried += 1
            if tried >= len(nicks):
                raise RetryableError(f"every nick is in use ({', '.join(nicks)})")
            old, reg.nick = reg.nick, nicks[tried]
            on_nick_in_use(old, reg.nick)
            await conn.send(format_line("NICK", reg.nick))
        elif cmd == "001":
            reg.nick = line.param(0) or reg.nick
            reg.server = line.source.nick if line.source else ""
            return reg
        elif cmd == "ERROR":
            raise RetryableError(f"the server closed the link: {line.param(-1)}")


async def _send_plain(conn: IrcConnection, account: str, password: str) -> None:
    """``AUTHENTICATE`` with base64(authzid NUL authcid NUL password) in 400-byte pieces,
    and a ``+`` after a last piece of exactly 400 (sasl-3.1)."""
    payload = base64.b64encode(f"{account}\0{account}\0{password}".encode()).decode()
    chunks = [payload[i:i + _SASL_CHUNK] for i in range(0, len(payload), _SASL_CHUNK)]
    if not chunks or len(chunks[-1]) == _SASL_CHUNK:
        chunks.append("+")
    for chunk in chunks:
        await conn.send(f"AUTHENTICATE {chunk}")
