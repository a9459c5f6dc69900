"""Raw Gateway MESSAGE_CREATE payloads -> :class:`Inbound`, as pure functions that never raise.

They read the JSON the Gateway sent, not discord.py's models, so a payload the
SDK would choke on is still judged here, and hypothesis can throw any dict at
them. ``None`` means "malformed": the caller logs it and carries on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NotRequired, TypedDict

from pyclaw_app.channels.mentions import addressed_text, render_markup
from pyclaw_app.model import Address, Attachment, Inbound

__all__ = ["RawMessage", "channel_id_of", "is_ignorable", "parse_message_create",
           "referenced_ids"]

DISCORD_EPOCH_MS = 1_420_070_400_000
_USER_MESSAGE_TYPES = frozenset({0, 19})  # DEFAULT, REPLY; the rest are system notices
_DIGITS = re.compile(r"[0-9]{1,20}")
_MARKUP = re.compile(r"<(@!?|@&|#|/[-_\w ]{1,96}:|a?:\w{1,32}:|t:)(-?[0-9]{1,20})(:[tTdDfFR])?>")
"""Discord's message markup (discord.com/developers/docs/reference#message-formatting):
users ``<@id>``/``<@!id>``, roles ``<@&id>``, channels ``<#id>``, slash commands
``</name:id>``, custom emoji ``<:name:id>``/``<a:name:id>``, timestamps ``<t:unix:style>``."""


class RawUser(TypedDict):
    id: str
    username: str
    global_name: NotRequired[str | None]
    bot: NotRequired[bool]


class RawAttachment(TypedDict):
    id: str
    filename: str
    size: int
    url: str
    content_type: NotRequired[str]


class RawMessage(TypedDict):
    """The part of Discord's Message object (MESSAGE_CREATE ``d``) this module reads."""

    id: str
    channel_id: str
    author: RawUser
    content: str
    type: int
    guild_id: NotRequired[str]
    mentions: list[RawUser]
    attachments: list[RawAttachment]
    sticker_items: NotRequired[list[dict[str, Any]]]
    referenced_message: NotRequired[RawMessage | None]
    webhook_id: NotRequired[str]


def _snowflake(value: object) -> str | None:
    """A snowflake as Discord sends it (a decimal string; ints tolerated), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value) if 0 <= value < 2**64 else None
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return value
    return None


def _author_id(data: Mapping[str, Any]) -> str | None:
    author = data.get("author")
    return _snowflake(author.get("id")) if isinstance(author, Mapping) else None


def channel_id_of(data: object) -> str | None:
    """The channel (or thread) a raw message was posted in."""
    return _snowflake(data.get("channel_id")) if isinstance(data, Mapping) else None


def is_ignorable(data: object, bot_id: str) -> bool:
    """True for messages nobody should answer: the bot's own, other bots', webhooks', system."""
    if not isinstance(data, Mapping):
        return False
    author = data.get("author")
    if isinstance(author, Mapping):
        if _snowflake(author.get("id")) == bot_id or author.get("bot") is True:
            return True
    if data.get("webhook_id") is not None:
        return True
    kind = data.get("type")
    return isinstance(kind, int) and not isinstance(kind, bool) and kind not in (
        _USER_MESSAGE_TYPES)


def referenced_ids(data: object) -> tuple[set[str], set[str]]:
    """(channel ids, role ids) the content links to: what the caller names from its cache
    (the payload carries users' names but not channels' or roles')."""
    content = data.get("content") if isinstance(data, Mapping) else None
    channels: set[str] = set()
    roles: set[str] = set()
    for kind, snowflake, _ in _MARKUP.findall(content if isinstance(content, str) else ""):
        if kind == "#":
            channels.add(snowflake)
        elif kind == "@&":
            roles.add(snowflake)
    return channels, roles


