"""Rocket.Chat's wire shapes to pyclaw's: pure functions that never raise on odd input.

A message is the same object in the realtime stream (dates as EJSON ``{"$date": ms}``) and
in the REST history (dates as ISO 8601 strings): ``_id``, ``rid``, ``msg``, ``ts``,
``u{_id, username, name}``, ``t`` (set on system messages: joins, topic changes, ``e2e``
for an encrypted one), ``tmid`` (the thread's first message), ``mentions`` (the users the
server found as ``@username`` in the text), ``file``/``files`` and ``attachments`` (file
previews, and quotes, which carry a ``message_link`` to the quoted message).
"""

from __future__ import annotations

import re
from collections.abc import Container, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypedDict
from urllib.parse import parse_qs, urlsplit

from pyclaw_app.model import Address, Attachment, Inbound

__all__ = [
    "ANSWERED_KINDS",
    "GROUP_KINDS",
    "ROOM_MESSAGES",
    "RoomInfo",
    "Skip",
    "Stamp",
    "Viewpoint",
    "parse_message",
    "parse_room",
    "parse_time",
    "room_extras",
    "stamp",
    "stream_message",
]

ROOM_MESSAGES = "stream-room-messages"
GROUP_KINDS = frozenset({"c", "p"})
"""Public channels and private groups (discussions and teams are rooms of these kinds)."""
ANSWERED_KINDS = frozenset({"d", "c", "p"})
_QUOTE = re.compile(r"^\s*\[ ?\]\((\S+?)\)\s*")


class RawUser(TypedDict, total=False):
    _id: str
    username: str
    name: str


class RawMessage(TypedDict, total=False):
    _id: str
    rid: str
    msg: str
    ts: Any
    u: RawUser
    t: str
    tmid: str
    mentions: list[RawUser]
    attachments: list[dict[str, Any]]
    file: dict[str, Any]
    files: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Skip:
    """A message that is not answered, and why (``level`` is the channel log's)."""

    level: Literal["debug", "info", "warning"]
    reason: str


@dataclass(frozen=True, slots=True)
class RoomInfo:
    rid: str
    kind: str
    """``d`` direct, ``c`` public channel, ``p`` private group, ``l`` livechat..."""
    name: str = ""
    members: int | None = None
    last_message: int | None = None
    """``lm``: when the room's newest message was posted (ms), where the server said."""


@dataclass(frozen=True, slots=True)
class Stamp:
    """Where a message sits in its room: the cursor moves by these."""

    rid: str
    ts: int
    """Milliseconds since the epoch, as the server stamped it."""


@dataclass(frozen=True, slots=True)
class Viewpoint:
    """What the parser needs to know about the bot."""

    channel: str
    bot_id: str
    bot_username: str
    server_url: str
    ours: Container[str]
    """Ids of the bot's own messages and of threads it wrote in (``reply_to_bot``)."""


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def parse_time(value: object) -> int | None:
    """Milliseconds from an EJSON date (``{"$date": ms}``) or an ISO 8601 string."""
    if isinstance(value, dict):
        value = value.get("$date")
        if isinstance(value, bool):
            return None
        if isinstance(value, int | float) and value == value and abs(value) < 1e15:
            return int(value)
        return None
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return round(when.timestamp() * 1000)


def stamp(raw: object) -> Stamp | None:
    """The room and time of a message, or None when it has neither."""
    message = _dict(raw)
    rid, ts = _str(message.get("rid")), parse_time(message.get("ts"))
    return Stamp(rid, ts) if rid and ts is not None else None


def parse_room(raw: object) -> RoomInfo | None:
    """A room of ``rooms.get``/``rooms.info``; None without an id and a type."""
    room = _dict(raw)
    rid, kind = _str(room.get("_id")), _str(room.get("t"))
    if not rid or not kind:
        return None
    members: int | None = None
    uids = room.get("uids")
    if isinstance(uids, list):
        members = len(uids)
    elif isinstance(room.get("usersCount"), int) and not isinstance(room.get("usersCount"),
                                                                      bool):
        members = room["usersCount"]
    last = parse_time(room.get("lm")) or parse_time(_dict(room.get("lastMessage")).get("ts"))
    return RoomInfo(rid, kind, _str(room.get("fname")) or _str(room.get("name")), members, last)


def stream_message(frame: object) -> tuple[object, dict[str, Any]] | Skip | None:
    """The message and its extras (``roomParticipant``, ``roomType``, ``roomName``, sent with
    ``__my_messages__``) of a ``changed`` frame of ``stream-room-messages``; None for any
    other frame, a Skip for one of that stream that carries no message."""
    data = _dict(frame)
    if data.get("msg") != "changed" or data.get("collection") != ROOM_MESSAGES:
        return None
    args = _list(_dict(data.get("fields")).get("args"))
    if not args:
        return Skip("warning", "a malformed Rocket.Chat stream event (no message in it)")
    return args[0], _dict(args[1]) if len(args) > 1 else {}


def _mentioned(message: dict[str, Any], text: str, view: Viewpoint) -> bool:
    name = view.bot_username.casefold()
    for user in _list(message.get("mentions")):
        user = _dict(user)
        if _str(user.get("_id")) == view.bot_id or (
                name and _str(user.get("username")).casefold() == name):
            return True
    if not name:
        return False
    return re.search(rf"(?<![\w@.-])@{re.escape(view.bot_username)}(?![\w.-])", text,
                     re.IGNORECASE) is not None


