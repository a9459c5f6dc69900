"""Feishu event callbacks -> :class:`Inbound`, as pure functions so they can be fuzzed.

A request body (decrypted) is one of: the Request URL check (``{"type": "url_verification",
"challenge", "token"}``), a v2 event (``{"schema": "2.0", "header": {"event_id",
"event_type", "token", "create_time", "app_id", "tenant_key"}, "event": {...}}``) or a
legacy v1 callback (``{"uuid", "token", "type": "event_callback", "event": {"type"}}``).
:func:`envelope` says which and carries the token to check; :func:`parse_message` turns an
``im.message.receive_v1`` event into an Inbound. Neither raises: what cannot be understood
is :class:`Malformed` (the caller logs it), a valid event that is not a user's message for
the assistant is :class:`Ignored`. Shapes follow the open platform's "Receive message"
event and "Receive message content" pages and lark-oapi's generated models
(``api/im/v1/model/p2_im_message_receive_v1.py``, ``event_message.py``, ``mention_event.py``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Container, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, NotRequired, TypedDict

from pyclaw_app.channels.mentions import addressed_text, render_markup
from pyclaw_app.model import Address, Attachment, Inbound

__all__ = ["Envelope", "Ignored", "Malformed", "Message", "envelope", "parse_message"]

RECEIVE = "im.message.receive_v1"
_MEDIA = {"image": "image", "file": "file", "audio": "audio", "media": "video",
          "sticker": "sticker", "location": "location"}
_ALL = "@_all"


# ---- wire shapes (for reading; the parser checks every field it uses) -------------------------

class UserId(TypedDict):
    open_id: str
    union_id: NotRequired[str]
    user_id: NotRequired[str]  # only with the contact:user.employee_id:readonly scope


class MentionEvent(TypedDict):
    key: str  # "@_user_1": the placeholder in the text
    id: UserId
    name: str
    tenant_key: NotRequired[str]


class EventMessage(TypedDict):
    message_id: str  # om_...; the same when Feishu redelivers the event
    root_id: NotRequired[str]  # the thread's (or quote chain's) first message
    parent_id: NotRequired[str]  # the message this one quotes
    thread_id: NotRequired[str]  # omt_...; only for messages in a thread (topic)
    create_time: str  # milliseconds, as a string
    chat_id: str  # oc_...
    chat_type: str  # "p2p" or "group"
    message_type: str  # text, post, image, file, audio, media, sticker, location, ...
    content: str  # a JSON string; its shape depends on message_type
    mentions: NotRequired[list[MentionEvent]]


class EventSender(TypedDict):
    sender_id: UserId
    sender_type: str  # "user" (the only kind Feishu pushes today)
    tenant_key: NotRequired[str]


class EventHeader(TypedDict):
    event_id: str
    event_type: str
    create_time: str
    token: str  # the Verification Token
    app_id: str
    tenant_key: str


# ---- what the parser hands the connector ------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Envelope:
    """What a decrypted body is, before its event is read: ``token`` is what it claims."""

    kind: Literal["challenge", "v2", "v1"]
    token: str
    challenge: str = ""
    event_type: str = ""
    event_id: str = ""


@dataclass(frozen=True, slots=True)
class Message:
    inbound: Inbound


@dataclass(frozen=True, slots=True)
class Ignored:
    reason: str


@dataclass(frozen=True, slots=True)
class Malformed:
    where: str


def envelope(body: object) -> Envelope | Malformed:
    if not isinstance(body, Mapping):
        return Malformed("the body is not a JSON object")
    if body.get("type") == "url_verification":
        challenge = body.get("challenge")
        if not _nonempty(challenge):
            return Malformed("url_verification without a challenge")
        return Envelope("challenge", _str(body.get("token")), challenge=challenge)
    header = body.get("header")
    if _nonempty(body.get("schema")):
        if not isinstance(header, Mapping) or not _nonempty(header.get("event_type")):
            return Malformed("a v2 event without header.event_type")
        return Envelope("v2", _str(header.get("token")), event_type=header["event_type"],
                        event_id=_str(header.get("event_id")))
    event = body.get("event")
    if _nonempty(body.get("uuid")) or isinstance(event, Mapping):
        kind = event.get("type") if isinstance(event, Mapping) else None
        return Envelope("v1", _str(body.get("token")), event_type=_str(kind),
                        event_id=_str(body.get("uuid")))
    return Malformed("neither an event nor a url_verification")


def parse_message(body: Mapping[str, Any], *, channel: str, account: str, bot_open_id: str,
                  ours: Container[str] = ()) -> Message | Ignored | Malformed:
    """An ``im.message.receive_v1`` event; ``ours`` holds ids of messages the bot sent.

    The platform id is the message id: the journal recognises a redelivered event by it.
    """
    event = body.get("event")
    if not isinstance(event, Mapping):
        return Malformed("no event object")
    sender, message = event.get("sender"), event.get("message")
    if not isinstance(sender, Mapping) or not isinstance(message, Mapping):
        return Malformed("no event.sender or event.message")
    kind = sender.get("sender_type", "user")
    if kind != "user":
        return Ignored(f"sent by {_str(kind) or 'a non-user'} (the bot's own, or another app)")
    sender_ids = sender.get("sender_id")
    open_id = sender_ids.get("open_id") if isinstance(sender_ids, Mapping) else None
    mid, chat, chat_type, msg_type, raw = (message.get(k) for k in (
        "message_id", "chat_id", "chat_type", "message_type", "content"))
    if not all(_nonempty(v) for v in (open_id, mid, chat, chat_type, msg_type)) or \
            not isinstance(raw, str):
        return Malformed("message without message_id, chat_id, chat_type, message_type, "
                         "content or sender open_id")
    if msg_type not in _MEDIA and msg_type not in ("text", "post"):
        return Ignored(f"message type {msg_type!r}")
    try:
        content = json.loads(raw)
    except ValueError:
        return Malformed(f"{msg_type} content is not JSON")
    if not isinstance(content, Mapping):
        return Malformed(f"{msg_type} content is not a JSON object")
    mentions = _mentions(message.get("mentions"))
    mentioned = any(who == bot_open_id for who, _ in mentions.values()) if bot_open_id \
        else False
    if msg_type == "text":
        text = content.get("text")
        if not isinstance(text, str):
            return Malformed("text content without a text string")
        parsed = (_render(text, mentions, bot_open_id), ())
    elif msg_type == "post":
        parsed = _post(content, mentions, bot_open_id)
    else:
        attachment = _attachment(msg_type, content)
        if attachment is None:
            return Malformed(f"{msg_type} content without its key")
        parsed = ("", (attachment,))
    text, found = parsed
    # a resource is fetched by message and key together (im/v1/messages/{id}/resources/{key})
    attachments = tuple(replace(a, platform_id=f"{mid}/{a.platform_id}") if a.platform_id
                        else a for a in found)
    root, parent = _str(message.get("root_id")), _str(message.get("parent_id"))
    thread = (root or mid) if _nonempty(message.get("thread_id")) else None
    stamp = message.get("create_time")
    millis = int(stamp) if isinstance(stamp, str) and stamp.isascii() and stamp.isdigit() \
        and len(stamp) < 16 else 0
    return Message(Inbound(
        address=Address(channel=channel, chat=chat, account=account, thread=thread),
        platform_id=mid,
        text=text,
        sender_id=open_id,
        attachments=attachments,
        is_group=chat_type != "p2p",
        mentioned=mentioned,
        reply_to_bot=(parent != "" and parent in ours) or (thread is not None
                                                            and thread in ours),
        **({"ts": millis / 1000} if millis else {}),
    ))


def _mentions(raw: object) -> dict[str, tuple[str, str]]:
    """key ("@_user_1") -> (open_id, name) of each mention that has both."""
    found: dict[str, tuple[str, str]] = {}
    for m in raw if isinstance(raw, list) else ():
        if not isinstance(m, Mapping) or not _nonempty(m.get("key")):
            continue
        ids = m.get("id")
        open_id = ids.get("open_id") if isinstance(ids, Mapping) else None
        found[m["key"]] = (_str(open_id), _str(m.get("name")))
    return found


def _render(text: str, mentions: Mapping[str, tuple[str, str]], bot_open_id: str) -> str:
    """Placeholders as the user saw them, by the kit's rule
    (``pyclaw_app.channels.mentions``): the bot's own cut where it addressed the bot
    (opening or closing the text), else "@name" like everyone else's; "@_all" is "@all"."""
    ours = sorted((key for key, (who, _) in mentions.items() if bot_open_id and who == bot_open_id),
                  key=len, reverse=True)
    if ours:
        name = mentions[ours[0]][1] or "bot"
        text = addressed_text(text, _placeholders(ours), bot_name=name)
    return render_markup(text, _placeholders([*mentions, _ALL]),
                         lambda match: _shown(match.group(0), mentions))


