"""The one backoff helper every reconnect and retry loop uses.

Exponential with full jitter, a capped exponent, and a reset after a quiet
period so a channel that was healthy for a while starts again from short delays.
"""

from __future__ import annotations

import random
import time

__all__ = ["Backoff"]

_JITTER = random.Random()
"""Shared by every Backoff without its own rng: seeding a new Random reads
os.urandom, and a Backoff is made per send and per store batch (2 % of the
gateway's loop under load, bench/RESULTS.md section 4); jitter needs no
independent streams."""


class Backoff:
    def __init__(
        self,
        base: float = 0.5,
        cap: float = 60.0,
        reset_after: float = 120.0,
        rng: random.Random | None = None,
    ) -> None:
        self.base = base
        self.cap = cap
        self.reset_after = reset_after
        self._rng = rng or _JITTER
        self._attempt = 0
        self._last = 0.0

    @property
    def attempts(self) -> int:
        return self._attempt

    def next_delay(self, at_least: float = 0.0) -> float:
        """Delay before the next try; ``at_least`` honours a server's Retry-After."""
        now = time.monotonic()
        if self._last and now - self._last > self.reset_after:
            self._attempt = 0
        self._last = now
        exp = min(self._attempt, 16)
        self._attempt += 1
        ceiling = min(self.cap, self.base * (2**exp))
        return max(at_least, self._rng.uniform(ceiling / 2, ceiling))

    def reset(self) -> None:
        self._attempt = 0
