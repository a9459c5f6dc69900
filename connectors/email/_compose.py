"""A reply part as a mail: threaded headers and the text exactly as the gateway gave it.

Threading (RFC 5322 §3.6.4): ``In-Reply-To`` is the answered mail's Message-ID,
``References`` its references plus that id, the subject ``Re: <its subject>``. The body
is ``text/plain; charset=utf-8`` in base64 with CRLF line ends, so every character of the
part (trailing blank lines included, which the gateway's split leaves on a part's end)
arrives as sent. ``Auto-Submitted: auto-replied`` tells other robots (vacation replies,
ticket systems) not to answer us, the loop rule of RFC 3834.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from uuid import uuid4

from connectors.email._parse import OWN_ID_PREFIX

__all__ = ["Thread", "compose_file", "compose_reply", "new_message_id"]


@dataclass(frozen=True, slots=True)
class Thread:
    """What a reply needs of the mail it answers."""

    message_id: str
    subject: str
    references: tuple[str, ...]


def new_message_id(address: str) -> str:
    domain = address.rpartition("@")[2] or "localhost"
    return f"<{OWN_ID_PREFIX}{uuid4().hex}@{domain}>"


def _reply_subject(subject: str, fallback: str) -> str:
    subject = " ".join(subject.split())
    if not subject:
        return fallback
    return subject if subject.lower().startswith("re:") else f"Re: {subject}"


def _reply_headers(*, sender: str, sender_name: str, to: str, thread: Thread | None,
                   fallback_subject: str, message_id: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = formataddr((sender_name, sender)) if sender_name else sender
    msg["To"] = to
    msg["Subject"] = _reply_subject(thread.subject if thread else "", fallback_subject)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = message_id
    if thread is not None and thread.message_id:
        msg["In-Reply-To"] = thread.message_id
        msg["References"] = " ".join([*thread.references, thread.message_id][-20:])
    msg["Auto-Submitted"] = "auto-replied"
    return msg


def compose_file(*, sender: str, sender_name: str, to: str, name: str, mime: str,
                 data: bytes, caption: str, thread: Thread | None, fallback_subject: str,
                 message_id: str) -> EmailMessage:
    """A file the assistant sends, as a threaded reply with the caption (or the file's
    name) as its text and the file attached under its name."""
    msg = _reply_headers(sender=sender, sender_name=sender_name, to=to, thread=thread,
                         fallback_subject=fallback_subject, message_id=message_id)
    msg.set_content(caption or name, charset="utf-8")
    maintype, _, subtype = (mime or "application/octet-stream").partition("/")
    msg.add_attachment(data, maintype=maintype, subtype=subtype or "octet-stream",
                       filename=name)
    return msg


def compose_reply(*, sender: str, sender_name: str, to: str, text: str,
                  thread: Thread | None, fallback_subject: str, message_id: str) -> EmailMessage:
    msg = _reply_headers(sender=sender, sender_name=sender_name, to=to, thread=thread,
                         fallback_subject=fallback_subject, message_id=message_id)
    msg["MIME-Version"] = "1.0"
    msg["Content-Type"] = 'text/plain; charset="utf-8"'
    msg["Content-Transfer-Encoding"] = "base64"
    body = text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8", "replace")
    msg.set_payload(base64.encodebytes(body).decode("ascii"))
    return msg
