"""WhatsApp Cloud API webhook bodies -> :class:`Inbound` and status updates, as pure functions.

One webhook body (``WebhookPayload``: ``object``, ``entry[].changes[]``) may carry
several messages and statuses; each is parsed on its own, so one broken item never
costs the rest. The parser never raises: what it cannot understand is
:class:`Malformed` (the caller logs it), a valid item that is not a user's message
(a reaction, a system message, one for another phone number) is :class:`Ignored`.
Shapes follow ``business-messaging-api_v23.0.yaml`` in github.com/facebook/openapi
(``WebhookPayload``, ``IncomingMessageValueGeneral``, ``IncomingMessage``,
``StatusMessageValue``, ``Statuses``, ``StatusError``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

from pyclaw_app.model import Address, Attachment, Inbound

__all__ = ["Ignored", "Malformed", "Message", "Problem", "StatusUpdate", "parse_payload"]

_MEDIA = {"image": "image", "audio": "audio", "video": "video", "document": "file",
          "sticker": "sticker"}


# ---- wire shapes (for reading; the parser checks every field it uses) -------------------------

class MediaObject(TypedDict):
    id: str
    mime_type: str
    sha256: NotRequired[str]
    caption: NotRequired[str]  # image, video, document
    filename: NotRequired[str]  # document
    voice: NotRequired[bool]  # audio
    animated: NotRequired[bool]  # sticker


IncomingMessage = TypedDict("IncomingMessage", {  # functional form: "from" is a keyword
    "from": str,  # the sender's wa_id
    "id": str,  # wamid...; the same in a redelivery
    "timestamp": str,  # Unix seconds, as a string
    "type": str,  # text, image, audio, video, document, sticker, location, button, ...
    "text": NotRequired[dict[str, str]],  # {"body": ...}
    "context": NotRequired[dict[str, Any]],  # {"from", "id"}: the message it replies to
    "location": NotRequired[dict[str, Any]],  # {"latitude", "longitude", "name", "address"}
    "errors": NotRequired[list[dict[str, Any]]],  # type "unsupported"
})


class StatusError(TypedDict):
    code: int
    title: str
    message: NotRequired[str]
    error_data: NotRequired[dict[str, str]]  # {"details": ...}


class Status(TypedDict):
    id: str  # the wamid of the message we sent
    status: str  # sent, delivered, read, failed
    timestamp: str
    recipient_id: str
    errors: NotRequired[list[StatusError]]


class ChangeValue(TypedDict):
    messaging_product: str  # "whatsapp"
    metadata: dict[str, str]  # {"display_phone_number", "phone_number_id"}
    contacts: NotRequired[list[dict[str, Any]]]  # [{"profile": {"name"}, "wa_id"}]
    messages: NotRequired[list[IncomingMessage]]
    statuses: NotRequired[list[Status]]
    errors: NotRequired[list[StatusError]]


# ---- what the parser hands the connector ------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Message:
    inbound: Inbound


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A status of a message we sent; ``error`` is the first error's title (failed only)."""

    message_id: str
    status: str
    recipient: str
    error: str = ""
    code: int | None = None
    details: str = ""


@dataclass(frozen=True, slots=True)
class Problem:
    """An error WhatsApp reports for the whole change (``value.errors``)."""

    title: str
    code: int | None
    details: str


@dataclass(frozen=True, slots=True)
class Ignored:
    reason: str


@dataclass(frozen=True, slots=True)
class Malformed:
    where: str


Item = Message | StatusUpdate | Problem | Ignored | Malformed


def parse_payload(payload: object, *, channel: str, phone_number_id: str = "") -> list[Item]:
    """Every item of a webhook body, in order. ``phone_number_id`` (when set) is the number
    this channel answers for: a WABA's webhook also carries its other numbers' traffic."""
    entries = payload.get("entry") if isinstance(payload, Mapping) else None
    if not isinstance(entries, list):
        return [Malformed("no entry array")]
    items: list[Item] = []
    for e, entry in enumerate(entries):
        changes = entry.get("changes") if isinstance(entry, Mapping) else None
        if not isinstance(changes, list):
            items.append(Malformed(f"entry[{e}] has no changes"))
            continue
        for c, change in enumerate(changes):
            where = f"entry[{e}].changes[{c}]"
            if not isinstance(change, Mapping) or not isinstance(change.get("value"), Mapping):
                items.append(Malformed(f"{where} has no value"))
            elif change.get("field") != "messages":
                items.append(Ignored(f"field {_str(change.get('field'))!r}"))
            else:
                items.extend(_value(change["value"], where, channel, phone_number_id))
    return items


def _value(value: Mapping[str, Any], where: str, channel: str, phone_number_id: str
           ) -> list[Item]:
    metadata = value.get("metadata")
    number = metadata.get("phone_number_id") if isinstance(metadata, Mapping) else None
    if not _nonempty(number):
        return [Malformed(f"{where} has no metadata.phone_number_id")]
    if phone_number_id and number != phone_number_id:
        return [Ignored(f"for another phone number ({number})")]
    items: list[Item] = []
    names = _names(value.get("contacts"))
    for key, parse in (("messages", _message), ("statuses", _status), ("errors", _problem)):
        listed = value.get(key, [])
        if not isinstance(listed, list):
            items.append(Malformed(f"{where}.value.{key} is not a list"))
            continue
        for i, raw in enumerate(listed):
            item = parse(raw, channel=channel, account=number, names=names)
            items.append(item if item is not None else Malformed(f"{where}.value.{key}[{i}]"))
    return items


