"""Slack event payloads -> :class:`Inbound`, as a pure function so it can be fuzzed.

The same ``event_callback`` body arrives through Socket Mode (inside an
envelope's ``payload``) and through the Events API over HTTP, so both paths
share this parser. It never raises: a payload it cannot understand is ``None``
(the caller logs it), a well-formed one that is simply not for the assistant
(the bot's own posts, edits, joins, other event types) is :class:`Ignored`,
which is normal traffic and not worth a log line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

from pyclaw_app.channels.mentions import addressed_text, render_markup
from pyclaw_app.model import Address, Attachment, Inbound

__all__ = [
    "BotIdentity",
    "Ignored",
    "escape_text",
    "event_id",
    "mentioned_users",
    "parse_event",
    "platform_id",
    "readable_text",
    "unescape_text",
]

_MARKUP = re.compile(r"<([^<>\n]{1,4000})>")
"""Slack's control sequences in message text: ``<@U1>``, ``<#C1|name>``, ``<!here>``,
``<https://x|label>`` (api.slack.com/reference/surfaces/formatting#retrieving-messages)."""
_USER_MENTION = re.compile(r"<@([UW][A-Z0-9]{1,30})>")
_SPECIAL = {"here": "@here", "channel": "@channel", "everyone": "@everyone"}

# Subtypes that are still a person talking to us; every other subtype (edits,
# deletions, joins, bot_message...) is housekeeping.
_USER_SUBTYPES = frozenset({None, "file_share", "thread_broadcast"})


class SlackFile(TypedDict, total=False):
    id: str
    name: str
    mimetype: str
    size: int
    url_private: str


class SlackMessageEvent(TypedDict):
    """The fields of a ``message`` / ``app_mention`` event we read (wire shape)."""

    type: str
    channel: str
    user: str
    ts: str
    text: NotRequired[str]
    thread_ts: NotRequired[str]
    parent_user_id: NotRequired[str]
    channel_type: NotRequired[str]
    subtype: NotRequired[str]
    bot_id: NotRequired[str]
    files: NotRequired[list[SlackFile]]


class EventCallback(TypedDict):
    type: str  # "event_callback"
    event_id: str
    event: SlackMessageEvent


@dataclass(frozen=True, slots=True)
class BotIdentity:
    """Who the bot is, from ``auth.test``: mentions name the user id, own posts carry the bot id."""

    user_id: str
    bot_id: str = ""
    name: str = ""


@dataclass(frozen=True, slots=True)
class Ignored:
    """A valid event that is not a message for the assistant."""

    reason: str


def platform_id(channel: str, ts: str) -> str:
    """A message's id within a workspace: ``ts`` is unique only per channel."""
    return f"{channel}:{ts}"


def event_id(payload: Mapping[str, Any]) -> str:
    """The ``event_id`` for log lines, or ``""``; never log the payload (it holds a token)."""
    value = payload.get("event_id")
    return value if isinstance(value, str) else ""