def parse_message_create(data: object, *, channel: str, bot_id: str,
                         thread_parent: str | None = None, bot_name: str = "",
                         names: Mapping[str, str] | None = None) -> Inbound | None:
    """Build the canonical message, or None when required fields are missing or mistyped.

    ``thread_parent`` is the parent channel when ``channel_id`` is a thread (the
    raw payload does not say so; the caller knows it from the Gateway's
    THREAD_CREATE/GUILD_CREATE): the address is then (parent, thread). ``names`` are the
    names of the channels (``#id``) and roles (``&id``) the text links to
    (:func:`referenced_ids`); people's names come from the payload's ``mentions``.
    """
    if not isinstance(data, Mapping):
        return None
    mid, cid = _snowflake(data.get("id")), channel_id_of(data)
    author = data.get("author")
    content = data.get("content", "")
    mentions = data.get("mentions", [])
    if (mid is None or cid is None or not isinstance(author, Mapping)
            or not isinstance(content, str) or not isinstance(mentions, list)):
        return None
    sender_id = _snowflake(author.get("id"))
    if sender_id is None:
        return None
    guild_id = data.get("guild_id")
    if guild_id is not None and _snowflake(guild_id) is None:
        return None
    attachments = _attachments(data.get("attachments"), data.get("sticker_items"))
    if attachments is None:
        return None
    mention_re = re.compile(rf"<@!?{re.escape(bot_id)}>") if bot_id else None
    mentioned = bool(bot_id) and (
        any(isinstance(m, Mapping) and _snowflake(m.get("id")) == bot_id for m in mentions)
        or (mention_re is not None and mention_re.search(content) is not None))
    referenced = data.get("referenced_message")
    reply_to_bot = bool(bot_id) and isinstance(referenced, Mapping) and (
        _author_id(referenced) == bot_id)
    text = content
    if mention_re is not None and mentioned:
        text = addressed_text(content, mention_re, bot_name=bot_name or "bot")
    text = _readable(text, _people(mentions), names or {})
    name = author.get("global_name") or author.get("username")
    parent = _snowflake(thread_parent)
    address = Address(channel=channel, chat=parent or cid, account=bot_id,
                      thread=cid if parent else None)
    return Inbound(
        address=address,
        platform_id=mid,
        text=text,
        sender_id=sender_id,
        sender_name=name if isinstance(name, str) else "",
        attachments=attachments,
        is_group=guild_id is not None,
        mentioned=mentioned,
        reply_to_bot=reply_to_bot,
        ts=((int(mid) >> 22) + DISCORD_EPOCH_MS) / 1000,
    )


def _people(mentions: list[object]) -> dict[str, str]:
    """Each mentioned user's name as the guild shows it: nickname, display name, username."""
    found: dict[str, str] = {}
    for user in mentions:
        if not isinstance(user, Mapping) or (uid := _snowflake(user.get("id"))) is None:
            continue
        member = user.get("member")
        nick = member.get("nick") if isinstance(member, Mapping) else None
        for name in (nick, user.get("global_name"), user.get("username")):
            if isinstance(name, str) and name:
                found[uid] = name
                break
    return found


def _readable(text: str, people: Mapping[str, str], names: Mapping[str, str]) -> str:
    """Markup as the user saw it: ``@Ann``, ``@Moderators``, ``#general``, ``/ask``,
    ``:wave:``, a timestamp as an ISO date; an id nothing names shows as ``@<id>``."""

    def shown(match: re.Match[str]) -> str | None:
        kind, snowflake, _ = match.groups()
        if kind in ("@", "@!"):
            return f"@{people.get(snowflake, snowflake)}"
        if kind == "@&":
            return f"@{names.get('&' + snowflake, 'role')}"
        if kind == "#":
            return f"#{names.get('#' + snowflake, snowflake)}"
        if kind.startswith("/"):
            return kind[:-1]
        if kind == "t:":
            return _timestamp(snowflake)
        return f":{kind.split(':')[1]}:"  # custom emoji: its name, as clients show on hover

    return render_markup(text, _MARKUP, shown)


def _timestamp(value: str) -> str | None:
    try:
        return datetime.fromtimestamp(int(value), UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (ValueError, OverflowError, OSError):
        return None


def _attachments(files: object, stickers: object) -> tuple[Attachment, ...] | None:
    """Files and stickers; None when the lists themselves are mistyped."""
    files = [] if files is None else files
    stickers = [] if stickers is None else stickers
    if not isinstance(files, list) or not isinstance(stickers, list):
        return None
    found: list[Attachment] = []
    for item in files:
        if not isinstance(item, Mapping) or _snowflake(item.get("id")) is None:
            return None
        mime = item.get("content_type")
        mime = mime if isinstance(mime, str) else ""
        size = item.get("size")
        name, url = item.get("filename"), item.get("url")
        found.append(Attachment(
            kind=_kind(mime),
            name=name if isinstance(name, str) else "",
            mime=mime,
            size=size if isinstance(size, int) and not isinstance(size, bool) else None,
            url=url if isinstance(url, str) else None,
            platform_id=_snowflake(item.get("id")),
        ))
    for item in stickers:
        if not isinstance(item, Mapping) or _snowflake(item.get("id")) is None:
            return None
        name = item.get("name")
        found.append(Attachment(kind="sticker", name=name if isinstance(name, str) else "",
                                platform_id=_snowflake(item.get("id"))))
    return tuple(found)


def _kind(mime: str) -> str:
    major = mime.split("/", 1)[0]
    return major if major in ("image", "audio", "video") else "file"
