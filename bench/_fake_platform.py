"""What every benchmark fake shares: the paced load behind ``POST /bench/load``,
and running as a process that prints ``READY <port>`` and serves until SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from tests.fakes.server import FakeServer, json_response

__all__ = ["FIRST_CHAT", "Load", "run_until_signalled"]

FIRST_CHAT = 1001

Inject = Callable[[int, int], Awaitable[None]]
"""Deliver message number ``sent`` (0-based within the load) to chat number ``chat``."""


class Load:
    """``POST /bench/load`` ``{"messages": N, "chats": C, "rate": R}``: N messages
    round-robin over chats FIRST_CHAT..FIRST_CHAT+C-1, all at once when R is 0, else R per
    second on a fixed schedule (a late tick catches up, so the offered rate holds even when
    the loop is busy)."""

    def __init__(self, inject: Inject, name: str) -> None:
        self._inject = inject
        self._name = name
        self._task: asyncio.Task[None] | None = None
        self.first_inject = 0.0
        self.last_inject = 0.0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def handle(self, request: web.Request) -> web.Response:
        plan = await request.json()
        if self.running:
            return json_response({"ok": False, "error": "a load is already running"}, 409)
        messages, chats = int(plan["messages"]), int(plan["chats"])
        rate = float(plan.get("rate", 0))
        self._task = asyncio.create_task(self._run(messages, chats, rate),
                                         name=f"bench:{self._name}:loader")
        return json_response({"ok": True})

    def report(self) -> dict[str, Any]:
        """The load's part of ``GET /bench/report``, the same for every platform."""
        return {"injecting": self.running, "first_inject": self.first_inject,
                "last_inject": self.last_inject, "now": time.monotonic(),
                "cpu_seconds": time.process_time()}

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self, messages: int, chats: int, rate: float) -> None:
        start = time.monotonic()
        self.first_inject = start
        sent = 0
        while sent < messages:
            now = time.monotonic()
            due = messages if rate <= 0 else min(messages, int((now - start) * rate) + 1)
            while sent < due:
                await self._inject(sent, FIRST_CHAT + sent % chats)
                sent += 1
            self.last_inject = time.monotonic()
            if sent < messages:
                await asyncio.sleep(max(0.0, start + sent / rate - time.monotonic()))


def run_until_signalled(make: Callable[[], FakeServer]) -> None:
    """Serve ``make()`` on a free loopback port, print ``READY <port>``, stop on SIGTERM/SIGINT."""

    async def serve() -> None:
        fake = make()  # inside the loop: fakes may create loop-bound objects
        await fake.start()
        print(f"READY {fake.port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await fake.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
