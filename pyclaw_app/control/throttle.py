"""Back off a source that keeps presenting wrong control-API tokens.

A token is 256 random bits, so guessing is hopeless anyway; the throttle makes trying
expensive and quiet: after ``free_failures`` wrong tokens from one address, that address
waits (doubling each time, up to ``max_delay``) before *any* token from it is checked.
A right token, or ``forget_after`` seconds without a wrong one, clears its record. Memory
is bounded: the oldest records go first.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["AuthThrottle"]


@dataclass(slots=True)
class _Record:
    failures: int = 0
    blocked_until: float = 0.0
    last_failure: float = 0.0


class AuthThrottle:
    def __init__(self, *, free_failures: int = 5, base_delay: float = 1.0,
                 max_delay: float = 900.0, forget_after: float = 3600.0,
                 max_sources: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.free_failures = free_failures
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.forget_after = forget_after
        self.max_sources = max_sources
        self._clock = clock
        self._records: OrderedDict[str, _Record] = OrderedDict()

    def retry_after(self, source: str) -> float:
        """Seconds ``source`` must still wait before a token of its is looked at (0: now)."""
        record = self._records.get(source)
        if record is None:
            return 0.0
        return max(0.0, record.blocked_until - self._clock())

    def failed(self, source: str) -> float:
        """Count a wrong token; returns the wait this failure imposed (0 within the free ones)."""
        now = self._clock()
        record = self._records.pop(source, None)
        if record is None or now - record.last_failure > self.forget_after:
            record = _Record()
        self._records[source] = record
        while len(self._records) > self.max_sources:
            self._records.popitem(last=False)
        record.failures += 1
        record.last_failure = now
        over = record.failures - self.free_failures
        if over <= 0:
            return 0.0
        delay = min(self.max_delay, self.base_delay * 2 ** min(over - 1, 32))
        record.blocked_until = now + delay
        return delay

    def succeeded(self, source: str) -> None:
        self._records.pop(source, None)
