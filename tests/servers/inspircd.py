"""A real IRC network for the tests: InspIRCd 3 with Atheme services, started once per session.

``await shared_server()`` starts ``/usr/sbin/inspircd`` on 127.0.0.1 with a generated config
in a temp directory, and ``/usr/bin/atheme-services`` linked to it as its services server
(NickServ accounts, SaslServ for SASL PLAIN). Ports: plain, TLS (a self-signed certificate
made with ``openssl``, trusted by passing it as the CA), and a "strict" plain port whose
connect class kills a client for Excess Flood after a short burst (fakelag off), so pacing
can be proven, and PINGs every second, so a client that does not answer them is dropped.
IRCv3: message-tags, msgid, server-time, echo-message, labeled-response, batch,
account-tag; channels get ``+ntH 50:1d`` (chanhistory) and their creator ``+o``, so
history is replayed to a joining client in a ``chathistory`` batch. Accounts in
:data:`ACCOUNTS` are registered
through NickServ at start. The processes are killed at exit; a server that cannot start
raises with its output, so the test fails loudly instead of skipping.

Why not ergo: Debian's ``ergo`` package is a quantum chemistry program; the ergo IRC
server is not packaged. InspIRCd + Atheme are (and are what many networks run).

:class:`IrcUser` is a minimal asyncio IRC client (the user in the tests) on the connector's
own line parser; :class:`IrcProxy` is a line-aware TCP proxy between the connector and
the server that can cut every connection, stall it (a dead link that stays open), close a
link with ERROR before a PRIVMSG is taken (the server dropping us), answer a PRIVMSG with
the server's 404 refusal, or forward one and cut the link before its echo comes back.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import shutil
import ssl
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from connectors.irc._parse import Line, format_line, parse_line
from tests.servers.proxy import Pair, TcpProxy
from tests.servers.shared import Shared, free_port, listening, stop_process

__all__ = ["ACCOUNTS", "OPER", "IrcError", "IrcProxy", "IrcServer", "IrcUser", "shared_server"]

INSPIRCD = "/usr/sbin/inspircd"
ATHEME = "/usr/bin/atheme-services"
SERVER_NAME = "irc.pyclaw.test"
SERVICES_NAME = "services.pyclaw.test"
ACCOUNTS = {"pyclawbot": "pyclaw-secret-1", "alice": "alice-secret-1"}
OPER = ("admin", "oper-secret-1")
STRICT_BURST = 5
"""Lines a client on the strict port may send at once (its threshold) ..."""
STRICT_RATE = 4.0
"""... and then per second (its commandrate), before it is killed for Excess Flood."""
STRICT_PINGFREQ = 1
"""Seconds between the server's PINGs on the strict port: a client that does not answer
is dropped for Ping timeout within about two of them."""
_LINK_PASSWORD = "link-secret-1"
_START_TIMEOUT = 20.0


@dataclass
class IrcServer:
    """The InspIRCd and Atheme processes and the files they run from."""

    root: Path
    port: int = field(default_factory=free_port)
    tls_port: int = field(default_factory=free_port)
    strict_port: int = field(default_factory=free_port)
    link_port: int = field(default_factory=free_port)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def ca_file(self) -> str:
        return str(self.root / "server.crt")

    def prepare(self) -> None:
        for tool in (INSPIRCD, ATHEME, "openssl"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"{tool} is not installed "
                                   "(apt-get install inspircd atheme-services openssl)")
        done = subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
             "-keyout", "server.key", "-out", "server.crt"],
            cwd=self.root, capture_output=True, text=True, check=False)
        if done.returncode:
            raise RuntimeError(f"openssl failed: {done.stderr}")
        (self.root / "inspircd.conf").write_text(self._inspircd_conf(), "utf-8")
        (self.root / "atheme.conf").write_text(self._atheme_conf(), "utf-8")

    def _inspircd_conf(self) -> str:
        r = self.root
        modules = ("cap ircv3 ircv3_echomessage ircv3_msgid ircv3_servertime ircv3_ctctags "
                   "ircv3_labeledresponse ircv3_batch ircv3_accounttag chanhistory sasl "
                   "services_account spanningtree ssl_gnutls sapart sajoin").split()
        common = ('timeout="20" localmax="1000" globalmax="1000" '
                  'maxchans="200" recvq="16K" softsendq="16K" hardsendq="4M" '
                  'resolvehostnames="no" limit="5000"')
        return "\n".join([
            f'<server name="{SERVER_NAME}" description="pyclaw test" network="PyclawTest">',
            '<admin name="test" nick="test" email="test@localhost">',
            f'<bind address="127.0.0.1" port="{self.port}" type="clients">',
            f'<bind address="127.0.0.1" port="{self.strict_port}" type="clients">',
            f'<bind address="127.0.0.1" port="{self.tls_port}" type="clients" '
            'sslprofile="Clients">',
            f'<bind address="127.0.0.1" port="{self.link_port}" type="servers">',
            f'<connect name="strict" allow="*" port="{self.strict_port}" {common} '
            f'threshold="{STRICT_BURST}" commandrate="{int(STRICT_RATE * 1000)}" fakelag="no" '
            f'pingfreq="{STRICT_PINGFREQ}">',
            f'<connect name="main" allow="*" {common} threshold="200" commandrate="100000" '
            'fakelag="no" pingfreq="120">',
            '<channels users="200" opers="200">',
            '<dns server="127.0.0.1" timeout="1">',  # hermetic: no lookup leaves the machine
            f'<pid file="{r}/inspircd.pid">',
            f'<log method="file" type="* -USERINPUT -USEROUTPUT" level="default" '
            f'target="{r}/inspircd.log">',
            '<options defaultmodes="notH 50:1d">',
            *(f'<module name="{m}">' for m in modules),
            '<chanhistory bots="yes" maxlines="50" prefixmsg="no">',
            f'<sasl target="{SERVICES_NAME}">',
            f'<sslprofile name="Clients" provider="gnutls" certfile="{r}/server.crt" '
            f'keyfile="{r}/server.key" requestclientcert="no">',
            f'<link name="{SERVICES_NAME}" ipaddr="127.0.0.1" port="{self.link_port}" '
            f'allowmask="127.0.0.1/32" sendpass="{_LINK_PASSWORD}" '
            f'recvpass="{_LINK_PASSWORD}">',
            f'<uline server="{SERVICES_NAME}" silent="yes">',
            '<class name="Admin" commands="KILL SAJOIN SAPART MODE" '
            'privs="users/sajoin-others" usermodes="*" chanmodes="*">',
            '<type name="Admin" classes="Admin" vhost="oper.pyclaw.test">',
            f'<oper name="{OPER[0]}" password="{OPER[1]}" host="*@*" type="Admin">',
            ""])

    def _atheme_conf(self) -> str:
        modules = ("protocol/inspircd backend/opensex crypto/pbkdf2v2 nickserv/main "
                   "nickserv/register nickserv/identify saslserv/main saslserv/plain").split()
        return "\n".join([
            *(f'loadmodule "modules/{m}";' for m in modules),
            f"""serverinfo {{ name = "{SERVICES_NAME}"; desc = "pyclaw test services";
  numeric = "00A"; recontime = 1; netname = "PyclawTest"; hidehostsuffix = "users.test";
  adminname = "test"; adminemail = "test@localhost"; registeremail = "test@localhost";
  mta = "/bin/true"; loglevel = {{ error; info; }}; maxlogins = 50; maxusers = 50;
  mdlimit = 30; emaillimit = 10; emailtime = 300; auth = none; casemapping = rfc1459; }};
