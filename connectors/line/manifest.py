"""LINE's config model and spec; imports pydantic and the kit only."""

from __future__ import annotations

from urllib.parse import urlsplit

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

__all__ = ["MAX_TEXT", "SPEC", "LineConfig"]

MAX_TEXT = 5000
"""A text message holds at most 5,000 characters, counted in UTF-16 code units
(developers.line.biz/en/docs/messaging-api/text-character-count/)."""


class LineConfig(ChannelConfig):
    channel_access_token: SecretStr | None = secret_field(
        "Channel access token (long-lived), from the Messaging API tab of the channel in the "
        "LINE Developers Console.", required=True)
    channel_secret: SecretStr | None = secret_field(
        "Channel secret, from the Basic settings tab: every webhook request is checked "
        "against it (X-Line-Signature).", required=True)
    api_base: str = Field("https://api.line.me", description="Messaging API base URL. "
                          "Change only for a LINE-compatible server or a proxy.")

    @field_validator("api_base")
    @classmethod
    def _http_url(cls, value: str) -> str:
        """The SDK appends API paths to it as it is: it must be a whole http(s) URL."""
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http:// or https:// URL, e.g. https://api.line.me")
        return value.strip().rstrip("/")

    def needs_webhook(self) -> bool:
        return True  # LINE only pushes: set the Webhook URL to /webhook/<channel name>


SPEC = ConnectorSpec(
    name="line",
    title="LINE",
    config_model=LineConfig,
    runtime="connectors.line.runtime:LineConnector",
    icon="chat",
    category=Category.CHAT_APPS,
    brand_icon="line",
    brand_color="#00C300",
    requires=("linebot",),
    install="pip install 'pyclaw[line]'",
    docs_url="https://developers.line.biz/en/docs/messaging-api/building-bot/",
    description="A LINE Official Account that answers one-on-one chats and, in groups and "
    "multi-person chats, mentions and replies to its messages (group_reply). Needs a public "
    "HTTPS webhook URL.",
    transport=Transport.WEBHOOK,
    # No edit API; the loading animation (POST /v2/bot/chat/loading/start) is "typing",
    # shown by LINE in one-on-one chats only.
    capabilities=Capabilities(edit=False, typing=True, attachments=True),
    limits=Limits(max_text=MAX_TEXT, text_length=utf16_len),
)
