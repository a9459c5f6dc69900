"""A connector with no platform behind it, held to the same contract as the rest.

Messages posted here go through the journal, lanes and agent exactly like a
Telegram message would, which is what makes the Chat view an honest test of the
whole gateway. ``ask()`` is the request/response convenience the terminal uses.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import deque
from dataclasses import dataclass

from connectors.base import Connector, ConnectorContext, ProbeResult, SubmitResult, split_text
from connectors.local.manifest import SPEC, LocalConfig
from pyclaw_app.errors import ConnectorError
from pyclaw_app.model import Address, ChannelState, Inbound, Outbound


@dataclass(frozen=True, slots=True)
class LocalReply:
    chat: str
    text: str
    reply_to: str | None
    platform_id: str
    ts: float


class LocalConnector(Connector):
    spec = SPEC
    config: LocalConfig

    def __init__(self, name: str, config: LocalConfig) -> None:
        super().__init__(name, config)
        self._ctx: ConnectorContext | None = None
        self._ids = itertools.count(1)
        self._waiters: dict[str, asyncio.Future[str]] = {}
        self.sent: deque[LocalReply] = deque(maxlen=1000)

    async def start(self, ctx: ConnectorContext) -> None:
        self._ctx = ctx
        ctx.set_state(ChannelState.ONLINE, "ready")
        ctx.heartbeat()

    async def stop(self) -> None:
        for fut in self._waiters.values():
            if not fut.done():
                fut.cancel()
        self._waiters.clear()
        if self._ctx is not None:
            self._ctx.set_state(ChannelState.STOPPED)
        self._ctx = None

    async def probe(self) -> ProbeResult:
        return ProbeResult(True, "local chat is built in and always available")

    def address(self, chat: str) -> Address:
        return Address(self.name, chat, account="local")

    async def post(self, text: str, *, chat: str = "app", sender: str = "you",
                   platform_id: str | None = None) -> tuple[str, SubmitResult]:
        """Inject a message as if a user typed it; returns its id once it is journaled."""
        if self._ctx is None:
            raise ConnectorError(f"local channel {self.name!r} is not running")
        pid = platform_id or f"{uuid.uuid4().hex[:12]}-{next(self._ids)}"
        inbound = Inbound(address=self.address(chat), platform_id=pid,
                          text=text, sender_id=sender, sender_name=sender)
        result = await self._ctx.submit(inbound)
        self._ctx.heartbeat()
        return pid, result

    async def ask(self, text: str, *, chat: str = "terminal", sender: str = "you",
                  timeout: float | None = None) -> str:
        """Post ``text`` and wait for the whole reply (all parts joined)."""
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        pid = f"{uuid.uuid4().hex[:12]}-{next(self._ids)}"
        self._waiters[pid] = fut
        try:
            await self.post(text, chat=chat, sender=sender, platform_id=pid)
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._waiters.pop(pid, None)

    async def send(self, outbound: Outbound) -> list[str]:
        parts = split_text(outbound.text, self.config.max_text)
        ids = []
        for part in parts:
            pid = f"out-{next(self._ids)}"
            self.sent.append(LocalReply(outbound.address.chat, part, outbound.reply_to, pid,
                                        time.time()))
            ids.append(pid)
        waiter = self._waiters.get(outbound.reply_to or "")
        if waiter is not None and not waiter.done():
            waiter.set_result(outbound.text)
        return ids


CONNECTOR = LocalConnector
