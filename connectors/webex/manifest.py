"""Webex's config model and spec; imports pydantic and the kit only."""

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
    utf8_len,
)

__all__ = ["API_BASE", "MAX_TEXT", "SPEC", "WebexConfig"]

API_BASE = "https://webexapis.com/v1"
MAX_TEXT = 7439
"""``text`` and ``markdown`` of a message hold at most 7,439 bytes ("The maximum message
length is 7439 bytes", Create a Message and Edit a Message in webex-messaging.json of
github.com/webex/webex-openapi-specs). Counted in UTF-8 bytes by :func:`utf8_len`, so an
emoji costs four and an accented letter two, as Webex counts them."""



class WebexConfig(ChannelConfig):
    access_token: SecretStr | None = secret_field(
        "The bot's access token, shown once when you create the bot at developer.webex.com "
        "(My Webex Apps > Create a Bot; regenerate it there if it is lost). A bot token is "
        "long-lived; a personal access token from the developer portal is short-lived "
        "(12 hours) and only fit for a quick test.", required=True)
    webhook_secret: SecretStr | None = secret_field(
        "A secret you choose (say 40 random characters). Webex signs every notification with "
        "it (X-Spark-Signature) and the channel refuses any that does not match. With "
        "webhook_url set the channel registers it with Webex itself; otherwise give the same "
        "secret when you create the webhook.", required=True)
    webhook_url: str = Field(
        "", pattern=r"^(https?://\S+)?$",
        description="The public HTTPS address Webex posts to: this gateway's "
        "/webhook/<channel name>, e.g. https://bot.example.com/webhook/webex. When set, the "
        "channel registers the webhook (messages created) on every start, updating the one "
        "it registered before instead of adding another; empty: create it yourself "
        "(POST /v1/webhooks with the same secret).")
    message_format: Literal["markdown", "text"] = Field(
        "markdown", description="markdown: replies are rendered (bold, lists, code, links); "
        "text: sent as plain text, exactly as written.")
    api_base: str = Field(API_BASE, description="Webex REST API base URL. Change only for a "
                          "proxy or a Webex-compatible test server.")

    def needs_webhook(self) -> bool:
        return True  # Webex only pushes notifications: /webhook/<channel name> must be public


SPEC = ConnectorSpec(
    name="webex",
    title="Webex",
    config_model=WebexConfig,
    runtime="connectors.webex.runtime:WebexConnector",
    icon="chat",
    category=Category.TEAM_CHAT,
    brand_icon="webex",
    brand_color="#000000",
    docs_url="https://developer.webex.com/docs/bots",
    description="A Webex bot that answers 1:1 spaces and, in group spaces, the messages that "
    "@mention it (Webex sends a bot nothing else there), in a thread under the message. "
    "Replies stream by editing the message. Needs a public HTTPS webhook URL.",
    requires=(),
    transport=Transport.WEBHOOK,
    # Messages can be edited (at most 10 times each); Webex has no typing indicator for bots.
    capabilities=Capabilities(edit=True, typing=False, threads=True, attachments=True),
    limits=Limits(max_text=MAX_TEXT, text_length=utf8_len),
)
