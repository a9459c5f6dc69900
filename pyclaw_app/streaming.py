"""Show a reply growing on channels that can edit messages.

One draft message is sent once the first text arrives and then edited with the
text so far, at most once per ``interval`` (platforms rate-limit edits, and a
second is what a reader perceives as live), and within the channel's
``EditBudget`` when its platform limits the bot's edits overall. Edits run in one task, so they
reach the platform in order; the final text is applied by the caller after
``finish()``, so what the user ends up reading is always the full reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from pyclaw_app.errors import RetryableError

__all__ = ["DraftStream", "EditBudget"]

_log = logging.getLogger(__name__)

ELLIPSIS = "…"


class EditBudget:
    """One channel's live-draft edits per second, shared by all its drafts (a token bucket).

    A platform limits a bot's requests, not each message's: 2,000 drafts editing once a
    second each are 2,000 edits a second, answered with 429s that slow the replies too. An
    edit that finds no token is skipped, not queued: the draft's next edit shows the text
    so far, and the final text always goes out (it is not a draft edit)."""

    def __init__(self, rate: float, burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._clock = clock
        self._tokens = self.burst
        self._at = clock()

    def take(self) -> float:
        """Take a token: 0.0 when there was one, else the seconds until there will be."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate


class DraftStream:
    def __init__(self, *, open_draft: Callable[[str], Awaitable[str]],
                 edit: Callable[[str, str], Awaitable[None]], limit: int,
                 length: Callable[[str], int] = len, interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic, name: str = "draft",
                 budget: EditBudget | None = None) -> None:
        self._open_draft = open_draft
        self._edit = edit
        self._limit = limit
        self._length = length
        self._interval = interval
        self._clock = clock
        self._name = name
        self._budget = budget
        self._text = ""
        self._shown = ""
        self._changed = asyncio.Event()
        self._stop = asyncio.Event()
        self._closing = False
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self.draft_id: str | None = None
        self.broken: str | None = None
        """Why the draft can no longer be edited (the reply then goes out as a new message)."""
        self.edits = 0

    def feed(self, delta: str) -> None:
        self._text += delta
        self._changed.set()
        if self._timer is None and self.broken is None and not self._closing:
            # A reply done within the first interval goes out as one message, no draft; a
            # timer costs far less than a task sleeping through it for every message.
            self._timer = asyncio.get_running_loop().call_later(self._interval, self._start)

    def _start(self) -> None:
        if not self._closing:
            self._task = asyncio.create_task(self._run(), name=f"stream:{self._name}")

    def reset(self) -> None:
        """The text streamed so far was discarded upstream (failover, tool call)."""
        self._text = ""
        self._changed.set()

    async def finish(self) -> str | None:
        """Stop streaming; returns the draft's platform id if it can take the final edit.

        An open or edit already under way is let finish (never cancelled half-sent), so the
        caller knows for sure whether a draft exists.
        """
        self._closing = True
        self._stop.set()
        self._changed.set()
        if self._timer is not None:
            self._timer.cancel()
        if self._task is not None:
            await self._task
            self._task = None
        return self.draft_id if self.broken is None else None

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once when finish() is called."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    def _preview(self) -> str:
        text = self._text
        if self._length(text) <= self._limit:
            return text
        lo, hi = 0, len(text)
        while lo < hi:  # longest prefix that fits with the ellipsis
            mid = (lo + hi + 1) // 2
            if self._length(text[:mid]) + 1 <= self._limit:
                lo = mid
            else:
                hi = mid - 1
        return text[:lo] + ELLIPSIS

    async def _run(self) -> None:
        last = self._clock()
        while not self._closing:
            await self._changed.wait()
            self._changed.clear()
            if self._closing:
                return
            wait = self._interval - (self._clock() - last)
            if self.draft_id is not None and wait > 0:
                await self._pause(wait)
                if self._closing:
                    return
            preview = self._preview()
            if not preview.strip() or preview == self._shown:
                continue
            if self.draft_id is not None and self._budget is not None \
                    and (wait := self._budget.take()) > 0:
                await self._pause(max(wait, self._interval))  # the others' turn: skip
                self._changed.set()  # then edit with whatever the text is by then
                continue
            try:
                if self.draft_id is None:
                    self.draft_id = await self._open_draft(preview)
                else:
                    await self._edit(self.draft_id, preview)
                    self.edits += 1
            except RetryableError as exc:
                await self._pause(exc.retry_after or self._interval)
                self._changed.set()
                continue
            except Exception as exc:  # noqa: BLE001 - any failure ends live edits, not the reply
                self.broken = str(exc) or type(exc).__name__
                _log.info("%s: live edits stopped: %s", self._name, self.broken)
                return
            self._shown = preview
            last = self._clock()