def _placeholders(keys: list[str]) -> re.Pattern[str]:
    """Any of ``keys``; longest first and never followed by a digit, so "@_user_1" is not
    the start of "@_user_10"."""
    ordered = sorted(set(keys), key=len, reverse=True)
    return re.compile("|".join(f"{re.escape(key)}(?![0-9])" for key in ordered))


def _shown(key: str, mentions: Mapping[str, tuple[str, str]]) -> str | None:
    if key == _ALL:
        return "@all"
    name = mentions.get(key, ("", ""))[1]
    return f"@{name}" if name else None


def _post(content: Mapping[str, Any], mentions: Mapping[str, tuple[str, str]],
          bot_open_id: str) -> tuple[str, tuple[Attachment, ...]]:
    """A rich-text post: ``{"title", "content": [[element, ...], ...]}`` (a line is a list of
    elements); the send format's per-language wrapper (``{"zh_cn": {...}}``) is read too.
    The body (not the title: a heading addresses nobody) reads by :func:`_render`'s rule."""
    if "content" not in content:
        inner = next((v for v in content.values() if isinstance(v, Mapping)), {})
        content = inner
    lines: list[str] = []
    attachments: list[Attachment] = []
    rows = content.get("content")
    for row in rows if isinstance(rows, list) else ():
        if not isinstance(row, list):
            continue
        parts: list[str] = []
        for element in row:
            if isinstance(element, Mapping):
                parts.append(_element(element, mentions, attachments))
        lines.append("".join(parts))
    body = _render("\n".join(lines).strip(), mentions, bot_open_id)
    title = content.get("title")
    heading = [title] if isinstance(title, str) and title.strip() else []
    return "\n".join([*heading, body]).strip(), tuple(attachments)


