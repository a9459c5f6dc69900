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

import time
from collections import deque
from typing import Any

from aiohttp import web

from bench._fake_platform import FIRST_CHAT, Load, run_until_signalled
from tests.fakes.server import json_response
from tests.fakes.telegram_api import DEFAULT_TOKEN, FakeTelegram

__all__ = ["FIRST_CHAT", "BenchTelegram"]


class BenchTelegram(FakeTelegram):
    def __init__(self) -> None:
        super().__init__(DEFAULT_TOKEN)
        self.requests = deque(maxlen=64)  # type: ignore[assignment]  # only appended to
        self._injected: dict[tuple[int, int], float] = {}
        self._first_reply: dict[tuple[int, int], float] = {}
        self._duplicates = 0
        self._unmatched = 0
        self._cursor = 0
        self._last_reply = 0.0
        self.load = Load(self._inject_one, "telegram")

    def routes(self, app: web.Application) -> None:
        super().routes(app)
        app.router.add_post("/bench/load", self.load.handle)
        app.router.add_get("/bench/report", self._report)

    async def stop(self) -> None:
        await self.load.stop()
        await super().stop()

    async def _inject_one(self, sent: int, chat: int) -> None:
        message = self.inject_message(chat, f"bench message {sent} to chat {chat}")
        self._injected[(chat, message["message_id"])] = time.monotonic()

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
            if k in self._first_reply and t >= self.load.first_inject]
        data: dict[str, Any] = {
            **self.load.report(),
            "injected": len(self._injected),
            "replied": len(self._first_reply),
            "duplicates": self._duplicates,
            "unmatched": self._unmatched,
            "chat_actions": len(self.chat_actions),
            "latencies_ms": latencies,
            "last_reply": self._last_reply,
        }
        return json_response(data)


if __name__ == "__main__":
    run_until_signalled(BenchTelegram)
