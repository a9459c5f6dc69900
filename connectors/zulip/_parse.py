"""Zulip messages to pyclaw's ``Inbound``: pure functions over the raw JSON.

The raw shapes are the REST API's message objects (``GET /events`` ``message`` events,
``GET /messages``) with ``content`` in raw Markdown (the queue is registered with
``apply_markdown=false``). Nothing here raises on odd input: a message that is not one
to answer becomes a :class:`Skip` with the reason for the channel log.

Conversations: a stream message lives in ``stream:<stream id>`` with its topic as the
thread (each topic is its own conversation, and the reply goes to the same topic); a
direct message in ``dm:<user ids>``, the ids of everyone in it but the bot, so a group DM
is one conversation however its members are listed.
"""

from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

from pyclaw_app.model import Address, Attachment, Inbound

__all__ = [
    "Bot",
    "DirectTarget",
    "Skip",
    "StreamTarget",
    "parse_message",
    "target_of",
    "uploads",
]

_WILDCARD_FLAGS = frozenset({"mentioned", "wildcard_mentioned", "stream_wildcard_mentioned",
                             "topic_wildcard_mentioned"})
_UPLOAD = re.compile(r"\[([^\]\n]*)\]\(((?:https?://[^/\s)]+)?/user_uploads/[^)\s]+)\)")
_KINDS = {"image": "image", "audio": "audio", "video": "video"}


class RawMessage(TypedDict, total=False):
    """A message object as ``GET /events`` and ``GET /messages`` deliver it (fields read)."""

    id: int
    type: str  # "stream" or "private"
    sender_id: int
    sender_full_name: str
    stream_id: int
    display_recipient: str | list[dict[str, Any]]
    subject: str
    content: str
    timestamp: int


@dataclass(frozen=True)
class Bot:
    """Who the bot is (``GET /users/me``) and the server it talks to."""

    user_id: int
    full_name: str
    site: str
    """The organization URL, for absolute attachment links to its own uploads."""


@dataclass(frozen=True)
class Skip:
    """A message that is not answered, and why (``level`` is the channel log's)."""

    level: Literal["debug", "info", "warning"]
    reason: str


@dataclass(frozen=True)
class StreamTarget:
    stream_id: int
    topic: str


@dataclass(frozen=True)
class DirectTarget:
    user_ids: tuple[int, ...]


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def target_of(chat: str, thread: str | None) -> StreamTarget | DirectTarget | None:
    """Where a reply to ``Address(chat, thread)`` goes; None for a chat id this channel
    never made."""
    kind, _, rest = chat.partition(":")
    if kind == "stream" and rest.isdigit() and thread is not None:
        return StreamTarget(int(rest), thread)
    if kind == "dm":
        ids = rest.split(",")
        if ids and all(i.isdigit() for i in ids):
            return DirectTarget(tuple(int(i) for i in ids))
    return None


def _recipients(raw: object, bot_id: int) -> tuple[int, ...] | None:
    """The user ids of a direct message's ``display_recipient`` other than the bot."""
    if not isinstance(raw, list):
        return None
    ids = {_int(r.get("id")) for r in raw if isinstance(r, dict)}
    if None in ids or not ids:
        return None
    return tuple(sorted(i for i in ids if i is not None and i != bot_id))


def _names_bot(content: str, bot: Bot) -> bool:
    """``@**Bot Name**`` or ``@**Bot Name|id**`` (not the silent ``@_**...**``)."""
    name = re.escape(bot.full_name)
    pattern = rf"@\*\*(?:{name}(?:\|{bot.user_id})?|[^*|\n]*\|{bot.user_id})\*\*"
    return bool(bot.full_name) and re.search(pattern, content, re.IGNORECASE) is not None


def _quotes_bot(content: str, bot: Bot) -> bool:
    """Zulip's quote-and-reply of one of the bot's messages: ``@_**Bot Name|id** [said](``."""
    name = re.escape(bot.full_name)
    pattern = rf"@_\*\*(?:{name}(?:\|{bot.user_id})?|[^*|\n]*\|{bot.user_id})\*\* \[said\]\("
    return bool(bot.full_name) and re.search(pattern, content, re.IGNORECASE) is not None


def uploads(content: str, site: str) -> tuple[Attachment, ...]:
    """The files a message links from the organization's own ``/user_uploads/`` (how Zulip
    attaches a file: a Markdown link in the text). Links to other hosts are not files of
    this server and are left as text."""
    found: list[Attachment] = []
    for match in _UPLOAD.finditer(content):
        name, link = match.group(1), match.group(2)
        if link.startswith("http"):
            if not site or not link.startswith(f"{site}/"):
                continue
            url = link
        else:
            url = f"{site}{link}"
        filename = link.rsplit("/", 1)[-1]
        mime = mimetypes.guess_type(filename)[0] or ""
        kind = _KINDS.get(mime.split("/")[0], "file")
        found.append(Attachment(kind=kind, name=name or filename, mime=mime, url=url,
                                platform_id=link))
    return tuple(found)


def _only_uploads(content: str) -> bool:
    return not _UPLOAD.sub("", content).strip()


def parse_message(raw: object, flags: object, *, channel: str,
                  bot: Bot) -> Inbound | Skip:
    """One message, as an Inbound to submit or a Skip; ``flags`` are the bot's flags for it
    (``mentioned``, ``wildcard_mentioned``... as the server computed them)."""
    message: RawMessage = raw if isinstance(raw, dict) else {}  # type: ignore[assignment]
    message_id, sender = _int(message.get("id")), _int(message.get("sender_id"))
    if message_id is None or sender is None:
        return Skip("warning", "a message without an id or sender_id")
    if sender == bot.user_id:
        return Skip("debug", f"the bot's own message {message_id}")
    content = message.get("content")
    if not isinstance(content, str):
        return Skip("warning", f"message {message_id} has no text content")
    kind = message.get("type")
    if kind == "stream":
        stream_id, topic = _int(message.get("stream_id")), message.get("subject")
        if stream_id is None or not isinstance(topic, str):
            return Skip("warning", f"stream message {message_id} without stream_id or topic")
        address = Address(channel=channel, chat=f"stream:{stream_id}",
                          account=str(bot.user_id), thread=topic)
        is_group = True
    elif kind == "private":
        others = _recipients(message.get("display_recipient"), bot.user_id)
        if not others:
            return Skip("warning", f"direct message {message_id} without its recipients")
        address = Address(channel=channel, chat="dm:" + ",".join(map(str, others)),
                          account=str(bot.user_id))
        is_group = len(others) > 1
    else:
        return Skip("warning", f"message {message_id} of unknown type {kind!r}")
    flag_set = {f for f in flags if isinstance(f, str)} if isinstance(flags, list) else set()
    attachments = uploads(content, bot.site)
    ts = _int(message.get("timestamp"))
    return Inbound(
        address=address, platform_id=str(message_id),
        text="" if attachments and _only_uploads(content) else content,
        sender_id=str(sender), sender_name=_str(message.get("sender_full_name")),
        attachments=attachments, is_group=is_group,
        mentioned=bool(flag_set & _WILDCARD_FLAGS) or _names_bot(content, bot),
        reply_to_bot=_quotes_bot(content, bot),
        **({"ts": float(ts)} if ts is not None else {}))
