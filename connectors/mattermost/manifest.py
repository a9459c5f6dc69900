"""What the setup form and the registry know about Mattermost; imports pydantic and the kit only."""

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
)

__all__ = ["MAX_TEXT", "SPEC", "MattermostConfig"]

MAX_TEXT = 16383
"""Characters (Unicode code points, Go's runes) of one post: ``model.PostMessageMaxRunesV2``,
what every server whose ``Posts.Message`` column was widened (all since 5.0) accepts."""


class MattermostConfig(ChannelConfig):
    url: str = Field(
        min_length=1, description="The Mattermost server's address, e.g. "
        "https://chat.example.com (what you open in the browser, without /api/v4).")
    token: SecretStr | None = secret_field(
        "The bot's access token: System Console > Integrations > Bot Accounts > Add Bot "
        "Account shows it once; or a user's personal access token (Profile > Security > "
        "Personal Access Tokens, enabled by an admin).", required=True)
    max_text: int = Field(
        MAX_TEXT, ge=100, le=MAX_TEXT, description="Longest post the server accepts, in "
        "characters. 16383 on current servers; 4000 on servers whose database was never "
        "migrated (the System Console's MaxPostSize says which).")
    ping_interval: float = Field(
        30.0, ge=1, description="Seconds of silence on the WebSocket after which the bot "
        "pings the server.")
    ping_timeout: float = Field(
        20.0, ge=1, description="Seconds to wait for the answer to that ping before the "
        "connection is taken for dead and made again.")

    @field_validator("url")
    @classmethod
    def _base_url(cls, url: str) -> str:
        url = url.strip().rstrip("/").removesuffix("/api/v4")
        if not url.startswith(("https://", "http://")):
            raise ValueError("the server URL starts with https:// (or http:// on a trusted "
                             "network)")
        return url


SPEC = ConnectorSpec(
    name="mattermost",
    title="Mattermost",
    config_model=MattermostConfig,
    runtime="connectors.mattermost.runtime:MattermostConnector",
    requires=(),
    install="",
    icon="forum",
    category=Category.TEAM_CHAT,
    brand_icon="mattermost",
    brand_color="#0058CC",
    docs_url="https://developers.mattermost.com/integrate/reference/bot-accounts/",
    description="A bot account on a Mattermost server: answers direct messages and, in "
                "channels, @mentions and replies in its threads. Streams replies by editing "
                "the post and shows typing; messages missed while disconnected are fetched "
                "back.",
    transport=Transport.WEBSOCKET,
    capabilities=Capabilities(edit=True, typing=True, threads=True, attachments=True,
                              send_only=True, files=True),
    limits=Limits(max_text=MAX_TEXT),
)
