"""Talk's webhook activities -> :class:`Inbound`, as pure functions so they can be fuzzed.

Each webhook POST is one Activity Streams 2.0 activity (docs/bots.md and
lib/Service/BotService.php in github.com/nextcloud/spreed):

- ``Create``: a chat message. ``object`` is a ``Note`` whose ``id`` is the message id
  and whose ``content`` is itself JSON, ``{"message": ..., "parameters": {...}}``: the
  text with rich-object placeholders (``{mention-user1}``, ``{file}``) and what each one
  stands for. ``target`` is the conversation (``id`` = its token). Talk 21+ adds
  ``object.inReplyTo`` {actor, object} when the message quotes another.
- ``Join`` / ``Leave``: the bot was added to / removed from a conversation (``object``).
- ``Activity`` (system messages: joins, calls, edits and deletions as ``message_edited``
  / ``message_deleted``), ``Like`` / ``Undo`` (reactions, Talk 21+): not for the assistant.

The parser never raises: an activity it cannot understand is ``None`` (the caller logs
it), a valid one that is not a user's message is :class:`Ignored`.

Talk says nothing about who else is in a conversation: ``target`` has no type, and a
one-to-one conversation is two *people* (its ``name`` is their user ids as a JSON pair),
with the bot listening in. So every conversation is a group unless its token is one of
the configured direct conversations.
"""

from __future__ import annotations

import json
import re
from collections.abc import Container, Mapping
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict

from pyclaw_app.channels.mentions import addressed_text, render_markup
from pyclaw_app.model import Address, Attachment, Inbound

__all__ = ["TOKEN", "BotIdentity", "Ignored", "Membership", "parse_activity"]

TOKEN = re.compile(r"^[a-z0-9]{4,30}$")
"""A conversation token as openapi-bots.json describes it; also what may go in a URL path."""
_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_-]+)\}")
_MENTIONS = frozenset({"user", "guest", "call", "user-group", "group", "circle", "email",
                       "federated_user", "bot"})
"""Rich-object types Talk shows as an @-chip (lib/Chat/Parser/UserMention.php)."""


class Actor(TypedDict):
    type: str  # "Person" (users, guests...), "Application" (a bot)
    id: str  # "<attendee type>/<id>": "users/ada-lovelace", "guests/<hash>", "bots/bot-<sha1>"
    name: str
    talkParticipantType: NotRequired[str]


class Collection(TypedDict):
    type: str  # "Collection"
    id: str  # the conversation token
    name: str


class Note(TypedDict):
    type: str  # "Note"
    id: str  # the message id, a numeric string
    name: str  # "message" (empty for attachments before Talk 23)
    content: str  # JSON: {"message": str, "parameters": {placeholder: rich object}}
    mediaType: str  # "text/markdown" or "text/plain"
    inReplyTo: NotRequired[dict[str, Any]]  # {"actor": Actor, "object": Note}


class Activity(TypedDict):
    type: str  # Create, Join, Leave, Activity, Like, Undo
    actor: Actor
    object: Note | Collection
    target: NotRequired[Collection]
    content: NotRequired[str]  # the emoji of a Like


@dataclass(frozen=True, slots=True)
class Ignored:
    """A valid activity that is not a message for the assistant."""

    reason: str


@dataclass(frozen=True, slots=True)
class Membership:
    """The bot was added to (``joined``) or removed from a conversation."""

    joined: bool
    token: str
    conversation: str
    bot_id: str
    bot_name: str


