"""Google Chat interaction events -> :class:`Inbound`, as pure functions so they can be fuzzed.

An HTTP endpoint app gets one event per request: ``{type, eventTime, message, user, space,
...}`` (the ``DeprecatedEvent`` schema of the Chat API's v1 discovery document; ``Message``,
``Space``, ``User``, ``Annotation`` and ``Attachment`` are that document's resources). The
parser never raises: an event it cannot understand is :class:`Malformed` (the caller logs it),
a valid one that is not a user's message (a card click, the app being added to or removed
from a space without a message) is :class:`Ignored`, with what the channel log should say.

Addressing keeps the reply where the user is, as on Slack: a direct message stays flat
unless the user wrote in a thread; a message in a threaded space is answered in its thread,
so each thread is one conversation.
"""

from __future__ import annotations

import re
from collections.abc import Container, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NotRequired, TypedDict

from pyclaw_app.channels.mentions import addressed_spans, utf16_span
from pyclaw_app.model import Address, Attachment, Inbound

__all__ = [
    "DRIVE",
    "MESSAGE_NAME",
    "SPACE_NAME",
    "THREAD_NAME",
    "ChatMessage",
    "Ignored",
    "Malformed",
    "parse_event",
]

DRIVE = "drive:"
"""Prefix of a Drive file's id in ``Attachment.platform_id`` (media resources have no colon)."""
SPACE_NAME = re.compile(r"^spaces/[A-Za-z0-9_-]+$")
MESSAGE_NAME = re.compile(r"^spaces/[A-Za-z0-9_-]+/messages/[A-Za-z0-9_.-]+$")
THREAD_NAME = re.compile(r"^spaces/[A-Za-z0-9_-]+/threads/[A-Za-z0-9_.-]+$")
"""Resource names as the discovery document's patterns give them; they become REST paths,
so anything else (a ``/`` too many, ``..``) is refused here."""
_KINDS = {"image": "image", "audio": "audio", "video": "video"}
_FRACTION = re.compile(r"\.(\d{6})\d+")


class User(TypedDict, total=False):
    name: str  # users/{user}
    displayName: str
    type: str  # HUMAN, BOT


class Space(TypedDict, total=False):
    name: str  # spaces/{space}
    type: str  # deprecated: ROOM, DM
    spaceType: str  # SPACE, GROUP_CHAT, DIRECT_MESSAGE
    singleUserBotDm: bool
    spaceThreadingState: str  # THREADED_MESSAGES, GROUPED_MESSAGES, UNTHREADED_MESSAGES
    displayName: str


class Annotation(TypedDict, total=False):
    type: str  # USER_MENTION, SLASH_COMMAND
    startIndex: int
    length: int
    userMention: dict[str, Any]  # {"user": User, "type": "MENTION" | "ADD"}


class AttachmentBody(TypedDict, total=False):
    name: str  # spaces/*/messages/*/attachments/*
    contentName: str
    contentType: str
    downloadUri: str
    thumbnailUri: str
    source: str  # DRIVE_FILE, UPLOADED_CONTENT
    attachmentDataRef: dict[str, str]  # {"resourceName", "attachmentUploadToken"}
    driveDataRef: dict[str, str]  # {"driveFileId"}


class MessageBody(TypedDict):
    name: str  # spaces/{space}/messages/{message}
    text: NotRequired[str]
    argumentText: NotRequired[str]  # text with every Chat app mention cut, mid-sentence too
    sender: NotRequired[User]
    createTime: NotRequired[str]
    thread: NotRequired[dict[str, str]]  # {"name": spaces/*/threads/*}
    threadReply: NotRequired[bool]
    space: NotRequired[Space]
    annotations: NotRequired[list[Annotation]]
    attachment: NotRequired[list[AttachmentBody]]
    attachedGifs: NotRequired[list[dict[str, str]]]
    slashCommand: NotRequired[dict[str, str]]
    quotedMessageMetadata: NotRequired[dict[str, str]]


