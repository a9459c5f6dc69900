"""A real dovecot (IMAP) and an aiosmtpd SMTP server for the Email tests, once per process.

``await shared_mail()`` starts ``/usr/sbin/dovecot -F`` with a config generated in a temp
directory: its own ``base_dir``/``state_dir``, one passwd-file per user (``users/<address>``, so
an account added while it runs is seen at once: dovecot notices a change to one shared
file only by its modification time, in whole seconds), Maildirs
under ``mail/<user>``, an IMAP listener that offers STARTTLS and an IMAPS one, both with a
certificate for ``localhost``/127.0.0.1 made by ``openssl`` (the tests trust it as the
CA), and a log file. On :data:`NO_IDLE_HOST` (127.0.0.2) the same server advertises no
IDLE, for the polling fallback. Run unprivileged, every dovecot user is the current one; run as
root (CI), dovecot refuses to run its login processes as root, so they run as Debian's
``dovenull``/``dovecot`` accounts and the mail belongs to ``dovecot``.

Two aiosmtpd servers (threads with their own event loops) take mail: one with STARTTLS
required, one with implicit TLS; both require a login of a known user. A mail to a user
with a mailbox here is put into its INBOX by IMAP ``APPEND`` as that user (so dovecot
owns every file it reads), which is how a test's "user" mails the bot; every mail is also
kept in :attr:`MailServers.outbox`, which is how the tests see the bot's replies.

Faults are the SMTP server's own answers, per sender (``MAIL FROM``): ``fail_next``
answers a DATA after ``skip`` others with a code (451: deferred, 550: refused) instead of
taking it; ``lose_next`` takes the mail and then cuts the connection before the ``250``
reaches the client. :class:`TcpProxy` sits between a connector and dovecot and cuts every
connection on ``cut()`` (a network fault).

The processes are killed when the test process exits; a dovecot that cannot start raises
with its log, so a test fails loudly instead of skipping.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import grp
import imaplib
import os
import pwd
import shutil
import ssl
import subprocess
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.servers.proxy import Pair
from tests.servers.proxy import TcpProxy as _TcpProxy
from tests.servers.shared import Shared, free_port, listening, stop_process

__all__ = ["DOMAIN", "NO_IDLE_HOST", "Accepted", "MailServers", "TcpProxy", "shared_mail"]

DOVECOT = "/usr/sbin/dovecot"
DOMAIN = "example.test"
NO_IDLE_HOST = "127.0.0.2"
"""The same dovecot on this address offers no IDLE after login (``imap_capability``)."""
_START_TIMEOUT = 15.0


@dataclass(frozen=True)
class Accepted:
    """One mail the SMTP server took (and delivered, for a local mailbox)."""

    mail_from: str
    rcpt: str
    data: bytes
    ts: float


@dataclass
class _Fault:
    kind: str  # "fail" or "lose"
    code: int = 0
    skip: int = 0


class _Handler:
    def __init__(self, servers: MailServers) -> None:
        self.servers = servers

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        sender = (envelope.mail_from or "").lower()
        data = envelope.original_content or b""
        fault = self.servers.take_fault(sender)
        if fault is not None and fault.kind == "fail":
            why = "4.3.0 try again later" if fault.code < 500 else "5.7.1 refused"
            return f"{fault.code} {why}"
        for rcpt in envelope.rcpt_tos:
            self.servers.deliver(sender, rcpt.lower(), data)
        if fault is not None and fault.kind == "lose" and server.transport is not None:
            server.transport.abort()  # taken, and the client never hears so
        return "250 2.0.0 OK: queued"


class _ImplicitTls(Controller):
    """SMTP over implicit TLS: aiosmtpd counts only STARTTLS as TLS for AUTH, so the
    requirement is off here and its warning about it (wrong for this port) is muted."""

    def factory(self) -> SMTP:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
            return super().factory()


@dataclass
class MailServers:
    """dovecot, the two SMTP servers, their files and the accounts on them."""

    root: Path
    imap_port: int = field(default_factory=free_port)
    imaps_port: int = field(default_factory=free_port)
    smtp_port: int = field(default_factory=free_port)
    smtps_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    users: dict[str, str] = field(default_factory=dict)
    outbox: list[Accepted] = field(default_factory=list)
    _faults: dict[str, list[_Fault]] = field(default_factory=dict)
    _controllers: list[Controller] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def ca_file(self) -> str:
        return str(self.root / "cert.pem")

    @property
    def log_file(self) -> Path:
        return self.root / "dovecot.log"

    def _ids(self) -> tuple[int, int, str, str, str]:
        """(mail uid, gid, login user, internal user, internal group) for dovecot."""
        if os.geteuid() != 0:
            me, group = getpass.getuser(), grp.getgrgid(os.getegid()).gr_name
            return os.geteuid(), os.getegid(), me, me, group
        owner = pwd.getpwnam("dovecot")
        return owner.pw_uid, owner.pw_gid, "dovenull", "dovecot", "dovecot"

    def prepare(self) -> None:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-keyout", str(self.root / "key.pem"), "-out", self.ca_file,
             "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:127.0.0.2"],
            check=True, capture_output=True, timeout=60)
        uid, gid, login_user, internal, group = self._ids()
        for sub in ("mail", "home"):
            (self.root / sub).mkdir()
            os.chown(self.root / sub, uid, gid)
        self.root.chmod(0o755)
        (self.root / "users").mkdir()
        (self.root / "dovecot.conf").write_text(f"""\
