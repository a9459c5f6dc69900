"""Message stanzas -> :class:`Inbound`, as pure functions on ElementTree that never raise.

They read the XML the server sent (``stanza.xml``), not slixmpp's stanza objects, so any
element hypothesis can build is judged here. A message is either an ``Inbound`` or a
:class:`Skip` with the reason and the channel-log level it deserves ("debug" ones, such
as chat states and our own messages reflected by a room, are not channel-log news).

Ids: ``Inbound.platform_id`` is ``<chat>/<id>``, the conversation's bare JID and the
sender's stanza id (the ``id`` attribute, else XEP-0359 origin-id or stanza-id). Two
people's clients may pick the same id; a bare JID never contains ``/``, so the pair is
unique and still splits back. A resent stanza keeps its id, so the journal knows it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from mimetypes import guess_type
from posixpath import basename
from urllib.parse import unquote, urlsplit
from xml.etree.ElementTree import Element

from pyclaw_app.channels.mentions import addressed_text
from pyclaw_app.model import Address, Attachment, Inbound

__all__ = ["Bounce", "Skip", "addressed_body", "bare", "bounce_of", "nick_mentioned",
           "parse_message", "resource"]

CLIENT = "jabber:client"
DELAY = "urn:xmpp:delay"
OOB = "jabber:x:oob"
CORRECTION = "urn:xmpp:message-correct:0"
SID = "urn:xmpp:sid:0"
REPLY = "urn:xmpp:reply:0"
REFERENCE = "urn:xmpp:reference:0"
NICK = "http://jabber.org/protocol/nick"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
ENCRYPTED = {
    "eu.siacs.conversations.axolotl": "OMEMO",
    "urn:xmpp:omemo:2": "OMEMO",
    "urn:xmpp:openpgp:0": "OpenPGP",
    "jabber:x:encrypted": "OpenPGP",
}
"""End-to-end encryption payloads: the body beside them is only a fallback notice."""


@dataclass(frozen=True, slots=True)
class Skip:
    """A message that is not for the assistant, and why."""

    reason: str
    level: str = "debug"


@dataclass(frozen=True, slots=True)
class Bounce:
    """A ``type='error'`` message: the server or a room refused one of ours (``id``)."""

    id: str
    type: str
    condition: str
    text: str


def bare(jid: str) -> str:
    """``local@domain`` of a JID, lower-cased (local part and domain compare so)."""
    return jid.partition("/")[0].lower()


def resource(jid: str) -> str:
    """The part after ``/`` (a room occupant's nick), case kept."""
    return jid.partition("/")[2]


def _child(xml: Element, ns: str, name: str) -> Element | None:
    found = xml.find(f"{{{ns}}}{name}")
    if found is None and ns == CLIENT:
        found = xml.find(name)
    return found


def _text(element: Element | None) -> str:
    return element.text or "" if element is not None else ""


def _attr(element: Element | None, name: str) -> str:
    value = element.get(name) if element is not None else None
    return value if isinstance(value, str) else ""


def _stanza_id(xml: Element) -> str:
    own = _attr(xml, "id")
    if own:
        return own
    for name in ("origin-id", "stanza-id"):
        found = _attr(_child(xml, SID, name), "id")
        if found:
            return found
    return ""


def _timestamp(xml: Element, now: float) -> float:
    stamp = _attr(_child(xml, DELAY, "delay"), "stamp")
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError, OSError):
        return now


def _attachments(xml: Element, origin: str) -> tuple[Attachment, ...]:
    """Shared files (XEP-0066 ``jabber:x:oob``, how XEP-0363 uploads are sent); each one's
    ``platform_id`` is ``origin``, the domain of the server the message came from, which
    the connector compares with the file's host before it fetches anything."""
    found: list[Attachment] = []
    for oob in xml.findall(f"{{{OOB}}}x"):
        url = _text(_child(oob, OOB, "url")).strip()
        if not url:
            continue
        try:
            name = unquote(basename(urlsplit(url).path))
        except ValueError:
            name = ""
        mime = guess_type(name)[0] or "" if name else ""
        kind = mime.partition("/")[0] if mime.partition("/")[0] in (
            "image", "audio", "video") else "file"
        found.append(Attachment(kind=kind, name=name, mime=mime, url=url,
                                platform_id=origin or None))
    return tuple(found)


def nick_mentioned(text: str, nick: str) -> bool:
    """``nick`` as a word of ``text`` ("pyclaw: hi", "hi @pyclaw", "ask pyclaw."), any case."""
    if not nick:
        return False
    return re.search(rf"(?<![\w]){re.escape(nick)}(?![\w])", text, re.IGNORECASE) is not None


def addressed_body(body: str, nick: str) -> str:
    """A room message as the kit's rule reads it (``pyclaw_app.channels.mentions``): our
    nick where people put an address in a MUC ("pyclaw: hi", "pyclaw, hi", "hi @pyclaw")
    is cut, inside a sentence it stays; only the nick reads as ``@nick``. Nicks are plain
    text in a body (other occupants' too), so the rest already reads as the user saw it."""
    if not nick:
        return body
    mention = re.compile(rf"(?<![\w@])@?{re.escape(nick)}(?![\w])", re.IGNORECASE)
    return addressed_text(body, mention, bot_name=nick)


