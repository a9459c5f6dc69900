"""One fetched mail -> :class:`Inbound` (or a :class:`Skip` with its reason); pure, never raises.

Who: the ``From`` address (lower-cased) is the chat and the sender; replies go back to it,
never to ``Reply-To`` (which anyone can set to send the bot's answers elsewhere). Mail is
one to one: ``is_group`` is always false, and a mail that CCs others is answered to its
sender alone.

Not for the assistant, so never answered (RFC 3834's loop rules): our own mail (our
address or one of our Message-IDs), automatic mail (``Auto-Submitted`` other than ``no``,
``X-Autoreply``/``X-Autorespond``, ``Precedence: bulk/list/junk/auto_reply``), mailing-list
mail (``List-Id``/``List-Unsubscribe``), bounces and reports (``MAILER-DAEMON``,
``postmaster``, ``multipart/report``), senders outside ``allow_senders``, and mail whose
receiving server wrote ``dmarc=fail`` in the topmost ``Authentication-Results``.

Text: the ``text/plain`` body, else ``text/html`` read as text, with the quoted history and
signature cut (:mod:`._text`). Attachments are metadata (name, MIME type, decoded size).
Ids: ``platform_id`` is the ``Message-ID`` (a mail delivered twice is the same message to
the journal); without one, ``<uidvalidity>.<uid>@imap`` stands in.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from email.utils import getaddresses, parseaddr, parsedate_to_datetime

from connectors.email._text import cut_quoted, html_to_text
from pyclaw_app.model import Address, Attachment, Inbound

__all__ = ["FALLBACK_SUFFIX", "OWN_ID_PREFIX", "Mail", "Skip", "parse_mail", "part_payloads",
           "sender_allowed"]

OWN_ID_PREFIX = "pyclaw."
"""Our Message-IDs start ``<pyclaw.`` (see ``_compose``), so our own mail is known."""
FALLBACK_SUFFIX = "@imap>"
"""Ends the id of a mail without a Message-ID (``<uidvalidity>.<uid>@imap>``): never put
into a reply's threading headers."""
_MAX_REFERENCES = 20
_AUTO_PRECEDENCE = frozenset({"bulk", "list", "junk", "auto_reply"})
_DAEMONS = ("mailer-daemon@", "postmaster@", "noreply-dmarc-support@")
_MSGID = re.compile(r"<[^<>\s]{1,500}>")


@dataclass(frozen=True, slots=True)
class Skip:
    """A mail that is not for the assistant, and the channel-log level it deserves."""

    reason: str
    level: str = "info"


@dataclass(frozen=True, slots=True)
class Mail:
    """A mail to submit, plus what a reply to it must carry to thread."""

    inbound: Inbound
    message_id: str
    subject: str
    references: tuple[str, ...] = field(default=())


def _header(msg: Message, name: str) -> str:
    value = msg.get(name)
    return str(value).strip() if value is not None else ""


def _ids(value: str) -> list[str]:
    return _MSGID.findall(value)


def sender_allowed(sender: str, allow: list[str]) -> bool:
    """``allow`` empty lets everyone through; else an exact address or its domain
    (``example.org`` or ``@example.org``) must be listed."""
    if not allow:
        return True
    sender = sender.lower()
    domain = sender.rpartition("@")[2]
    for entry in allow:
        entry = entry.strip().lower()
        bare = entry.lstrip("@")
        if entry and (entry == sender or ("@" not in bare and bare == domain)):
            return True
    return False


def _automatic(msg: Message, sender: str) -> str | None:
    auto = _header(msg, "Auto-Submitted").lower()
    if auto and not auto.startswith("no"):
        return f"automatic mail (Auto-Submitted: {auto})"
    if _header(msg, "X-Autoreply") or _header(msg, "X-Autorespond"):
        return "an auto-reply"
    precedence = _header(msg, "Precedence").lower()
    if precedence in _AUTO_PRECEDENCE:
        return f"bulk mail (Precedence: {precedence})"
    if _header(msg, "List-Id") or _header(msg, "List-Unsubscribe"):
        return "mailing-list mail"
    if sender.startswith(_DAEMONS) or msg.get_content_type() == "multipart/report":
        return "a bounce or delivery report"
    return None


def _dmarc_failed(msg: Message) -> bool:
    """The topmost Authentication-Results (the one our receiving server added) says the
    From domain failed DMARC. Lower ones may have been written by the sender."""
    values = msg.get_all("Authentication-Results") or []
    return bool(values) and re.search(r"\bdmarc\s*=\s*fail\b", str(values[0]), re.I) is not None


def _decoded(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, "replace")
    except LookupError:  # an unknown charset name: read it as UTF-8
        return payload.decode("utf-8", "replace")


def _body_text(msg: EmailMessage) -> str:
    body = msg.get_body(preferencelist=("plain", "html"))
    if body is None:
        return ""
    text = _decoded(body)
    if body.get_content_type() == "text/html":
        text = html_to_text(text)
    return cut_quoted(text)


