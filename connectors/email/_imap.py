"""One IMAP connection (aioimaplib), from TLS and login to IDLE, with errors mapped once.

aioimaplib knows the STARTTLS command but has no method for it: it is sent as a plain
``Command``, and after the server's ``OK`` the connection's transport is upgraded with
``loop.start_tls`` and the capabilities are asked again (RFC 3501 §6.2.1: the ones
before TLS are void). The channel never logs in
without TLS.

Outcomes a user can fix stop the channel with one line (:class:`FatalConnectorError`):
a refused login (``NO [AUTHENTICATIONFAILED]``), a certificate that is not trusted, a
server that refuses TLS or does not offer STARTTLS, a folder that does not exist.
Everything else (refused or cut connections, time-outs, ``[UNAVAILABLE]``) is a
:class:`RetryableError`: the kit's reconnect loop comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

import aioimaplib

from pyclaw_app.errors import FatalConnectorError, RetryableError

__all__ = ["ImapSession", "Mailbox", "tls_context"]

TIMEOUT = 30.0
_T = TypeVar("_T")


def tls_context(ca_file: str) -> ssl.SSLContext:
    """The system's trusted authorities, or only ``ca_file``'s when set."""
    return ssl.create_default_context(cafile=ca_file or None)


@dataclass(frozen=True, slots=True)
class Mailbox:
    """The selected folder: its UIDVALIDITY and the UID the next new mail will get."""

    uidvalidity: int
    uidnext: int


def _text(lines: list[Any]) -> str:
    return " ".join(bytes(line).decode("utf-8", "replace") for line in lines
                    if isinstance(line, bytes | bytearray))[:300]


class ImapSession:
    """Connect, log in, select; then search, fetch, flag and wait for new mail."""

    def __init__(self, *, host: str, port: int, tls: str, login: str, password: str,
                 folder: str, context: ssl.SSLContext) -> None:
        self.host, self.port, self.tls = host, port, tls
        self._login, self._password, self.folder = login, password, folder
        self._context = context
        self._imap: aioimaplib.IMAP4 | None = None
        self._lost: asyncio.Future[None] | None = None
        self.mailbox = Mailbox(0, 0)

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def idle(self) -> bool:
        return self._imap is not None and self._imap.has_capability("IDLE")

    def _gone(self, exc: Exception | None) -> None:
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)

    async def _guard(self, what: str, call: Awaitable[_T]) -> _T:
        """``call`` with the failures no user can fix turned into RetryableError."""
        try:
            return await self._race(call)
        except ssl.SSLCertVerificationError as exc:
            raise FatalConnectorError(
                f"the IMAP server {self.where} has a TLS certificate this machine does not "
                f"trust ({exc.verify_message}); set ca_file to its authority's PEM file"
            ) from exc
        except ssl.SSLError as exc:
            raise FatalConnectorError(
                f"TLS refused by the IMAP server {self.where} ({exc.reason or exc}): check "
                f"imap_port and imap_tls (implicit is port 993, starttls port 143)") from exc
        except (TimeoutError, aioimaplib.CommandTimeout) as exc:
            raise RetryableError(f"the IMAP server {self.where} did not answer {what} in "
                                 f"time") from exc
        except (OSError, aioimaplib.AioImapException) as exc:
            raise RetryableError(f"IMAP {what} at {self.where} failed: {exc}") from exc

    async def _race(self, call: Awaitable[_T]) -> _T:
        """``call``'s result, or TimeoutError after :data:`TIMEOUT`, or RetryableError as
        soon as the connection is lost: aioimaplib leaves a command whose connection died
        waiting for an answer that cannot come."""
        task = asyncio.ensure_future(call)
        lost = self._lost
        try:
            waiting = {task} if lost is None else {task, lost}
            await asyncio.wait(waiting, timeout=TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                return task.result()
            if lost is not None and lost.done():
                raise RetryableError(f"the IMAP connection to {self.where} was lost")
            raise TimeoutError
        finally:
            if not task.done():
                task.cancel()

    async def open(self) -> str:
        loop = asyncio.get_running_loop()
        self._lost = loop.create_future()
        imap = aioimaplib.IMAP4(self.host, self.port, timeout=TIMEOUT, conn_lost_cb=self._gone,
                                ssl_context=self._context if self.tls == "implicit" else None)
        self._imap = imap
        await self._guard("the greeting", imap.wait_hello_from_server())
        if self.tls == "starttls":
            await self._starttls(imap)
        answer = await self._guard("LOGIN", imap.login(self._login, self._password))
        if answer.result != "OK":
            text = _text(answer.lines)
            if "[UNAVAILABLE]" in text:
                raise RetryableError(f"the IMAP server {self.where} cannot log in now: {text}")
            raise FatalConnectorError(
                f"IMAP login refused for {self._login!r} at {self.where}: wrong username or "
                f"password ({text or answer.result})")
        await self._guard("CAPABILITY", imap.protocol.capability())
        selected = await self._guard("SELECT", imap.select(aioimaplib.quoted(self.folder)))
        if selected.result != "OK":
            raise FatalConnectorError(f"cannot open the IMAP folder {self.folder!r}: "
                                      f"{_text(selected.lines)}")
        text = _text(selected.lines)
        validity = re.search(r"\[UIDVALIDITY (\d+)\]", text)
        uidnext = re.search(r"\[UIDNEXT (\d+)\]", text)
        self.mailbox = Mailbox(int(validity.group(1)) if validity else 0,
                               int(uidnext.group(1)) if uidnext else 0)
        if not self.mailbox.uidnext:  # not in every server's SELECT answer
            self.mailbox = Mailbox(self.mailbox.uidvalidity, max(await self.uids_after(0),
                                                                 default=0) + 1)
        return f"connected as {self._login} ({self.folder}" \
               f"{', IDLE' if self.idle else ', polling'})"

    async def _starttls(self, imap: aioimaplib.IMAP4) -> None:
        if not imap.has_capability("STARTTLS"):
            raise FatalConnectorError(
                f"the IMAP server {self.where} does not offer STARTTLS; the channel does not "
                f"log in without TLS (use imap_tls implicit on port 993 if it has it)")
        protocol = imap.protocol
        answer = await self._guard("STARTTLS", protocol.execute(aioimaplib.Command(
            "STARTTLS", protocol.new_tag(), loop=protocol.loop)))
        if answer.result != "OK":
            raise FatalConnectorError(f"the IMAP server {self.where} refused STARTTLS: "
                                      f"{_text(answer.lines)}")
        loop = asyncio.get_running_loop()
        transport = await self._guard("the TLS handshake", loop.start_tls(
            protocol.transport, protocol, self._context, server_hostname=self.host))
        if transport is None:
            raise RetryableError(f"the IMAP connection to {self.where} closed during TLS")
        protocol.transport = transport
        protocol.capabilities = set()
        await self._guard("CAPABILITY", protocol.capability())

    def _live(self) -> aioimaplib.IMAP4:
        if self._imap is None or self._lost is None or self._lost.done():
            raise RetryableError(f"the IMAP connection to {self.where} was lost")
        return self._imap

    async def uids_after(self, uid: int) -> list[int]:
        """UIDs of the folder's mail above ``uid``, ascending (``n:*`` always matches the
        last mail, even below ``n``, so the answer is filtered)."""
        answer = await self._guard("UID SEARCH", self._live().uid_search(f"UID {uid + 1}:*"))
        if answer.result != "OK":
            raise RetryableError(f"IMAP UID SEARCH failed: {_text(answer.lines)}")
        found: set[int] = set()
        for line in answer.lines[:-1]:
            found.update(int(n) for n in bytes(line).split() if n.isdigit())
        return sorted(n for n in found if n > uid)

    async def uidnext(self) -> int:
        """The UID the folder's next mail will get, as the folder is now. The server tells
        of new mail once, at the end of whichever command runs when it lands; aioimaplib
        drops that word when the command was a UID SEARCH, FETCH or STORE, and the IDLE
        after it does not say it again. STATUS reads the folder itself, so it is the check
        before idling."""
        answer = await self._guard("STATUS", self._live().status(
            aioimaplib.quoted(self.folder), "(UIDNEXT)"))
        if answer.result != "OK":
            raise RetryableError(f"IMAP STATUS failed: {_text(answer.lines)}")
        found = re.search(r"UIDNEXT (\d+)", _text(answer.lines))
        return int(found.group(1)) if found else 0

    async def fetch(self, uid: int, max_bytes: int) -> bytes | None:
        """The mail's bytes (up to ``max_bytes``) without setting ``\\Seen``; None when it
        is gone (expunged meanwhile)."""
        answer = await self._guard("UID FETCH", self._live().uid(
            "fetch", str(uid), f"(UID BODY.PEEK[]<0.{max_bytes}>)"))
        if answer.result != "OK":
            raise RetryableError(f"IMAP UID FETCH {uid} failed: {_text(answer.lines)}")
        for line in answer.lines:
            if isinstance(line, bytearray):
                return bytes(line)
        return None

    async def mark_seen(self, uid: int) -> None:
        answer = await self._guard("UID STORE", self._live().uid(
            "store", str(uid), "+FLAGS.SILENT (\\Seen)"))
        if answer.result != "OK":
            raise RetryableError(f"IMAP UID STORE {uid} failed: {_text(answer.lines)}")

    async def wait(self, seconds: float) -> None:
        """Until the server reports a change (IDLE) or ``seconds`` pass; without IDLE a NOOP
        after ``seconds``. Raises RetryableError when the connection is lost meanwhile."""
        imap, lost = self._live(), self._lost
        assert lost is not None
        if not self.idle:
            done, _ = await asyncio.wait({lost}, timeout=seconds)
            if done:
                raise RetryableError(f"the IMAP connection to {self.where} was lost")
            await self._guard("NOOP", imap.noop())
            return
        idling = await self._guard("IDLE", imap.idle_start(timeout=seconds))
        push = asyncio.ensure_future(imap.wait_server_push(timeout=seconds + TIMEOUT))
        try:
            await asyncio.wait({push, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            push.cancel()
        if lost.done():
            idling.cancel()
            raise RetryableError(f"the IMAP connection to {self.where} was lost")
        imap.idle_done()
        await self._guard("the end of IDLE", idling)

    async def close(self) -> None:
        imap, self._imap = self._imap, None
        if imap is None:
            return
        if self._lost is not None and not self._lost.done():
            if imap.has_pending_idle():
                imap.idle_done()  # LOGOUT would wait for the IDLE to end
            with contextlib.suppress(OSError, TimeoutError, aioimaplib.AioImapException):
                await asyncio.wait_for(imap.logout(), 2.0)  # closing anyway if it fails
        transport = imap.protocol.transport
        if transport is not None:
            transport.close()
        self._gone(None)