def escape_text(text: str) -> str:
    """Slack's required escaping for message text; also stops a reply from @-mentioning anyone."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unescape_text(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def mentioned_users(payload: Mapping[str, Any]) -> set[str]:
    """Ids of the users a message mentions without a name (``<@U1>``): what the caller looks
    up (``users.info``) so :func:`parse_event` can show them as ``@name``."""
    event = payload.get("event")
    text = event.get("text") if isinstance(event, Mapping) else None
    return set(_USER_MENTION.findall(text)) if isinstance(text, str) else set()


def readable_text(text: str, names: Mapping[str, str]) -> str:
    """Slack's markup as the user saw it: ``<@U1>`` -> ``@Ann`` (from ``names``, else the
    id), ``<#C1|general>`` -> ``#general``, ``<!here>`` -> ``@here``, ``<url|label>`` ->
    ``label (url)``, ``<!date^…|fallback>`` -> the fallback; then ``&lt; &gt; &amp;``."""
    return unescape_text(render_markup(text, _MARKUP, lambda m: _readable(m.group(1), names)))


def _readable(inner: str, names: Mapping[str, str]) -> str | None:
    target, _, label = inner.partition("|")
    sigil = target[:1]
    if sigil == "@":
        return f"@{label or names.get(target[1:]) or target[1:]}"
    if sigil == "#":
        return f"#{label or target[1:]}"
    if sigil == "!":
        word = target[1:].partition("^")[0]
        if word in _SPECIAL:
            return _SPECIAL[word]
        if word == "subteam":
            return label if label.startswith("@") else f"@{label or target.rpartition('^')[2]}"
        return label or None  # <!date^…|fallback>; an unknown command stays as sent
    url = target.removeprefix("mailto:") if target.startswith("mailto:") else target
    return url if not label or label == url else f"{label} ({url})"


def parse_event(payload: Mapping[str, Any], *, channel: str, bot: BotIdentity,
                names: Mapping[str, str] | None = None) -> Inbound | Ignored | None:
    """Turn an ``event_callback`` body into an :class:`Inbound`.

    Addressing keeps the reply where the user is: a DM stays flat unless the
    user wrote in a thread; a channel message is answered in its thread (the
    thread it was in, or a new one under it). ``names`` are display names of users the
    text mentions (see :func:`mentioned_users`).
    """
    outer = payload.get("type")
    if not isinstance(outer, str):
        return None
    if outer != "event_callback":
        return Ignored(f"payload type {outer!r}")  # e.g. app_rate_limited
    event = payload.get("event")
    if not isinstance(event, Mapping):
        return None
    kind = event.get("type")
    if not isinstance(kind, str):
        return None
    if kind not in ("message", "app_mention"):
        return Ignored(f"event type {kind!r}")
    subtype = event.get("subtype")
    if not (subtype is None or isinstance(subtype, str)) or subtype not in _USER_SUBTYPES:
        return Ignored(f"message subtype {subtype!r}")
    if event.get("bot_id") or event.get("hidden") is True:
        return Ignored("bot message")

    chat, ts, user = event.get("channel"), event.get("ts"), event.get("user")
    text, thread_ts = event.get("text", ""), event.get("thread_ts")
    if not (_nonempty(chat) and _nonempty(ts) and _nonempty(user)):
        return None
    if text is None:
        text = ""
    if not isinstance(text, str) or not (thread_ts is None or _nonempty(thread_ts)):
        return None
    if user == bot.user_id:
        return Ignored("own message")

    channel_type = event.get("channel_type")
    is_dm = channel_type == "im" if isinstance(channel_type, str) else chat.startswith("D")
    mention = f"<@{bot.user_id}"
    mentioned = kind == "app_mention" or (bool(bot.user_id) and mention in text)
    reply_to_bot = (thread_ts is not None and thread_ts != ts
                    and event.get("parent_user_id") == bot.user_id)
    return Inbound(
        address=Address(channel=channel, chat=chat, account=bot.user_id,
                        thread=thread_ts if is_dm else (thread_ts or ts)),
        platform_id=platform_id(chat, ts),
        text=readable_text(_addressed(text, bot), {bot.user_id: bot.name, **(names or {})}),
        sender_id=user,
        sender_name=_sender_name(event.get("user_profile")),
        attachments=_attachments(event.get("files")),
        is_group=not is_dm,
        mentioned=mentioned,
        reply_to_bot=reply_to_bot,
        **_timestamp(ts),
    )


def _nonempty(value: object) -> bool:
    return isinstance(value, str) and value != ""


def _addressed(text: str, bot: BotIdentity) -> str:
    """The text without the mention that addressed the bot (the kit's rule, see
    ``pyclaw_app.channels.mentions``)."""
    if not bot.user_id:
        return text
    return addressed_text(text, rf"<@{re.escape(bot.user_id)}(?:\|[^>]*)?>",
                          bot_name=bot.name or "bot")


def _sender_name(profile: object) -> str:
    if not isinstance(profile, Mapping):
        return ""
    for key in ("display_name", "real_name", "name"):
        value = profile.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def _attachments(files: object) -> tuple[Attachment, ...]:
    if not isinstance(files, list):
        return ()
    found = []
    for item in files:
        if not isinstance(item, Mapping):
            continue
        mime = _str(item.get("mimetype"))
        size = item.get("size")
        found.append(Attachment(
            kind=_kind(mime),
            name=_str(item.get("name")),
            mime=mime,
            size=size if isinstance(size, int) and not isinstance(size, bool) else None,
            url=_str(item.get("url_private")) or None,
            platform_id=_str(item.get("id")) or None,
        ))
    return tuple(found)


def _kind(mime: str) -> str:
    major = mime.partition("/")[0]
    return major if major in ("image", "audio", "video") else "file"


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _timestamp(ts: str) -> dict[str, float]:
    """Slack's ``ts`` is the send time ("1700000000.000100"); keep the default if it is not."""
    try:
        value = float(ts)
    except ValueError:
        return {}
    return {"ts": value} if 0 < value < 1e11 else {}
