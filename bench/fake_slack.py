"""The fake Slack (Web API + Socket Mode) as its own process, plus the load generator and stopwatch.

``python -m bench.fake_slack`` serves tests/fakes/slack_api.py's ``SlackFake``
on a free loopback port, prints ``READY <port>`` and runs until SIGTERM. Two
extra routes (outside ``/api/`` and ``/link/``, so no app can reach them by
accident) let the harness drive it, with the same contract as
bench/fake_telegram.py:

- ``POST /bench/load`` ``{"messages": N, "chats": C, "rate": R}`` injects N
  direct messages round-robin over C DM conversations (``D1001``... from user
  ``U1001``...), all at once when R is 0, else R per second on a fixed
  schedule. Each one is a ``message.im`` event delivered through SlackFake's
  own Socket Mode path: an ``events_api`` envelope on the live connection,
  pending until acked and redelivered on the next connection if it is not.
- ``GET /bench/report`` matches every ``chat.postMessage`` to the injected
  message it answers and returns the same JSON as fake_telegram's report
  (``?latencies=0`` leaves the latencies and ack figures out), plus ``edits``,
  ``unacked``, ``connections`` and, for the latest load, how long acks took
  (``ack_p50_ms``, ``ack_p99_ms``, ``ack_max_ms``) and how many came later than
  the 3 s after which Slack would have resent the envelope (``acks_late``: this
  fake resends only on a new connection, so a late ack costs nothing here).

Why DMs: they are what the connector answers by default (channel messages need
an @mention unless ``group_reply`` is ``all``), and a DM is one conversation,
as the Telegram load's private chats are, so per-chat ordering and a growing
history are exercised alike. The price: the connector answers a DM flat (no
``thread_ts``), so a reply is matched by the message number its text echoes
(the fake LLM and the baseline both answer ``Echo: <text>``). A reply that
names no message yet (a streamed draft opened with the first few words) is
attributed once a ``chat.update`` of it does; its time is still that of the
post, when the user first saw it. A reply posted in the message's thread (the
baseline's) is matched by ``thread_ts`` directly.
"""

from __future__ import annotations

import itertools
import re
import time
from typing import Any

from aiohttp import web

from bench._fake_platform import FIRST_CHAT, Load, run_until_signalled
from bench._stats import percentile
from tests.fakes.server import json_response
from tests.fakes.slack_api import SlackFake

__all__ = ["APP_TOKEN", "BOT_TOKEN", "FIRST_CHAT", "BenchSlack"]

BOT_TOKEN = "xoxb-bench-bot-token"
APP_TOKEN = "xapp-bench-app-token"

ACK_WINDOW = 3.0
"""Seconds Slack waits for an envelope's ack before it sends the envelope again."""

_NUMBER = re.compile(r"bench message (\d+) to chat ")
"""The injected text's id as a reply echoes it; the trailing words make a cut-off number
(a draft showing "bench message 12…" of message 123) never match."""


class BenchSlack(SlackFake):
    def __init__(self) -> None:
        super().__init__(bot_token=BOT_TOKEN, app_token=APP_TOKEN)
        self._numbers = itertools.count(1)
        """Message numbers run on across loads, so a soak's rounds never share one."""
        self._injected: dict[int, float] = {}  # message number -> when it was delivered
        self._by_ts: dict[tuple[str, str], int] = {}  # (channel, ts) -> message number
        self._delivered: dict[str, float] = {}  # envelope id -> when it went out
        self._first_reply: dict[int, float] = {}
        self._drafts: dict[tuple[str, str], float] = {}  # posts naming no message yet
        self._duplicates = 0
        self._unmatched = 0
        self._post_cursor = 0
        self._update_cursor = 0
        self._last_reply = 0.0
        self.load = Load(self._inject_one, "slack")

    def routes(self, app: web.Application) -> None:
        super().routes(app)
        app.router.add_post("/bench/load", self.load.handle)
        app.router.add_get("/bench/report", self._report)

    async def stop(self) -> None:
        await self.load.stop()
        await self.drop_connection()  # an open socket would hold the runner's cleanup
        await super().stop()

    async def _inject_one(self, sent: int, chat: int) -> None:
        channel, number = f"D{chat}", next(self._numbers)
        payload = self.message_event(channel, f"bench message {number} to chat {channel}",
                                     user=f"U{chat}")
        self._by_ts[(channel, payload["event"]["ts"])] = number
        self._injected[number] = time.monotonic()
        envelope = await self.deliver(payload)
        self._delivered[envelope.envelope_id] = self._injected[number]

    def _match(self) -> None:
        """Fold posts and edits recorded since the last report into the per-message first reply."""
        for post in self.posts[self._post_cursor:]:
            number = self._by_ts.get((post.channel, post.thread_ts or ""))
            if number is None:
                number = _number(post.text)
            if number is None:
                self._drafts[(post.channel, post.ts)] = post.monotonic
            else:
                self._count(number, post.monotonic)
            self._last_reply = max(self._last_reply, post.monotonic)
        self._post_cursor = len(self.posts)
        for update in self.updates[self._update_cursor:]:
            seen = self._drafts.get((update.channel, update.ts))
            number = _number(update.text) if seen is not None else None
            if seen is not None and number is not None:
                del self._drafts[(update.channel, update.ts)]
                self._count(number, seen)
        self._update_cursor = len(self.updates)

    def _count(self, number: int, seen: float) -> None:
        if number not in self._injected:
            self._unmatched += 1
        elif number in self._first_reply:
            self._duplicates += 1
        else:
            self._first_reply[number] = seen

    async def _report(self, request: web.Request) -> web.Response:
        self._match()
        latencies = [] if request.query.get("latencies") == "0" else [
            (self._first_reply[n] - t) * 1000 for n, t in self._injected.items()
            if n in self._first_reply and t >= self.load.first_inject]
        acks = [] if request.query.get("latencies") == "0" else [
            (self.acked_at[e] - t) * 1000 for e, t in self._delivered.items()
            if e in self.acked_at and t >= self.load.first_inject]
        data: dict[str, Any] = {
            **self.load.report(),
            "injected": len(self._injected),
            "replied": len(self._first_reply),
            "duplicates": self._duplicates,
            "unmatched": self._unmatched + len(self._drafts),
            "chat_actions": 0,  # bots have no typing indicator in Slack's Web API
            "edits": len(self.updates),
            "unacked": self.unacked,
            "connections": self.connections,
            "ack_p50_ms": percentile(acks, 50) if acks else None,
            "ack_p99_ms": percentile(acks, 99) if acks else None,
            "ack_max_ms": max(acks, default=None),
            "acks_late": sum(ms > ACK_WINDOW * 1000 for ms in acks),
            "latencies_ms": latencies,
            "last_reply": self._last_reply,
        }
        return json_response(data)


def _number(text: str) -> int | None:
    found = _NUMBER.search(text)
    return int(found.group(1)) if found else None


if __name__ == "__main__":
    run_until_signalled(BenchSlack)