def _quoted(message: dict[str, Any]) -> list[str]:
    """Ids of the messages this one quotes (``attachments[].message_link`` ``?msg=``)."""
    ids = []
    for item in _list(message.get("attachments")):
        link = _str(_dict(item).get("message_link"))
        try:
            ids.extend(parse_qs(urlsplit(link).query).get("msg", []) if link else [])
        except ValueError:  # not a URL (an unclosed IPv6 bracket...)
            continue
    return ids


def _kind(mime: str) -> str:
    major = mime.split("/", 1)[0]
    return major if major in ("image", "audio", "video") else "file"


def _absolute(link: str, server_url: str) -> str | None:
    if link.startswith("/") and not link.startswith("//"):
        return f"{server_url}{link}"
    return link if link.startswith(("https://", "http://")) else None


def _size(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) \
        and value >= 0 else None


def _attachments(message: dict[str, Any], server_url: str) -> tuple[Attachment, ...]:
    """Uploaded files as metadata (the bytes stay on the server; fetching them needs the
    bot's token). ``files`` lists each upload, ``file`` is the first, and each has a
    preview attachment whose ``title_link`` is its download path."""
    links: dict[str, str] = {}
    for item in _list(message.get("attachments")):
        item = _dict(item)
        link = _str(item.get("title_link"))
        if link and not item.get("message_link"):
            links[_str(item.get("title"))] = link
    uploads = [f for f in _list(message.get("files")) if isinstance(f, dict)] \
        or ([_dict(message.get("file"))] if message.get("file") else [])
    found = []
    for upload in uploads:
        name, mime = _str(upload.get("name")), _str(upload.get("type"))
        link = links.get(name, "")
        fid = _str(upload.get("_id"))
        if not link and fid and name:
            link = f"/file-upload/{fid}/{name}"
        found.append(Attachment(kind=_kind(mime), name=name, mime=mime,
                                size=_size(upload.get("size")),
                                url=_absolute(link, server_url) if link else None,
                                platform_id=fid or None))
    if found:
        return tuple(found)
    for item in _list(message.get("attachments")):  # files posted as links by integrations
        item = _dict(item)
        for key, kind in (("image_url", "image"), ("audio_url", "audio"),
                          ("video_url", "video")):
            link = _str(item.get(key))
            if link and not item.get("message_link"):
                found.append(Attachment(kind=kind, name=_str(item.get("title")),
                                        mime=_str(item.get(f"{kind}_type")),
                                        size=_size(item.get(f"{kind}_size")),
                                        url=_absolute(link, server_url)))
    return tuple(found)


def parse_message(raw: object, *, room: RoomInfo | None, view: Viewpoint,
                  participant: bool | None = None) -> Inbound | Skip:
    """One message as the assistant's input, or why it is not answered.

    ``room`` is what is known of the message's room (its kind decides direct or group);
    ``participant`` is the stream's ``roomParticipant``: False for a public channel the
    bot can read but has not joined, whose messages are not for it.
    """
    message = _dict(raw)
    mid, rid = _str(message.get("_id")), _str(message.get("rid"))
    user = _dict(message.get("u"))
    sender = _str(user.get("_id"))
    ts = parse_time(message.get("ts"))
    if not mid or not rid or not sender or ts is None or not isinstance(message.get("msg", ""),
                                                                          str):
        return Skip("warning", f"a malformed Rocket.Chat message {mid or '(no id)'} "
                    "(no room, sender, time or text)")
    if sender == view.bot_id:
        return Skip("debug", f"the bot's own message {mid}")
    kind = _str(message.get("t"))
    if kind == "e2e":
        return Skip("warning", f"an end-to-end encrypted message {mid} in {rid} (the bot "
                    "cannot read encrypted rooms; turn encryption off for rooms it is in)")
    if kind:
        return Skip("debug", f"a system message {mid} ({kind})")
    if participant is False:
        return Skip("debug", f"message {mid} in {rid}, a public channel the bot has not "
                    "joined")
    if room is None or room.kind not in ANSWERED_KINDS:
        what = f"a {room.kind!r} room" if room else "a room the bot does not know"
        return Skip("info", f"message {mid} in {rid}: {what}")
    text = _str(message.get("msg"))
    while (quote := _QUOTE.match(text)) is not None:
        text = text[quote.end():]
    thread = _str(message.get("tmid")) or None
    is_group = room.kind in GROUP_KINDS or (room.members or 0) > 2
    ours = view.ours
    reply_to_bot = (thread is not None and thread in ours) or any(
        q in ours for q in _quoted(message))
    return Inbound(
        address=Address(channel=view.channel, chat=rid, account=view.bot_id, thread=thread),
        platform_id=mid, text=text, sender_id=sender,
        sender_name=_str(user.get("name")) or _str(user.get("username")),
        attachments=_attachments(message, view.server_url), is_group=is_group,
        mentioned=is_group and _mentioned(message, text, view), reply_to_bot=reply_to_bot,
        ts=ts / 1000)


def room_extras(extras: Mapping[str, Any]) -> tuple[bool | None, str]:
    """``roomParticipant`` and ``roomType`` of a ``__my_messages__`` event, where given."""
    participant = extras.get("roomParticipant")
    return (participant if isinstance(participant, bool) else None,
            _str(extras.get("roomType")))
