"""Twilio's config model and spec; imports pydantic and the kit only."""

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

__all__ = ["MAX_TEXT", "SPEC", "TwilioConfig"]

MAX_TEXT = 1600
"""A message's ``Body`` holds at most 1,600 characters (Messages resource, ``Body``; error
21617). Counted here in UTF-16 code units, which is never less than Twilio's count: an SMS
carries text as GSM-7 or UCS-2, where an emoji outside the BMP takes two units."""


class TwilioConfig(ChannelConfig):
    account_sid: str = Field("", pattern=r"^(AC[0-9a-fA-F]{32})?$", description=(
        "Account SID (AC...), from the Twilio Console's Account Info panel."))
    auth_token: SecretStr | None = secret_field(
        "Auth Token of that account (Account Info panel). Twilio signs every webhook with "
        "it (X-Twilio-Signature), so it is needed even when an API key sends the replies.",
        required=True)
    api_key_sid: str = Field("", pattern=r"^(SK[0-9a-fA-F]{32})?$", description=(
        "Optional API key SID (SK...) to send with instead of the Auth Token (Console > "
        "Account > API keys & tokens). Leave empty to use the Auth Token."))
    api_key_secret: SecretStr | None = secret_field(
        "The API key's secret, shown once when the key is created (only with api_key_sid).")
    webhook_url: str = Field("", description=(
        "This channel's public URL exactly as Twilio calls it, e.g. "
        "https://gateway.example.com/webhook/twilio. Paste the same URL into the phone "
        "number's (or Messaging Service's, or WhatsApp sender's) \"A message comes in\" "
        "webhook, method HTTP POST. Twilio signs this URL, so it must match to the "
        "character (scheme, host, path, query)."))
    from_number: str = Field("", description=(
        "Sender for messages to a chat no one wrote in from one of your numbers: a Twilio "
        "number in E.164 (+15551234567) or whatsapp:+15551234567. Replies always go out "
        "from the number the user wrote to."))
    messaging_service_sid: str = Field("", pattern=r"^(MG[0-9a-fA-F]{32})?$", description=(
        "Optional Messaging Service SID (MG...): replies are sent through it (its sender "
        "pool, opt-out handling and compliance settings)."))
    status_callbacks: bool = Field(True, description=(
        "Ask Twilio to report each reply's delivery to webhook_url, so a reply that fails "
        "after it was accepted (an unreachable handset, a carrier filter, WhatsApp's "
        "24-hour window) shows in this channel's log with Twilio's error code."))
    max_text: int = Field(MAX_TEXT, ge=70, le=MAX_TEXT, description=(
        "Longest reply part. Twilio takes up to 1,600 characters and splits an SMS into "
        "153-character (67 with emoji or non-Latin text) segments, each billed; lower this "
        "to keep each part to fewer segments."))
    api_base: str = Field("https://api.twilio.com", description=(
        "REST API base URL. Change only for a regional endpoint "
        "(https://api.dublin.ie1.twilio.com) or a proxy."))
    messaging_api_base: str = Field("https://messaging.twilio.com", description=(
        "Messaging v2 API base URL (WhatsApp typing indicators). Change only for a proxy."))

    @field_validator("webhook_url", "api_base", "messaging_api_base")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip()
        if value and (urlsplit(value).scheme not in ("http", "https")
                      or not urlsplit(value).hostname):
            raise ValueError("must be an http:// or https:// URL with a host name")
        return value

    def needs_webhook(self) -> bool:
        return True  # Twilio only pushes: set "A message comes in" to /webhook/<name>

    def missing_secrets(self) -> list[str]:
        keyed = bool(self.api_key_sid) and self.api_key_secret is None
        return super().missing_secrets() + (["api_key_secret"] if keyed else [])


SPEC = ConnectorSpec(
    name="twilio",
    title="Twilio",
    config_model=TwilioConfig,
    runtime="connectors.twilio.runtime:TwilioConnector",
    requires=("twilio",),
    install="pip install 'pyclaw[twilio]'",
    icon="sms",
    category=Category.CHAT_APPS,
    brand_icon="twilio",
    brand_color="#F22F46",
    docs_url="https://www.twilio.com/docs/messaging/quickstart",
    description="SMS and WhatsApp through Twilio: people text one of your Twilio numbers (or "
    "your WhatsApp sender) and get the answers back from it. WhatsApp replies are possible "
    "for 24 hours after the user's last message. Needs a public HTTPS webhook URL.",
    transport=Transport.WEBHOOK,
    # No edit API; typing is Messaging v2's WhatsApp typing indicator (SMS has none).
    capabilities=Capabilities(edit=False, typing=True, attachments=True),
    limits=Limits(max_text=MAX_TEXT, text_length=utf16_len),
)
