"""Where the channel stands in each room, in the server's clock; kept in ``ctx.state``.

``rooms``: per room the time (ms) of the newest message handled. ``floors``: per room the
newest message when the bot first started; that history is never answered. ``since``: when
the last connection began, the floor of rooms that came later (one the bot was added to
while away). Pure bookkeeping: the connector saves :meth:`Cursor.to_json` after each
message it submitted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from connectors.rocketchat._parse import RoomInfo, Stamp

__all__ = ["GRACE_MS", "Cursor"]

GRACE_MS = 10_000
"""How far before a room's cursor a message still counts as possibly new: the server
stamps ``ts`` before it stores and broadcasts, so concurrent messages can arrive a little
out of order. The journal recognises the ones of this window it already has."""


def _times(value: object) -> dict[str, int]:
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in value.items()
            if isinstance(v, int) and not isinstance(v, bool)}


@dataclass
class Cursor:
    since: int | None = None
    """None before the very first connection was caught up."""
    rooms: dict[str, int] = field(default_factory=dict)
    floors: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_json(cls, saved: object) -> Cursor:
        data = saved if isinstance(saved, dict) else {}
        since = data.get("since")
        return cls(since if isinstance(since, int) and not isinstance(since, bool) else None,
                   _times(data.get("rooms")), _times(data.get("floors")))

    def to_json(self) -> dict[str, object]:
        return {"since": self.since, "rooms": self.rooms, "floors": self.floors}

    @property
    def first(self) -> bool:
        """No connection was ever caught up: everything in the rooms now is history."""
        return self.since is None

    def set_floors(self, rooms: Iterable[RoomInfo], now: int) -> None:
        """At the first start: each room's newest message (``now`` for an empty room)."""
        self.floors = {room.rid: room.last_message or now for room in rooms}

    def floor(self, rid: str) -> int:
        """Messages of the room at or before this time are history, never answered."""
        return self.floors.get(rid, self.since or 0)

    def is_old(self, where: Stamp) -> bool:
        """History, or an update of a message from before the cursor's grace window."""
        return where.ts <= self.floor(where.rid) \
            or where.ts < self.rooms.get(where.rid, 0) - GRACE_MS

    def advance(self, where: Stamp) -> bool:
        """Move the room's cursor to ``where``; True when it moved (save it then)."""
        if where.ts <= self.rooms.get(where.rid, 0):
            return False
        self.rooms[where.rid] = where.ts
        return True

    def catch_up_from(self, room: RoomInfo) -> int | None:
        """The time to read the room's history from after an absence, or None when its
        newest message is one the cursor already covers."""
        cursor, floor = self.rooms.get(room.rid), self.floor(room.rid)
        newest = room.last_message
        if newest is not None and newest <= (floor if cursor is None else cursor):
            return None
        return floor if cursor is None else max(floor, cursor - GRACE_MS)
