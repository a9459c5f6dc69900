"""A WeChat Official Account callback (its XML fields) -> :class:`Inbound`, as a pure function.

Shapes follow the "receiving ordinary messages" and "receiving event pushes" pages of
the OA docs (developers.weixin.qq.com/doc/offiaccount/Message_Management/) and
wechatpy's ``messages.py``/``events.py``: every callback has ``ToUserName`` (the
account's original id, ``gh_...``), ``FromUserName`` (the user's OpenID),
``CreateTime`` and ``MsgType``; a message has a ``MsgId`` (the same in WeChat's
retries, so the journal recognises them), an event has ``Event`` instead.

The parser never raises: a user's message is :class:`Message`, a follow or unfollow
is :class:`Followed` (a log line, not a chat message), any other event or message
type is :class:`Ignored`, and a callback missing what it must have is
:class:`Malformed`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypedDict

from pyclaw_app.model import Address, Attachment, Inbound

__all__ = ["Callback", "Followed", "Ignored", "Malformed", "Message", "Parsed", "parse_callback"]

_DIGITS = re.compile(r"^\d{1,20}$")
_NUMBER = re.compile(r"^-?\d{1,3}(\.\d{1,12})?$")
_VIDEO = ("video", "shortvideo")


class Callback(TypedDict, total=False):
    """The flat fields of a callback's ``<xml>`` (all text; which ones depends on MsgType)."""

    ToUserName: str
    FromUserName: str
    CreateTime: str
    MsgType: str  # text, image, voice, video, shortvideo, location, link, event, ...
    MsgId: str
    Content: str  # text
    PicUrl: str  # image
    MediaId: str  # image, voice, video, shortvideo
    Format: str  # voice: amr, speex...
    Recognition: str  # voice, when speech recognition is switched on
    ThumbMediaId: str  # video, shortvideo
    Location_X: str  # location: latitude
    Location_Y: str  # location: longitude
    Scale: str
    Label: str
    Title: str  # link
    Description: str
    Url: str
    Event: str  # event: subscribe, unsubscribe, SCAN, LOCATION, CLICK, VIEW, ...
    EventKey: str


@dataclass(frozen=True, slots=True)
class Message:
    inbound: Inbound


@dataclass(frozen=True, slots=True)
class Followed:
    """A user followed (``subscribe``) or unfollowed (``unsubscribe``) the account."""

    user: str
    following: bool


@dataclass(frozen=True, slots=True)
class Ignored:
    reason: str


@dataclass(frozen=True, slots=True)
class Malformed:
    reason: str


Parsed = Message | Followed | Ignored | Malformed


def parse_callback(fields: Mapping[str, str], *, channel: str) -> Parsed:
    """What one decrypted (or plaintext) callback is."""
    user, account = _get(fields, "FromUserName"), _get(fields, "ToUserName")
    kind = _get(fields, "MsgType").lower()
    if not (user and account and kind):
        return Malformed("FromUserName, ToUserName and MsgType are required")
    if kind == "event":
        event = _get(fields, "Event").lower()
        if event in ("subscribe", "unsubscribe"):
            return Followed(user, event == "subscribe")
        return Ignored(f"event {event or '(none)'!r}")
    mid = _get(fields, "MsgId")
    if not _DIGITS.match(mid):
        return Malformed(f"a {kind} message without a numeric MsgId")
    body = _content(fields, kind)
    if body is None:
        return Ignored(f"message type {kind!r}") if kind not in _KNOWN else Malformed(
            f"a {kind} message without its {_KNOWN[kind]}")
    text, attachments = body
    stamp = _get(fields, "CreateTime")
    return Message(Inbound(
        address=Address(channel=channel, chat=user, account=account),
        platform_id=mid, text=text, sender_id=user, attachments=attachments,
        **({"ts": float(stamp)} if _DIGITS.match(stamp) and len(stamp) < 12 else {})))


_KNOWN = {"text": "Content", "image": "MediaId", "voice": "MediaId", "video": "MediaId",
          "shortvideo": "MediaId", "location": "Location_X and Location_Y", "link": "Url"}


def _content(fields: Mapping[str, str], kind: str
             ) -> tuple[str, tuple[Attachment, ...]] | None:
    """The words and attachments of a message; None when its type is unknown or the field
    it must have is missing."""
    if kind == "text":
        return (fields["Content"], ()) if isinstance(fields.get("Content"), str) else None
    media = _get(fields, "MediaId")
    if kind == "image" and media:
        url = _get(fields, "PicUrl")
        return "", (Attachment(kind="image", platform_id=media,
                               url=url if url.startswith(("http://", "https://")) else None),)
    if kind == "voice" and media:
        fmt = _get(fields, "Format").lower()
        return _get(fields, "Recognition"), (Attachment(
            kind="audio", mime=f"audio/{fmt}" if fmt.isalnum() else "", platform_id=media),)
    if kind in _VIDEO and media:
        return "", (Attachment(kind="video", platform_id=media),)
    if kind == "location":
        lat, lon = _get(fields, "Location_X"), _get(fields, "Location_Y")
        if _NUMBER.match(lat) and _NUMBER.match(lon):
            return "", (Attachment(kind="location", name=_get(fields, "Label"),
                                   url=f"geo:{lat},{lon}"),)
        return None
    if kind == "link" and _get(fields, "Url"):
        words = (_get(fields, "Title"), _get(fields, "Description"), _get(fields, "Url"))
        return "\n".join(w for w in words if w), ()
    return None


def _get(fields: Mapping[str, str], key: str) -> str:
    value = fields.get(key)
    return value.strip() if isinstance(value, str) else ""
