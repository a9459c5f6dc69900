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

``--final-suffix TEXT`` is for a gateway that streams: it sends a draft and
edits it (``editMessageText``) as the answer grows, so a reply counts as
arrived only once the message that replies to the injected one shows text
ending with TEXT, whether sent so or edited into it. The report then also
has the latencies to the first visible text (the draft) and the edit count.

Injecting here rather than over HTTP per message keeps the load generator
out of the measurement, and puts both ends of every latency on this
process's monotonic clock.
"""

from __future__ import annotations

import argparse
import time
from collections import deque
from typing import Any

from aiohttp import web

from bench._fake_platform import FIRST_CHAT, Load, run_until_signalled
from tests.fakes.server import json_response
from tests.fakes.telegram_api import DEFAULT_TOKEN, FakeTelegram

__all__ = ["FIRST_CHAT", "BenchTelegram"]


class BenchTelegram(FakeTelegram):
    def __init__(self, final_suffix: str | None = None) -> None:
        super().__init__(DEFAULT_TOKEN)
        self.requests = deque(maxlen=64)  # type: ignore[assignment]  # only appended to
        self._final_suffix = final_suffix
        self._injected: dict[tuple[int, int], float] = {}
        self._first_reply: dict[tuple[int, int], float] = {}
        self._first_text: dict[tuple[int, int], float] = {}
        self._answers: dict[tuple[int, int], tuple[int, int]] = {}
        """(chat, bot message id) -> the injected message it answers: where edits land."""
        self._edits = 0
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
            if record.method == "sendMessage":
                key = (record.chat_id, record.reply_to_message_id or 0)
                if key not in self._injected:
                    self._unmatched += 1
                    continue
                self._answers[(record.chat_id, record.message_id)] = key
                self._first_text.setdefault(key, record.ts)
            elif record.method == "editMessageText" and self._final_suffix is not None:
                self._edits += 1
                found = self._answers.get((record.chat_id, record.message_id))
                if found is None:
                    self._unmatched += 1
                    continue
                key = found
            else:
                continue
            if self._final_suffix is not None and not record.text.endswith(self._final_suffix):
                continue  # a draft on its way
            if key in self._first_reply:
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
            "edits": self._edits,
            "latencies_ms": latencies,
            "first_text_ms": [] if not latencies else [
                (self._first_text[k] - t) * 1000 for k, t in self._injected.items()
                if k in self._first_text and t >= self.load.first_inject],
            "last_reply": self._last_reply,
        }
        return json_response(data)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fake_telegram")
    parser.add_argument("--final-suffix", default=None,
                        help="a reply has arrived once its text (sent or edited) ends with "
                             "this; default: its first sendMessage")
    args = parser.parse_args()
    run_until_signalled(lambda: BenchTelegram(args.final_suffix))


if __name__ == "__main__":
    main()
