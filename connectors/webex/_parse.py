"""Webex webhook notifications and messages -> :class:`Inbound`, as pure functions.

A ``messages``/``created`` notification (``WebhookNotification``) carries no text, only
who wrote where: :func:`parse_notification` reads it into a :class:`Notice` naming the
message to fetch, and :func:`parse_message` turns the fetched message (``GET
/messages/{messageId}``, the ``ListMessage`` schema) into an :class:`Inbound`. Neither
raises: what they cannot understand is :class:`Malformed` (the caller logs it), a valid
item that is not for the assistant (another resource, the bot's own message) is
:class:`Ignored`. Shapes follow ``public-spec/webex-messaging.json`` of
github.com/webex/webex-openapi-specs and the envelope of developer.webex.com's
"Receive and verify events" page.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
from collections.abc import Container, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import NotRequired, TypedDict

from pyclaw_app.channels.mentions import addressed_text
from pyclaw_app.model import Address, Attachment, Inbound

__all__ = [
    "Ignored",
    "Malformed",
    "Notice",
    "Person",
    "parse_message",
    "parse_notification",
    "parse_person",
    "strip_mention",
    "valid_id",
]

_ID = re.compile(r"^[A-Za-z0-9_\-=]{1,512}$")
"""Webex ids are base64url; nothing else may reach a request path (no ``/``, ``.``, ``?``)."""
_MENTION = re.compile(r"<spark-mention\b([^>]*)>(.*?)</spark-mention>", re.S | re.I)
_OBJECT_ID = re.compile(r"""data-object-id\s*=\s*["']([^"']*)["']""", re.I)
_OBJECT_TYPE = re.compile(r"""data-object-type\s*=\s*["']([^"']*)["']""", re.I)


# ---- wire shapes (for reading; the parsers check every field they use) -----------------------

class NotificationData(TypedDict):
    id: str  # the message's id: fetch it with GET /messages/{id}
    roomId: str
    roomType: str  # "direct" | "group"
    personId: str  # the author
    personEmail: str
    mentionedPeople: NotRequired[list[str]]
    mentionedGroups: NotRequired[list[str]]
    files: NotRequired[list[str]]
    created: str


class WebhookNotification(TypedDict):
    id: str  # the webhook's id
    name: str
    resource: str  # "messages"
    event: str  # "created"
    filter: NotRequired[str]
    orgId: str
    createdBy: str
    appId: str
    ownedBy: str  # "creator" | "org"
    status: str  # "active"
    actorId: str
    data: NotificationData


class ListMessage(TypedDict):
    id: str
    parentId: NotRequired[str]  # the thread's first message, when it is a reply
    roomId: str
    roomType: str
    text: NotRequired[str]  # the bot's @mention included, as its display name
    markdown: NotRequired[str]
    html: NotRequired[str]  # mentions as <spark-mention data-object-id=...>
    files: NotRequired[list[str]]  # https://webexapis.com/v1/contents/{id}
    personId: str
    personEmail: str
    mentionedPeople: NotRequired[list[str]]
    mentionedGroups: NotRequired[list[str]]
    created: str
    updated: NotRequired[str]
    isVoiceClip: NotRequired[bool]


# ---- what the parsers hand the connector ------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Notice:
    """A message was created: fetch ``message_id`` to read it."""

    message_id: str
    room_id: str
    person_id: str
    webhook_id: str


@dataclass(frozen=True, slots=True)
class Person:
    """``GET /people/me``: who the token is; ``kind`` is ``bot``, ``person`` or ``appuser``."""

    id: str
    name: str
    kind: str


@dataclass(frozen=True, slots=True)
class Ignored:
    reason: str


@dataclass(frozen=True, slots=True)
class Malformed:
    where: str


def parse_notification(payload: object) -> Notice | Ignored | Malformed:
    """The notification Webex posted; only ``messages``/``created`` names a message."""
    if not isinstance(payload, Mapping):
        return Malformed("the body is not a JSON object")
    resource, event = payload.get("resource"), payload.get("event")
    if not (_nonempty(resource) and _nonempty(event)):
        return Malformed("no resource or event")
    if (resource, event) != ("messages", "created"):
        return Ignored(f"{resource}/{event} notification")
    data = payload.get("data")
    if not isinstance(data, Mapping):
        return Malformed("no data object")
    mid, room, person = data.get("id"), data.get("roomId"), data.get("personId")
    if not (valid_id(mid) and valid_id(room)):
        return Malformed("data.id or data.roomId missing or not a Webex id")
    return Notice(message_id=mid, room_id=room, person_id=_str(person),
                  webhook_id=_str(payload.get("id")))


def parse_message(raw: object, *, channel: str, bot_id: str, ours: Container[str],
                  bot_name: str = "") -> Inbound | Ignored | Malformed:
    """A fetched message as the assistant reads it. ``ours`` holds the ids of messages the
    bot sent and of threads it wrote in: a message in one of those is a reply to it.
    ``bot_name`` (``GET /people/me``'s displayName) is what a message that only mentions
    the bot reads as: ``@bot_name``.

    A 1:1 space is answered flat (in the thread when the user wrote in one); a group space
    in the message's thread, a new one under it when it was not in a thread yet, so a busy
    space keeps one conversation per question. A thread is named by its first message
    (``parentId``), which is also where Webex lets a reply go: it refuses a reply to a reply.
    """
    if not isinstance(raw, Mapping):
        return Malformed("the message is not a JSON object")
    mid, room, author, kind = (raw.get("id"), raw.get("roomId"), raw.get("personId"),
                               raw.get("roomType"))
    if not (valid_id(mid) and valid_id(room) and _nonempty(author)):
        return Malformed("the message has no id, roomId or personId")
    if kind not in ("direct", "group"):
        return Malformed(f"roomType {kind!r} is neither direct nor group")
    if author == bot_id:
        return Ignored("the bot's own message")
    text, parent = raw.get("text", ""), raw.get("parentId")
    if not isinstance(text, str) or not (parent is None or valid_id(parent)):
        return Malformed("text is not a string or parentId is not a Webex id")
    attachments = _files(raw.get("files"), voice=raw.get("isVoiceClip") is True)
    if attachments is None:
        return Malformed("files is not a list of URLs")
    if not text.strip() and not attachments:
        return Ignored("no text and no files (a card, or a message since deleted)")
    mentioned = bot_id in _strings(raw.get("mentionedPeople"))
    if mentioned:
        text = strip_mention(text, _str(raw.get("html")), bot_id, bot_name=bot_name)
    group = kind == "group"
    thread = parent if parent is not None else (mid if group else None)
    stamp = _timestamp(raw.get("created"))
    return Inbound(
        address=Address(channel=channel, chat=room, account=bot_id, thread=thread),
        platform_id=mid,
        text=text,
        sender_id=author,
        sender_name=_str(raw.get("personEmail")),
        attachments=attachments,
        is_group=group,
        mentioned=mentioned,
        reply_to_bot=parent is not None and parent in ours,
        **({"ts": stamp} if stamp is not None else {}),
    )


def parse_person(raw: object) -> Person | None:
    """``GET /people/me``: the token's own id, display name and type (bot or person)."""
    if not isinstance(raw, Mapping) or not _nonempty(raw.get("id")):
        return None
    emails = _strings(raw.get("emails"))
    name = _str(raw.get("displayName")) or (emails[0] if emails else "")
    return Person(id=raw["id"], name=name, kind=_str(raw.get("type")) or "person")


def strip_mention(text: str, markup: str, bot_id: str, *, bot_name: str) -> str:
    """``text`` as the kit's rule reads it (``pyclaw_app.channels.mentions``): the bot's
    @mention cut where it addressed the bot (opening or closing the text), kept inside a
    sentence, and ``@bot_name`` when the mention was all there was.

    ``text`` carries a mention as the name shown for it (which the sender may have
    shortened, and other people's mentions already read as their names), ``html`` as
    ``<spark-mention data-object-type="person" data-object-id="<person id>">name
    </spark-mention>``: the html says, by id, which shown names are the bot's.
    """
    names = _names_shown_for(markup, bot_id)
    if not names:
        return text
    shown = "|".join(re.escape(name) for name in sorted(names, key=len, reverse=True))
    return addressed_text(text, rf"(?<!\w)(?:{shown})(?!\w)", bot_name=bot_name)


def _names_shown_for(markup: str, bot_id: str) -> set[str]:
    """The names the html's person mentions of ``bot_id`` show (either form of its id)."""
    wanted = {bot_id, _uuid_of(bot_id)} - {""}
    names: set[str] = set()
    for match in _MENTION.finditer(markup):
        attributes = match.group(1)
        found = _OBJECT_ID.search(attributes)
        kind = _OBJECT_TYPE.search(attributes)
        if found is None or found.group(1) not in wanted or (
                kind is not None and kind.group(1).lower() != "person"):
            continue
        name = html.unescape(re.sub(r"<[^>]*>", "", match.group(2))).strip()
        if name:
            names.add(name)
    return names


def valid_id(value: object) -> bool:
    """A Webex id (base64url), safe to put in a request path."""
    return isinstance(value, str) and _ID.match(value) is not None


def _files(value: object, *, voice: bool) -> tuple[Attachment, ...] | None:
    """Files as metadata: their content URL (``GET`` it with the token to download) and the
    content id; nothing is downloaded here. A voice clip is audio, anything else a file
    (the message says no more; a ``HEAD`` on the URL would)."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(_nonempty(v) for v in value):
        return None
    return tuple(Attachment(kind="audio" if voice else "file", url=url,
                            platform_id=url.rstrip("/").rpartition("/")[2] or None)
                 for url in value)


def _uuid_of(webex_id: str) -> str:
    """The UUID inside a Webex id (base64url of ``ciscospark://us/PEOPLE/<uuid>``); a
    mention's ``data-object-id`` may carry either form."""
    try:
        decoded = base64.urlsafe_b64decode(webex_id + "=" * (-len(webex_id) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return ""
    return decoded.rpartition("/")[2] if decoded.startswith("ciscospark://") else ""


def _timestamp(value: object) -> float | None:
    """``created`` (ISO 8601, ``2015-10-18T14:26:16.000Z``) as Unix seconds."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None


def _strings(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _nonempty(value: object) -> bool:
    return isinstance(value, str) and value != ""


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""
