"""A PRIVMSG line -> :class:`Inbound`, as a pure function that never raises.

The group rule is reported, not applied: a channel message is ``is_group``,
``mentioned`` when it addresses the bot (``nick: text``, whose prefix is stripped, or
the nick as a word), and ``reply_to_bot`` when its IRCv3 ``+draft/reply`` tag names a
line the bot sent. ``/me`` (CTCP ACTION) is read as text, formatting codes are
stripped, and a DCC SEND offer or a bare link to a media file (what clients post after
uploading a picture) is reported as an attachment, metadata only.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Container
from dataclasses import dataclass
from datetime import datetime

from connectors.irc._parse import (
    Line,
    casefold,
    media_kind,
    media_url,
    parse_ctcp,
    split_mention,
    strip_formatting,
)
from pyclaw_app.model import Address, Attachment, Inbound

__all__ = ["Skip", "Viewpoint", "parse_privmsg", "server_time"]


@dataclass(frozen=True, slots=True)
class Viewpoint:
    """What the bot knows when it reads a line: its nick and the server's conventions."""

    channel: str
    nick: str
    chantypes: str = "#&"
    casemapping: str = "rfc1459"


@dataclass(frozen=True, slots=True)
class Skip:
    """A line that is not a message for the assistant; ``level`` "" means skip silently
    (a CTCP VERSION request), else log ``reason`` at that level."""

    reason: str
    level: str = ""


def server_time(tags: dict[str, str]) -> float | None:
    """The IRCv3 ``time`` tag (``2026-12-02T00:20:03.998Z``) as a Unix time."""
    value = tags.get("time", "")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _dcc_send(argument: str) -> Attachment | None:
    """``DCC SEND <file> <ip> <port> [size]`` (a quoted file name may hold spaces)."""
    if argument.startswith('"'):
        name, _, rest = argument[1:].partition('"')
        fields = rest.split()
    else:
        name, *fields = argument.split() or [""]
    if not name or len(fields) < 2 or not all(f.isdigit() for f in fields[:3]):
        return None
    size = int(fields[2]) if len(fields) > 2 else None
    return Attachment(kind=media_kind(name), name=name.rsplit("/", 1)[-1], size=size)


def parse_privmsg(line: Line, view: Viewpoint, *,
                  own_ids: Container[str] = ()) -> Inbound | Skip:
    """The message a PRIVMSG carries, or why it is skipped. The platform id is the IRCv3
    ``msgid`` (stable across history replays, so a replay is recognised); without one,
    a fresh id: IRC then never delivers a line twice, so there is nothing to match."""
    source = line.source
    if line.command != "PRIVMSG" or source is None or not source.nick or len(line.params) < 2:
        return Skip("a PRIVMSG without a sender, target or text", "warning")
    target, text = line.params[0], line.params[1]
    if not target:
        return Skip("a PRIVMSG without a target", "warning")
    if casefold(source.nick, view.casemapping) == casefold(view.nick, view.casemapping):
        return Skip("our own line")
    is_group = target[0] in view.chantypes or (target[0] in "@+~&%" and len(target) > 1
                                               and target[1] in view.chantypes)
    attachments: tuple[Attachment, ...] = ()
    ctcp = parse_ctcp(text)
    if ctcp is not None:
        if ctcp.command == "ACTION":
            text = f"* {source.nick} {ctcp.argument}"
        elif ctcp.command == "DCC" and ctcp.argument.upper().startswith("SEND"):
            offer = _dcc_send(ctcp.argument[4:].strip())
            if offer is None:
                return Skip(f"a malformed DCC SEND offer from {source.nick}", "warning")
            attachments, text = (offer,), ""
        else:
            return Skip(f"CTCP {ctcp.command[:20]} from {source.nick}")
    text = strip_formatting(text)
    mentioned = False
    if is_group:
        mentioned, text = split_mention(text, view.nick, view.casemapping)
    link = media_url(text) if not attachments else None
    if link is not None:
        kind, url = link
        attachments, text = (Attachment(kind=kind, url=url,
                                        name=url.rsplit("/", 1)[-1].split("?")[0]),), ""
    chat = source.nick if not is_group else target if target[0] in view.chantypes \
        else target[1:]  # "@#chan": a message to the channel's operators
    account = line.tags.get("account", "")
    msgid = line.tags.get("msgid", "")
    return Inbound(
        address=Address(channel=view.channel, chat=casefold(chat, view.casemapping)),
        platform_id=msgid or f"irc-{uuid.uuid4().hex}",
        text=text,
        sender_id=account or f"{source.nick}!{source.user}@{source.host}",
        sender_name=source.nick,
        attachments=attachments,
        is_group=is_group,
        mentioned=mentioned,
        reply_to_bot=line.tags.get("+draft/reply", "") in own_ids,
        ts=server_time(line.tags) or time.time(),
    )
