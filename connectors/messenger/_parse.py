"""Messenger Platform webhook bodies -> :class:`Inbound`, as pure functions.

One webhook body (``object: "page"``, ``entry[]``) may batch several entries, each with
``messaging[]`` events (``standby[]`` when another app owns the conversation under the
handover protocol). Each event is parsed on its own, so one broken event never costs
the rest. The parser never raises: what it cannot understand is :class:`Malformed` (the
caller logs it); a valid event that is not a person's message (an echo of what the
Page sent, a delivery or read receipt, a reaction, an edit) is :class:`Ignored`; another
Page's traffic is :class:`Elsewhere`; a Page-level policy action is :class:`PolicyNotice`.

Shapes follow Meta's webhook reference (developers.facebook.com/docs/messenger-platform/
reference/webhook-events: ``messages``, ``message_echoes``, ``messaging_postbacks``,
``message_deliveries``, ``message_reads``, ``messaging_policy_enforcement``) and
``node/app.js`` in github.com/fbsamples/messenger-platform-samples.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

from pyclaw_app.model import Address, Attachment, Inbound

__all__ = ["Elsewhere", "Ignored", "Malformed", "Message", "PolicyNotice", "parse_payload"]

_MEDIA = {"image": "image", "audio": "audio", "video": "video", "file": "file",
          "reel": "video", "ig_reel": "video"}
_NOT_MESSAGES = ("delivery", "read", "reaction", "message_edit", "optin", "referral",
                 "account_linking", "pass_thread_control", "take_thread_control",
                 "request_thread_control", "app_roles", "game_play")


# ---- wire shapes (for reading; the parser checks every field it uses) -------------------------

class AttachmentPayload(TypedDict, total=False):
    url: str  # a CDN URL (lookaside.fbsbx.com, scontent...); it expires
    title: str
    sticker_id: int  # an image attachment that is a sticker
    coordinates: dict[str, float]  # location (older API versions): {"lat", "long"}
    reel_video_id: int


class MessageAttachment(TypedDict):
    type: str  # image, audio, video, file, reel, ig_reel, fallback, template, location
    payload: NotRequired[AttachmentPayload | None]  # a fallback may come without one
    title: NotRequired[str]  # fallback (a shared link)


class MessageBody(TypedDict):
    mid: str  # the same in a redelivery
    text: NotRequired[str]
    attachments: NotRequired[list[MessageAttachment]]
    quick_reply: NotRequired[dict[str, str]]  # {"payload"}: text is the tapped reply's title
    reply_to: NotRequired[dict[str, Any]]  # {"mid", "is_self_reply"?}: the message it answers
    is_echo: NotRequired[bool]  # a message the Page (or an app for it) sent
    is_unsupported: NotRequired[bool]
    app_id: NotRequired[int]
    metadata: NotRequired[str]


class Postback(TypedDict):
    title: str  # the tapped button's title
    payload: str
    mid: NotRequired[str]


class MessagingEvent(TypedDict):
    sender: NotRequired[dict[str, str]]  # {"id": PSID}, the Page's id for an echo
    recipient: dict[str, str]  # {"id": Page id}
    timestamp: int  # milliseconds
    message: NotRequired[MessageBody]
    postback: NotRequired[Postback]
    delivery: NotRequired[dict[str, Any]]  # {"mids", "watermark"}
    read: NotRequired[dict[str, Any]]  # {"watermark"}
    policy_enforcement: NotRequired[dict[str, str]]  # {"action": warning|block|unblock,
    #                                                     "reason"}; comes without a sender


class Entry(TypedDict):
    id: str  # the Page's id
    time: int
    messaging: NotRequired[list[MessagingEvent]]
    standby: NotRequired[list[MessagingEvent]]


class WebhookBody(TypedDict):
    object: str  # "page"
    entry: list[Entry]


# ---- what the parser hands the connector ------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Message:
    inbound: Inbound
    replied_to: str | None = None
    """``reply_to.mid``: the message the person answered (the connector knows whether it
    was one of the bot's)."""


@dataclass(frozen=True, slots=True)
class PolicyNotice:
    """Meta warned, blocked or unblocked the Page's messaging for a policy violation."""

    action: str
    reason: str


@dataclass(frozen=True, slots=True)
class Elsewhere:
    """Traffic for something this channel does not answer: another Page of the same app
    (one callback URL serves them all) or another product's webhook object."""

    what: str


@dataclass(frozen=True, slots=True)
class Ignored:
    reason: str


@dataclass(frozen=True, slots=True)
class Malformed:
    where: str


Item = Message | PolicyNotice | Elsewhere | Ignored | Malformed


def parse_payload(payload: object, *, channel: str, page_id: str = "") -> list[Item]:
    """Every item of a webhook body, in order. ``page_id`` (when known) is the Page this
    channel answers for: an app's one callback URL carries all its Pages' events."""
    if not isinstance(payload, Mapping) or not isinstance(payload.get("entry"), list):
        return [Malformed("no entry array")]
    if payload.get("object") != "page":
        return [Elsewhere(f"object {_str(payload.get('object'))!r}")]
    items: list[Item] = []
    for e, entry in enumerate(payload["entry"]):
        page = entry.get("id") if isinstance(entry, Mapping) else None
        if not _nonempty(page):
            items.append(Malformed(f"entry[{e}] has no Page id"))
            continue
        if page_id and page != page_id:
            items.append(Elsewhere(f"Page {page}"))
            continue
        for key in ("messaging", "standby"):
            events = entry.get(key, [])
            if not isinstance(events, list):
                items.append(Malformed(f"entry[{e}].{key} is not a list"))
                continue
            if key == "standby":  # the handover protocol gave these threads to another app
                items.extend(Ignored("standby: another app owns this conversation")
                             for _ in events)
                continue
            items.extend(_event(event, f"entry[{e}].messaging[{i}]", channel=channel, page=page)
                         for i, event in enumerate(events))
    return items


def _event(event: object, where: str, *, channel: str, page: str) -> Item:
    if not isinstance(event, Mapping):
        return Malformed(f"{where} is not an object")
    sender = event.get("sender")
    psid = sender.get("id") if isinstance(sender, Mapping) else None
    if isinstance(event.get("policy_enforcement"), Mapping):
        notice = event["policy_enforcement"]
        return PolicyNotice(_str(notice.get("action")) or "warning", _str(notice.get("reason")))
    if not _nonempty(psid):
        return Malformed(f"{where} has no sender.id")
    stamp = event.get("timestamp")
    ms = stamp if isinstance(stamp, int) and not isinstance(stamp, bool) \
        and 0 < stamp < 10**14 else None
    address = Address(channel=channel, chat=psid, account=page)
    if "message" in event:
        return _message(event["message"], where, address, ms)
    if "postback" in event:
        return _postback(event["postback"], where, address, ms)
    for kind in _NOT_MESSAGES:
        if kind in event:
            return Ignored(kind.replace("_", " "))
    return Ignored(f"event with {', '.join(sorted(map(str, event))) or 'nothing'}")


def _message(raw: object, where: str, address: Address, ms: int | None) -> Item:
    if not isinstance(raw, Mapping) or not _nonempty(raw.get("mid")):
        return Malformed(f"{where}.message has no mid")
    if raw.get("is_echo") is True:
        return Ignored("echo of a message the Page sent")
    text = raw.get("text", "")
    listed = raw.get("attachments", [])
    if not isinstance(text, str) or not isinstance(listed, list):
        return Malformed(f"{where}.message has a broken text or attachments")
    attachments: list[Attachment] = []
    for item in listed:
        attachment, link = _attachment(item)
        if attachment is not None:
            attachments.append(attachment)
        if link and link not in text:
            text = f"{text}\n{link}" if text else link  # a shared link is the words
    if not text and not attachments:
        kinds = sorted({_str(a.get("type")) for a in listed if isinstance(a, Mapping)} - {""})
        return Ignored(f"message with nothing to answer ({', '.join(kinds) or 'unsupported'})")
    reply = raw.get("reply_to")
    replied = reply.get("mid") if isinstance(reply, Mapping) else None
    return Message(_inbound(address, raw["mid"], text, ms, tuple(attachments)),
                   replied if _nonempty(replied) else None)


def _postback(raw: object, where: str, address: Address, ms: int | None) -> Item:
    """A tapped button (Get Started, a persistent menu item, a postback button): its title
    is what the person "said". Older API versions send no ``mid``; the sender and
    timestamp then make the id, and a redelivery repeats both."""
    if not isinstance(raw, Mapping):
        return Malformed(f"{where}.postback is not an object")
    words = _str(raw.get("title")) or _str(raw.get("payload"))
    mid = raw.get("mid")
    if not _nonempty(mid):
        if ms is None:
            return Malformed(f"{where}.postback has neither mid nor timestamp")
        mid = f"postback.{address.chat}.{ms}"
    if not words:
        return Malformed(f"{where}.postback has neither title nor payload")
    return Message(_inbound(address, mid, words, ms, ()))


def _attachment(raw: object) -> tuple[Attachment | None, str]:
    """Media as metadata with its CDN URL (nothing is downloaded); a shared link (fallback)
    is returned as text instead. Unknown or payload-less kinds (templates, unsupported
    shares) give neither."""
    if not isinstance(raw, Mapping):
        return None, ""
    kind, payload = raw.get("type"), raw.get("payload")
    payload = payload if isinstance(payload, Mapping) else {}
    url = _str(payload.get("url")) or None
    if kind == "fallback":
        return None, _str(payload.get("url")) or _str(raw.get("title"))
    if kind == "location":
        where = payload.get("coordinates")
        lat = where.get("lat") if isinstance(where, Mapping) else None
        lon = where.get("long") if isinstance(where, Mapping) else None
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lat, lon)):
            return None, ""
        return Attachment(kind="location", name=_str(raw.get("title")),
                          url=f"geo:{lat},{lon}"), ""
    if kind not in _MEDIA or url is None:
        return None, ""
    sticker = payload.get("sticker_id")
    if kind == "image" and isinstance(sticker, int | str) and not isinstance(sticker, bool):
        return Attachment(kind="sticker", url=url, platform_id=str(sticker)), ""
    return Attachment(kind=_MEDIA[kind], name=_str(payload.get("title")), url=url), ""


def _inbound(address: Address, mid: str, text: str, ms: int | None,
             attachments: tuple[Attachment, ...]) -> Inbound:
    return Inbound(address=address, platform_id=mid, text=text, sender_id=address.chat,
                   attachments=attachments, **({"ts": ms / 1000} if ms else {}))


def _nonempty(value: object) -> bool:
    return isinstance(value, str) and value != ""


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""
