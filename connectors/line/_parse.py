"""LINE webhook events -> :class:`Inbound`, as pure functions so they can be fuzzed.

One webhook body (``CallbackRequest``) carries ``events[]``; each is parsed on
its own, so one broken event never costs the rest of the batch. The parser never
raises: an event it cannot understand is ``None`` (the caller logs it), a valid
one that is not a user's message (follow, join, postback, unsend, standby mode...)
is :class:`Ignored`. Shapes follow ``webhook.yml`` in github.com/line/line-openapi.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict, TypeGuard

from pyclaw_app.channels.mentions import addressed_spans, utf16_span
from pyclaw_app.model import Address, Attachment, Inbound

__all__ = ["Ignored", "LineMessage", "parse_event"]

_SOURCE_KEYS = {"user": "userId", "group": "groupId", "room": "roomId"}
_MEDIA = frozenset({"image", "video", "audio", "file", "sticker", "location"})


class Mentionee(TypedDict):
    type: str  # "user" or "all"
    index: int
    length: int
    userId: NotRequired[str]
    isSelf: NotRequired[bool]


class MessageContent(TypedDict):
    id: str
    type: str  # text, image, video, audio, file, location, sticker
    text: NotRequired[str]
    quoteToken: NotRequired[str]
    quotedMessageId: NotRequired[str]
    mention: NotRequired[dict[str, list[Mentionee]]]
    fileName: NotRequired[str]
    fileSize: NotRequired[int]


class MessageEvent(TypedDict):
    type: str  # "message"
    mode: str  # "active" or "standby"
    timestamp: int  # milliseconds
    webhookEventId: str
    deliveryContext: dict[str, bool]  # {"isRedelivery": ...}
    source: dict[str, str]  # {"type": "user"|"group"|"room", "userId", "groupId", "roomId"}
    replyToken: NotRequired[str]
    message: MessageContent


@dataclass(frozen=True, slots=True)
class Ignored:
    """A valid event that is not a message for the assistant."""

    reason: str


@dataclass(frozen=True, slots=True)
class LineMessage:
    inbound: Inbound
    reply_token: str | None
    quote_token: str | None


def parse_event(event: object, *, channel: str, bot_user_id: str,
                ours: Container[str] = ()) -> LineMessage | Ignored | None:
    """One webhook event; ``ours`` holds ids of messages the bot sent (for ``reply_to_bot``).

    The platform id is the message id: unique on LINE and the same in a redelivery
    (``deliveryContext.isRedelivery``), so the journal answers a message once.
    """
    if not isinstance(event, Mapping) or not isinstance(event.get("type"), str):
        return None
    if event["type"] != "message":
        return Ignored(f"event type {event['type']!r}")
    if event.get("mode") == "standby":
        return Ignored("channel is in standby mode (another module channel answers)")
    message, source = event.get("message"), event.get("source")
    if not isinstance(message, Mapping) or not isinstance(source, Mapping):
        return None
    mid, kind = message.get("id"), message.get("type")
    source_type = source.get("type")
    key = _SOURCE_KEYS.get(source_type) if isinstance(source_type, str) else None
    chat = source.get(key) if key else None
    if not (_nonempty(mid) and _nonempty(kind) and _nonempty(chat)):
        return None
    sender = source.get("userId")
    text = message.get("text", "") if kind == "text" else ""
    if not isinstance(text, str) or not (sender is None or isinstance(sender, str)):
        return None
    if kind != "text" and kind not in _MEDIA:
        return Ignored(f"message type {kind!r}")

    mentioned, text = _mentions(message.get("mention"), text, bot_user_id)
    quoted = message.get("quotedMessageId")
    stamp = event.get("timestamp")
    return LineMessage(
        inbound=Inbound(
            address=Address(channel=channel, chat=chat, account=bot_user_id),
            platform_id=mid,
            text=text,
            sender_id=sender or "",
            attachments=_attachments(kind, message),
            is_group=key != "userId",
            mentioned=mentioned,
            reply_to_bot=isinstance(quoted, str) and quoted in ours,
            **({"ts": stamp / 1000} if isinstance(stamp, int) and 0 < stamp < 10**14 else {}),
        ),
        reply_token=_str(event.get("replyToken")) or None,
        quote_token=_str(message.get("quoteToken")) or None,
    )


def _mentions(mention: object, text: str, bot_user_id: str) -> tuple[bool, str]:
    """Is the bot among ``mentionees`` (``isSelf``, or its user id)? Then the text as the
    kit's rule reads it (``pyclaw_app.channels.mentions``): the bot's "@name" cut where it
    addressed the bot, kept inside a sentence. Other people's mentions are already plain
    "@name" in ``text``. ``index``/``length`` count UTF-16 code units, as LINE counts text."""
    mentionees = mention.get("mentionees") if isinstance(mention, Mapping) else None
    if not isinstance(mentionees, list):
        return False, text
    ours = [m for m in mentionees if _is_bot(m, bot_user_id)]
    spans = [span for m in ours
             if (span := utf16_span(text, m.get("index"), m.get("length"))) is not None]
    return bool(ours), addressed_spans(text, spans)


def _is_bot(mentionee: object, bot_user_id: str) -> TypeGuard[Mapping[str, Any]]:
    return isinstance(mentionee, Mapping) and (
        mentionee.get("isSelf") is True
        or (bool(bot_user_id) and mentionee.get("userId") == bot_user_id))


def _attachments(kind: str, message: Mapping[str, Any]) -> tuple[Attachment, ...]:
    """Media as metadata with the message id (the content is fetched from api-data.line.me
    /v2/bot/message/{id}/content when it is read); nothing is downloaded here. Content a
    sender's service hosts itself (``contentProvider.type`` "external") keeps its
    ``originalContentUrl``: LINE holds no copy of it."""
    if kind == "text":
        return ()
    name, url, size = "", None, message.get("fileSize")
    provider = message.get("contentProvider")
    if isinstance(provider, Mapping) and provider.get("type") == "external":
        url = _str(provider.get("originalContentUrl")) or None
    if kind == "file":
        name = _str(message.get("fileName"))
    elif kind == "sticker":
        name = f"sticker {_str(message.get('packageId'))}/{_str(message.get('stickerId'))}"
    elif kind == "location":
        name = _str(message.get("title")) or _str(message.get("address"))
        lat, lon = message.get("latitude"), message.get("longitude")
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lat, lon)):
            url = f"geo:{lat},{lon}"
    return (Attachment(kind=kind, name=name, url=url, platform_id=message["id"],
                       size=size if isinstance(size, int) and not isinstance(size, bool)
                       else None),)


def _nonempty(value: object) -> bool:
    return isinstance(value, str) and value != ""


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""
