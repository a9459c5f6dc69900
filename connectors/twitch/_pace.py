"""Twitch's chat rate limits as a pacer: the bot waits rather than have messages dropped.

Twitch counts every PRIVMSG of an account in a rolling window (30 s): 100 at most, and
at most 20 of those to channels where the account is not a moderator, VIP or the
broadcaster. There it also allows one message per second per channel (more in slow
mode) and drops a message identical to the last one sent there less than 30 s before.
What goes over is dropped with a NOTICE, so the pacer holds each message until it would
be accepted; where the bot is elevated only the 100 apply. The clock is injectable so
the arithmetic is tested without waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

__all__ = ["DUPLICATE_WINDOW", "MIN_GAP", "ChatPacer"]

MIN_GAP = 1.0
"""Seconds between two messages to one channel for an account that is not elevated there."""
GAP_MARGIN = 0.15
"""Seconds kept on top of a channel's gap: Twitch times messages as they arrive, and the
first of two can arrive late (a busy process, the network) and the second on time, which
brings them closer than they were sent."""
DUPLICATE_WINDOW = 30.0
"""Seconds within which Twitch drops a repeat of the last message sent to a channel."""
_UNIQUE_SUFFIX = " \U000e0000"
"""An invisible tag character: what makes a deliberate repeat a different message."""


class ChatPacer:
    def __init__(self, limit: int, elevated_limit: int, window: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.elevated_limit = elevated_limit
        self.window = window
        self.elevated: dict[str, bool] = {}
        """Per channel: the bot is a moderator, VIP or the broadcaster there (USERSTATE)."""
        self.slow: dict[str, float] = {}
        """Per channel: its slow mode in seconds (ROOMSTATE ``slow``)."""
        self._clock = clock
        self._sent: deque[tuple[float, bool]] = deque()  # (when, counted as not elevated)
        self._last: dict[str, tuple[float, str]] = {}
        self._paused_until = 0.0

    def wait_time(self, chat: str) -> float:
        """Seconds until a message to ``chat`` would be accepted (0: now)."""
        now = self._clock()
        while self._sent and self._sent[0][0] <= now - self.window:
            self._sent.popleft()
        waits = [self._paused_until - now]
        if len(self._sent) >= self.elevated_limit:
            waits.append(self._sent[-self.elevated_limit][0] + self.window - now)
        if not self.elevated.get(chat, False):
            counted = [when for when, plain in self._sent if plain]
            if len(counted) >= self.limit:
                waits.append(counted[-self.limit] + self.window - now)
            last = self._last.get(chat)
            if last is not None:
                gap = max(MIN_GAP, self.slow.get(chat, 0.0)) + GAP_MARGIN
                waits.append(last[0] + gap - now)
        return max(0.0, *waits)

    def unique(self, chat: str, text: str) -> str:
        """``text`` as it must go so that Twitch does not drop it as a repeat."""
        last = self._last.get(chat)
        if (last is not None and not self.elevated.get(chat, False) and last[1] == text
                and self._clock() - last[0] < DUPLICATE_WINDOW):
            return text + _UNIQUE_SUFFIX
        return text

    async def take(self, chat: str) -> None:
        """Wait until a message to ``chat`` may go. Callers send one at a time, so nothing
        moves the time while this one sleeps: one sleep is enough."""
        wait = self.wait_time(chat)
        if wait > 0:
            await asyncio.sleep(wait)

    def record(self, chat: str, text: str) -> None:
        """A message to ``chat`` was written: it counts from now."""
        now = self._clock()
        self._sent.append((now, not self.elevated.get(chat, False)))
        self._last[chat] = (now, text)

    def pause(self, seconds: float | None = None) -> float:
        """Twitch said the bot sent too fast: send nothing for a window (or ``seconds``);
        returns the pause."""
        pause = self.window if seconds is None else seconds
        self._paused_until = max(self._paused_until, self._clock() + pause)
        return pause
