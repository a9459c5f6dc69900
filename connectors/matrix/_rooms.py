"""The rooms the bot is in, as far as the parser needs them: members and its name.

Kept from the state events of ``/sync`` (the full state on each connection's first sync,
then the changes), in memory only: a new connection rebuilds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from connectors.matrix._parse import RoomView

__all__ = ["Rooms"]


@dataclass
class _Room:
    members: dict[str, str] = field(default_factory=dict)
    """user id -> membership (join, invite, leave, ban, knock)."""
    names: dict[str, str] = field(default_factory=dict)


class Rooms:
    """Joined rooms by id; :meth:`apply` takes any event and keeps what is state."""

    def __init__(self, bot_id: str) -> None:
        self.bot_id = bot_id
        self._rooms: dict[str, _Room] = {}

    def apply(self, room_id: str, event: Any) -> None:
        if not isinstance(event, dict) or not isinstance(event.get("state_key"), str):
            return
        room = self._rooms.setdefault(room_id, _Room())
        content = event.get("content") if isinstance(event.get("content"), dict) else {}
        kind, key = event.get("type"), event["state_key"]
        if kind == "m.room.member":
            membership = content.get("membership")
            room.members[key] = membership if isinstance(membership, str) else "leave"
            name = content.get("displayname")
            if isinstance(name, str):
                room.names[key] = name

    def view(self, room_id: str) -> RoomView:
        room = self._rooms.get(room_id, _Room())
        members = sum(1 for m in room.members.values() if m in ("join", "invite"))
        return RoomView(room_id=room_id, members=members, bot_id=self.bot_id,
                        bot_name=room.names.get(self.bot_id, ""), names=dict(room.names))

    def forget(self, room_id: str) -> None:
        self._rooms.pop(room_id, None)
