"""MQTT topics and payloads to pyclaw's messages and back: pure functions that never raise.

The wire format is in ``manifest``'s docstring. Ids: a JSON ``id`` names the message
(``<conversation>/<id>``), so a device's own resend is recognised. Without one, a live
message is named by the broker session, its packet id and its content
(``<conversation>/s<session>-<packet id>-<digest>``): the broker redelivers an unacknowledged
message with the same packet id in the same session, and a later message with a reused
packet id has another digest unless it repeats the text. A retained message is named by its
content alone (``<conversation>/r-<digest>``): the broker replays it on every subscribe.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from pyclaw_app.model import Address, Attachment, Inbound

__all__ = [
    "Received",
    "Skip",
    "conversation_of",
    "in_filter",
    "out_topic",
    "parse_message",
    "reply_payload",
    "reply_topic_of",
    "typing_payload",
    "typing_topic",
]

_KINDS = frozenset({"image", "audio", "video", "file", "sticker", "location"})
_MAGIC: tuple[tuple[bytes, str, str], ...] = (
    (b"\xff\xd8\xff", "image", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image", "image/png"),
    (b"GIF8", "image", "image/gif"),
    (b"RIFF", "audio", "audio/wav"),
    (b"OggS", "audio", "audio/ogg"),
    (b"%PDF", "file", "application/pdf"),
)
_MAX_ID = 200
"""Longest accepted JSON ``id``; a longer one is a payload bug, not an identity."""


@dataclass(frozen=True, slots=True)
class Received:
    """One PUBLISH as it arrived, apart from paho's types."""

    topic: str
    payload: bytes
    retained: bool
    packet_id: int
    session: int


@dataclass(frozen=True, slots=True)
class Skip:
    """A message not to answer, and why (for the channel log)."""

    reason: str
    level: str = "warning"


def in_filter(prefix: str) -> str:
    return f"{prefix}/in/+"


def out_topic(prefix: str, conversation: str) -> str:
    return f"{prefix}/out/{conversation}"


def typing_topic(prefix: str, conversation: str) -> str:
    return f"{prefix}/typing/{conversation}"


def conversation_of(prefix: str, topic: str) -> str | None:
    """The last level of ``<prefix>/in/<conversation>``; None for any other topic."""
    head = f"{prefix}/in/"
    if not topic.startswith(head):
        return None
    rest = topic[len(head):]
    return rest if rest and "/" not in rest else None


def reply_topic_of(prefix: str, requested: object) -> str | None:
    """The reply topic a message asked for, relative to ``prefix``, or None when it is not
    a plain topic under ``<prefix>/`` outside ``<prefix>/in`` (no one may make the bot publish
    anywhere else, or answer itself)."""
    if not isinstance(requested, str) or len(requested.encode("utf-8", "replace")) > 1024:
        return None
    head = f"{prefix}/"
    rest = requested[len(head):] if requested.startswith(head) else ""
    if not rest or any(c in rest for c in "+#\0") or rest == "in" or rest.startswith("in/"):
        return None
    if any(not level for level in rest.split("/")):
        return None
    return rest


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()[:16]


def _sniff(payload: bytes) -> Attachment:
    for magic, kind, mime in _MAGIC:
        if payload.startswith(magic):
            return Attachment(kind=kind, mime=mime, size=len(payload))
    return Attachment(kind="file", mime="application/octet-stream", size=len(payload))


