"""Slack's config model and spec; imports pydantic only, so listing channels never loads the SDK."""

from __future__ import annotations

from typing import Literal

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

__all__ = ["MAX_TEXT", "SPEC", "SlackConfig"]

MAX_TEXT = 4000
"""Slack recommends keeping ``chat.postMessage`` text under 4,000 characters (it truncates
at 40,000); the gateway splits replies at this many characters (before the connector's
``& < >`` escaping, which at most quintuples a part: still under 40,000)."""


class SlackConfig(ChannelConfig):
    bot_token: SecretStr | None = secret_field(
        "Bot User OAuth Token (starts with xoxb-), from OAuth & Permissions. Needs the "
        "chat:write, app_mentions:read, im:history and users:read scopes (and files:read "
        "to read the pictures, voice notes and documents people send).", required=True
    )
    app_token: SecretStr | None = secret_field(
        "App-Level Token (starts with xapp-) with the connections:write scope, from Basic "
        "Information. Needed in Socket Mode only.", shown_when={"mode": "socket"}
    )
    signing_secret: SecretStr | None = secret_field(
        "Signing Secret from Basic Information. Needed for the Events API (HTTP) mode only: "
        "every request is checked against it.", shown_when={"mode": "events"}
    )
    mode: Literal["socket", "events"] = Field(
        "socket",
        description="socket: the app connects out to Slack (no public URL needed). events: "
        "Slack POSTs events to this gateway's webhook URL (needs a public HTTPS URL).",
        json_schema_extra={"group": "essentials", "options": {
            "socket": "Socket Mode (no public URL needed)",
            "events": "Events API (needs a public HTTPS URL)"}},
    )
    base_url: str = Field(
        "https://slack.com/api/",
        description="Web API base URL. Change only for a Slack-compatible server or a proxy.",
    )

    def needs_webhook(self) -> bool:
        return self.mode == "events"

    def missing_secrets(self) -> list[str]:
        needed = "signing_secret" if self.mode == "events" else "app_token"
        return super().missing_secrets() + ([needed] if getattr(self, needed) is None else [])


SPEC = ConnectorSpec(
    name="slack",
    title="Slack",
    config_model=SlackConfig,
    runtime="connectors.slack.runtime:SlackConnector",
    requires=("slack_sdk",),
    install="pip install 'pyclaw[slack]'",
    icon="tag",
    category=Category.TEAM_CHAT,
    brand_icon="slack",
    brand_color="#4A154B",
    docs_url="https://docs.slack.dev/apis/events-api/using-socket-mode/",
    description="A Slack app that answers direct messages and, in channels, @mentions and "
    "its own threads (group_reply), replying in threads. Socket Mode needs no public URL.",
    transport=Transport.WEBSOCKET,
    # Edits are chat.update (streamed replies); Slack has no typing indicator for bots
    # outside the legacy RTM API.
    capabilities=Capabilities(edit=True, typing=False, threads=True, attachments=True,
                              send_only=True, files=True),
    # chat.update is a Tier 3 method: about 50 calls a minute per workspace
    # (docs.slack.dev/apis/web-api/rate-limits), so live drafts share 0.8 a second.
    limits=Limits(max_text=MAX_TEXT, edits_per_second=0.8),
)
