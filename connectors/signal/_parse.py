"""signal-cli's receive events as pyclaw messages: pure functions that never raise.

Each server-sent ``receive`` event's data is ``{"account": <the bot's number>, "envelope":
{...}}``, or carries ``"exception": {"message", "type"}`` when signal-cli could not read
the message (``JsonReceiveMessageHandler``). Field names follow signal-cli's ``json``
package (``JsonMessageEnvelope``, ``JsonDataMessage``, ``JsonGroupInfo``, ``JsonMention``,
``JsonQuote``, ``JsonAttachment``, ``JsonSticker``); signal-cli writes nulls for absent
plain fields, so every value is checked for its type.

A Signal message is named by its author and its sent timestamp (that pair is what quotes,
reactions and edits point at), so the platform id is ``<author>:<timestamp>`` with the
author's ACI (a UUID), or the number when signal-cli knows no ACI. That id makes a message
the daemon hands over twice one message for the journal, and a reply can quote it
(``quoteAuthor``, ``quoteTimestamp``). Direct chats are the author; a group chat is
``group:<base64 group id>``. The sender id is the phone number when signal-cli knows it
(what people put in ``allow_from``), else the ACI.

Mentions are U+FFFC placeholders in the text, placed by ``start``/``length`` in UTF-16
units; each is written as ``@<number>`` (``@<ACI>`` when the number is hidden), and the
bot's own mention where it addresses the bot is removed (``pyclaw_app.channels.mentions``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, TypedDict

from pyclaw_app.channels.mentions import addressed_text
from pyclaw_app.model import Address, Attachment, Inbound

__all__ = ["GROUP_PREFIX", "Skip", "author_of", "decode_event", "event_account", "group_id",
           "parse_event", "split_id"]

GROUP_PREFIX = "group:"
LONG_TEXT = "text/x-signal-plain"
"""An attachment holding the whole text of a long message; signal-cli already puts that
text in ``message``."""


class WireMention(TypedDict, total=False):
    name: str | None
    number: str | None
    uuid: str | None
    start: int
    length: int


class WireQuote(TypedDict, total=False):
    id: int
    author: str | None
    authorNumber: str | None
    authorUuid: str | None
    text: str | None


class WireAttachment(TypedDict, total=False):
    contentType: str | None
    filename: str | None
    id: str | None
    size: int | None


@dataclass(frozen=True, slots=True)
class Skip:
    """An event that is not a message to answer, and why (for the channel log)."""

    reason: str
    level: str = "debug"


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def split_id(platform_id: str) -> tuple[str, int] | None:
    """(author, timestamp) of a platform id made by this module; None for anything else."""
    author, colon, stamp = platform_id.rpartition(":")
    if not colon or not author or not stamp.isdigit():
        return None
    return author, int(stamp)


def group_id(chat: str) -> str | None:
    """The base64 group id of a group chat, None for a direct chat."""
    return chat[len(GROUP_PREFIX):] if chat.startswith(GROUP_PREFIX) else None


def author_of(envelope: dict[str, Any]) -> str:
    """Who sent it, as signal-cli accepts a recipient: the ACI, else the number."""
    return _str(envelope.get("sourceUuid")) or _str(envelope.get("sourceNumber")) \
        or _str(envelope.get("source"))


def _is_bot(bot: str, *ids: object) -> bool:
    return bool(bot) and any(isinstance(i, str) and i == bot for i in ids)


def _render(text: str, mentions: object, bot: str) -> tuple[str, bool]:
    """``text`` with each mention's placeholder written as ``@<who>``; True when one of
    them is the bot."""
    units = text.encode("utf-16-le", "surrogatepass")
    size = len(units) // 2
    spans: list[tuple[int, int, str]] = []
    mentioned = False
    for raw in mentions if isinstance(mentions, list) else []:
        m: WireMention = _dict(raw)  # type: ignore[assignment]
        start, length = _int(m.get("start")), _int(m.get("length"))
        if start is None or length is None or start < 0 or length < 0 \
                or start + length > size:
            continue
        who = _str(m.get("number")) or _str(m.get("name")) or _str(m.get("uuid"))
        if _is_bot(bot, m.get("number"), m.get("name")):
            mentioned, who = True, bot
        spans.append((start, length, who or "someone"))
    out, last = [], 0
    for start, length, who in sorted(spans):
        if start < last:
            continue  # overlapping spans: the first one wins
        out += [units[2 * last:2 * start], f"@{who}".encode("utf-16-le", "surrogatepass")]
        last = start + length
    out.append(units[2 * last:])
    return b"".join(out).decode("utf-16-le", "surrogatepass"), mentioned


def _kind(mime: str) -> str:
    top = mime.split("/", 1)[0].lower()
    return top if top in ("image", "audio", "video") else "file"


def _attachments(data: dict[str, Any]) -> tuple[Attachment, ...]:
    found: list[Attachment] = []
    for raw in data.get("attachments") if isinstance(data.get("attachments"), list) else []:
        a: WireAttachment = _dict(raw)  # type: ignore[assignment]
        mime = _str(a.get("contentType"))
        if mime == LONG_TEXT or not a:
            continue
        size = _int(a.get("size"))
        found.append(Attachment(kind=_kind(mime), name=_str(a.get("filename")), mime=mime,
                                size=size if size is not None and size >= 0 else None,
                                platform_id=_str(a.get("id")) or None))
    sticker = _dict(data.get("sticker"))
    if sticker:
        found.append(Attachment(kind="sticker", mime="image/webp", platform_id=(
            f"{_str(sticker.get('packId'))}:{_int(sticker.get('stickerId'))}")))
    return tuple(found)


_NOT_MESSAGES: tuple[tuple[str, str, str], ...] = (
    ("reaction", "a reaction", "debug"),
    ("remoteDelete", "a deleted message", "debug"),
    ("adminDelete", "a message deleted by a group admin", "debug"),
    ("pollVote", "a poll vote", "info"),
    ("pollTerminate", "a poll closing", "info"),
    ("pinMessage", "a pinned message", "debug"),
    ("unpinMessage", "an unpinned message", "debug"),
    ("payment", "a payment", "info"),
)
_OTHER_KINDS: tuple[tuple[str, str, str], ...] = (
    ("editMessage", "an edit of an earlier message (an edit is not answered again)", "info"),
    ("syncMessage", "a message of the bot's own account from another device", "debug"),
    ("typingMessage", "a typing indicator", "debug"),
    ("receiptMessage", "a receipt", "debug"),
    ("callMessage", "a call (the bot cannot take calls)", "info"),
    ("storyMessage", "a story", "debug"),
)


def _exception(event: dict[str, Any], envelope: dict[str, Any], bot: str) -> Skip:
    error = _dict(event.get("exception"))
    kind, said = _str(error.get("type")) or "error", _str(error.get("message"))
    who = author_of(envelope) or "an unknown sender"
    hint = ""
    if "Untrusted" in kind:
        hint = (f"; the sender's safety number changed: check it, then run "
                f"`signal-cli -a {bot or 'NUMBER'} trust -a {who}`")
    return Skip(f"a message from {who} that signal-cli could not read ({kind}"
                f"{f': {said}' if said else ''}){hint}", "warning")


def decode_event(data: str) -> dict[str, Any] | Skip:
    """A ``receive`` event's data as its JSON object, or why it is not one."""
    try:
        event = json.loads(data)
    except ValueError:
        return Skip("an event whose data is not JSON", "warning")
    if not isinstance(event, dict):
        return Skip("an event whose data is not a JSON object", "warning")
    return event


