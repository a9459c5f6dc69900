"""Mattermost's wire shapes -> pyclaw's, as pure functions that never raise (fuzzed in the tests).

A WebSocket frame is either an event ``{event, data, broadcast, seq}`` or the answer to
one of our requests ``{status, seq_reply, error?}`` (server/public/model/
websocket_message.go). A ``posted`` event carries the post as a JSON *string* in
``data.post``, with ``channel_type`` (``D`` direct, ``G`` group DM, ``O`` public, ``P``
private) and ``sender_name`` beside it. The same post objects come back from
``GET /channels/{id}/posts`` after a reconnect, so both paths end in :func:`parse_post`.

Addressing keeps the reply where the user is, as Mattermost users expect of bots: a
direct message stays flat unless it was written in a thread; a channel post is answered
in its thread (the thread it is in, or a new one under it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

from pyclaw_app.model import Address, Attachment, Inbound

__all__ = [
    "Bot",
    "Frame",
    "Skip",
    "WirePost",
    "created_at",
    "is_mentioned",
    "parse_frame",
    "parse_post",
    "post_of",
    "strip_mention",
]

DIRECT = "D"


class WireFileInfo(TypedDict, total=False):
    id: str
    name: str
    extension: str
    size: int
    mime_type: str


class WirePost(TypedDict):
    """The fields of a ``Post`` (api/v4/source/definitions.yaml) this channel reads."""

    id: str
    create_at: int
    user_id: str
    channel_id: str
    message: str
    root_id: NotRequired[str]
    delete_at: NotRequired[int]
    type: NotRequired[str]
    props: NotRequired[dict[str, Any]]
    file_ids: NotRequired[list[str]]
    metadata: NotRequired[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Frame:
    """One WebSocket frame: an event (``event`` set) or the answer to our ``seq``."""

    event: str = ""
    data: Mapping[str, Any] | None = None
    seq: int | None = None
    seq_reply: int | None = None
    status: str = ""
    error: str = ""


@dataclass(frozen=True, slots=True)
class Bot:
    """Who the channel is, from ``GET /users/me``."""

    id: str
    username: str


@dataclass(frozen=True, slots=True)
class Skip:
    """A post that is not a message for the assistant; ``level`` says whether to log it."""

    reason: str
    level: str = "debug"
    own: bool = False
    """The bot's own post (its thread is one the bot is in)."""


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def parse_frame(raw: str | bytes) -> Frame | None:
    """A frame from the socket's text, or None when it is not one (not JSON, no ``event``
    and no ``seq_reply``)."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(body, dict):
        return None
    event, data = body.get("event"), body.get("data")
    if isinstance(event, str) and event:
        return Frame(event=event, data=data if isinstance(data, dict) else {},
                     seq=_int(body.get("seq")))
    reply = _int(body.get("seq_reply"))
    if reply is None:
        return None
    error = body.get("error")
    message = _str(error.get("message")) or _str(error.get("id")) \
        if isinstance(error, dict) else ""
    return Frame(seq_reply=reply, status=_str(body.get("status")), error=message,
                 data=data if isinstance(data, dict) else {})


def post_of(data: Mapping[str, Any] | None) -> WirePost | None:
    """The post of a ``posted`` event (a JSON string in ``data.post``), or None when it is
    missing or not a post."""
    raw = (data or {}).get("post")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except (ValueError, RecursionError):
            return None
    return raw if _is_post(raw) else None


def _is_post(value: object) -> bool:
    if not isinstance(value, dict):
        return False
    ids = all(isinstance(value.get(k), str) and value.get(k) for k in
              ("id", "user_id", "channel_id"))
    return ids and _int(value.get("create_at")) is not None \
        and isinstance(value.get("message", ""), str)


def created_at(post: object) -> int | None:
    """A post's ``create_at`` (Unix milliseconds), None for anything else."""
    return _int(post.get("create_at")) if isinstance(post, dict) else None


