"""Bounded per-message memory for connectors: reply tokens, ids the bot sent, a chat's newest
message. Kept in memory only (what must survive a restart goes in ``ctx.state``)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

__all__ = ["Recent"]

K = TypeVar("K")
V = TypeVar("V")


class Recent(OrderedDict[K, V], Generic[K, V]):
    """A dict of the ``size`` keys set most recently; the oldest is forgotten first."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def remember(self, key: K, value: V) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)