base_dir = {self.root}/run
state_dir = {self.root}/state
log_path = {self.log_file}
listen = 127.0.0.1, {NO_IDLE_HOST}
protocols = imap
ssl = yes
ssl_cert = <{self.ca_file}
ssl_key = <{self.root}/key.pem
disable_plaintext_auth = yes
auth_mechanisms = plain login
auth_failure_delay = 0
mail_location = maildir:{self.root}/mail/%u
default_internal_user = {internal}
default_internal_group = {group}
default_login_user = {login_user}
first_valid_uid = {uid}
first_valid_gid = {gid}
passdb {{
  driver = passwd-file
  args = {self.root}/users/%u
}}
userdb {{
  driver = passwd-file
  args = {self.root}/users/%u
}}
local {NO_IDLE_HOST} {{
  protocol imap {{
    imap_capability = IMAP4rev1 LITERAL+ UIDPLUS
  }}
}}
service imap-login {{
  inet_listener imap {{
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    port = {self.imaps_port}
    ssl = yes
  }}
}}
""")

    def start(self) -> None:
        self.prepare()
        self.process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.root / "dovecot.conf")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + _START_TIMEOUT
        while not (listening(self.imap_port) and listening(self.imaps_port)):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"dovecot did not start: {self.output()}")
            time.sleep(0.05)
        self._start_smtp()

    def _start_smtp(self) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.ca_file, str(self.root / "key.pem"))
        common: dict[str, Any] = {"hostname": "127.0.0.1", "authenticator": self._auth,
                                  "auth_required": True, "ready_timeout": 10.0}
        self._controllers = [
            Controller(_Handler(self), port=self.smtp_port, tls_context=context,
                       require_starttls=True, **common),
            _ImplicitTls(_Handler(self), port=self.smtps_port, ssl_context=context,
                         auth_require_tls=False, **common),
        ]
        for controller in self._controllers:
            controller.start()

    def _auth(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
              auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode("utf-8", "replace")
            password = auth_data.password.decode("utf-8", "replace")
            if self.users.get(login) == password:
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def output(self) -> str:
        log = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
        out = ""
        if self.process is not None and self.process.stdout is not None \
                and self.process.poll() is not None:
            out = self.process.stdout.read().decode(errors="replace")
        return f"{out}\n{log}"[-4000:]

    def add_user(self, address: str, password: str) -> str:
        """An account (an IMAP mailbox and an SMTP login); dovecot sees it at once."""
        uid, gid, *_ = self._ids()
        with self._lock:
            self.users[address] = password
            tmp = self.root / "users" / f".{address}"
            tmp.write_text(f"{address}:{{PLAIN}}{password}:{uid}:{gid}::{self.root}/home::\n")
            tmp.replace(self.root / "users" / address)
        return address

    def imap(self, address: str) -> imaplib.IMAP4_SSL:
        """A logged-in stdlib IMAP client of ``address`` (the tests' view of a mailbox)."""
        client = imaplib.IMAP4_SSL("127.0.0.1", self.imaps_port,
                                   ssl_context=ssl.create_default_context(cafile=self.ca_file))
        client.login(address, self.users[address])
        return client

    def deliver(self, sender: str, rcpt: str, data: bytes) -> None:
        with self._lock:
            self.outbox.append(Accepted(sender, rcpt, data, time.monotonic()))
        if rcpt in self.users:
            client = self.imap(rcpt)
            try:
                client.append("INBOX", None, None, data)
            finally:
                client.logout()

    def fail_next(self, sender: str, code: int, *, skip: int = 0) -> None:
        with self._lock:
            self._faults.setdefault(sender.lower(), []).append(_Fault("fail", code, skip))

    def lose_next(self, sender: str) -> None:
        with self._lock:
            self._faults.setdefault(sender.lower(), []).append(_Fault("lose"))

    def take_fault(self, sender: str) -> _Fault | None:
        with self._lock:
            pending = self._faults.get(sender)
            if not pending:
                return None
            if pending[0].skip > 0:
                pending[0].skip -= 1
                return None
            return pending.pop(0)

    def sent_by(self, sender: str) -> list[Accepted]:
        with self._lock:
            return [a for a in self.outbox if a.mail_from == sender.lower()]

    def kill(self) -> None:
        for controller in self._controllers:
            with contextlib.suppress(Exception):
                controller.stop()
        self._controllers = []
        stop_process(self.process, terminate=True)
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def alive(self) -> bool:
        """Whether dovecot runs (the SMTP servers are threads of this process)."""
        return self.process is not None and self.process.poll() is None


_SHARED = Shared(MailServers, prefix="pyclaw-dovecot-")


async def shared_mail() -> MailServers:
    """The test process's mail servers, started on first use (in a thread: it takes a
    second)."""
    return await _SHARED()


class TcpProxy(_TcpProxy[Pair]):
    """127.0.0.1:<port> forwarding bytes to ``target_port``; ``cut()`` aborts every live
    connection. IMAP needs no protocol-aware faults here (the SMTP ones are the server's
    own), so it forwards whatever arrives, as it arrives."""

    def __init__(self, target_port: int) -> None:
        super().__init__(target_port)
        self.target_port = target_port

    def _pair(self, client: asyncio.StreamWriter, server: asyncio.StreamWriter) -> Pair:
        return Pair(client, server)

    async def _upstream(self, reader: asyncio.StreamReader, pair: Pair) -> None:
        await self._pipe(reader, pair.server)

    async def _downstream(self, reader: asyncio.StreamReader, pair: Pair) -> None:
        await self._pipe(reader, pair.client)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()

    async def close(self) -> None:
        """:meth:`stop`, under the name the email harness calls."""
        await self.stop()
