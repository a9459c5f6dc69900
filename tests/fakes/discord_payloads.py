"""Wire shapes of Discord API v10 objects, as the fake Discord sends them.

Field sets follow the published object docs (User, Channel, Thread, Guild,
Message, Ready) so the real discord.py parses them the way it parses Discord's
own payloads. Kept apart from the server so tests can build events by hand.
"""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "DISCORD_EPOCH_MS",
    "GUILD_TEXT",
    "PUBLIC_THREAD",
    "application",
    "dm_channel",
    "guild_create",
    "iso_now",
    "message",
    "snowflake",
    "text_channel",
    "thread_channel",
    "user",
]

DISCORD_EPOCH_MS = 1_420_070_400_000
GUILD_TEXT = 0
DM = 1
PUBLIC_THREAD = 11

_increment = itertools.count()


def snowflake() -> str:
    """A fresh, increasing snowflake id (ms since the Discord epoch << 22 | counter)."""
    ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
    return str((ms << 22) | (1 << 17) | (next(_increment) % 4096))


def iso_now() -> str:
    return datetime.now(UTC).isoformat()


def user(uid: str, username: str, *, bot: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": uid,
        "username": username,
        "discriminator": "0",
        "global_name": username.title(),
        "avatar": None,
        "public_flags": 0,
    }
    if bot:
        data["bot"] = True
    return data


def application(app_id: str, bot: dict[str, Any]) -> dict[str, Any]:
    """GET /oauth2/applications/@me: the fields discord.py's AppInfo requires."""
    return {
        "id": app_id,
        "name": bot["username"],
        "icon": None,
        "description": "",
        "summary": "",
        "bot_public": True,
        "bot_require_code_grant": False,
        "verify_key": "0" * 64,
        "owner": user("100000000000000001", "owner"),
        "flags": 1 << 19,  # GATEWAY_MESSAGE_CONTENT_LIMITED
        "bot": bot,
    }


def text_channel(cid: str, guild_id: str, name: str) -> dict[str, Any]:
    return {
        "id": cid,
        "type": GUILD_TEXT,
        "guild_id": guild_id,
        "name": name,
        "position": 0,
        "permission_overwrites": [],
        "nsfw": False,
        "topic": None,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "parent_id": None,
    }


def dm_channel(cid: str, recipient: dict[str, Any]) -> dict[str, Any]:
    return {"id": cid, "type": DM, "last_message_id": None, "recipients": [recipient]}


def thread_channel(tid: str, guild_id: str, parent_id: str, owner_id: str,
                   name: str) -> dict[str, Any]:
    return {
        "id": tid,
        "type": PUBLIC_THREAD,
        "guild_id": guild_id,
        "parent_id": parent_id,
        "owner_id": owner_id,
        "name": name,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "message_count": 0,
        "member_count": 1,
        "flags": 0,
        "thread_metadata": {
            "archived": False,
            "auto_archive_duration": 1440,
            "archive_timestamp": iso_now(),
            "locked": False,
        },
    }


def guild_create(guild_id: str, name: str, owner_id: str, channels: list[dict[str, Any]],
                 threads: list[dict[str, Any]]) -> dict[str, Any]:
    """GUILD_CREATE: a Guild object plus the gateway-only extras (channels, threads...)."""
    return {
        "id": guild_id,
        "name": name,
        "icon": None,
        "splash": None,
        "discovery_splash": None,
        "owner_id": owner_id,
        "afk_channel_id": None,
        "afk_timeout": 300,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "roles": [{
            "id": guild_id, "name": "@everyone", "color": 0, "hoist": False, "position": 0,
            "permissions": "1071698660929", "managed": False, "mentionable": False, "flags": 0,
        }],
        "emojis": [],
        "stickers": [],
        "features": [],
        "mfa_level": 0,
        "system_channel_id": None,
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "vanity_url_code": None,
        "description": None,
        "banner": None,
        "premium_tier": 0,
        "preferred_locale": "en-US",
        "public_updates_channel_id": None,
        "nsfw_level": 0,
        "premium_progress_bar_enabled": False,
        "joined_at": iso_now(),
        "large": False,
        "unavailable": False,
        "member_count": 2,
        "voice_states": [],
        "members": [],
        "channels": channels,
        "threads": threads,
        "presences": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
    }


def message(mid: str, channel_id: str, author: dict[str, Any], content: str, *,
            guild_id: str | None = None, mentions: list[dict[str, Any]] | None = None,
            attachments: list[dict[str, Any]] | None = None,
            reference: dict[str, Any] | None = None,
            referenced_message: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Message object (MESSAGE_CREATE ``d`` and the POST /messages answer)."""
    data: dict[str, Any] = {
        "id": mid,
        "type": 19 if reference else 0,  # REPLY / DEFAULT
        "channel_id": channel_id,
        "author": author,
        "content": content,
        "timestamp": iso_now(),
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": mentions or [],
        "mention_roles": [],
        "attachments": attachments or [],
        "embeds": [],
        "pinned": False,
        "flags": 0,
        "components": [],
    }
    if guild_id is not None:
        data["guild_id"] = guild_id
        data["member"] = {"roles": [], "joined_at": iso_now(), "deaf": False, "mute": False,
                          "flags": 0}
    if reference is not None:
        data["message_reference"] = reference
        data["referenced_message"] = referenced_message
    return data
