"""Telegram's setup spec: the config model the UI renders and the connector's declared limits.

Imports pydantic only, so listing channel types never pays for python-telegram-bot.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

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

__all__ = ["MAX_TEXT", "SPEC", "TelegramConfig"]

MAX_TEXT = 4096
"""Bot API limit for one message's text, counted in UTF-16 code units after entity parsing."""


class TelegramConfig(ChannelConfig):
    token: SecretStr | None = secret_field(
        "Bot token from @BotFather, e.g. 123456:ABC-DEF... (stored in the keyring).", required=True,
        title="Bot token",
    )
    base_url: str = Field(
        "https://api.telegram.org/bot",
        description="Bot API endpoint; the token is appended. Change it for a self-hosted "
        "telegram-bot-api server (e.g. http://localhost:8081/bot).",
    )
    base_file_url: str = Field(
        "https://api.telegram.org/file/bot",
        description="Where attachments are downloaded from; the token is appended.",
    )
    mode: Literal["polling", "webhook"] = Field(
        "polling",
        description="polling: the gateway asks Telegram for updates (works behind NAT). "
        "webhook: Telegram posts updates to webhook_url (needs a public HTTPS address).",
        json_schema_extra={"group": "essentials", "options": {
            "polling": "Polling (works behind NAT)",
            "webhook": "Webhook (needs a public HTTPS URL)"}},
    )
    webhook_url: str = Field(
        "",
        description="Public HTTPS URL Telegram posts updates to (webhook mode only); it must "
        "reach pyclaw's webhook server at /webhook/<channel name>, e.g. through a reverse proxy.",
        json_schema_extra={"group": "essentials", "shown_when": {"mode": "webhook"}},
    )
    webhook_secret: SecretStr | None = secret_field(
        "Secret Telegram sends in X-Telegram-Bot-Api-Secret-Token with every webhook "
        "call (1-256 characters: A-Z, a-z, 0-9, _ and -). Required in webhook mode.",
        shown_when={"mode": "webhook"},
    )
    poll_timeout: int = Field(
        30, ge=0, le=50, description="Long-polling wait in seconds (polling mode).",
        json_schema_extra={"shown_when": {"mode": "polling"}},
    )

    def needs_webhook(self) -> bool:
        return self.mode == "webhook"

    def missing_secrets(self) -> list[str]:
        webhook = self.mode == "webhook" and self.webhook_secret is None
        return super().missing_secrets() + (["webhook_secret"] if webhook else [])

    @model_validator(mode="after")
    def _webhook_needs_url(self) -> TelegramConfig:
        if self.mode == "webhook" and not self.webhook_url:
            raise ValueError("webhook mode needs webhook_url")
        return self


SPEC = ConnectorSpec(
    name="telegram",
    title="Telegram",
    config_model=TelegramConfig,
    runtime="connectors.telegram.runtime:TelegramConnector",
    requires=("telegram",),
    install="pip install 'pyclaw[telegram]'",
    icon="send",
    category=Category.CHAT_APPS,
    brand_icon="telegram",
    brand_color="#26A5E4",
    docs_url="https://core.telegram.org/bots/tutorial#obtain-your-bot-token",
    description="A Telegram bot: private chats, groups (on mention or reply) and forum topics. "
    "Create the bot with @BotFather and paste its token. To answer every group message "
    "(group_reply: all), turn off privacy mode in @BotFather.",
    transport=Transport.POLLING,
    capabilities=Capabilities(edit=True, typing=True, threads=True, attachments=True,
                              send_only=True, files=True),
    # Telegram asks bots to stay under about 30 requests a second overall; live drafts get
    # 20 of them, the rest is left for replies (core.telegram.org/bots/faq).
    limits=Limits(max_text=MAX_TEXT, text_length=utf16_len, edits_per_second=20.0),
)