def _referenced(xml: Element, occupant: str) -> bool:
    """An XEP-0372 mention reference or an XEP-0461 reply that points at ``occupant``."""
    for ref in xml.findall(f"{{{REFERENCE}}}reference"):
        uri = _attr(ref, "uri").removeprefix("xmpp:")
        if _attr(ref, "type") == "mention" and uri.lower() == occupant.lower():
            return True
    return False


def _replied_to(xml: Element, occupant: str) -> bool:
    target = _attr(_child(xml, REPLY, "reply"), "to")
    return bool(target) and target.lower() == occupant.lower()


def parse_message(xml: Element, *, channel: str, own: str, rooms: Mapping[str, str],
                  fallback_id: str, now: float) -> Inbound | Skip:
    """One received ``<message>``: ``own`` is our bare JID, ``rooms`` the joined rooms'
    bare JIDs with our nick in each, ``fallback_id`` the id for a stanza that has none."""
    kind = _attr(xml, "type") or "normal"
    sender = _attr(xml, "from")
    chat = bare(sender)
    if kind in ("error", "headline") or not chat:
        return Skip(f"a {kind} message from {sender or 'nobody'}")
    for ns, name in ENCRYPTED.items():
        if xml.find(f"{{{ns}}}*") is not None:
            return Skip(f"an {name}-encrypted message from {chat} was not read: this channel "
                        f"does not support end-to-end encryption (turn it off for this "
                        f"chat to talk to the assistant)", "warning")
    body = _text(_child(xml, CLIENT, "body"))
    domain = chat.partition("@")[2] or chat
    if kind == "groupchat" and domain.count(".") >= 1:
        domain = domain.partition(".")[2]  # conference.example.org is example.org's rooms
    attachments = _attachments(xml, domain)
    if any(body.strip() == a.url for a in attachments):
        body = ""  # a shared file's body is its URL (XEP-0363 clients send both)
    if not body.strip() and not attachments:
        return Skip(f"a message from {sender} without text (chat state or receipt)")
    if _child(xml, CORRECTION, "replace") is not None:
        return Skip(f"{chat} corrected an earlier message; corrections are not answered",
                    "info")
    stanza_id = _stanza_id(xml) or fallback_id
    name = _text(_child(xml, NICK, "nick")).strip()
    if kind == "groupchat":
        return _group(xml, chat=chat, sender=sender, body=body, rooms=rooms,
                      channel=channel, pid=f"{chat}/{stanza_id}", attachments=attachments,
                      now=now)
    if chat in rooms:
        return Skip(f"a private message through room {chat} from {resource(sender) or '?'} "
                    f"(only the room itself is answered)", "info")
    if chat == own:
        return Skip("a message from this account's own other connection")
    return Inbound(address=Address(channel=channel, chat=chat), platform_id=f"{chat}/{stanza_id}",
                   text=body, sender_id=chat, sender_name=name or chat.partition("@")[0],
                   attachments=attachments, ts=_timestamp(xml, now))


def _group(xml: Element, *, chat: str, sender: str, body: str, rooms: Mapping[str, str],
           channel: str, pid: str, attachments: tuple[Attachment, ...],
           now: float) -> Inbound | Skip:
    nick = rooms.get(chat)
    occupant = resource(sender)
    if nick is None:
        return Skip(f"a groupchat message from {sender}, which is not a room this channel "
                    f"joined", "warning")
    if not occupant:
        return Skip(f"a notice from room {chat} itself")
    if occupant == nick:
        return Skip(f"our own message reflected by room {chat}")
    delay = _child(xml, DELAY, "delay")
    if delay is not None and bare(_attr(delay, "from") or chat) == chat:
        # XEP-0045 7.2.15: history is stamped by the room; a delay our own server added
        # (a stream resumed after a network fault, XEP-0198) is a message we missed.
        return Skip(f"room history from {chat} (sent before the bot joined)")
    me = f"{chat}/{nick}"
    return Inbound(address=Address(channel=channel, chat=chat), platform_id=pid,
                   text=addressed_body(body, nick), sender_id=sender, sender_name=occupant,
                   attachments=attachments,
                   is_group=True,
                   mentioned=nick_mentioned(body, nick) or _referenced(xml, me),
                   reply_to_bot=_replied_to(xml, me), ts=_timestamp(xml, now))


def bounce_of(xml: Element) -> Bounce | None:
    """The error of a ``type='error'`` message (RFC 6120 8.3), or None for any other."""
    if _attr(xml, "type") != "error":
        return None
    error = _child(xml, CLIENT, "error")
    condition, text = "undefined-condition", ""
    if error is not None:
        for child in error:
            tag = child.tag if isinstance(child.tag, str) else ""
            if tag == f"{{{STANZAS}}}text":
                text = child.text or ""
            elif tag.startswith(f"{{{STANZAS}}}"):
                condition = tag.partition("}")[2]
    return Bounce(id=_attr(xml, "id"), type=_attr(error, "type") or "cancel",
                  condition=condition, text=text)
