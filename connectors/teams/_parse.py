"""Bot Framework activities from Teams -> :class:`Inbound`, as pure functions.

One webhook request carries one ``Activity`` (Bot Connector API v3). Only ``message``
activities are messages; the rest (``conversationUpdate``, ``installationUpdate``,
``messageReaction``, ``invoke``, edits and deletes of user messages...) are
:class:`Ignored`, with a line for the channel log where a user should hear of it (the
app was removed from a chat). The parser never raises: what it cannot read is
:class:`Malformed`.

Ids. A Teams message id (``1485983408511``) is unique only inside its conversation, so a
platform id is ``<conversation>|<activity id>``, never the bare id that two chats may
share. A channel conversation id names the thread it is in (``19:...@thread.tacv2;
messageid=<root>``): the part before ``;messageid=`` is :attr:`Address.chat` (one
channel, one ``allow_groups`` entry), the root is :attr:`Address.thread`.

Shapes follow the Bot Connector API's ``Activity`` (botbuilder-js
``libraries/swagger/ConnectorAPI.json``) and Teams' "Messages in bot conversations",
"Add mentions" and "Send and receive files" pages on learn.microsoft.com.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Container, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NotRequired, TypedDict

from pyclaw_app.channels.mentions import addressed_text, render_markup
from pyclaw_app.model import Address, Attachment, Inbound

__all__ = [
    "Ignored",
    "Malformed",
    "Message",
    "conversation_id",
    "parse_activity",
    "platform_id",
    "split_conversation",
    "split_platform_id",
]

THREAD_MARK = ";messageid="
GROUP_TYPES = frozenset({"groupChat", "channel"})
FILE_INFO = "application/vnd.microsoft.teams.file.download.info"
_IMAGE_TYPES = frozenset({"png", "jpg", "jpeg", "gif", "bmp", "webp", "heic", "tif", "tiff"})
_NOT_FILES = ("text/html", "application/vnd.microsoft.card.",
              "application/vnd.microsoft.teams.card.")
_AT_TAG = re.compile(r"<at[^>]*>(.*?)</at>", re.IGNORECASE | re.DOTALL)
_QUIET = {"conversationUpdate", "messageReaction", "messageUpdate", "messageDelete", "typing",
          "invoke", "event", "endOfConversation", "contactRelationUpdate", "trace", "handoff",
          "suggestion", "command", "commandResult", "deleteUserData", "delay"}


# ---- wire shapes (for reading; the parser checks every field it uses) -------------------------

class ChannelAccountWire(TypedDict):
    id: str  # "29:..." a user, "28:<app id>" a bot
    name: NotRequired[str]
    aadObjectId: NotRequired[str]


class ConversationWire(TypedDict):
    id: str
    conversationType: NotRequired[str]  # personal, groupChat, channel
    isGroup: NotRequired[bool]
    tenantId: NotRequired[str]


class EntityWire(TypedDict):
    type: str  # "mention", "clientInfo", ...
    mentioned: NotRequired[ChannelAccountWire]
    text: NotRequired[str]  # "<at>Name</at>", as it appears in the activity's text


class AttachmentWire(TypedDict):
    contentType: str
    contentUrl: NotRequired[str]
    name: NotRequired[str]
    content: NotRequired[Any]  # file.download.info: {downloadUrl, uniqueId, fileType}


ActivityWire = TypedDict("ActivityWire", {  # functional form: "from" is a keyword
    "type": str,
    "id": str,
    "timestamp": NotRequired[str],
    "serviceUrl": str,  # where the answer goes; vouched for by the request's JWT
    "channelId": str,  # "msteams"
    "from": ChannelAccountWire,
    "conversation": ConversationWire,
    "recipient": ChannelAccountWire,  # the bot
    "text": NotRequired[str],
    "textFormat": NotRequired[str],
    "attachments": NotRequired[list[AttachmentWire]],
    "entities": NotRequired[list[EntityWire]],
    "replyToId": NotRequired[str],
    "action": NotRequired[str],  # installationUpdate: add, remove
})


# ---- what the parser hands the connector ------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Message:
    inbound: Inbound
    service_url: str
    bot: dict[str, str]
    """The recipient account (``id``, ``name``): the bot, as this conversation knows it."""


@dataclass(frozen=True, slots=True)
class Ignored:
    reason: str
    notice: str = ""
    """A line for the channel log, when the activity is news a user should see."""


@dataclass(frozen=True, slots=True)
class Malformed:
    where: str


Parsed = Message | Ignored | Malformed


# ---- ids ---------------------------------------------------------------------------------------

def split_conversation(conversation: str) -> tuple[str, str | None]:
    """``19:x@thread.tacv2;messageid=17`` -> (``19:x@thread.tacv2``, ``17``)."""
    chat, mark, root = conversation.partition(THREAD_MARK)
    return chat, (root or None) if mark else None


def conversation_id(chat: str, thread: str | None) -> str:
    """The conversation id Teams expects for a chat and (channel) thread."""
    return f"{chat}{THREAD_MARK}{thread}" if thread else chat


def platform_id(chat: str, activity_id: str) -> str:
    return f"{chat}|{activity_id}"


def split_platform_id(value: str) -> tuple[str, str]:
    """(chat, activity id) of a platform id; the activity id alone for a bare one."""
    chat, _, activity = value.rpartition("|")
    return chat, activity


# ---- the parser --------------------------------------------------------------------------------

def parse_activity(payload: object, *, channel: str, ours: Container[str] = ()) -> Parsed:
    """The activity as a message, or why not. ``ours`` holds the platform ids of messages
    the bot sent, so a thread the bot started (or a reply to one of its messages) counts
    as a reply to the bot."""
    if not isinstance(payload, Mapping):
        return Malformed("the activity is not an object")
    kind = payload.get("type")
    if not _nonempty(kind):
        return Malformed("the activity has no type")
    if kind == "installationUpdate":
        return _installation(payload)
    if kind != "message":
        return Ignored(f"{kind} activity" if kind in _QUIET else f"unknown activity {kind!r}")
    return _message(payload, channel, ours)


def _message(raw: Mapping[str, Any], channel: str, ours: Container[str]) -> Parsed:
    activity_id, service_url = raw.get("id"), raw.get("serviceUrl")
    conversation, sender, bot = (_account(raw.get(k)) for k in ("conversation", "from",
                                                                 "recipient"))
    if not _nonempty(activity_id):
        return Malformed("message without an id")
    if conversation is None or sender is None or bot is None:
        return Malformed(f"message {activity_id} lacks conversation, from or recipient")
    if not _nonempty(service_url):
        return Malformed(f"message {activity_id} has no serviceUrl")
    text = raw.get("text", "")
    if text is None:
        text = ""
    if not isinstance(text, str):
        return Malformed(f"message {activity_id} has a text that is not a string")
    entities = raw.get("entities")
    text, mentioned = _mentions(text, entities if isinstance(entities, list) else [], bot)
    attachments = _attachments(raw.get("attachments"))
    if not text and not attachments:
        value = "a card action" if raw.get("value") is not None else "an empty message"
        return Ignored(f"message {activity_id} is {value}")
    chat, thread = split_conversation(conversation["id"])
    kind = conversation.get("conversationType")
    is_group = kind in GROUP_TYPES if isinstance(kind, str) and kind else \
        conversation.get("isGroup") is True
    reply_to = raw.get("replyToId")
    to_bot = any(_nonempty(ref) and platform_id(chat, ref) in ours
                 for ref in (reply_to, thread))
    return Message(
        Inbound(
            address=Address(channel=channel, chat=chat, account=bot["id"], thread=thread),
            platform_id=platform_id(chat, activity_id),
            text=text,
            sender_id=sender["id"],
            sender_name=_str(sender.get("name")),
            attachments=attachments,
            is_group=is_group,
            mentioned=mentioned,
            reply_to_bot=to_bot,
            **_timestamp(raw.get("timestamp")),
        ),
        service_url=service_url,
        bot={"id": bot["id"], **({"name": bot["name"]} if _nonempty(bot.get("name")) else {})},
    )


def _mentions(text: str, entities: list[Any], bot: Mapping[str, Any]) -> tuple[str, bool]:
    """The text as the kit's rule reads it (``pyclaw_app.channels.mentions``): the bot's own
    ``<at>`` mention cut where it addressed the bot and kept as ``@Name`` inside a sentence,
    other people's as ``@Name``; and whether the bot was mentioned (a ``mention`` entity
    naming the recipient)."""
    mentioned, ours, others = _tags(entities, bot["id"])
    if mentioned:
        text = _addressed(text, ours, _str(bot.get("name")))
    shown = render_markup(text, _AT_TAG, lambda m: others.get(m.group(0),
                                                              f"@{m.group(1).strip()}"))
    return shown.strip(), mentioned


def _tags(entities: list[Any], bot_id: str) -> tuple[bool, set[str], dict[str, str]]:
    """From the ``mention`` entities: is the bot among them, the ``<at>`` tags naming it,
    and how each tag naming someone else reads (``@`` and the account's name)."""
    mentioned, ours, others = False, set[str](), dict[str, str]()
    for entity in entities:
        if not isinstance(entity, Mapping) or entity.get("type") != "mention":
            continue
        who, tag = _account(entity.get("mentioned")), _str(entity.get("text")).strip()
        if who is None:
            continue
        if who["id"] == bot_id:
            mentioned = True
            if tag:
                ours.add(tag)
        elif tag:
            others[tag] = f"@{_str(who.get('name')) or _inner(tag)}"
    return mentioned, ours, others


def _addressed(text: str, tags: set[str], name: str) -> str:
    """Cut the bot's ``<at>`` where it addressed the bot: the tags its entities name, and
    any ``<at>`` of its name (a client may tag the bot twice but describe it once)."""
    forms = sorted((re.escape(tag) for tag in tags), key=len, reverse=True)
    if name:
        forms.append(rf"<at[^>]*>\s*{re.escape(name)}\s*</at>")
    if not forms:
        return text
    called = name or next((_inner(tag) for tag in sorted(tags)), "")
    return addressed_text(text, re.compile("|".join(forms), re.IGNORECASE),
                          bot_name=called)


def _inner(tag: str) -> str:
    found = _AT_TAG.fullmatch(tag.strip())
    return found.group(1).strip() if found else tag


def _attachments(raw: object) -> tuple[Attachment, ...]:
    """Files as metadata; nothing is downloaded. The ``text/html`` copy of a formatted
    message and cards are not files. A OneDrive/SharePoint file's ``downloadUrl`` is a
    pre-signed link, valid for a while and wanting no token: it is the only way a bot can
    fetch the file (the Graph API would need permissions a bot does not have), so it is
    kept as the URL, beside its ``uniqueId``."""
    found: list[Attachment] = []
    for item in raw if isinstance(raw, list) else ():
        if not isinstance(item, Mapping) or not _nonempty(item.get("contentType")):
            continue
        content_type: str = item["contentType"]
        name = _str(item.get("name"))
        if content_type == FILE_INFO:
            content = item.get("content")
            content = content if isinstance(content, Mapping) else {}
            kind = _str(content.get("fileType")).lower()
            mime = mimetypes.types_map.get(f".{kind}", "") if kind else ""
            link = _str(content.get("downloadUrl"))
            found.append(Attachment(kind="image" if kind in _IMAGE_TYPES else "file",
                                    name=name, mime=mime,
                                    url=link if link.startswith(("https://", "http://")) else None,
                                    platform_id=_str(content.get("uniqueId")) or None))
        elif content_type.startswith(_NOT_FILES):
            continue
        else:
            major = content_type.partition("/")[0]
            url = item.get("contentUrl")
            found.append(Attachment(
                kind=major if major in ("image", "audio", "video") else "file", name=name,
                mime="" if content_type.endswith("/*") else content_type,
                url=url if _nonempty(url) else None))
    return tuple(found)


def _installation(raw: Mapping[str, Any]) -> Ignored:
    action = raw.get("action")
    conversation = _account(raw.get("conversation"))
    where = conversation["id"] if conversation else "a conversation"
    if action == "remove":
        return Ignored("app removed", f"the Teams app was removed from {where}: replies there "
                       "fail until it is added again")
    if action == "add":
        return Ignored("app added", f"the Teams app was added to {where}")
    return Ignored(f"installationUpdate {_str(action)!r}")


def _account(value: object) -> Mapping[str, Any] | None:
    """A ChannelAccount or ConversationAccount with a non-empty string ``id``."""
    if isinstance(value, Mapping) and _nonempty(value.get("id")):
        return value
    return None


def _timestamp(value: object) -> dict[str, float]:
    if not isinstance(value, str) or not value:
        return {}
    try:
        return {"ts": datetime.fromisoformat(value).timestamp()}
    except (ValueError, OverflowError, OSError):
        return {}


def _nonempty(value: object) -> bool:
    return isinstance(value, str) and value != ""


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""
