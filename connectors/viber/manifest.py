"""Viber's config model and spec; imports pydantic and the kit only."""

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

__all__ = ["API_BASE", "MAX_SENDER_NAME", "MAX_TEXT", "SPEC", "ViberConfig"]

API_BASE = "https://chatapi.viber.com/pa"
MAX_TEXT = 7000
"""A text message holds at most 7,000 characters (send_message, "Text message")."""
MAX_SENDER_NAME = 28
"""``sender.name`` of a sent message: at most 28 characters."""


class ViberConfig(ChannelConfig):
    auth_token: SecretStr | None = secret_field(
        "The bot's authentication token (\"Your app key\": in Viber, More > Settings > Bots > "
        "Edit Info, or the Viber Admin Panel). It signs every callback too "
        "(X-Viber-Content-Signature).", required=True)
    webhook_url: str = Field(
        "", description="The public HTTPS address Viber posts to: this gateway's "
        "/webhook/<channel name>, e.g. https://bot.example.com/webhook/viber. Viber accepts "
        "only a certificate from a trusted CA; it is registered (set_webhook) on every start.")
    bot_name: str = Field(
        "", max_length=MAX_SENDER_NAME, description="The sender name shown on the bot's "
        "messages (at most 28 characters); empty: the bot account's own name.")
    welcome_message: str = Field(
        "", max_length=MAX_TEXT, description="Sent once when someone opens the chat with the "
        "bot (conversation_started), before they have written anything; empty: none.")
    api_base: str = Field(API_BASE, description="REST bot API base URL. Change only for a "
                          "proxy or a Viber-compatible test server.")

    def needs_webhook(self) -> bool:
        return True  # Viber only pushes callbacks: it needs /webhook/<channel name> public


SPEC = ConnectorSpec(
    name="viber",
    title="Viber",
    config_model=ViberConfig,
    runtime="connectors.viber.runtime:ViberConnector",
    icon="chat",
    category=Category.CHAT_APPS,
    brand_icon="viber",
    brand_color="#7360F2",
    docs_url="https://developers.viber.com/docs/api/rest-bot-api/#get-started",
    description="A Viber bot that answers one-on-one chats with its subscribers (Viber bots "
    "have no groups), with an optional welcome message. Needs a public HTTPS webhook URL.",
    requires=(),
    transport=Transport.WEBHOOK,
    # No edit API and no typing indicator for bots; received media is kept as metadata.
    capabilities=Capabilities(edit=False, typing=False, attachments=True),
    limits=Limits(max_text=MAX_TEXT),
)