@dataclass(frozen=True, slots=True)
class BotIdentity:
    """Who the bot is in Talk: its configured name and the actor ids Join events named."""

    name: str
    actor_ids: frozenset[str] = field(default_factory=frozenset)

    def _names(self) -> set[str]:
        name = self.name.strip().casefold()
        return {name, f"{name} (bot)"} if name else set()

    def is_actor(self, actor_id: object, name: object) -> bool:
        """A bot message's author: ``bots/bot-<sha1>``, shown as "<name> (Bot)"."""
        if not isinstance(actor_id, str) or not actor_id.startswith("bots/"):
            return False
        return actor_id in self.actor_ids or (
            isinstance(name, str) and name.strip().casefold() in self._names())

    def is_mention(self, param: Mapping[str, Any]) -> bool:
        pid, name = param.get("id"), param.get("name")
        ids = self.actor_ids | {a.split("/", 1)[1] for a in self.actor_ids if "/" in a}
        return (isinstance(pid, str) and (pid in ids or pid.casefold() in self._names())) or (
            isinstance(name, str) and name.strip().casefold() in self._names())

    def literal(self) -> re.Pattern[str] | None:
        """``@name`` or ``@"name"`` typed as text: Talk turns a mention into a parameter only
        when it names a user, so a bot's mention usually stays plain text."""
        name = self.name.strip()
        if not name:
            return None
        escaped = re.escape(name)
        return re.compile(rf'(?<![\w@.\-])@(?:"{escaped}"|{escaped})(?![\w@.\-])',
                          re.IGNORECASE)


def parse_activity(activity: object, *, channel: str, bot: BotIdentity,
                   direct: Container[str] = ()) -> Inbound | Membership | Ignored | None:
    """One webhook body. The platform id is the message id, unique on the server."""
    if not isinstance(activity, Mapping) or not isinstance(activity.get("type"), str):
        return None
    kind = activity["type"]
    if kind in ("Join", "Leave"):
        return _membership(activity, joined=kind == "Join")
    if kind == "Activity":
        obj = activity.get("object")
        name = obj.get("name") if isinstance(obj, Mapping) else None
        return Ignored(f"system message {name!r}")
    if kind != "Create":
        return Ignored(f"{kind} activity" + (" (a reaction)" if kind in ("Like", "Undo")
                                             else ""))
    actor, note, target = (activity.get(k) for k in ("actor", "object", "target"))
    if not (isinstance(actor, Mapping) and isinstance(note, Mapping)
            and isinstance(target, Mapping)):
        return None
    mid, token, sender = _message_id(note.get("id")), target.get("id"), actor.get("id")
    if mid is None or not isinstance(token, str) or not TOKEN.match(token) \
            or not isinstance(sender, str) or "/" not in sender:
        return None
    if sender.startswith("bots/"):
        return Ignored("a bot's message")
    content = _content(note.get("content"))
    if content is None:
        return None
    message, params = content
    text, mentioned, attachments = _render(message, params, bot)
    return Inbound(
        address=Address(channel=channel, chat=token),
        platform_id=mid,
        text=text,
        sender_id=sender,
        sender_name=_str(actor.get("name")),
        attachments=attachments,
        is_group=token not in direct,
        mentioned=mentioned,
        reply_to_bot=_replies_to_bot(note.get("inReplyTo"), bot),
    )


def _membership(activity: Mapping[str, Any], *, joined: bool) -> Membership | None:
    actor, room = activity.get("actor"), activity.get("object")
    if not isinstance(actor, Mapping) or not isinstance(room, Mapping):
        return None
    token = room.get("id")
    if not isinstance(token, str) or not TOKEN.match(token):
        return None
    return Membership(joined, token, _str(room.get("name")), _str(actor.get("id")),
                      _str(actor.get("name")))


