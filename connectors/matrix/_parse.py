"""Matrix events to pyclaw's ``Inbound``: pure functions over the raw event JSON.

The raw shapes are the client-server API's (``m.room.message`` content with ``msgtype``,
``body``, ``m.mentions``, ``m.relates_to``); nothing here raises on odd input: an event
that is not a message the bot should answer becomes a :class:`Skip` with the reason for
the channel log. The SDK's parsed objects are not used, only each event's ``source``, so
a schema the SDK does not know cannot hide a message.
"""

from __future__ import annotations

import html
import re
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict
from urllib.parse import unquote

from pyclaw_app.channels.mentions import addressed_text, render_markup
from pyclaw_app.model import Address, Attachment, Inbound

__all__ = [
    "RoomView",
    "Skip",
    "accepts_invite",
    "inviter",
    "parse_event",
    "strip_reply_fallback",
]

_MEDIA = {"m.image": "image", "m.file": "file", "m.audio": "audio", "m.video": "video"}
_TEXT = {"m.text", "m.emote"}


class RawEvent(TypedDict, total=False):
    """A room event as ``/sync`` delivers it (the fields read here)."""

    type: str
    event_id: str
    sender: str
    origin_server_ts: int
    state_key: str
    content: dict[str, Any]


@dataclass(frozen=True)
class RoomView:
    """What the parser needs to know about the room an event came from."""

    room_id: str
    members: int
    """Joined and invited members, the bot included: more than two is a group."""
    bot_id: str
    bot_name: str = ""
    """The bot's display name in this room, for mentions by name (clients before
    ``m.mentions``)."""
    names: Mapping[str, str] = field(default_factory=dict)
    """Members' display names by user ID: a user ID typed in a message reads as its name."""


@dataclass(frozen=True)
class Skip:
    """An event that is not answered, and why (``level`` is the channel log's)."""

    level: Literal["debug", "info", "warning"]
    reason: str
    encrypted: bool = False


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def strip_reply_fallback(body: str) -> str:
    """``body`` without the quoted reply fallback (lines starting with ``>`` up to the first
    blank line) that clients put before a reply's own text."""
    if not body.startswith(">"):
        return body
    lines = body.split("\n")
    i = 0
    while i < len(lines) and lines[i].startswith(">"):
        i += 1
    if i < len(lines) and lines[i] == "":
        i += 1
    return "\n".join(lines[i:])


def _fallback_sender(body: str) -> str:
    """The user the reply fallback quotes: ``> <@user:server> text``."""
    match = re.match(r"> <(@[^>\s]+)>", body)
    return match.group(1) if match else ""


def _mentioned(content: Mapping[str, Any], text: str, room: RoomView) -> bool:
    """``m.mentions`` decides when present; otherwise the bot's ID or display name in the
    text (the legacy rule)."""
    mentions = content.get("m.mentions")
    if isinstance(mentions, dict):
        ids = mentions.get("user_ids")
        return isinstance(ids, list) and room.bot_id in ids
    lowered = text.casefold()
    names = [room.bot_id, room.bot_name] if room.bot_name else [room.bot_id]
    return any(name and name.casefold() in lowered for name in names)


_MXID = re.compile(r"(?<![\w@])@[A-Za-z0-9._=/+\-]+:[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*"
                   r"(?::[0-9]{1,5})?(?![\w\-])")
"""A user ID typed in a body (spec "User Identifiers"): ``@localpart:server[:port]``."""
_PILL = re.compile(r"""<a\s[^>]*?href\s*=\s*["']https://matrix\.to/#/([^"'?]+)[^"']*["'][^>]*>"""
                   r"(.*?)</a>", re.IGNORECASE | re.DOTALL)
"""A user pill in ``formatted_body`` (spec "User and room mentions"): the link's text is
what the sender's client wrote in ``body`` for it."""
_REPLY_QUOTE = re.compile(r"<mx-reply>.*?</mx-reply>", re.IGNORECASE | re.DOTALL)