def _mention_pattern(username: str) -> re.Pattern[str]:
    # A username is [a-z0-9.-_]; "@bot." ends a sentence, "@bot.x" is another user.
    return re.compile(rf"(?<![\w.@-])@{re.escape(username)}(?![\w-]|\.[\w-])", re.IGNORECASE)


def is_mentioned(text: str, username: str) -> bool:
    """``@username`` in the text, as Mattermost highlights it."""
    return bool(username) and _mention_pattern(username).search(text) is not None


def strip_mention(text: str, username: str) -> str:
    """The text without a leading ``@username`` (and the ``:`` or ``,`` after it)."""
    if not username:
        return text
    match = re.match(rf"\s*@{re.escape(username)}(?![\w-]|\.[\w-])[:,]?\s*", text,
                     re.IGNORECASE)
    return text[match.end():] if match and text[match.end():].strip() else text


def _kind(mime: str) -> str:
    major = mime.split("/", 1)[0]
    return major if major in ("image", "audio", "video") else "file"


def _attachments(post: Mapping[str, Any], files_url: str) -> tuple[Attachment, ...]:
    metadata = post.get("metadata")
    infos = metadata.get("files") if isinstance(metadata, dict) else None
    found: list[Attachment] = []
    described: set[str] = set()
    for info in infos if isinstance(infos, list) else []:
        if not isinstance(info, dict) or not _str(info.get("id")):
            continue
        file_id, mime = info["id"], _str(info.get("mime_type"))
        described.add(file_id)
        found.append(Attachment(kind=_kind(mime), name=_str(info.get("name")), mime=mime,
                                size=_int(info.get("size")), url=f"{files_url}/{file_id}",
                                platform_id=file_id))
    ids = post.get("file_ids")
    for file_id in ids if isinstance(ids, list) else []:
        if isinstance(file_id, str) and file_id and file_id not in described:
            found.append(Attachment(kind="file", url=f"{files_url}/{file_id}",
                                    platform_id=file_id))
    return tuple(found)


def parse_post(post: Mapping[str, Any], *, channel: str, bot: Bot, channel_type: str,
               sender_name: str = "", bot_thread: bool = False, files_url: str = ""
               ) -> Inbound | Skip | None:
    """A post -> :class:`Inbound`; :class:`Skip` for a valid post that is not for the
    assistant; None for one that is not a post at all (the caller logs it).

    ``bot_thread``: the post's thread (``root_id``) is one the bot started or wrote in,
    which makes a reply there a reply to the bot. ``files_url`` prefixes file ids
    (``{server}/api/v4/files``).
    """
    if not _is_post(post):
        return None
    post_id, user_id, chat = post["id"], post["user_id"], post["channel_id"]
    kind, props = post.get("type", ""), post.get("props")
    if user_id == bot.id:
        return Skip(f"own post {post_id}", own=True)
    if _int(post.get("delete_at")):
        return Skip(f"deleted post {post_id}")
    if kind:
        return Skip(f"{kind!r} post {post_id}" if isinstance(kind, str)
                    else f"post {post_id} of an odd type")
    if isinstance(props, dict) and props.get("from_bot") in ("true", True):
        return Skip(f"post {post_id} of another bot")
    root = post.get("root_id") or ""
    if not isinstance(root, str):
        return None
    text = post.get("message") or ""
    attachments = _attachments(post, files_url)
    if not text.strip() and not attachments:
        return Skip(f"empty post {post_id}", level="info")
    direct = channel_type == DIRECT
    return Inbound(
        address=Address(channel=channel, chat=chat, account=bot.id,
                        thread=root or (None if direct else post_id)),
        platform_id=post_id,
        text=strip_mention(text, bot.username),
        sender_id=user_id,
        sender_name=sender_name.removeprefix("@"),
        attachments=attachments,
        is_group=not direct,
        mentioned=is_mentioned(text, bot.username),
        reply_to_bot=bool(root) and bot_thread,
        ts=post["create_at"] / 1000,
    )
