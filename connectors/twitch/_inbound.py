"""Twitch's tagged lines, read as pure functions that never raise.

``parse_privmsg`` turns a chat message into :class:`Inbound`: every Twitch chat is a
channel, so ``is_group`` is always set; ``mentioned`` when the text names ``@login``
(a leading ``@login`` is stripped), ``reply_to_bot`` when its ``reply-parent-user-login``
is the bot. The sender is the stable ``user-id`` tag, the platform id the ``id`` tag,
the time ``tmi-sent-ts``. An emote-only message reports its emotes as stickers, a bare
link to a picture or a Twitch clip as an attachment (metadata only). ``send_outcome``
sorts the NOTICE Twitch answers a dropped message with into pyclaw's errors.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass

from connectors.irc._parse import Line, media_url, parse_ctcp
from pyclaw_app.channels.mentions import addressed_text
from pyclaw_app.errors import ConnectorError, DeliveryUncertain, FatalConnectorError, RetryableError
from pyclaw_app.model import Address, Attachment, Inbound

__all__ = ["Skip", "chat_line", "elevated", "parse_privmsg", "send_outcome", "sent_at"]

_CLIP = re.compile(r"https?://(?:clips\.twitch\.tv/[\w-]+|(?:www\.|m\.)?twitch\.tv/\w+/clip/"
                   r"[\w-]+)(?:[?#]\S*)?")
_SECONDS = re.compile(r"(\d+) (?:more )?seconds?")
_ELEVATED_BADGES = {"broadcaster", "moderator", "vip"}
_EMOTE_URL = "https://static-cdn.jtvnw.net/emoticons/v2/{}/default/dark/1.0"

_FATAL_NOTICES = {
    "msg_banned": "the bot is banned from {chat}",
    "msg_bad_characters": "Twitch refused the message's characters",
    "msg_channel_blocked": "the bot's account is blocked in {chat}",
    "msg_channel_suspended": "{chat} does not exist or has been suspended",
    "msg_emoteonly": "{chat} is in emote-only mode",
    "msg_followersonly": "{chat} is in followers-only mode and the bot does not follow it "
                         "(long enough)",
    "msg_followersonly_followed": "{chat} is in followers-only mode and the bot has not "
                                  "followed it long enough",
    "msg_followersonly_zero": "{chat} is in followers-only mode and the bot does not follow it",
    "msg_r9k": "{chat} is in unique-chat mode and the message is not unique",
    "msg_rejected_mandatory": "the message conflicts with {chat}'s moderation settings "
                              "(blocked terms)",
    "msg_requires_verified_phone_number": "{chat} requires a verified phone number; verify "
                                          "the bot account's phone in its Twitch settings",
    "msg_subsonly": "{chat} is in subscribers-only mode",
    "msg_suspended": "the bot's account is suspended",
    "msg_verified_email": "{chat} requires a verified email address; verify the bot "
                          "account's email in its Twitch settings",
}
_TIMEOUT_RETRY_LIMIT = 600.0
"""A timeout longer than this is not waited out by a reply: it is reported as refused."""


@dataclass(frozen=True, slots=True)
class Skip:
    """A line that is not a message for the assistant; ``level`` "" means skip silently."""

    reason: str
    level: str = ""


def sent_at(tags: dict[str, str]) -> float | None:
    """``tmi-sent-ts`` (milliseconds since the epoch) as a Unix time."""
    value = tags.get("tmi-sent-ts", "")
    return int(value) / 1000 if value.isdigit() and len(value) < 16 else None


def elevated(tags: dict[str, str]) -> bool:
    """The account a USERSTATE describes is a moderator, VIP or the broadcaster there."""
    badges = {b.partition("/")[0] for b in tags.get("badges", "").split(",") if b}
    return tags.get("mod") == "1" or bool(badges & _ELEVATED_BADGES)


def chat_line(text: str) -> str:
    """A reply part as the one chat line it is sent as: Twitch chat has no line breaks, so
    its lines are joined by spaces (blank ones left out) and the ends trimmed, as Twitch
    trims them."""
    lines = (part.strip() for part in re.split(r"\r\n|\r|\n", text.replace("\x00", "")))
    return " ".join(part for part in lines if part)


def _strip_mention(text: str, login: str) -> tuple[bool, str]:
    """(mentioned, text): ``@login`` anywhere mentions the bot, and ``login:`` the IRC way;
    where it addressed the bot (at the start, or ``@login`` at the end) it is cut, the
    kit's rule (``pyclaw_app.channels.mentions``)."""
    if not login:
        return False, text
    handle = re.escape(login)
    address = re.compile(rf"@{handle}(?!\w)|{handle}(?=[:,])", re.IGNORECASE)
    rest = addressed_text(text, address, bot_name=login)
    if rest != text:
        return True, rest
    found = re.search(rf"(?<![\w@])@{handle}(?!\w)", text, re.IGNORECASE)
    return found is not None, text