def _said(content: Mapping[str, Any], text: str, room: RoomView) -> str:
    """``text`` as the kit's rule reads it (``pyclaw_app.channels.mentions``): the bot's
    mention cut where it addressed the bot; then user IDs of members as ``@display name``,
    as clients show them."""
    if _mentioned(content, text, room):
        names = _pill_names(content, room.bot_id) | ({room.bot_name} - {""})
        text = addressed_text(text, _bot_mention(room.bot_id, names),
                              bot_name=_bot_name(room, names))
    people = {**room.names, **({room.bot_id: room.bot_name} if room.bot_name else {})}
    return render_markup(text, _MXID, lambda m: f"@{people[m.group(0)]}"
                         if people.get(m.group(0)) else None)


def _bot_mention(bot_id: str, names: set[str]) -> re.Pattern[str]:
    """The bot's mention as a body holds it: one of the ``names`` clients wrote for its pill
    (or its display name, typed by hand; an ``@`` before it or not), or its user ID."""
    forms = [rf"{re.escape(bot_id)}(?![\w\-])"]
    if names:
        shown = "|".join(re.escape(name.removeprefix("@"))
                         for name in sorted(names, key=len, reverse=True))
        forms.append(rf"@?(?:{shown})(?!\w)")
    return re.compile(rf"(?<![\w@])(?:{'|'.join(forms)})", re.IGNORECASE)


def _pill_names(content: Mapping[str, Any], user_id: str) -> set[str]:
    """The texts of ``formatted_body``'s pills of ``user_id``, the quoted reply left out
    (its pill names the quoted sender, who may be the bot)."""
    if content.get("format") != "org.matrix.custom.html":
        return set()
    markup = _REPLY_QUOTE.sub("", _str(content.get("formatted_body")))
    return {name for target, inner in _PILL.findall(markup)
            if unquote(target) == user_id
            and (name := html.unescape(re.sub(r"<[^>]*>", "", inner)).strip())}


def _bot_name(room: RoomView, names: set[str]) -> str:
    """What a message of only the mention reads as (after the ``@``): the bot's name."""
    if room.bot_name:
        return room.bot_name
    if names:
        return min(names).removeprefix("@")
    return room.bot_id.removeprefix("@").partition(":")[0]


def _attachment(msgtype: str, content: Mapping[str, Any], event_id: str) -> Attachment | None:
    kind = _MEDIA.get(msgtype) or ("location" if msgtype == "m.location" else "")
    if not kind:
        return None
    info = _dict(content.get("info"))
    size = info.get("size")
    url = _str(content.get("url")) or _str(_dict(content.get("file")).get("url"))
    if kind == "location":
        url = _str(content.get("geo_uri"))
    return Attachment(kind=kind, name=_str(content.get("filename")) or _str(content.get("body")),
                      mime=_str(info.get("mimetype")),
                      size=size if isinstance(size, int) and not isinstance(size, bool) else None,
                      url=url or None, platform_id=event_id)


def _caption(msgtype: str, content: Mapping[str, Any]) -> str:
    """A media message's text: its caption when ``filename`` is set apart from ``body``
    (Matrix 1.10), else nothing (``body`` is then only the file name)."""
    if msgtype not in _MEDIA:
        return ""
    filename, body = _str(content.get("filename")), _str(content.get("body"))
    return body if filename and body != filename else ""