def _message(raw: object, *, channel: str, account: str, names: Mapping[str, str]
             ) -> Item | None:
    if not isinstance(raw, Mapping):
        return None
    mid, sender, kind = raw.get("id"), raw.get("from"), raw.get("type")
    if not (_nonempty(mid) and _nonempty(sender) and _nonempty(kind)):
        return None
    text = _text(raw, kind)
    if text is None:
        return None
    attachments: tuple[Attachment, ...] = ()
    if kind in _MEDIA or kind == "location":
        attachment = _attachment(raw, kind)
        if attachment is None:
            return None
        attachments = (attachment,)
    elif kind not in ("text", "button", "interactive"):
        return Ignored(f"message type {kind!r}")  # reaction, system, contacts, unsupported...
    stamp = raw.get("timestamp")
    ts = int(stamp) if isinstance(stamp, str) and stamp.isascii() and stamp.isdigit() \
        and len(stamp) < 12 else None
    return Message(Inbound(
        address=Address(channel=channel, chat=sender, account=account),
        platform_id=mid,
        text=text,
        sender_id=sender,
        sender_name=names.get(sender, ""),
        attachments=attachments,
        **({"ts": float(ts)} if ts else {}),
    ))


def _text(raw: Mapping[str, Any], kind: str) -> str | None:
    """The words of a message: a text's body, a media caption, a tapped button's label;
    None when the field that must hold them is broken."""
    if kind == "text":
        body = raw.get("text")
        body = body.get("body") if isinstance(body, Mapping) else None
        return body if isinstance(body, str) else None
    if kind == "button":  # a quick-reply button of a template: {"text", "payload"}
        button = raw.get("button")
        label = button.get("text") if isinstance(button, Mapping) else None
        return label if isinstance(label, str) else None
    if kind == "interactive":  # {"type": "button_reply"|"list_reply", <type>: {"id","title"}}
        reply = raw.get("interactive")
        chosen = reply.get(_str(reply.get("type"))) if isinstance(reply, Mapping) else None
        title = chosen.get("title") if isinstance(chosen, Mapping) else None
        return title if isinstance(title, str) else None
    media = raw.get(kind)
    if kind in _MEDIA and isinstance(media, Mapping):
        caption = media.get("caption", "")
        return caption if isinstance(caption, str) else ""
    return ""


def _attachment(raw: Mapping[str, Any], kind: str) -> Attachment | None:
    """Media as metadata with its media id (``GET /{media-id}`` gives a download URL, if it is
    ever needed); nothing is downloaded here. A location becomes a ``geo:`` URL."""
    body = raw.get(kind)
    if not isinstance(body, Mapping):
        return None
    if kind == "location":
        lat, lon = body.get("latitude"), body.get("longitude")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lat, lon)):
            return None
        return Attachment(kind="location", name=_str(body.get("name")) or _str(
            body.get("address")), url=f"geo:{lat},{lon}")
    media_id = body.get("id")
    if not _nonempty(media_id):
        return None
    return Attachment(kind=_MEDIA[kind], name=_str(body.get("filename")),
                      mime=_str(body.get("mime_type")), platform_id=media_id)


def _status(raw: object, **_: Any) -> Item | None:
    if not isinstance(raw, Mapping):
        return None
    mid, status, recipient = raw.get("id"), raw.get("status"), raw.get("recipient_id")
    if not (_nonempty(mid) and _nonempty(status)):
        return None
    errors = raw.get("errors")
    first = errors[0] if isinstance(errors, list) and errors else None
    problem = _problem(first) if first is not None else None
    if isinstance(problem, Problem):
        return StatusUpdate(mid, status, _str(recipient), problem.title, problem.code,
                            problem.details)
    return StatusUpdate(mid, status, _str(recipient))


def _problem(raw: object, **_: Any) -> Problem | None:
    if not isinstance(raw, Mapping):
        return None
    code = raw.get("code")
    data = raw.get("error_data")
    details = data.get("details") if isinstance(data, Mapping) else None
    title = _str(raw.get("title")) or _str(raw.get("message")) or "unknown error"
    return Problem(title, code if isinstance(code, int) and not isinstance(code, bool)
                   else None, _str(details))


def _names(contacts: object) -> dict[str, str]:
    names: dict[str, str] = {}
    for contact in contacts if isinstance(contacts, list) else ():
        if not isinstance(contact, Mapping):
            continue
        profile = contact.get("profile")
        name = profile.get("name") if isinstance(profile, Mapping) else None
        if _nonempty(contact.get("wa_id")) and isinstance(name, str):
            names[contact["wa_id"]] = name
    return names


def _nonempty(value: object) -> bool:
    return isinstance(value, str) and value != ""


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""