uplink "{SERVER_NAME}" {{ host = "127.0.0.1"; port = {self.link_port};
  send_password = "{_LINK_PASSWORD}"; receive_password = "{_LINK_PASSWORD}"; }};
nickserv {{ nick = "NickServ"; user = "NickServ"; host = "{SERVICES_NAME}";
  real = "Nickname Services"; maxnicks = 5; expire = 30; }};
saslserv {{ nick = "SaslServ"; user = "SaslServ"; host = "{SERVICES_NAME}";
  real = "SASL Authentication Agent"; }};
general {{ flood_msgs = 0; flood_time = 10; ratelimit_uses = 1000; ratelimit_period = 60;
  kline_time = 7; clone_time = 0; commit_interval = 5; uplink_sendq_limit = 1048576;
  language = "en"; immune_level = immune; }};
database {{ engine = "opensex"; }};
logfile "{self.root}/atheme.log" {{ error; info; }};
"""])

    def start(self) -> None:
        self._spawn([INSPIRCD, "--runasroot", "--nofork", f"--config={self.root}/inspircd.conf"],
                    "inspircd.out")
        self._wait(lambda: all(listening(p) for p in (self.port, self.tls_port,
                                                       self.strict_port)), "inspircd listens")
        self._spawn([ATHEME, "-n", "-c", f"{self.root}/atheme.conf", "-D", str(self.root),
                     "-l", f"{self.root}/atheme.log", "-p", f"{self.root}/atheme.pid"],
                    "atheme.out")
        self._wait(lambda: "finished synching" in self._text("atheme.out"),
                   "atheme links to inspircd")

    def _spawn(self, argv: list[str], out: str) -> None:
        with (self.root / out).open("wb") as sink:
            self.processes.append(subprocess.Popen(argv, cwd=self.root, stdout=sink,
                                                   stderr=subprocess.STDOUT))

    def _text(self, name: str) -> str:
        path = self.root / name
        return path.read_text("utf-8", "replace") if path.exists() else ""

    def _wait(self, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            for proc in self.processes:
                if proc.poll() is not None:
                    raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} before "
                                       f"{what}:\n{self.output()}")
            if ready():
                return
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"timed out waiting until {what}:\n{self.output()}")

    def output(self) -> str:
        return "\n".join(f"--- {name}\n{self._text(name)[-4000:]}" for name in
                         ("inspircd.out", "inspircd.log", "atheme.out", "atheme.log"))

    def kill(self) -> None:
        for proc in self.processes:
            stop_process(proc)

    @property
    def alive(self) -> bool:
        return bool(self.processes) and all(p.poll() is None for p in self.processes)

    async def register_accounts(self) -> None:
        for account, password in ACCOUNTS.items():
            user = IrcUser(account, self.port)
            await user.connect(caps=())
            await user.send(format_line("PRIVMSG", "NickServ",
                                        f"REGISTER {password} {account}@example.org"))
            await user.wait_for(lambda ln: ln.command == "NOTICE"
                                and "registered" in ln.param(-1))
            await user.quit()


def _prepared(root: Path) -> IrcServer:
    server = IrcServer(root)
    server.prepare()
    return server


def _register(server: IrcServer) -> None:
    """Register :data:`ACCOUNTS` on a just-started network, in an event loop of the start
    thread's own (the IRC users are asyncio clients)."""
    try:
        asyncio.run(server.register_accounts())
    except (OSError, TimeoutError, EOFError) as exc:
        server.kill()
        raise RuntimeError(f"could not register accounts: {exc!r}\n{server.output()}") from exc


