"""What the setup form and the registry know about Discord; imports no SDK."""

from __future__ import annotations

from pydantic import Field, SecretStr

from pyclaw_app.channels import (
    Capabilities,
    Category,
    ChannelConfig,
    ConnectorSpec,
    Limits,
    Transport,
    secret_field,
)

__all__ = ["MAX_TEXT", "SPEC", "DiscordConfig"]

MAX_TEXT = 2000
"""Discord's limit for a message's ``content``, in characters."""


class DiscordConfig(ChannelConfig):
    token: SecretStr | None = secret_field(
        "Bot token from the Developer Portal (Applications -> your app -> Bot -> Reset Token). "
        "Also enable the Message Content intent on that page.", required=True)
    api_base: str = Field(
        "",
        description="REST API base URL for a Discord-compatible server, e.g. "
                    "https://my-server.example/api/v10. Blank: https://discord.com/api/v10. "
                    "discord.py keeps this process-wide: it applies to every Discord channel "
                    "of this gateway.",
    )
    gateway_url: str = Field(
        "",
        description="Gateway WebSocket URL for a Discord-compatible server. "
                    "Blank: wss://gateway.discord.gg/. Process-wide, like the API base.",
    )


SPEC = ConnectorSpec(
    name="discord",
    title="Discord",
    config_model=DiscordConfig,
    runtime="connectors.discord.runtime:DiscordConnector",
    requires=("discord",),
    install="pip install 'pyclaw[discord]'",
    icon="forum",
    category=Category.TEAM_CHAT,
    brand_icon="discord",
    brand_color="#5865F2",
    docs_url="https://discord.com/developers/docs/quick-start/getting-started",
    description="A Discord bot: answers direct messages, and mentions or replies in servers "
                "and threads. Needs a bot token with the Message Content intent.",
    transport=Transport.WEBSOCKET,
    capabilities=Capabilities(edit=True, typing=True, threads=True, attachments=True,
                              files=True, send_only=True),
    limits=Limits(max_text=MAX_TEXT),
)