def event_account(event: dict[str, Any]) -> str:
    """The number of the account an event was received by ("" when it names none)."""
    return _str(event.get("account"))


def parse_event(event: dict[str, Any], *, channel: str, bot: str) -> Inbound | Skip:
    """One decoded ``receive`` event as an Inbound, or why it is not one. ``bot`` is the
    bot's number, in case the event does not name its ``account``."""
    bot = event_account(event) or bot
    envelope = _dict(event.get("envelope"))
    if event.get("exception") is not None:
        return _exception(event, envelope, bot)
    if not envelope:
        return Skip("an event without an envelope", "warning")
    author = author_of(envelope)
    data_message = _dict(envelope.get("dataMessage"))
    if not data_message:
        for key, what, level in _OTHER_KINDS:
            if envelope.get(key) is not None:
                return Skip(what, level)
        return Skip("an envelope with nothing in it", "debug")
    if not author:
        return Skip("a message without a sender", "warning")
    if _is_bot(bot, envelope.get("sourceNumber"), envelope.get("source")):
        return Skip("the bot's own message", "debug")
    return _message(envelope, data_message, author, channel=channel, bot=bot)


def _message(envelope: dict[str, Any], data: dict[str, Any], author: str, *, channel: str,
             bot: str) -> Inbound | Skip:
    for key, what, level in _NOT_MESSAGES:
        if data.get(key) is not None:
            return Skip(f"{what} from {author}", level)
    group = _dict(data.get("groupInfo"))
    if group and group.get("type") == "UPDATE" and not data.get("message"):
        return Skip("a group update", "debug")
    if data.get("isExpirationUpdate") is True:
        return Skip("a new disappearing-messages timer", "debug")
    stamp = _int(data.get("timestamp")) or _int(envelope.get("timestamp"))
    if stamp is None or stamp <= 0:
        return Skip(f"a message from {author} without a timestamp", "warning")
    gid = _str(group.get("groupId"))
    if group and not gid:
        return Skip(f"a group message from {author} without a group id", "warning")
    text, mentioned = _render(_str(data.get("message")), data.get("mentions"), bot)
    if gid and mentioned:
        text = addressed_text(text, re.escape(f"@{bot}"), bot_name=bot)
    attachments = _attachments(data)
    if not text.strip() and not attachments:
        what = "a shared contact" if data.get("contacts") else \
            "a poll" if data.get("pollCreate") is not None else "a message without text"
        return Skip(f"{what} from {author}", "info")
    quote: WireQuote = _dict(data.get("quote"))  # type: ignore[assignment]
    return Inbound(
        address=Address(channel=channel, chat=f"{GROUP_PREFIX}{gid}" if gid else author),
        platform_id=f"{author}:{stamp}", text=text,
        sender_id=_str(envelope.get("sourceNumber")) or author,
        sender_name=_str(envelope.get("sourceName")) or _str(envelope.get("sourceNumber"))
        or author,
        attachments=attachments, is_group=bool(gid), mentioned=mentioned,
        reply_to_bot=_is_bot(bot, quote.get("authorNumber"), quote.get("author")),
        ts=stamp / 1000)