_SHARED = Shared(_prepared, prefix="pyclaw-inspircd-", ready=_register)


async def shared_server() -> IrcServer:
    """The process-wide IRC network, started (and its accounts registered) on first use;
    one found dead (either process) is replaced by a new one."""
    return await _SHARED()


# ---- the user ---------------------------------------------------------------------------------

USER_CAPS = ("message-tags", "echo-message", "labeled-response", "server-time", "batch",
             "account-tag")


class IrcError(Exception):
    """The server refused a labeled command with a numeric (``numeric``, its text)."""

    def __init__(self, numeric: str, text: str) -> None:
        super().__init__(f"{numeric} {text}")
        self.numeric = numeric


class IrcUser:
    """A person on IRC: connects, joins, talks, opers up; keeps every line it received."""

    def __init__(self, nick: str, port: int, *, tls_ca: str | None = None) -> None:
        self.nick = nick
        self.port = port
        self.tls_ca = tls_ca
        self.lines: list[Line] = []
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._labels = itertools.count(1)
        self._pending: dict[str, asyncio.Future[Line]] = {}
        self._changed = asyncio.Event()

    async def connect(self, *, caps: tuple[str, ...] = USER_CAPS,
                      sasl: tuple[str, str] | None = None) -> None:
        context = ssl.create_default_context(cafile=self.tls_ca) if self.tls_ca else None
        self._reader, self._writer = await asyncio.open_connection(
            "127.0.0.1", self.port, ssl=context, limit=64 * 1024,
            server_hostname="localhost" if context else None)
        self._task = asyncio.create_task(self._read(), name=f"irc-user:{self.nick}")
        wanted = [*caps, *(["sasl"] if sasl else [])]
        if wanted:
            await self.send(format_line("CAP", "REQ", " ".join(wanted)))
        await self.send(format_line("NICK", self.nick))
        await self.send(format_line("USER", self.nick[:10], "0", "*", self.nick))
        if sasl:
            await self.wait_for(lambda ln: ln.command == "CAP" and ln.param(1) == "ACK")
            await self.send("AUTHENTICATE PLAIN")
            await self.wait_for(lambda ln: ln.command == "AUTHENTICATE")
            token = base64.b64encode(f"{sasl[0]}\0{sasl[0]}\0{sasl[1]}".encode()).decode()
            await self.send(f"AUTHENTICATE {token}")
            await self.wait_for(lambda ln: ln.command in ("903", "904"))
        if wanted:
            await self.send("CAP END")
        await self.wait_for(lambda ln: ln.command == "001")

    async def send(self, line: str) -> None:
        """Write one line as UTF-8; a lone surrogate (which UTF-8 cannot carry) goes as
        U+FFFD, as a web client's TextEncoder sends it."""
        if self._writer is None:
            raise RuntimeError("not connected")
        data = line.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        self._writer.write(data.encode() + b"\r\n")
        await self._writer.drain()

    async def send_raw(self, data: bytes) -> None:
        """Bytes as they are, e.g. a legacy client's Latin-1."""
        if self._writer is None:
            raise RuntimeError("not connected")
        self._writer.write(data)
        await self._writer.drain()

    async def labeled(self, command: str, *params: str, tags: dict[str, str] | None = None,
                      timeout: float = 10.0) -> Line:
        """Send with a label and return the server's labeled answer (the echo for PRIVMSG);
        IrcError for a numeric error."""
        label = f"u{next(self._labels)}"
        future = self._pending[label] = asyncio.get_running_loop().create_future()
        await self.send(format_line(command, *params, tags={"label": label, **(tags or {})}))
        answer = await asyncio.wait_for(future, timeout)
        if answer.command.isdigit() and answer.command[0] in "45":
            raise IrcError(answer.command, answer.param(-1))
        return answer

    async def privmsg(self, target: str, text: str) -> str:
        """Say ``text`` to ``target``; returns the msgid the server gave it."""
        echo = await self.labeled("PRIVMSG", target, text)
        return echo.tags.get("msgid", "")

    async def join(self, *channels: str) -> None:
        for i in range(0, len(channels), 20):
            chunk = channels[i:i + 20]
            await self.send(format_line("JOIN", ",".join(chunk)))
            last = chunk[-1].lower()
            await self.wait_for(lambda ln, c=last: ln.command == "366" and ln.param(1).lower() == c)

    async def oper(self) -> None:
        await self.send(format_line("OPER", *OPER))
        await self.wait_for(lambda ln: ln.command in ("381", "491", "464"))

    async def kill(self, nick: str, reason: str = "test drop") -> None:
        await self.send(format_line("KILL", nick, reason))

    def messages(self, *, source: Callable[[str], bool] | None = None,
                 target: str | None = None) -> list[Line]:
        """PRIVMSGs received (not our own echoes), optionally from matching nicks or to one
        target (case-insensitively)."""
        return [ln for ln in self.lines if ln.command == "PRIVMSG" and ln.source is not None
                and ln.source.nick.lower() != self.nick.lower()
                and (source is None or source(ln.source.nick))
                and (target is None or ln.param(0).lower() == target.lower())]

    async def wait_for(self, predicate: Callable[[Line], bool], timeout: float = 15.0, *,
                       since: int = 0) -> Line:
        """The first line received from index ``since`` on (0: so far or later) that
        matches."""
        seen = since
        async with asyncio.timeout(timeout):
            while True:
                for line in self.lines[seen:]:
                    if predicate(line):
                        return line
                seen = len(self.lines)
                self._changed.clear()
                await self._changed.wait()

    async def quit(self) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            await self.send("QUIT :bye")
        await self.close()

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.transport.abort()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _read(self) -> None:
        assert self._reader is not None
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while True:
                raw = await self._reader.readuntil(b"\n")
                line = parse_line(raw.decode("utf-8", "replace"))
                if line is None:
                    continue
                if line.command == "PING":
                    await self.send(format_line("PONG", line.param(-1)))
                label = line.tags.get("label")
                if label in self._pending and not self._pending[label].done():
                    self._pending.pop(label).set_result(line)
                self.lines.append(line)
                self._changed.set()
        self._changed.set()


