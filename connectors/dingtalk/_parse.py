"""DingTalk's wire formats -> our types, as pure functions that never raise.

Two layers arrive on the Stream socket: the frame (``{specVersion, type, headers, data}``,
``data`` a JSON *string*; open-dingtalk/developerpedia docs/learn/stream/protocol.md) and,
inside a CALLBACK frame on the robot topic, the robot message (``conversationType`` "1"
single chat / "2" group, ``msgId``, ``msgtype`` with ``text`` or ``content``,
``sessionWebhook`` and its ``sessionWebhookExpiredTime`` in ms; "Receive messages",
open.dingtalk.com/document/orgapp/receive-message). A frame that is not JSON is ``None``;
a robot message that is not for the assistant, or is broken, is :class:`Skip` with the
reason for the channel log.

In a group DingTalk delivers only messages that @mention the robot (``isInAtList``);
the plain-text ``content`` comes with the mention already cut (a leading space remains),
rich text keeps it, so ``bot_name`` (when configured) is cut by the kit's one rule.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypedDict, cast

from pyclaw_app.channels.mentions import addressed_text
from pyclaw_app.model import Address, Attachment, Inbound

__all__ = [
    "Conversation",
    "Frame",
    "Parsed",
    "Skip",
    "parse_frame",
    "parse_message",
]

SINGLE, GROUP = "1", "2"


class WireHeaders(TypedDict, total=False):
    topic: str
    messageId: str
    contentType: str
    time: str


class WireFrame(TypedDict, total=False):
    specVersion: str
    type: str
    headers: WireHeaders
    data: str


class WireText(TypedDict, total=False):
    content: str


class WireRobotMessage(TypedDict, total=False):
    """The fields of a robot message we read (there are more)."""

    msgId: str
    msgtype: str
    conversationType: str
    conversationId: str
    conversationTitle: str
    senderId: str
    senderStaffId: str
    senderNick: str
    isInAtList: bool
    robotCode: str
    createAt: int
    sessionWebhook: str
    sessionWebhookExpiredTime: int
    text: WireText
    content: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Frame:
    """One Stream frame. ``data`` is the decoded ``data`` string (None when it is not JSON)."""

    kind: str
    topic: str
    message_id: str
    data: Any


@dataclass(frozen=True, slots=True)
class Conversation:
    """Where replies to a message go: its session webhook while valid, else the robot API
    (``staff_id`` for a single chat's batchSend, ``conversation_id`` for a group's send)."""

    chat: str
    group: bool
    conversation_id: str
    staff_id: str
    webhook: str
    webhook_expires: float
    """Unix seconds; 0 when the message named no webhook."""


@dataclass(frozen=True, slots=True)
class Parsed:
    inbound: Inbound
    conversation: Conversation


@dataclass(frozen=True, slots=True)
class Skip:
    reason: str
    level: Literal["debug", "info", "warning", "error"] = "info"


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _dict(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _number(value: object) -> float:
    if isinstance(value, bool):
        return 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return 0.0
    return 0.0


def parse_frame(raw: str | bytes) -> Frame | None:
    """A frame as the Stream gateway sends it; None for a frame that is not a JSON object."""
    try:
        wire = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(wire, dict):
        return None
    frame = cast(WireFrame, wire)
    headers = _dict(frame.get("headers"))
    data: Any = None
    encoded = frame.get("data")
    if isinstance(encoded, str) and encoded:
        try:
            data = json.loads(encoded)
        except ValueError:
            data = None
    return Frame(kind=_str(frame.get("type")), topic=_str(headers.get("topic")),
                 message_id=_str(headers.get("messageId")), data=data)


def _attachments(msgtype: str, content: Mapping[str, Any]) -> tuple[str, list[Attachment]]:
    """(text, attachments) of a non-text message; download codes are kept as platform ids
    (the bytes stay on DingTalk: robot/messageFiles/download turns a code into a URL)."""
    if msgtype == "picture":
        return "", [Attachment(kind="image", platform_id=_str(content.get("downloadCode"))
                               or None)]
    if msgtype == "audio":
        return _str(content.get("recognition")), [
            Attachment(kind="audio", platform_id=_str(content.get("downloadCode")) or None)]
    if msgtype == "video":
        return "", [Attachment(kind="video", mime=f"video/{_str(content.get('videoType'))}"
                               if content.get("videoType") else "",
                               platform_id=_str(content.get("downloadCode")) or None)]
    if msgtype == "file":
        return "", [Attachment(kind="file", name=_str(content.get("fileName")),
                               platform_id=_str(content.get("downloadCode")) or None)]
    parts, found = [], []
    items = content.get("richText")
    for item in items if isinstance(items, list) else []:
        item = _dict(item)
        if isinstance(item.get("text"), str):
            parts.append(item["text"])
        elif item.get("type") == "picture" or item.get("downloadCode"):
            found.append(Attachment(kind="image",
                                    platform_id=_str(item.get("downloadCode")) or None))
    return "\n".join(parts), found


def _body(message: WireRobotMessage) -> tuple[str, list[Attachment]] | Skip:
    msgtype = _str(message.get("msgtype"))
    if msgtype == "text":
        text = _dict(message.get("text")).get("content")
        if not isinstance(text, str):
            return Skip("a DingTalk text message without text", level="error")
        return text, []
    if msgtype in ("picture", "audio", "video", "file", "richText"):
        return _attachments(msgtype, _dict(message.get("content")))
    return Skip(f"a DingTalk {msgtype or 'untyped'} message: the robot cannot read that "
                "kind", level="info")


def parse_message(data: object, *, channel: str, bot_name: str = "") -> Parsed | Skip:
    """A robot message (the decoded ``data`` of a ``/v1.0/im/bot/messages/get`` callback)."""
    message = cast(WireRobotMessage, _dict(data))
    msg_id = _str(message.get("msgId"))
    kind = _str(message.get("conversationType"))
    conversation_id = _str(message.get("conversationId"))
    if not msg_id or kind not in (SINGLE, GROUP) or not conversation_id:
        return Skip("a malformed DingTalk robot message (no msgId, conversation or "
                    "conversationType)", level="error")
    body = _body(message)
    if isinstance(body, Skip):
        return body
    text, attachments = body
    group = kind == GROUP
    staff_id = _str(message.get("senderStaffId"))
    sender = staff_id or _str(message.get("senderId"))
    mentioned = group and message.get("isInAtList") is True
    if mentioned:
        text = _addressed(text, bot_name, alone=not attachments)
    elif not group:
        text = text.strip()
    chat = conversation_id if group or not staff_id else staff_id
    webhook = _str(message.get("sessionWebhook"))
    expires = _number(message.get("sessionWebhookExpiredTime")) / 1000 if webhook else 0.0
    created = _number(message.get("createAt")) / 1000
    inbound = Inbound(
        address=Address(channel=channel, chat=chat),
        platform_id=msg_id,
        text=text,
        sender_id=sender,
        sender_name=_str(message.get("senderNick")),
        attachments=tuple(attachments),
        is_group=group,
        mentioned=mentioned,
        **({"ts": created} if created > 0 else {}),
    )
    return Parsed(inbound, Conversation(chat=chat, group=group,
                                        conversation_id=conversation_id, staff_id=staff_id,
                                        webhook=webhook, webhook_expires=expires))


def _addressed(text: str, bot_name: str, *, alone: bool) -> str:
    """A group message that @mentioned the robot, read as addressed to the assistant; a
    mention with nothing else (``alone``: no attachment either) reads as the mention."""
    if bot_name:
        text = addressed_text(text, re.escape(f"@{bot_name}"), bot_name=bot_name)
    text = text.strip()
    return text or (f"@{bot_name or 'bot'}" if alone else "")