def parse_event(raw: object, *, channel: str, room: RoomView,
                bot_events: Container[str]) -> Inbound | Skip:
    """One timeline event, as an Inbound to submit or a Skip.

    ``bot_events`` holds event ids the bot sent (for ``reply_to_bot``); a reply whose
    fallback quotes the bot counts too, which survives a restart.
    """
    event: RawEvent = raw if isinstance(raw, dict) else {}  # type: ignore[assignment]
    kind, event_id, sender = (_str(event.get("type")), _str(event.get("event_id")),
                              _str(event.get("sender")))
    if not event_id or not sender:
        return Skip("warning", f"an event without event_id or sender in {room.room_id}")
    if sender == room.bot_id:
        return Skip("debug", f"the bot's own event {event_id}")
    if kind == "m.room.encrypted":
        return Skip("warning", f"end-to-end encrypted message {event_id} in {room.room_id} "
                    "not read: encrypted rooms are not supported yet", encrypted=True)
    if kind == "m.sticker":
        content = _dict(event.get("content"))
        sticker = _attachment("m.image", content, event_id)
        attachments = (Attachment("sticker", sticker.name, sticker.mime, sticker.size,
                                  sticker.url, event_id),) if sticker else ()
        return _inbound(event, channel, room, "", attachments, content, bot_events)
    if kind != "m.room.message":
        return Skip("debug", f"{kind or 'untyped'} event {event_id}")
    content = _dict(event.get("content"))
    msgtype, body = _str(content.get("msgtype")), content.get("body")
    if not isinstance(body, str):
        return Skip("warning", f"message {event_id} in {room.room_id} has no text body")
    relates = _dict(content.get("m.relates_to"))
    if relates.get("rel_type") == "m.replace":
        return Skip("debug", f"edit {event_id} of an earlier message (not answered again)")
    if msgtype == "m.notice":
        return Skip("debug", f"notice {event_id} (bots do not answer notices)")
    if not msgtype:
        return Skip("warning", f"message {event_id} in {room.room_id} has no msgtype")
    attachment = _attachment(msgtype, content, event_id)
    if attachment is None and msgtype not in _TEXT:
        return Skip("info", f"message {event_id} of type {msgtype or 'none'} not handled")
    if attachment is not None and attachment.kind != "location" and not attachment.url:
        return Skip("warning", f"{msgtype} message {event_id} in {room.room_id} has no url")
    text = _caption(msgtype, content) if attachment else strip_reply_fallback(body)
    return _inbound(event, channel, room, text, (attachment,) if attachment else (),
                    content, bot_events)


def _inbound(event: RawEvent, channel: str, room: RoomView, text: str,
             attachments: tuple[Attachment, ...], content: Mapping[str, Any],
             bot_events: Container[str]) -> Inbound:
    relates = _dict(content.get("m.relates_to"))
    replied = _str(_dict(relates.get("m.in_reply_to")).get("event_id"))
    thread = _str(relates.get("event_id")) if relates.get("rel_type") == "m.thread" else ""
    falling_back = relates.get("is_falling_back") is True
    quoted = _fallback_sender(_str(content.get("body")))
    reply_to_bot = bool(replied) and not falling_back and (
        replied in bot_events or quoted == room.bot_id)
    ts = event.get("origin_server_ts")
    return Inbound(
        address=Address(channel=channel, chat=room.room_id, account=room.bot_id,
                        thread=thread or None),
        platform_id=_str(event.get("event_id")), text=_said(content, text, room),
        sender_id=_str(event.get("sender")),
        attachments=attachments, is_group=room.members > 2,
        mentioned=_mentioned(content, text, room), reply_to_bot=reply_to_bot,
        **({"ts": ts / 1000} if isinstance(ts, int) and not isinstance(ts, bool) else {}))


def inviter(invite_state: Iterable[object], bot_id: str) -> str:
    """Who invited the bot, from an invited room's stripped state (``""`` if not shown)."""
    for raw in invite_state:
        event = _dict(raw)
        if (event.get("type") == "m.room.member" and event.get("state_key") == bot_id
                and _dict(event.get("content")).get("membership") == "invite"):
            return _str(event.get("sender"))
    return ""


def accepts_invite(policy: str, sender: str, *, allow_from: Iterable[str],
                   dm_policy: str) -> bool:
    """Whether an invite from ``sender`` is accepted under ``invite_policy``."""
    if policy == "any":
        return True
    if policy != "allowed" or not sender:
        return False
    return dm_policy == "open" or sender in set(allow_from)
