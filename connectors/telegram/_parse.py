"""Raw Bot API updates -> canonical :class:`Inbound`, as pure functions.

Kept free of I/O and of python-telegram-bot so it can be fuzzed: no input,
however broken, may raise out of :func:`parse_update`; it returns ``None`` and
:func:`describe_skip` tells the caller what to log. We read the raw JSON
rather than PTB's ``Update`` objects because ``Bot.get_updates`` raises for a
whole batch when one update fails to deserialize, which would wedge polling.
Field names follow https://core.telegram.org/bots/api#update and #message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from pyclaw_app.channels.mentions import addressed_text
from pyclaw_app.model import Address, Attachment, Inbound

__all__ = ["BotIdentity", "describe_skip", "parse_update", "platform_id", "update_id_of"]

_GROUP_TYPES = frozenset({"group", "supergroup"})
_CHAT_TYPES = frozenset({"private", "group", "supergroup", "channel"})

# Message field -> Attachment.kind; order matters where Telegram sends two fields for one
# file (an animation also comes as "document").
_MEDIA_KINDS: tuple[tuple[str, str], ...] = (
    ("animation", "video"),
    ("video", "video"),
    ("video_note", "video"),
    ("audio", "audio"),
    ("voice", "audio"),
    ("sticker", "sticker"),
    ("document", "file"),
)

# What a message without text or media was, for the log line that says it was skipped
# (Message fields, core.telegram.org/bots/api#message); the first one present names it.
_SKIPPED_KINDS: tuple[tuple[str, str], ...] = (
    ("dice", "a dice roll"),
    ("poll", "a poll"),
    ("contact", "a shared contact"),
    ("venue", "a venue"),
    ("game", "a game"),
    ("story", "a forwarded story"),
    ("invoice", "an invoice"),
    ("successful_payment", "a payment"),
    ("giveaway", "a giveaway"),
    ("new_chat_members", "members joining"),
    ("left_chat_member", "a member leaving"),
    ("new_chat_title", "a new chat title"),
    ("new_chat_photo", "a new chat photo"),
    ("delete_chat_photo", "a removed chat photo"),
    ("pinned_message", "a pinned message"),
    ("forum_topic_created", "a new forum topic"),
    ("forum_topic_edited", "an edited forum topic"),
    ("forum_topic_closed", "a closed forum topic"),
    ("forum_topic_reopened", "a reopened forum topic"),
    ("video_chat_started", "a video chat starting"),
    ("video_chat_ended", "a video chat ending"),
    ("message_auto_delete_timer_changed", "a new auto-delete timer"),
    ("migrate_to_chat_id", "the group becoming a supergroup"),
    ("migrate_from_chat_id", "the group becoming a supergroup"),
    ("group_chat_created", "the group being created"),
    ("supergroup_chat_created", "the supergroup being created"),
    ("write_access_allowed", "write access allowed"),
    ("users_shared", "shared users"),
    ("chat_shared", "a shared chat"),
    ("web_app_data", "web app data"),
    ("proximity_alert_triggered", "a proximity alert"),
    ("boost_added", "a chat boost"),
)


@dataclass(frozen=True, slots=True)
class BotIdentity:
    """Who we are on Telegram (from getMe): needed to tell mentions and replies to us."""

    id: int
    username: str


def platform_id(chat_id: int | str, message_id: int | str) -> str:
    """Message ids are only unique per chat, so the chat is part of our id."""
    return f"{chat_id}:{message_id}"


def update_id_of(raw: object) -> int | None:
    value = raw.get("update_id") if isinstance(raw, Mapping) else None
    return value if _is_int(value) else None  # type: ignore[return-value]


def parse_update(raw: object, *, channel: str, bot: BotIdentity) -> Inbound | None:
    """The message in ``raw`` as an :class:`Inbound`, or ``None`` if there is nothing to answer."""
    try:
        return _parse(raw, channel, bot)
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError, RecursionError):
        # Belt and braces: _parse type-checks every field, but a parser that can raise
        # would take the poller down with it.
        return None


def describe_skip(raw: object) -> tuple[str, str]:
    """(log level, message) for an update :func:`parse_update` returned ``None`` for.

    A well-formed message without text or media (someone joined, a pin) is normal
    and only worth an ``info``; anything else is a malformed payload: ``error``.
    """
    if not isinstance(raw, Mapping) or update_id_of(raw) is None:
        return "error", "malformed Telegram update skipped (no update_id)"
    msg = raw.get("message")
    if msg is None:
        kinds = sorted(str(k) for k in raw if k != "update_id")
        return "info", f"skipped a Telegram update of an unsupported type: {', '.join(kinds)}"
    if not isinstance(msg, Mapping) or _chat_id(msg) is None or not _is_int(msg.get("message_id")):
        return "error", "malformed Telegram message skipped (missing chat or message_id)"
    chat = msg.get("chat")
    if not isinstance(chat, Mapping) or chat.get("type") not in _CHAT_TYPES:
        return "error", "malformed Telegram message skipped (unknown chat type)"
    for key in ("text", "caption"):
        if key in msg and not isinstance(msg[key], str):
            return "error", f"malformed Telegram message skipped ({key} is not a string)"
    kind = next((name for key, name in _SKIPPED_KINDS if key in msg), "a service message")
    return "info", f"skipped a Telegram message with no text or media: {kind}"


def _parse(raw: object, channel: str, bot: BotIdentity) -> Inbound | None:
    if not isinstance(raw, Mapping):
        return None
    msg = raw.get("message")
    if not isinstance(msg, Mapping):
        return None
    chat = msg.get("chat")
    chat_id = _chat_id(msg)
    message_id = msg.get("message_id")
    if chat_id is None or not _is_int(message_id) or not isinstance(chat, Mapping):
        return None
    chat_type = chat.get("type")
    if chat_type not in _CHAT_TYPES:
        return None

    text, entities = _text_and_entities(msg)
    if text is None:
        return None
    attachments = _attachments(msg)
    if not text and not attachments:
        return None

    thread_id = msg.get("message_thread_id")
    in_topic = msg.get("is_topic_message") is True and _is_int(thread_id)
    sender_id, sender_name = _sender(msg)
    return Inbound(
        address=Address(
            channel=channel,
            chat=str(chat_id),
            account=str(bot.id),
            thread=str(thread_id) if in_topic else None,
        ),
        platform_id=platform_id(chat_id, message_id),  # type: ignore[arg-type]
        text=_addressed(text, bot),
        sender_id=sender_id,
        sender_name=sender_name,
        attachments=attachments,
        is_group=chat_type in _GROUP_TYPES,
        mentioned=_mentions_bot(text, entities, bot),
        reply_to_bot=_replies_to_bot(msg, bot, thread_id if in_topic else None),
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _chat_id(msg: Mapping[str, object]) -> int | None:
    chat = msg.get("chat")
    if not isinstance(chat, Mapping):
        return None
    value = chat.get("id")
    return value if _is_int(value) else None  # type: ignore[return-value]


def _text_and_entities(msg: Mapping[str, object]) -> tuple[str | None, list[Mapping[str, object]]]:
    """Text (or media caption) and its entities; ``None`` text means the field is malformed."""
    key, ent_key = ("text", "entities") if "text" in msg else ("caption", "caption_entities")
    text = msg.get(key, "")
    if not isinstance(text, str):
        return None, []
    entities = msg.get(ent_key)
    if not isinstance(entities, list):
        return text, []
    return text, [e for e in entities if isinstance(e, Mapping)]


def _sender(msg: Mapping[str, object]) -> tuple[str, str]:
    user = msg.get("from")
    if isinstance(user, Mapping) and _is_int(user.get("id")):
        names = [n for n in (user.get("first_name"), user.get("last_name")) if isinstance(n, str)]
        name = " ".join(n for n in names if n)
        username = user.get("username")
        if not name and isinstance(username, str):
            name = username
        return str(user["id"]), name
    # Anonymous group admins and channels post as a chat.
    sender_chat = msg.get("sender_chat")
    if isinstance(sender_chat, Mapping) and _is_int(sender_chat.get("id")):
        title = sender_chat.get("title")
        return str(sender_chat["id"]), title if isinstance(title, str) else ""
    return "", ""


def _utf16_slice(text: str, offset: object, length: object) -> str:
    """Entity offsets and lengths count UTF-16 code units, not Python characters."""
    if not (_is_int(offset) and _is_int(length)) or offset < 0 or length < 0:  # type: ignore[operator]
        return ""
    data = text.encode("utf-16-le", "surrogatepass")
    start = 2 * offset  # type: ignore[operator]
    return data[start : start + 2 * length].decode("utf-16-le", "ignore")  # type: ignore[operator]


def _mentions_bot(text: str, entities: list[Mapping[str, object]], bot: BotIdentity) -> bool:
    handle = f"@{bot.username}".casefold() if bot.username else None
    for entity in entities:
        kind = entity.get("type")
        if kind == "text_mention":
            user = entity.get("user")
            if isinstance(user, Mapping) and user.get("id") == bot.id:
                return True
            continue
        if kind not in ("mention", "bot_command"):
            continue
        chunk = _utf16_slice(text, entity.get("offset"), entity.get("length")).casefold()
        if kind == "mention" and handle and chunk == handle:
            return True
        if kind == "bot_command" and entity.get("offset") == 0:
            # "/help" in a group is for every bot; "/help@other_bot" is not for us.
            _, at, target = chunk.partition("@")
            if not at or (handle is not None and f"@{target}" == handle):
                return True
    return False


def _addressed(text: str, bot: BotIdentity) -> str:
    """The text without what addressed the bot: ``/help@bot`` -> ``/help`` (Telegram's way
    of naming the bot a group command is for), and ``@bot`` at the start or end (the kit's
    rule, ``pyclaw_app.channels.mentions``). Usernames are case-insensitive."""
    if not bot.username:
        return text
    handle = re.escape(bot.username)
    text = re.sub(rf"\A(\s*/\w{{1,32}})@{handle}(?!\w)", r"\1", text, count=1, flags=re.I)
    return addressed_text(text, re.compile(rf"@{handle}(?!\w)", re.I), bot_name=bot.username)


def _replies_to_bot(msg: Mapping[str, object], bot: BotIdentity, topic: object) -> bool:
    reply = msg.get("reply_to_message")
    if not isinstance(reply, Mapping):
        return False
    # In a forum topic every message "replies" to the topic's creation message; that is
    # not a reply to whoever created the topic.
    if topic is not None and reply.get("message_id") == topic:
        return False
    author = reply.get("from")
    return isinstance(author, Mapping) and _is_int(author.get("id")) and author["id"] == bot.id


def _attachments(msg: Mapping[str, object]) -> tuple[Attachment, ...]:
    found: list[Attachment] = []
    photos = msg.get("photo")
    if isinstance(photos, list):
        sizes = [p for p in photos if isinstance(p, Mapping) and isinstance(p.get("file_id"), str)]
        if sizes:  # Telegram lists every size, smallest first: keep the largest
            found.append(_attachment("image", sizes[-1], default_mime="image/jpeg"))
    for key, kind in _MEDIA_KINDS:
        if key == "document" and "animation" in msg:
            continue
        item = msg.get(key)
        if isinstance(item, Mapping) and isinstance(item.get("file_id"), str):
            found.append(_attachment(kind, item))
    location = msg.get("location")
    if isinstance(location, Mapping):
        lat, lon = location.get("latitude"), location.get("longitude")
        if isinstance(lat, int | float) and isinstance(lon, int | float):
            found.append(Attachment(kind="location", name=f"{lat},{lon}"))
    return tuple(found)


def _attachment(kind: str, item: Mapping[str, object], default_mime: str = "") -> Attachment:
    name = item.get("file_name")
    mime = item.get("mime_type")
    size = item.get("file_size")
    return Attachment(
        kind=kind,
        name=name if isinstance(name, str) else "",
        mime=mime if isinstance(mime, str) else default_mime,
        size=size if _is_int(size) else None,  # type: ignore[arg-type]
        platform_id=str(item["file_id"]),
    )

