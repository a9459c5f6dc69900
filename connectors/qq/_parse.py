"""A OneBot v11 message event -> :class:`Inbound`, as a pure function that never raises.

Private messages (``message_type`` private) are the chat ``private:<user_id>``, group
messages ``group:<group_id>``. The group rule is reported, not applied: an ``at`` segment
naming the bot (``qq`` == ``self_id``) makes the message ``mentioned`` and is cut from the
text (other people's ``at`` read as ``@name`` when the segment carries a name, else
``@<qq>``); a ``reply`` segment quoting a message the bot sent makes it ``reply_to_bot``.
Which ids are the bot's the caller knows (it sent them); a quoted id it does not know is
handed back as ``quoted`` so it can ask the bridge (``get_msg``) who wrote it.

Pictures, voice, video and files are attachments: their ``url`` and the name the bridge
knows them by (``file_id``, else ``file``) for ``_files`` to find the bytes; QQ faces, shares and
the like become short text placeholders, so the assistant knows something was there.
"""

from __future__ import annotations

import re
import time
from collections.abc import Container
from dataclasses import dataclass
from typing import Any

from connectors.qq._segments import Segment, segments
from pyclaw_app.model import Address, Attachment, Inbound

__all__ = ["Message", "Skip", "View", "chat_of", "parse_event"]

_MEDIA = {"image": "image", "record": "audio", "video": "video", "file": "file",
          "mface": "sticker"}
_PLACEHOLDER = {"face": "[QQ face]", "dice": "[dice]", "rps": "[rock-paper-scissors]",
                "poke": "[poke]", "shake": "[shake]", "forward": "[forwarded messages]",
                "json": "[card message]", "xml": "[card message]", "contact": "[contact card]",
                "music": "[music share]", "markdown": "[markdown message]"}


_DIGITS = re.compile("-?[0-9]{1,20}")


@dataclass(frozen=True, slots=True)
class View:
    """What the bot knows when it reads an event."""

    channel: str
    self_id: str
    bot_messages: Container[str] = ()
    """Message ids the bot sent (a reply to one of them is ``reply_to_bot``)."""


@dataclass(frozen=True, slots=True)
class Skip:
    """An event that is not a message for the assistant; ``level`` "" means skip quietly
    (our own message, a group system notice), else log ``reason`` at that level."""

    reason: str
    level: str = ""


@dataclass(frozen=True, slots=True)
class Message:
    inbound: Inbound
    quoted: str | None = None
    """The id a ``reply`` segment quotes when it is not known to be the bot's."""


def _id(value: object) -> str | None:
    """A QQ number or message id (int64 in the spec; some bridges send strings)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        return value.strip()
    return None


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: object) -> str:
    return value if isinstance(value, str) else str(value) if isinstance(value, int) else ""


def chat_of(message_type: str, target: str) -> str:
    """The ``Address.chat`` of a private chat with a user or of a group."""
    return f"{message_type}:{target}"


def _attachment(kind: str, data: dict[str, Any]) -> Attachment:
    name = _str(data.get("name")) or _str(data.get("file"))
    size = _str(data.get("file_size"))
    url = _str(data.get("url"))
    if kind == "image" and _str(data.get("sub_type")) == "1":
        kind = "sticker"  # NapCat marks stickers (custom emoticons) with sub_type 1
    return Attachment(kind=kind, name=name.rsplit("/", 1)[-1][:200],
                      size=int(size) if _DIGITS.fullmatch(size) and int(size) >= 0 else None,
                      url=url if url.startswith(("http://", "https://")) else None,
                      platform_id=_str(data.get("file_id")) or _str(data.get("file")) or None)


def _render(segs: list[Segment], self_id: str) -> tuple[str, bool, str | None,
                                                         tuple[Attachment, ...]]:
    """(text, mentions the bot, quoted message id, attachments) of a message's segments."""
    parts: list[str] = []
    attachments: list[Attachment] = []
    mentioned, quoted = False, None
    for seg in segs:
        kind, data = seg["type"], seg["data"]
        if kind == "text":
            parts.append(_str(data.get("text")))
        elif kind == "at":
            qq = _str(data.get("qq"))
            if qq == self_id:
                mentioned = True
            elif qq == "all":
                parts.append("@all")
            else:
                name = _str(data.get("name")).lstrip("@")
                parts.append(f"@{name or qq}")
        elif kind == "reply":
            quoted = quoted or _id(data.get("id"))
        elif kind in _MEDIA:
            attachments.append(_attachment(_MEDIA[kind], data))
        elif kind == "location":
            lat, lon = _str(data.get("lat")), _str(data.get("lon"))
            attachments.append(Attachment(kind="location", name=_str(data.get("title")),
                                          url=f"geo:{lat},{lon}" if lat and lon else None))
        elif kind == "share":
            parts.append(" ".join(p for p in (_str(data.get("title")), _str(data.get("url")))
                                  if p))
        else:
            parts.append(_PLACEHOLDER.get(kind, f"[{kind[:20]}]"))
    return "".join(parts).strip(), mentioned, quoted, tuple(attachments)


def parse_event(event: object, view: View) -> Message | Skip:
    """The message a ``post_type: message`` event carries, or why it is skipped."""
    if not isinstance(event, dict):
        return Skip("an event that is not a JSON object", "warning")
    post_type = event.get("post_type")
    if post_type == "message_sent":
        return Skip("our own message (report-self-message)")
    if post_type != "message":
        return Skip(f"a {_str(post_type)[:30] or 'untyped'} event", "debug")
    message_type = event.get("message_type")
    message_id, user_id = _id(event.get("message_id")), _id(event.get("user_id"))
    if message_type not in ("private", "group") or message_id is None or user_id is None:
        return Skip(f"a message event without a readable message_type, message_id or "
                    f"user_id (message_id {str(event.get('message_id'))[:30]})", "warning")
    if user_id == view.self_id:
        return Skip("our own message")
    segs = segments(event.get("message"))
    if segs is None:
        return Skip(f"message {message_id}: its message field is neither segments nor a "
                    "CQ string", "warning")
    group_id = _id(event.get("group_id"))
    if message_type == "group":
        if group_id is None:
            return Skip(f"group message {message_id} without a group_id", "warning")
        if event.get("sub_type") == "notice":
            return Skip(f"group system notice {message_id} in {group_id}")
    text, mentioned, quoted, attachments = _render(segs, view.self_id)
    sender = _dict(event.get("sender"))
    anonymous = _dict(event.get("anonymous"))
    name = _str(anonymous.get("name")) or _str(sender.get("card")) \
        or _str(sender.get("nickname")) or user_id
    sender_id = f"anonymous:{_str(anonymous.get('id'))}" if anonymous else user_id
    is_group = message_type == "group"
    when = event.get("time")
    inbound = Inbound(
        address=Address(channel=view.channel,
                        chat=chat_of("group", group_id) if is_group and group_id
                        else chat_of("private", user_id)),
        platform_id=message_id,
        text=text,
        sender_id=sender_id,
        sender_name=name,
        attachments=attachments,
        is_group=is_group,
        mentioned=is_group and mentioned,
        reply_to_bot=quoted is not None and quoted in view.bot_messages,
        ts=float(when) if isinstance(when, int | float) and not isinstance(when, bool)
        and 0 < when < 1e11 else time.time(),
    )
    unknown = quoted if quoted is not None and not inbound.reply_to_bot else None
    return Message(inbound, quoted=unknown)
