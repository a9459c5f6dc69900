"""What the setup form and the registry know about Rocket.Chat (pydantic and the kit only)."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from pyclaw_app.channels import (
    Capabilities,
    Category,
    ChannelConfig,
    ConnectorSpec,
    Limits,
    Transport,
    secret_field,
    utf16_len,
)

__all__ = ["MAX_TEXT", "SPEC", "RocketChatConfig"]

MAX_TEXT = 5000
"""The server setting Message_MaxAllowedSize (Administration > Settings > Message), 5000 by
default. Rocket.Chat counts grapheme clusters; the channel splits in UTF-16 code units (a
JavaScript string's length), which is never fewer, so a part always fits."""


class RocketChatConfig(ChannelConfig):
    server_url: str = Field(
        "", pattern=r"^(https?://\S+)?$",
        description="The workspace address as people open it, e.g. https://chat.example.com "
        "(the REST API is under /api/v1, the realtime API at /websocket).")
    user_id: str = Field(
        "", description="The bot user's id, shown with its personal access token (the "
        "X-User-Id value), e.g. rbAXPnMktTFbNpwtJ.")
    auth_token: SecretStr | None = secret_field(
        "A personal access token of the bot user: log in as the bot, My Account > Personal "
        "Access Tokens > Add (tick 'Ignore Two Factor Authentication'). Rocket.Chat shows "
        "it once, together with the user id.", required=True)
    ca_file: str = Field(
        "", description="A PEM file with the CA certificate(s) that signed the server's "
        "certificate, for a server with a private or self-signed one; empty: the system's "
        "trusted CAs.")
    max_text: int = Field(
        MAX_TEXT, ge=100, le=100_000, description="Longest message the server takes: its "
        "Message_MaxAllowedSize setting (5000 unless an administrator changed it). Longer "
        "replies are split into several messages.")
    ping_interval: float = Field(
        25.0, ge=0.1, le=300.0, description="Seconds of silence on the realtime connection "
        "before the channel pings the server; a ping unanswered for as long again counts as "
        "a dead connection and the channel reconnects.")

    @field_validator("server_url")
    @classmethod
    def _no_trailing_slash(cls, url: str) -> str:
        return url.strip().rstrip("/")


SPEC = ConnectorSpec(
    name="rocketchat",
    title="Rocket.Chat",
    config_model=RocketChatConfig,
    runtime="connectors.rocketchat.runtime:RocketChatConnector",
    icon="rocket_launch",
    category=Category.TEAM_CHAT,
    brand_icon="rocketchat",
    brand_color="#F5455C",
    docs_url="https://developer.rocket.chat/apidocs/realtime-api",
    description="A Rocket.Chat bot user: answers direct messages and, in channels and private "
                "groups, mentions and its threads. Streams replies by editing the message and "
                "shows typing; catches up on what arrived while it was away.",
    requires=(),
    install="",
    transport=Transport.WEBSOCKET,
    capabilities=Capabilities(edit=True, typing=True, threads=True, attachments=True,
                              send_only=True),
    limits=Limits(max_text=MAX_TEXT, text_length=utf16_len),
)
