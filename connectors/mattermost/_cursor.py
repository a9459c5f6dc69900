"""Where the channel stopped reading, per Mattermost channel, kept in ``ctx.state``.

Mattermost's WebSocket replays nothing to a new connection, so what was posted while the
bot was away is fetched with ``GET /channels/{id}/posts?since=<ms>``. The cursor holds,
per channel, the ``create_at`` of the newest post handled there (journaled, or skipped on
purpose), and ``at``, the newest of all, for channels that have none yet (a direct
message opened while the bot was away). Catching up reads from the cursor's millisecond
*included*: a post at that same millisecond that was not handled yet is not lost, and one
that was is recognised again (the journal keeps one row per post id).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Cursor"]

MAX_CHANNELS = 5000
"""Channels a cursor remembers; the least recently active are forgotten first (they fall
back to ``at``, which only means a few more posts are read and recognised)."""


@dataclass
class Cursor:
    at: int = 0
    channels: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, value: Any) -> Cursor:
        """The stored cursor; an empty one for anything unreadable (a first start)."""
        if not isinstance(value, dict):
            return cls()
        at = value.get("at")
        channels = value.get("channels")
        good = {k: v for k, v in (channels.items() if isinstance(channels, dict) else ())
                if isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)}
        return cls(at if isinstance(at, int) and not isinstance(at, bool) else 0, good)

    @property
    def empty(self) -> bool:
        return self.at <= 0

    def known(self, channel_id: str) -> int:
        """Milliseconds from which ``channel_id`` must be read again."""
        return self.channels.get(channel_id, self.at)

    def advance(self, channel_id: str, create_at: int) -> bool:
        """Note a handled post; True when the cursor moved (and should be saved)."""
        moved = create_at > self.channels.get(channel_id, 0) or create_at > self.at
        if not moved:
            return False
        self.channels[channel_id] = max(self.channels.get(channel_id, 0), create_at)
        self.at = max(self.at, create_at)
        if len(self.channels) > MAX_CHANNELS:
            oldest = sorted(self.channels, key=self.channels.__getitem__)
            for key in oldest[:len(self.channels) - MAX_CHANNELS]:
                del self.channels[key]
        return True

    def dump(self) -> dict[str, Any]:
        return {"at": self.at, "channels": dict(self.channels)}
