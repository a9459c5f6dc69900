"""Twilio webhook forms -> :class:`Inbound` and delivery reports, as pure functions.

Twilio POSTs ``application/x-www-form-urlencoded`` parameters to the message URL
(an incoming message: ``MessageSid``, ``AccountSid``, ``From``, ``To``, ``Body``,
``NumMedia``, ``MediaUrl{N}``/``MediaContentType{N}``; from WhatsApp also
``ProfileName``, ``WaId`` and, for a shared location, ``Latitude``/``Longitude``/
``Address``/``Label``) and to a message's ``StatusCallback`` URL (``MessageSid``,
``MessageStatus``, ``ErrorCode``, ``ErrorMessage``...). Sources: Twilio's "Twilio's
request to your incoming message Webhook URL" and "Track the Message Status of
Outbound Messages" guides; the status values are ``message_enum_status`` of
``twilio_api_v2010.json`` (github.com/twilio/twilio-oai).

Nothing here raises: a form that is not a message is :class:`Malformed` (the caller
logs it), a valid one that needs no answer is :class:`Ignored` or, for an opt-out
keyword Twilio handles itself, :class:`OptOut`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl

from pyclaw_app.model import Address, Attachment, Inbound

__all__ = [
    "STOP_WORDS",
    "WHATSAPP",
    "Form",
    "Ignored",
    "Malformed",
    "Message",
    "OptOut",
    "StatusUpdate",
    "parse_form",
    "parse_webhook",
]

WHATSAPP = "whatsapp:"
"""The channel prefix of a WhatsApp address (``whatsapp:+14155238886``); SMS has none."""
MAX_MEDIA = 10
"""Twilio delivers at most ten media items with a message."""
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
"""Twilio's default opt-out keywords on SMS: Twilio confirms them itself and refuses every
later message to the sender (21610) until they send START, so they get no answer from us.
(START and HELP pass through: the user is subscribed then, and may mean them as words.)"""
_RECEIVED = frozenset({"received", "receiving"})


class Form(dict[str, list[str]]):
    """Form parameters with every value of a repeated name, in the order sent.

    ``getlist`` is the QueryDict-style accessor the twilio SDK's ``RequestValidator``
    looks for, so repeated parameters are signed the way Twilio signs them.
    """

    def getlist(self, name: str) -> list[str]:
        return list(self.get(name, []))

    def first(self, name: str) -> str:
        values = self.get(name)
        return values[0] if values else ""


def parse_form(body: bytes) -> Form | None:
    """The parameters of a form-encoded body (blank values kept: Twilio signs them too);
    None when the body is not UTF-8."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    form = Form()
    for name, value in parse_qsl(text, keep_blank_values=True):
        form.setdefault(name, []).append(value)
    return form


# ---- what the parser hands the connector ------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Message:
    inbound: Inbound


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A status callback for a message we sent; ``error_code`` on failed/undelivered."""

    message_id: str
    status: str
    to: str
    error_code: int | None = None
    error_message: str = ""


@dataclass(frozen=True, slots=True)
class OptOut:
    """The sender texted an opt-out keyword (``STOP``...); Twilio has confirmed it."""

    sender: str
    message_id: str


@dataclass(frozen=True, slots=True)
class Ignored:
    reason: str


@dataclass(frozen=True, slots=True)
class Malformed:
    reason: str


Item = Message | StatusUpdate | OptOut | Ignored | Malformed


def parse_webhook(form: Mapping[str, Sequence[str]], *, channel: str, account_sid: str = ""
                  ) -> Item:
    """One webhook request: an incoming message or a status callback. ``account_sid`` (when
    set) is the account this channel answers for."""
    data = Form({k: list(v) for k, v in form.items() if isinstance(v, Sequence)
                 and not isinstance(v, str) and all(isinstance(x, str) for x in v)})
    sid, account = data.first("MessageSid"), data.first("AccountSid")
    if not sid:
        return Malformed("no MessageSid")
    if account_sid and account and account != account_sid:
        return Ignored(f"for another account ({account})")
    status = data.first("MessageStatus")
    if status and status not in _RECEIVED:
        return _status(data, sid, status)
    return _message(data, sid, channel)


def _status(data: Form, sid: str, status: str) -> StatusUpdate:
    code = data.first("ErrorCode").strip()
    return StatusUpdate(sid, status, data.first("To"),
                        int(code) if code.isascii() and code.isdigit() and len(code) < 10
                        else None, data.first("ErrorMessage"))


def _message(data: Form, sid: str, channel: str) -> Item:
    sender, number = data.first("From"), data.first("To")
    if not sender or not number:
        return Malformed(f"message {sid} has no From or To")
    if "Body" not in data and "NumMedia" not in data:
        return Malformed(f"message {sid} has neither Body nor NumMedia")
    text = data.first("Body")
    if data.first("OptOutType").upper() == "STOP" or (
            text.strip().upper() in STOP_WORDS and not sender.startswith(WHATSAPP)):
        return OptOut(sender, sid)
    attachments = _media(data)
    location = _location(data)
    if location is not None:
        attachments = (*attachments, location)
    return Message(Inbound(
        address=Address(channel=channel, chat=sender, account=number),
        platform_id=sid,
        text=text,
        sender_id=sender,
        sender_name=data.first("ProfileName"),
        attachments=attachments,
    ))


def _media(data: Form) -> tuple[Attachment, ...]:
    """``NumMedia`` items as metadata (kind from the content type, the Twilio media URL);
    nothing is downloaded. A count that is not a number reads as the items present."""
    count = data.first("NumMedia").strip()
    listed = int(count) if count.isascii() and count.isdigit() and len(count) < 4 else MAX_MEDIA
    found: list[Attachment] = []
    for i in range(min(listed, MAX_MEDIA)):
        url = data.first(f"MediaUrl{i}")
        if not url:
            continue
        mime = data.first(f"MediaContentType{i}")
        found.append(Attachment(kind=_kind(mime), mime=mime, url=url,
                                platform_id=url.rstrip("/").rpartition("/")[2] or None))
    return tuple(found)


def _kind(mime: str) -> str:
    major = mime.partition("/")[0].lower()
    if mime.lower() == "image/webp":
        return "sticker"  # WhatsApp sends stickers as WebP images
    return major if major in ("image", "audio", "video") else "file"


def _location(data: Form) -> Attachment | None:
    """A WhatsApp location pin: ``Latitude``/``Longitude`` (+ ``Address``, ``Label``)."""
    lat, lon = data.first("Latitude").strip(), data.first("Longitude").strip()
    try:
        inside = -90 <= float(lat) <= 90 and -180 <= float(lon) <= 180
    except ValueError:
        return None
    if not inside:
        return None
    return Attachment(kind="location", name=data.first("Label") or data.first("Address"),
                      url=f"geo:{lat},{lon}")
