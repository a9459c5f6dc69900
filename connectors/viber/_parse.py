"""Viber callbacks -> :class:`Inbound` or a :class:`Notice`: pure functions (fuzzed in tests).

Viber posts one event per request (``event``: webhook, message, conversation_started,
subscribed, unsubscribed, delivered, seen, failed). The parser never raises: a
callback it cannot understand is ``None`` (the caller logs it), a user's message is
an :class:`Inbound`, any other known event is a :class:`Notice` for the log (and, for
``conversation_started``, the welcome message), anything else :class:`Ignored`.
Shapes follow developers.viber.com/docs/api/rest-bot-api/ ("Callbacks") and the
request classes of github.com/Viber/viber-bot-python (``viberbot/api/viber_requests``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

from pyclaw_app.model import Address, Attachment, Inbound

__all__ = ["Ignored", "Notice", "parse_callback"]

NOTICES = frozenset({"webhook", "conversation_started", "subscribed", "unsubscribed",
                     "delivered", "seen", "failed"})
_MEDIA_KIND = {"picture": "image", "video": "video", "file": "file", "sticker": "sticker",
               "location": "location", "contact": "contact"}


class UserProfile(TypedDict):
    id: str
    name: NotRequired[str]
    avatar: NotRequired[str]
    country: NotRequired[str]
    language: NotRequired[str]
    api_version: NotRequired[int]


class MessageBody(TypedDict):
    type: str  # text, picture, video, file, sticker, contact, url, location
    text: NotRequired[str]
    media: NotRequired[str]  # URL of the picture, video, file, sticker or link
    thumbnail: NotRequired[str]
    file_name: NotRequired[str]
    file_size: NotRequired[int]
    size: NotRequired[int]
    duration: NotRequired[int]
    sticker_id: NotRequired[int]
    location: NotRequired[dict[str, float]]  # {"lat", "lon"}
    contact: NotRequired[dict[str, str]]  # {"name", "phone_number", "avatar"}
    tracking_data: NotRequired[str]


class MessageCallback(TypedDict):
    event: str  # "message"
    timestamp: int  # milliseconds
    chat_hostname: NotRequired[str]
    message_token: int
    sender: UserProfile
    message: MessageBody
    silent: NotRequired[bool]


@dataclass(frozen=True, slots=True)
class Ignored:
    """A valid callback the channel has nothing to do with."""

    reason: str


@dataclass(frozen=True, slots=True)
class Notice:
    """A callback that is not a user's message: logged, never journaled."""

    event: str
    user_id: str = ""
    user_name: str = ""
    message_token: str = ""
    detail: str = ""
    """``failed``: Viber's description; ``conversation_started``: how the chat was opened."""
    subscribed: bool | None = None


def parse_callback(payload: object, *, channel: str, account: str = ""
                   ) -> Inbound | Notice | Ignored | None:
    """One callback body. The platform id of a message is its ``message_token``: unique and
    the same when Viber retries the callback, so the journal answers a message once."""
    if not isinstance(payload, Mapping) or not isinstance(payload.get("event"), str):
        return None
    event = payload["event"]
    if event == "message":
        return _message(payload, channel=channel, account=account)
    if event in NOTICES:
        return _notice(event, payload)
    return Ignored(f"event {event!r}")


def _message(payload: Mapping[str, Any], *, channel: str, account: str) -> Inbound | Ignored | None:
    sender, message = payload.get("sender"), payload.get("message")
    token = _token(payload.get("message_token"))
    if not isinstance(sender, Mapping) or not isinstance(message, Mapping) or not token:
        return None
    user, kind = sender.get("id"), message.get("type")
    if not (_nonempty(user) and _nonempty(kind)):
        return None
    text = message.get("text", "")
    if kind == "url":
        text = message.get("media", text)
    if not isinstance(text, str) or (kind == "text" and not text):
        return None
    if kind not in ("text", "url") and kind not in _MEDIA_KIND:
        return Ignored(f"message type {kind!r}")
    attachment = _attachment(kind, message, token)
    if attachment is False:
        return None
    stamp = payload.get("timestamp")
    when = {"ts": stamp / 1000} if isinstance(stamp, int) and _int(stamp) \
        and 0 < stamp < 10**14 else {}
    return Inbound(
        address=Address(channel=channel, chat=user, account=account),
        platform_id=token,
        text=text,
        sender_id=user,
        sender_name=_str(sender.get("name")),
        attachments=(attachment,) if isinstance(attachment, Attachment) else (),
        **when,
    )


def _attachment(kind: str, message: Mapping[str, Any], token: str) -> Attachment | bool:
    """Media as metadata, the URL Viber gave (picture, video, file and sticker URLs are
    Viber's own and expire); nothing is downloaded. False: the media part is broken."""
    if kind not in _MEDIA_KIND:
        return True
    media = message.get("media")
    if media is not None and not isinstance(media, str):
        return False
    name, url = _str(message.get("file_name")), media or None
    size = next((v for v in (message.get("file_size"), message.get("size")) if _int(v)), None)
    if kind == "sticker":
        sticker = message.get("sticker_id")
        name = f"sticker {sticker}" if _int(sticker) else "sticker"
    elif kind == "location":
        where = message.get("location")
        lat, lon = (where.get("lat"), where.get("lon")) if isinstance(where, Mapping) \
            else (None, None)
        if not all(_number(v) for v in (lat, lon)):
            return False
        url = f"geo:{lat},{lon}"
    elif kind == "contact":
        card = message.get("contact")
        if not isinstance(card, Mapping):
            return False
        name, phone = _str(card.get("name")), _str(card.get("phone_number"))
        url = f"tel:{phone}" if phone else None
    return Attachment(kind=_MEDIA_KIND[kind], name=name, url=url, platform_id=token,
                      size=size)


def _notice(event: str, payload: Mapping[str, Any]) -> Notice | None:
    token = _token(payload.get("message_token"))
    if event == "webhook":
        return Notice(event, message_token=token)
    if event in ("conversation_started", "subscribed"):
        user = payload.get("user")
        if not isinstance(user, Mapping) or not _nonempty(user.get("id")):
            return None
        subscribed = payload.get("subscribed") if event == "conversation_started" else True
        detail = " ".join(filter(None, (_str(payload.get("type")), _str(payload.get("context")))))
        return Notice(event, user_id=user["id"], user_name=_str(user.get("name")),
                      message_token=token, detail=detail,
                      subscribed=subscribed if isinstance(subscribed, bool) else None)
    user_id = payload.get("user_id")
    if not _nonempty(user_id):
        return None
    return Notice(event, user_id=user_id, message_token=token,
                  detail=_str(payload.get("desc")),
                  subscribed=False if event == "unsubscribed" else None)


def _token(value: object) -> str:
    """``message_token`` is a 64-bit integer on the wire (the SDK's tests also use strings)."""
    if isinstance(value, int) and _int(value):
        return str(value)
    return value if isinstance(value, str) and value.isascii() and value.isdigit() else ""


def _int(value: object) -> bool:
    """A JSON integer in the 64-bit range Viber uses (a bigger one is not Viber's)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**64


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _nonempty(value: object) -> bool:
    return isinstance(value, str) and value != ""


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""