# ---- the proxy --------------------------------------------------------------------------------


@dataclass(eq=False)
class _Pair(Pair):
    nick: str = ""
    server_name: str = SERVER_NAME
    muted: bool = False
    stalled: bool = False


class IrcProxy(TcpProxy[_Pair]):
    """A TCP proxy to the server that reads whole lines (see the module doc)."""

    def __init__(self, server_port: int) -> None:
        super().__init__(server_port)
        self.server_port = server_port
        self._fault: tuple[str, int] | None = None  # ("error" | "refuse" | "lose", skip)
        self.faults: list[str] = []
        """The fault applied to each PRIVMSG the proxy interfered with."""

    def stall(self) -> None:
        """Stop forwarding on every live connection in both directions, the sockets left
        open: a dead link. New connections are forwarded as usual."""
        for pair in self._pairs:
            pair.stalled = True

    def next_privmsg(self, fault: str, *, skip: int = 0) -> None:
        """Interfere with the PRIVMSG after the next ``skip`` ones: ``error`` closes the link
        with ERROR before the server gets it, ``refuse`` answers it with the server's 404
        instead of forwarding it, ``lose`` forwards it and cuts the link before its echo."""
        self._fault = (fault, skip)

    def _pair(self, client: asyncio.StreamWriter, server: asyncio.StreamWriter) -> _Pair:
        return _Pair(client, server)

    def _take_fault(self) -> str | None:
        if self._fault is None:
            return None
        fault, skip = self._fault
        if skip:
            self._fault = (fault, skip - 1)
            return None
        self._fault = None
        self.faults.append(fault)
        return fault

    async def _upstream(self, reader: asyncio.StreamReader, pair: _Pair) -> None:
        while True:
            raw = await reader.readuntil(b"\n")
            if pair.stalled:
                continue
            line = parse_line(raw.decode("utf-8", "replace"))
            if line is not None and line.command == "NICK":
                pair.nick = line.param(0)
            fault = self._take_fault() if line is not None and line.command == "PRIVMSG" \
                else None
            if fault == "error":
                pair.client.write(b"ERROR :Closing link: (proxy) [Connection reset]\r\n")
                await pair.client.drain()
                return
            if fault == "refuse" and line is not None:
                answer = f":{pair.server_name} " + format_line(
                    "404", pair.nick, line.param(0), "Cannot send to channel (+m is set)")
                if "label" in line.tags:
                    answer = f"@label={line.tags['label']} {answer}"
                pair.client.write(answer.encode() + b"\r\n")
                continue
            if fault == "lose":
                pair.muted = True  # nothing more reaches the client
                pair.server.write(raw)
                await pair.server.drain()
                await asyncio.sleep(0.2)  # the server has taken it
                return
            pair.server.write(raw)

    async def _downstream(self, reader: asyncio.StreamReader, pair: _Pair) -> None:
        while True:
            raw = await reader.readuntil(b"\n")
            if pair.stalled or pair.muted:
                continue
            line = parse_line(raw.decode("utf-8", "replace"))
            if line is not None and line.command == "001" and line.source is not None:
                pair.server_name = line.source.nick
            pair.client.write(raw)