def _kind(mime: str) -> str:
    major = mime.partition("/")[0]
    return major if major in ("image", "audio", "video") else "file"


def _parts(msg: EmailMessage) -> list[Message]:
    """The mail's attachments as MIME parts, in order (a single-part mail that is not text
    is one); an attachment's index in this list is how it is found again."""
    if not msg.is_multipart():
        mime = msg.get_content_type()
        return [] if mime.startswith(("text/", "multipart/")) else [msg]
    return list(msg.iter_attachments())


def _attachments(msg: EmailMessage, source: str) -> tuple[Attachment, ...]:
    """Each part as metadata; ``platform_id`` is ``<source>/<index>`` so the connector can
    fetch the mail again and take the part's bytes (:func:`part_payloads`)."""
    found: list[Attachment] = []
    for index, part in enumerate(_parts(msg)):
        mime = part.get_content_type()
        payload = part.get_payload(decode=True)
        name = part.get_filename() or ""
        size = len(payload) if isinstance(payload, bytes) else None
        found.append(Attachment(kind=_kind(mime), name=str(name), mime=mime, size=size,
                                platform_id=f"{source}/{index}" if source else None))
    return tuple(found)


def part_payloads(raw: bytes) -> list[bytes | None]:
    """The decoded bytes of each attachment of a mail as fetched, in :func:`_parts` order
    (None for a part that cannot be decoded); empty for a mail that cannot be read."""
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        parts = _parts(msg) if isinstance(msg, EmailMessage) else []
        payloads = [part.get_payload(decode=True) for part in parts]
    except Exception:  # noqa: BLE001 - the stdlib's MIME classes raise many kinds on bad mail
        return []
    return [p if isinstance(p, bytes) else None for p in payloads]


def _timestamp(msg: Message, fallback: float) -> float:
    try:
        return parsedate_to_datetime(_header(msg, "Date")).timestamp()
    except (TypeError, ValueError, OverflowError):  # no date, or one no calendar has
        return fallback


def parse_mail(raw: bytes, *, channel: str, own: str, allow: list[str], fallback_id: str,
               now: float, source: str = "") -> Mail | Skip:
    """Judge one mail as fetched (``BODY[]``); ``own`` is the bot's address; ``source``
    (``<uidvalidity>/<uid>``) where the mail is, for its attachments' ids."""
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        if not isinstance(msg, EmailMessage):
            return Skip("a mail that cannot be parsed", "warning")
        return _judge(msg, channel=channel, own=own.lower(), allow=allow,
                      fallback_id=fallback_id, now=now, source=source)
    except Exception as exc:  # noqa: BLE001 - the stdlib's header and MIME classes raise
        # many kinds of error on broken mail; one unreadable mail must not stop the mailbox
        return Skip(f"a mail that cannot be read ({exc!r})", "warning")


def _judge(msg: EmailMessage, *, channel: str, own: str, allow: list[str], fallback_id: str,
           now: float, source: str) -> Mail | Skip:
    name, sender = parseaddr(_header(msg, "From"))
    sender = sender.strip().lower()
    if "@" not in sender:
        return Skip("a mail without a sender address (no usable From header)", "warning")
    message_id = next(iter(_ids(_header(msg, "Message-ID"))), "")
    if sender == own or message_id.startswith(f"<{OWN_ID_PREFIX}"):
        return Skip("our own mail", "debug")
    automatic = _automatic(msg, sender)
    if automatic is not None:
        return Skip(f"{automatic} from {sender}")
    if not sender_allowed(sender, allow):
        return Skip(f"mail from {sender}: not in allow_senders")
    if _dmarc_failed(msg):
        return Skip(f"mail claiming to be from {sender}: the receiving server's "
                    "Authentication-Results say dmarc=fail (a forged From)", "warning")
    references = [*_ids(_header(msg, "References"))]
    for parent in _ids(_header(msg, "In-Reply-To")):
        if parent not in references:
            references.append(parent)
    subject = _header(msg, "Subject")
    text = _body_text(msg)
    attachments = _attachments(msg, source)
    recipients = [addr.lower() for _, addr in getaddresses(
        [_header(msg, "To"), _header(msg, "Cc")]) if addr]
    inbound = Inbound(
        address=Address(channel=channel, chat=sender),
        platform_id=message_id or fallback_id,
        text=text,
        sender_id=sender,
        sender_name=name.strip(),
        attachments=attachments,
        is_group=False,
        mentioned=own in recipients,
        reply_to_bot=any(ref.startswith(f"<{OWN_ID_PREFIX}") for ref in references),
        ts=_timestamp(msg, now),
    )
    return Mail(inbound=inbound, message_id=message_id, subject=subject,
                references=tuple(references[-_MAX_REFERENCES:]))