def _emotes(tags: dict[str, str], text: str) -> tuple[Attachment, ...]:
    """``emotes=25:0-4,12-16/1902:6-10`` as stickers (each emote once, named as typed)."""
    out: list[Attachment] = []
    for entry in tags.get("emotes", "").split("/"):
        emote_id, _, spans = entry.partition(":")
        start, _, end = spans.split(",")[0].partition("-")
        if not emote_id or not start.isdigit() or not end.isdigit():
            continue
        name = text[int(start):int(end) + 1] if int(start) <= int(end) < len(text) else ""
        out.append(Attachment(kind="sticker", name=name or emote_id, platform_id=emote_id,
                              url=_EMOTE_URL.format(emote_id) if emote_id.isalnum() else None))
    return tuple(out)


def _links(text: str) -> tuple[tuple[Attachment, ...], str]:
    link = media_url(text)
    if link is not None:
        kind, url = link
        return (Attachment(kind=kind, url=url, name=url.rsplit("/", 1)[-1].split("?")[0]),), ""
    clip = _CLIP.fullmatch(text.strip())
    if clip is not None:
        url = clip.group(0)
        return (Attachment(kind="video", url=url, name="Twitch clip"),), ""
    return (), text


def parse_privmsg(line: Line, *, channel: str, login: str, user_id: str = "") -> Inbound | Skip:
    """The message a PRIVMSG carries, or why it is skipped."""
    source = line.source
    if line.command != "PRIVMSG" or source is None or not source.nick or len(line.params) < 2:
        return Skip("a PRIVMSG without a sender, channel or text", "warning")
    target, text = line.params[0], line.params[1]
    if not target.startswith("#") or len(target) < 2:
        return Skip(f"a PRIVMSG to {target[:40]!r}, not to a channel", "warning")
    tags = line.tags
    if source.nick.lower() == login or (user_id and tags.get("user-id") == user_id):
        return Skip("our own line")
    ctcp = parse_ctcp(text)
    name = tags.get("display-name") or source.nick
    if ctcp is not None:
        if ctcp.command != "ACTION":
            return Skip(f"CTCP {ctcp.command[:20]} from {source.nick}")
        text = f"* {name} {ctcp.argument}"
    reply_to_bot = ((bool(login) and tags.get("reply-parent-user-login", "").lower() == login)
                    or (bool(user_id) and tags.get("reply-parent-user-id") == user_id))
    mentioned, text = _strip_mention(text, login)
    attachments = _emotes(tags, line.params[1]) if tags.get("emote-only") == "1" else ()
    if not attachments:
        attachments, text = _links(text)
    return Inbound(
        address=Address(channel=channel, chat=target.lower()),
        platform_id=tags.get("id") or f"twitch-{uuid.uuid4().hex}",
        text=text,
        sender_id=tags.get("user-id") or source.nick.lower(),
        sender_name=name,
        attachments=attachments,
        is_group=True,
        mentioned=mentioned,
        reply_to_bot=reply_to_bot,
        ts=sent_at(tags) or time.time(),
    )


def send_outcome(msg_id: str, text: str, chat: str, window: float) -> ConnectorError | None:
    """The error a NOTICE answering our PRIVMSG means, or None when it is not about a send.

    Dropped for speed (``msg_ratelimit``, ``msg_slowmode``, ``msg_duplicate``) or for a
    short timeout: retryable after the time Twitch names (a window when it names none).
    Held by AutoMod (``msg_rejected``): it may still be approved, so uncertain. A room
    mode, a ban or a blocked term: fatal, with the reason in Twitch's words."""
    seconds = _SECONDS.search(text)
    wait = float(seconds.group(1)) if seconds else None
    if msg_id == "msg_ratelimit":
        return RetryableError(f"Twitch dropped the message to {chat}: sent too fast "
                              f"({text})", retry_after=window)
    if msg_id == "msg_slowmode":
        return RetryableError(f"{chat} is in slow mode ({text})", retry_after=wait or window)
    if msg_id == "msg_duplicate":
        return RetryableError(f"Twitch dropped a repeat of the last message to {chat}",
                              retry_after=30.0)
    if msg_id == "msg_timedout":
        if wait is not None and wait <= _TIMEOUT_RETRY_LIMIT:
            return RetryableError(f"the bot is timed out in {chat} ({text})", retry_after=wait)
        return FatalConnectorError(f"cannot send to {chat}: the bot is timed out there ({text})")
    if msg_id == "msg_rejected":
        return DeliveryUncertain(f"AutoMod is holding the message to {chat} for the "
                                 "moderators; it appears if they approve it")
    reason = _FATAL_NOTICES.get(msg_id)
    if reason is not None:
        return FatalConnectorError(f"cannot send to {chat}: {reason.format(chat=chat)} "
                                   f"(Twitch: {text})")
    return None