class Event(TypedDict):
    type: str  # MESSAGE, ADDED_TO_SPACE, REMOVED_FROM_SPACE, CARD_CLICKED, WIDGET_UPDATED
    eventTime: NotRequired[str]
    message: NotRequired[MessageBody]
    user: NotRequired[User]
    space: NotRequired[Space]


@dataclass(frozen=True, slots=True)
class Ignored:
    """A valid event that is not a message for the assistant; ``note`` is worth a line in
    the channel log (being added to or removed from a space), ``reason`` only a debug line."""

    reason: str
    note: str = ""
    level: str = "info"


@dataclass(frozen=True, slots=True)
class Malformed:
    reason: str


@dataclass(frozen=True, slots=True)
class ChatMessage:
    inbound: Inbound
    thread: str | None
    """The thread the message is in (also for a flat direct message)."""


def parse_event(event: object, *, channel: str, bot_user: str = "",
                ours: Container[str] = ()) -> ChatMessage | Ignored | Malformed:
    """One interaction event. ``bot_user`` is the app's ``users/...`` name when known (a
    mention of another app is then not ours); ``ours`` holds names of threads and messages
    the app posted (a reply in one is a reply to the bot)."""
    try:
        return _parse(event, channel, bot_user, ours)
    except Exception as exc:  # noqa: BLE001 - the parser's promise: a reason, never a raise
        return Malformed(f"unreadable event ({type(exc).__name__})")


def _parse(event: object, channel: str, bot_user: str, ours: Container[str]
           ) -> ChatMessage | Ignored | Malformed:
    if not isinstance(event, Mapping) or not isinstance(event.get("type"), str):
        return Malformed("not an interaction event (no type)")
    kind = event["type"]
    space = _mapping(event.get("space"))
    where = _str(space.get("displayName")) or _str(space.get("name")) or "a space"
    who = _str(_mapping(event.get("user")).get("displayName")) or "someone"
    message = event.get("message")
    if kind == "REMOVED_FROM_SPACE":
        return Ignored("removed from a space", f"{who} removed the app from {where}: it "
                       "gets no more messages there, and replies to it will fail", "warning")
    if kind == "ADDED_TO_SPACE" and message is None:
        return Ignored("added to a space", f"{who} added the app to {where}")
    if kind not in ("MESSAGE", "ADDED_TO_SPACE"):  # an @mention that adds the app: a message
        return Ignored(f"event type {kind!r}")
    if not isinstance(message, Mapping):
        return Malformed(f"{kind} event without a message")
    return _message(event, message, channel, bot_user, ours)


def _message(event: Mapping[str, Any], message: Mapping[str, Any], channel: str,
             bot_user: str, ours: Container[str]) -> ChatMessage | Ignored | Malformed:
    name = message.get("name")
    space = _mapping(message.get("space")) or _mapping(event.get("space"))
    chat = space.get("name")
    if not (isinstance(name, str) and MESSAGE_NAME.match(name)):
        return Malformed("message without a valid name (spaces/*/messages/*)")
    if not (isinstance(chat, str) and SPACE_NAME.match(chat)) or not name.startswith(chat + "/"):
        return Malformed(f"message {name} without its space (spaces/*)")
    sender = _mapping(message.get("sender")) or _mapping(event.get("user"))
    sender_id = sender.get("name")
    if not isinstance(sender_id, str) or not sender_id:
        return Malformed(f"message {name} without a sender")
    if sender.get("type") == "BOT":
        return Ignored("a Chat app's message")
    thread = _str(_mapping(message.get("thread")).get("name"))
    if thread and not (THREAD_NAME.match(thread) and thread.startswith(chat + "/")):
        return Malformed(f"message {name} in an invalid thread")
    text = message.get("text", "")
    if not isinstance(text, str):
        return Malformed(f"message {name} with a text that is not a string")

    direct = (space.get("spaceType") == "DIRECT_MESSAGE" or space.get("type") == "DM"
              or space.get("singleUserBotDm") is True)
    in_thread = message.get("threadReply") is True
    threaded = not direct and space.get("spaceThreadingState") != "UNTHREADED_MESSAGES"
    mentioned = bool(_our_mentions(message.get("annotations"), bot_user)) or \
        isinstance(message.get("slashCommand"), Mapping)
    quoted = _str(_mapping(message.get("quotedMessageMetadata")).get("name"))
    conversation = (thread or None) if threaded or in_thread else None
    return ChatMessage(
        inbound=Inbound(
            address=Address(channel=channel, chat=chat, thread=conversation),
            platform_id=name,
            text=_text(message, text, bot_user),
            sender_id=sender_id,
            sender_name=_str(sender.get("displayName")),
            attachments=_attachments(message),
            is_group=not direct,
            mentioned=mentioned,
            reply_to_bot=(in_thread and thread in ours) or (bool(quoted) and quoted in ours),
            **_timestamp(message.get("createTime")),
        ),
        thread=thread or None,
    )


