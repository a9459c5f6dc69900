"""A connector with no platform behind it, held to the same contract as the rest.

Messages posted here go through the journal, lanes and agent exactly like a
Telegram message would, which is what makes the Chat view an honest test of the
whole gateway. ``ask()`` is the request/response convenience the terminal uses.

A file the assistant sends has no platform to go to: it is already stored under the
data directory (the gateway stores every file before it goes), so "sending" it keeps
its name and location in ``files`` and says in the channel log where it is.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import deque
from dataclasses import dataclass

from connectors.local.manifest import SPEC, LocalConfig
from pyclaw_app.channels import ConnectorBase, Limits, ProbeResult, SubmitResult
from pyclaw_app.channels.contract import OutboundFile
from pyclaw_app.model import Address, ChannelState, Inbound


@dataclass(frozen=True, slots=True)
class LocalReply:
    chat: str
    text: str
    reply_to: str | None
    platform_id: str
    ts: float


@dataclass(frozen=True, slots=True)
class LocalFile:
    """A file the assistant sent to a local chat: where it is stored, what it is."""

    chat: str
    file: OutboundFile
    size: int
    platform_id: str


class LocalConnector(ConnectorBase):
    spec = SPEC
    config: LocalConfig

    def __init__(self, name: str, config: LocalConfig) -> None:
        super().__init__(name, config)
        self._ids = itertools.count(1)
        self._waiters: dict[str, asyncio.Future[str]] = {}
        self._answers: dict[str, list[str]] = {}
        self.sent: deque[LocalReply] = deque(maxlen=1000)
        self.files: deque[LocalFile] = deque(maxlen=1000)

    @property
    def limits(self) -> Limits:
        return Limits(max_text=self.config.max_text)

    async def open(self) -> None:
        self.ctx.set_state(ChannelState.ONLINE, "ready")
        self.ctx.heartbeat()

    async def close(self) -> None:
        for fut in self._waiters.values():
            if not fut.done():
                fut.cancel()
        self._waiters.clear()

    async def probe(self) -> ProbeResult:
        return ProbeResult(True, "local chat is built in and always available")

    def address(self, chat: str) -> Address:
        return Address(self.name, chat, account="local")

    async def post(self, text: str, *, chat: str = "app", sender: str = "you",
                   platform_id: str | None = None) -> tuple[str, SubmitResult]:
        """Inject a message as if a user typed it; returns its id once it is journaled."""
        ctx = self.ctx
        pid = platform_id or f"{uuid.uuid4().hex[:12]}-{next(self._ids)}"
        inbound = Inbound(address=self.address(chat), platform_id=pid,
                          text=text, sender_id=sender, sender_name=sender)
        result = await ctx.submit(inbound)
        ctx.heartbeat()
        return pid, result

    async def ask(self, text: str, *, chat: str = "terminal", sender: str = "you",
                  timeout: float | None = None) -> str:
        """Post ``text`` and wait for the whole reply (all its parts, joined)."""
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        pid = f"{uuid.uuid4().hex[:12]}-{next(self._ids)}"
        self._waiters[pid] = fut
        try:
            await self.post(text, chat=chat, sender=sender, platform_id=pid)
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._waiters.pop(pid, None)
            self._answers.pop(pid, None)

    async def send_part(self, address: Address, text: str, reply_to: str | None) -> str:
        pid = f"out-{next(self._ids)}"
        self.sent.append(LocalReply(address.chat, text, reply_to, pid, time.time()))
        return pid

    async def send_file(self, address: Address, file: OutboundFile, reply_to: str | None
                        ) -> str:
        pid = f"file-{next(self._ids)}"
        size = len(file.content())  # a file that is gone fails here, as an upload would
        self.files.append(LocalFile(address.chat, file, size, pid))
        where = f" at {file.path}" if file.path is not None else ""
        self.ctx.log("info", f"file {file.name} ({file.mime}, {size} bytes) sent to chat "
                     f"{address.chat}{where}", chat=address.chat, file=file.name)
        return pid

    def answered(self, reply_to: str, text: str) -> None:
        """The gateway finished the reply to ``reply_to``: wake whoever ``ask``ed."""
        waiter = self._waiters.get(reply_to)
        if waiter is not None and not waiter.done():
            waiter.set_result(text)


CONNECTOR = LocalConnector