def _message_id(value: object) -> str | None:
    """A numeric string in the payload (PHP's comment id); an int is taken too."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return str(value)
    return value if isinstance(value, str) and value.isdigit() and value.isascii() else None


def _content(raw: object) -> tuple[str, Mapping[str, Any]] | None:
    """``object.content``: JSON in a string. PHP encodes no parameters as ``[]``."""
    if not isinstance(raw, str):
        return None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, Mapping) or not isinstance(data.get("message"), str):
        return None
    params = data.get("parameters", {})
    if params == []:
        params = {}
    return (data["message"], params) if isinstance(params, Mapping) else None


def _render(message: str, params: Mapping[str, Any], bot: BotIdentity
            ) -> tuple[str, bool, tuple[Attachment, ...]]:
    """The text as the user saw it (mentions as ``@name``, files left out: they are
    attachments), the bot's own mention cut where it addressed the bot (the kit's rule,
    ``pyclaw_app.channels.mentions``); whether that mention was there."""
    ours = _bot_mention(message, params, bot)
    mentioned = ours is not None and ours.search(message) is not None
    attachments = tuple(found for match in _PLACEHOLDER.finditer(message)
                        if (found := _attachment_of(params.get(match.group(1)))) is not None)
    if mentioned and ours is not None:
        message = addressed_text(message, ours, bot_name=bot.name.strip() or "bot")
    text = render_markup(message, _PLACEHOLDER, lambda m: _placeholder(params.get(m.group(1))))
    return text.strip(), mentioned, attachments


def _bot_mention(message: str, params: Mapping[str, Any], bot: BotIdentity
                 ) -> re.Pattern[str] | None:
    """The bot's mention as it appears in ``message``: a placeholder whose rich object is
    the bot, or its name typed as ``@name`` / ``@"name"``; None when neither can be."""
    keys = sorted({match.group(1) for match in _PLACEHOLDER.finditer(message)
                   if _is_bot(params.get(match.group(1)), bot)})
    forms = [rf"\{{{re.escape(key)}\}}" for key in keys]
    literal = bot.literal()
    if literal is not None:
        forms.append(literal.pattern)
    return re.compile("|".join(forms), re.IGNORECASE) if forms else None


def _is_bot(param: object, bot: BotIdentity) -> bool:
    return isinstance(param, Mapping) and param.get("type") in _MENTIONS and \
        bot.is_mention(param)


def _placeholder(param: object) -> str | None:
    """What a placeholder reads as: ``@name`` for a mention, nothing for a file or a
    location (an attachment), the label of anything else; None (kept) without a param."""
    if not isinstance(param, Mapping):
        return None
    if param.get("type") in ("file", "geo-location"):
        return ""
    return _shown(param)


def _attachment_of(param: object) -> Attachment | None:
    if not isinstance(param, Mapping) or param.get("type") not in ("file", "geo-location"):
        return None
    return _attachment(param)


def _shown(param: Mapping[str, Any]) -> str:
    name, pid = _str(param.get("name")), _str(param.get("id"))
    label = name or pid
    return f"@{label}" if param.get("type") in _MENTIONS else label


def _attachment(param: Mapping[str, Any]) -> Attachment | None:
    """A shared file or location as metadata; nothing is downloaded (``link`` is the file's
    page on the server, which needs the user's login)."""
    pid, name = _str(param.get("id")), _str(param.get("name"))
    if param.get("type") == "geo-location":
        lat, lon = param.get("latitude"), param.get("longitude")
        url = pid if pid.startswith("geo:") else (
            f"geo:{lat},{lon}" if isinstance(lat, str | int | float)
            and isinstance(lon, str | int | float) else None)
        return Attachment(kind="location", name=name, url=url, platform_id=pid or None)
    if not pid:
        return None
    mime = _str(param.get("mimetype"))
    major = mime.split("/", 1)[0]
    size = param.get("size")
    if isinstance(size, str) and size.isdigit():
        size = int(size)
    link = _str(param.get("link"))
    return Attachment(
        kind=major if major in ("image", "audio", "video") else "file", name=name, mime=mime,
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
        url=link if link.startswith(("https://", "http://")) else None, platform_id=pid)


def _replies_to_bot(parent: object, bot: BotIdentity) -> bool:
    actor = parent.get("actor") if isinstance(parent, Mapping) else None
    return isinstance(actor, Mapping) and bot.is_actor(actor.get("id"), actor.get("name"))


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""
