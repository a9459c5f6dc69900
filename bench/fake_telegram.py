"""The fake Telegram Bot API as its own process, plus the load generator and the stopwatch.

``python -m bench.fake_telegram`` serves tests/fakes/telegram_api.py's
``FakeTelegram`` on a free loopback port, prints ``READY <port>`` and runs
until SIGTERM. Two extra routes (outside ``/bot<token>/``, so no bot can
reach them by accident) let the harness drive it:

- ``POST /bench/load`` ``{"messages": N, "chats": C, "rate": R}`` injects N
  private-chat messages round-robin over C chats: all at once when R is 0,
  else R per second on a fixed schedule (a late tick catches up, so the
  offered rate holds even when the loop is busy).
- ``GET /bench/report`` matches every ``sendMessage`` to the injected message
  it replies to (``reply_parameters.message_id``) and returns latencies (of
  the latest load; ``?latencies=0`` leaves them out), lost and duplicated
  replies (counted over every load so far), and this process's CPU time.

Injecting here rather than over HTTP per message keeps the load generator
out of the measurement, and puts both ends of every latency on this
process's monotonic clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import deque
from typing import Any

from aiohttp import web

from tests.fakes.server import json_response
from tests.fakes.telegram_api import DEFAULT_TOKEN, FakeTelegram

__all__ = ["FIRST_CHAT", "BenchTelegram"]

FIRST_CHAT = 1001


class BenchTelegram(FakeTelegram):
    def __init__(self) -> None:
        super().__init__(DEFAULT_TOKEN)
        self.calls = deque(maxlen=64)  # type: ignore[assignment]  # only appended to
        self._injected: dict[tuple[int, int], float] = {}
        self._first_reply: dict[tuple[int, int], float] = {}
        self._duplicates = 0
        self._unmatched = 0
        self._cursor = 0
        self._last_reply = 0.0
        self._first_inject = 0.0
        self._last_inject = 0.0
        self._loader: asyncio.Task[None] | None = None

    def routes(self, app: web.Application) -> None:
        super().routes(app)
        app.router.add_post("/bench/load", self._load)
        app.router.add_get("/bench/report", self._report)

    async def stop(self) -> None:
        if self._loader is not None:
            self._loader.cancel()
            await asyncio.gather(self._loader, return_exceptions=True)
        await super().stop()

    async def _load(self, request: web.Request) -> web.Response:
        plan = await request.json()
        if self._loader is not None and not self._loader.done():
            return json_response({"ok": False, "error": "a load is already running"}, 409)
        messages, chats = int(plan["messages"]), int(plan["chats"])
        rate = float(plan.get("rate", 0))
        self._loader = asyncio.create_task(self._inject(messages, chats, rate),
                                           name="bench:telegram:loader")
        return json_response({"ok": True})

    async def _inject(self, messages: int, chats: int, rate: float) -> None:
        start = time.monotonic()
        self._first_inject = start
        sent = 0
        while sent < messages:
            now = time.monotonic()
            due = messages if rate <= 0 else min(messages, int((now - start) * rate) + 1)
            while sent < due:
                chat = FIRST_CHAT + sent % chats
                message = self.inject_message(chat, f"bench message {sent} to chat {chat}")
                self._injected[(chat, message["message_id"])] = time.monotonic()
                sent += 1
            self._last_inject = time.monotonic()
            if sent < messages:
                await asyncio.sleep(max(0.0, start + sent / rate - time.monotonic()))

    def _match(self) -> None:
        """Fold replies recorded since the last report into the per-message first reply."""
        sent = self.sent
        for record in sent[self._cursor:]:
            if record.method != "sendMessage":
                continue
            key = (record.chat_id, record.reply_to_message_id or 0)
            if key not in self._injected:
                self._unmatched += 1
            elif key in self._first_reply:
                self._duplicates += 1
            else:
                self._first_reply[key] = record.ts
            self._last_reply = max(self._last_reply, record.ts)
        self._cursor = len(sent)

    async def _report(self, request: web.Request) -> web.Response:
        self._match()
        latencies = [] if request.query.get("latencies") == "0" else [
            (self._first_reply[k] - t) * 1000 for k, t in self._injected.items()
            if k in self._first_reply and t >= self._first_inject]
        data: dict[str, Any] = {
            "injected": len(self._injected),
            "injecting": self._loader is not None and not self._loader.done(),
            "replied": len(self._first_reply),
            "duplicates": self._duplicates,
            "unmatched": self._unmatched,
            "chat_actions": len(self.chat_actions),
            "latencies_ms": latencies,
            "first_inject": self._first_inject,
            "last_inject": self._last_inject,
            "last_reply": self._last_reply,
            "now": time.monotonic(),
            "cpu_seconds": time.process_time(),
        }
        return json_response(data)


async def _serve() -> None:
    fake = BenchTelegram()
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


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve())