def _text(message: Mapping[str, Any], text: str, bot_user: str) -> str:
    """What the user said to the assistant, by the kit's rule
    (``pyclaw_app.channels.mentions``): the app's ``@name`` cut where it addressed the app
    (opening or closing the text), kept inside a sentence. Not ``argumentText``: Google cuts
    every app mention out of it, mid-sentence ones too ("ask about it"). Other people's
    mentions are already ``@displayName`` in ``text``; a slash command keeps its command,
    which is part of what was said ("/help")."""
    if isinstance(message.get("slashCommand"), Mapping):
        return text
    spans = [span for annotation in _our_mentions(message.get("annotations"), bot_user)
             if (span := utf16_span(text, annotation.get("startIndex", 0),
                                    annotation.get("length"))) is not None]
    return addressed_spans(text, spans).strip()


def _our_mentions(annotations: object, bot_user: str) -> list[Mapping[str, Any]]:
    """The ``USER_MENTION`` annotations of a Chat app that are ours: its name is ours, or
    ours is not known yet (Google sends a space's messages to an app only when it is
    mentioned)."""
    if not isinstance(annotations, list):
        return []
    found: list[Mapping[str, Any]] = []
    for annotation in annotations:
        if not isinstance(annotation, Mapping) or annotation.get("type") != "USER_MENTION":
            continue
        user = _mapping(_mapping(annotation.get("userMention")).get("user"))
        if user.get("type") == "BOT" and (not bot_user or user.get("name") == bot_user):
            found.append(annotation)
    return found


def _attachments(message: Mapping[str, Any]) -> tuple[Attachment, ...]:
    """Uploaded files, Drive files and GIFs as metadata; nothing is downloaded (the bytes are
    ``media.download`` of ``attachmentDataRef.resourceName``, with the app's credentials).
    A Drive file's id is kept as ``drive:<id>``: only the Drive API, with the user's
    consent, can open it, so it is told apart from an uploaded file's media resource."""
    found: list[Attachment] = []
    items = message.get("attachment")
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, Mapping):
            continue
        mime = _str(item.get("contentType"))
        drive = _str(_mapping(item.get("driveDataRef")).get("driveFileId"))
        data = _str(_mapping(item.get("attachmentDataRef")).get("resourceName"))
        found.append(Attachment(
            kind=_KINDS.get(mime.partition("/")[0], "file"),
            name=_str(item.get("contentName")), mime=mime,
            url=_str(item.get("downloadUri")) or None,
            platform_id=data or (f"{DRIVE}{drive}" if drive else "")
            or _str(item.get("name")) or None))
    gifs = message.get("attachedGifs")
    for gif in gifs if isinstance(gifs, list) else ():
        uri = _str(gif.get("uri")) if isinstance(gif, Mapping) else ""
        if uri:
            found.append(Attachment(kind="image", mime="image/gif", url=uri))
    return tuple(found)


def _timestamp(value: object) -> dict[str, float]:
    """``createTime`` (RFC 3339, Google writes up to nanoseconds) as Unix seconds."""
    if not isinstance(value, str):
        return {}
    try:
        when = datetime.fromisoformat(_FRACTION.sub(r".\1", value.replace("Z", "+00:00")))
    except ValueError:
        return {}
    return {"ts": when.timestamp()} if when.tzinfo is not None else {}


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""