def _element(element: Mapping[str, Any], mentions: Mapping[str, tuple[str, str]],
             attachments: list[Attachment]) -> str:
    """One element as text; an ``at`` of a mention stays its placeholder ("@_user_1"),
    for :func:`_render` to read with the rest of the body."""
    tag = element.get("tag")
    if tag in ("text", "code_block", "md"):
        return _str(element.get("text"))
    if tag == "a":
        label, href = _str(element.get("text")), _str(element.get("href"))
        return f"{label} ({href})" if label and href and label != href else label or href
    if tag == "at":
        who = _str(element.get("user_id"))
        if who in mentions:
            return who
        return "@all" if who in ("all", _ALL) else f"@{_str(element.get('user_name')) or who}"
    if tag == "emotion":
        return f":{_str(element.get('emoji_type'))}:"
    if tag == "hr":
        return "---"
    if tag in ("img", "media"):
        key = element.get("image_key" if tag == "img" else "file_key")
        if _nonempty(key):
            attachments.append(Attachment(kind="image" if tag == "img" else "video",
                                          platform_id=key))
    return ""


def _attachment(kind: str, content: Mapping[str, Any]) -> Attachment | None:
    """Media as metadata with its key (``GET /open-apis/im/v1/messages/{id}/resources/{key}``
    fetches it, if it is ever needed); nothing is downloaded here."""
    if kind == "location":
        lat, lon = _number(content.get("latitude")), _number(content.get("longitude"))
        if lat is None or lon is None:
            return None
        return Attachment(kind="location", name=_str(content.get("name")),
                          url=f"geo:{lat},{lon}")
    key = content.get("image_key" if kind == "image" else "file_key")
    if not _nonempty(key):
        return None
    return Attachment(kind=_MEDIA[kind], name=_str(content.get("file_name")), platform_id=key)


def _number(value: object) -> float | None:
    """Feishu sends coordinates as strings ("116.397128")."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if number == number and abs(number) <= 180 else None
    return None


def _nonempty(value: object) -> bool:
    return isinstance(value, str) and value != ""


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""
