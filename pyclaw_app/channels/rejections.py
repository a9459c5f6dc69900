"""Refused requests counted per source, so a flood of forgeries costs a few log lines.

Every refused webhook request used to be a row in ``channel_log``: one client sending
bad signatures wrote hundreds a second, and the disk filled. :class:`RejectionLog` writes
the first few rejections of a source as they happen (what an owner setting up a channel
needs to see) and counts the rest; when the window ends, each source that was cut short
gets one line that sums it up ("1,000 rejected webhook requests in the last minute from
203.0.113.9: bad signature"). A source still being refused gets no new single lines until
it has been quiet for a whole window. The single lines per window and the sources tracked
are bounded as well, so an attacker rotating addresses is summed up as "other sources".
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "FIRST_PER_SOURCE",
    "LINES_PER_WINDOW",
    "MAX_SOURCES",
    "WINDOW",
    "RejectionLog",
]

WINDOW = 60.0
"""Seconds over which rejections are counted before their summary line is written."""
FIRST_PER_SOURCE = 5
"""Rejections of a new source written one by one before they are only counted."""
LINES_PER_WINDOW = 20
"""Single lines per window over all sources (many sources at once are counted, too)."""
MAX_SOURCES = 32
"""Sources counted apart in one window; the rest share one "other sources" line."""
MAX_REASONS = 4
"""Distinct reasons a summary names (a reason may quote the request); the rest are summed."""
UNKNOWN_SOURCE = "an unknown source"
OTHER_SOURCES = "other sources"
OTHER_REASONS = "other reasons"
_RANK = {"debug": 0, "info": 1, "warning": 2, "error": 3, "critical": 4}


class _Timer(Protocol):
    def cancel(self) -> None: ...


Schedule = Callable[[float, Callable[[], None]], _Timer]
"""``loop.call_later``: run the callback after that many seconds."""
Log = Callable[..., None]
"""``ctx.log(level, message, **data)``."""


@dataclass
class _Tally:
    allowance: int
    count: int = 0
    logged: int = 0
    level: str = "debug"
    reasons: Counter[str] = field(default_factory=Counter)

    def add(self, reason: str, level: str) -> None:
        self.count += 1
        if reason not in self.reasons and len(self.reasons) >= MAX_REASONS:
            reason = OTHER_REASONS
        self.reasons[reason] += 1
        if _RANK.get(level, 1) > _RANK.get(self.level, 1):
            self.level = level


class RejectionLog:
    """The channel log's view of refused requests: a few lines per source, then a count.

    ``noun`` and its ``article`` name what was refused (an API channel's callers send "an
    API request"). ``schedule`` is the event loop's ``call_later`` unless a test drives the
    windows itself.
    """

    def __init__(self, log: Log, *, noun: str = "webhook request", article: str = "a",
                 window: float = WINDOW, first: int = FIRST_PER_SOURCE,
                 lines_per_window: int = LINES_PER_WINDOW, max_sources: int = MAX_SOURCES,
                 schedule: Schedule | None = None) -> None:
        if window <= 0 or first < 0 or lines_per_window < 0 or max_sources < 1:
            raise ValueError("window must be positive, the limits not negative and at least "
                             "one source counted")
        self._log = log
        self._noun = noun
        self._article = article
        self.window = window
        self.first = first
        self.lines_per_window = lines_per_window
        self.max_sources = max_sources
        self._schedule = schedule
        self._sources: dict[str, _Tally] = {}
        self._other = _Tally(allowance=0)
        self._lines_left = lines_per_window
        self._timer: _Timer | None = None

    def rejected(self, source: str, reason: str, *, level: str = "warning",
                 **data: Any) -> None:
        """One refused request from ``source`` (an address; empty when unknown)."""
        source = source or UNKNOWN_SOURCE
        if self._timer is None:
            self._arm()
        tally = self._sources.get(source)
        if tally is None:
            if len(self._sources) < self.max_sources:
                tally = self._sources[source] = _Tally(allowance=self.first)
            else:
                tally = self._other
        tally.add(reason, level)
        if tally.allowance > 0 and self._lines_left > 0:
            tally.allowance -= 1
            tally.logged += 1
            self._lines_left -= 1
            self._log(level, f"rejected {self._article} {self._noun}: {reason}",
                      source=source, **data)

    def close(self) -> None:
        """Write what is still only counted (the channel stops); nothing is scheduled after."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._summarise()
        self._sources.clear()

    def _end_window(self) -> None:
        self._timer = None
        noisy = self._summarise()
        # A source cut short in this window starts the next one without single lines; one
        # that stayed under its allowance, or sent nothing, is forgotten.
        self._sources = {source: _Tally(allowance=0) for source in noisy}
        if self._sources:
            self._arm()

    def _arm(self) -> None:
        schedule = self._schedule or asyncio.get_running_loop().call_later
        self._timer = schedule(self.window, self._end_window)

    def _summarise(self) -> list[str]:
        """One line per source with rejections not written one by one; those sources."""
        noisy = [source for source, tally in self._sources.items()
                 if tally.count > tally.logged]
        for source in noisy:
            self._write_summary(source, self._sources[source])
        if self._other.count:
            self._write_summary(OTHER_SOURCES, self._other)
        self._other = _Tally(allowance=0)
        self._lines_left = self.lines_per_window
        return noisy

    def _write_summary(self, source: str, tally: _Tally) -> None:
        span = "minute" if self.window == WINDOW else f"{self.window:g} s"
        reasons = sorted(tally.reasons.items(),
                         key=lambda item: (item[0] == OTHER_REASONS, -item[1]))
        because = reasons[0][0] if len(reasons) == 1 else ", ".join(
            f"{reason} ({count:,})" for reason, count in reasons)
        noun = self._noun if tally.count == 1 else f"{self._noun}s"
        self._log(tally.level, f"{tally.count:,} rejected {noun} in the last {span} from "
                  f"{source}: {because}", source=source, rejected=tally.count,
                  logged_one_by_one=tally.logged)