def _attachments(raw: object) -> tuple[Attachment, ...] | None:
    """The envelope's attachments; None when the list is malformed."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        return None
    out: list[Attachment] = []
    for item in raw[:20]:
        if not isinstance(item, dict):
            return None
        kind = item.get("kind")
        size = item.get("size")
        out.append(Attachment(
            kind=kind if isinstance(kind, str) and kind in _KINDS else "file",
            name=str(item.get("name") or "")[:200],
            mime=str(item.get("mime") or "")[:100],
            size=size if isinstance(size, int) and not isinstance(size, bool) else None,
            url=item["url"] if isinstance(item.get("url"), str) else None))
    return tuple(out)


def _envelope(text: str) -> dict[str, Any] | None:
    if not text.lstrip().startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None  # text that happens to start with "{"
    return data if isinstance(data, dict) else None


def _own_id(data: dict[str, Any]) -> str | Skip | None:
    raw = data.get("id")
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        return Skip(f"skipped a JSON message whose id is a {type(raw).__name__}, "
                    "not a string or number")
    value = str(raw)
    if not value or len(value) > _MAX_ID:
        return Skip(f"skipped a JSON message with an empty or over-long id ({len(value)} "
                    "characters)")
    return value


def parse_message(msg: Received, *, prefix: str, channel: str, max_payload: int
                  ) -> Inbound | Skip:
    """One received PUBLISH as an Inbound, or why it is skipped."""
    conversation = conversation_of(prefix, msg.topic)
    if conversation is None:
        return Skip(f"skipped a message on {msg.topic[:200]!r}: not <prefix>/in/<conversation>")
    if len(msg.payload) > max_payload:
        return Skip(f"skipped a {len(msg.payload)}-byte message on {msg.topic!r}: longer than "
                    f"max_payload ({max_payload})")
    if msg.retained:
        local = f"r-{_digest(msg.topic.encode(), msg.payload)}"
    else:
        local = f"s{msg.session}-{msg.packet_id}-{_digest(msg.payload)}"
    try:
        text = msg.payload.decode("utf-8")
    except UnicodeDecodeError:
        return Inbound(address=Address(channel=channel, chat=conversation),
                       platform_id=f"{conversation}/{local}", text="", sender_id=conversation,
                       attachments=(_sniff(msg.payload),))
    data = _envelope(text)
    if data is None:
        if not text.strip():
            return Skip(f"skipped an empty message on {msg.topic!r}", level="info")
        return Inbound(address=Address(channel=channel, chat=conversation),
                       platform_id=f"{conversation}/{local}", text=text,
                       sender_id=conversation)
    return _from_envelope(data, conversation, local, prefix=prefix, channel=channel)


def _from_envelope(data: dict[str, Any], conversation: str, local: str, *, prefix: str,
                   channel: str) -> Inbound | Skip:
    own = _own_id(data)
    if isinstance(own, Skip):
        return own
    text = data.get("text", "")
    if not isinstance(text, str):
        return Skip(f"skipped a JSON message whose text is a {type(text).__name__}")
    attachments = _attachments(data.get("attachments"))
    if attachments is None:
        return Skip("skipped a JSON message whose attachments are not a list of objects")
    if not text.strip() and not attachments:
        keys = ", ".join(sorted(str(k) for k in data)[:10])
        return Skip(f"skipped a JSON message without text or attachments (keys: {keys})")
    thread = reply_topic_of(prefix, data.get("reply_topic"))
    sender = data.get("sender")
    sender_id = sender[:200] if isinstance(sender, str) and sender else conversation
    return Inbound(
        address=Address(channel=channel, chat=conversation,
                        thread=None if thread == f"out/{conversation}" else thread),
        platform_id=f"{conversation}/{own if own is not None else local}", text=text,
        sender_id=sender_id, sender_name=sender_id, attachments=attachments)


def reply_payload(*, part_id: str, conversation: str, text: str, reply_to: str | None,
                  as_json: bool) -> bytes:
    """What a reply part looks like on the wire; ``reply_to`` is the device's own id."""
    if not as_json:
        return text.encode("utf-8", "replace")
    body: dict[str, Any] = {"id": part_id, "conversation": conversation, "text": text}
    if reply_to is not None:
        body["reply_to"] = reply_to.partition("/")[2] or reply_to
    return json.dumps(body, ensure_ascii=False).encode("utf-8", "replace")


def typing_payload(conversation: str, *, as_json: bool) -> bytes:
    if not as_json:
        return b"typing"
    return json.dumps({"conversation": conversation, "typing": True}).encode()
