"""WhatsApp's config model and spec; imports pydantic and the kit only."""

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

__all__ = ["MAX_TEXT", "SPEC", "WhatsAppConfig"]

MAX_TEXT = 4096
"""A text message's ``text.body`` holds at most 4,096 characters (Cloud API reference,
"Text messages")."""


class WhatsAppConfig(ChannelConfig):
    access_token: SecretStr | None = secret_field(
        "A system-user access token with whatsapp_business_messaging permission (Business "
        "settings > System users), or the temporary token from the app's WhatsApp > API "
        "Setup page.", required=True)
    app_secret: SecretStr | None = secret_field(
        "The app secret (App settings > Basic): every webhook POST is checked against it "
        "(X-Hub-Signature-256).", required=True)
    verify_token: SecretStr | None = secret_field(
        "Any string you choose; enter the same one as the Verify token when you set this "
        "channel's webhook URL in the app's WhatsApp > Configuration page.", required=True)
    phone_number_id: str = Field("", description="The business phone number's ID (not the "
                                 "number itself), from WhatsApp > API Setup.")
    api_version: str = Field("v23.0", pattern=r"^v\d+\.\d+$",
                             description="Graph API version used for every call.")
    api_base: str = Field("https://graph.facebook.com", description="Graph API base URL. "
                          "Change only for a proxy.")
    template_name: str = Field("", description="An approved message template sent instead "
                               "of a reply WhatsApp refuses because the user last wrote more "
                               "than 24 hours ago (the customer-service window). Empty: no "
                               "template, the reply just fails.")
    template_language: str = Field("en_US", description="The template's language code "
                                   "(en_US, de, pt_BR...).")

    def needs_webhook(self) -> bool:
        return True  # the Cloud API only pushes: set the callback URL to /webhook/<name>


SPEC = ConnectorSpec(
    name="whatsapp",
    title="WhatsApp",
    config_model=WhatsAppConfig,
    runtime="connectors.whatsapp.runtime:WhatsAppConnector",
    icon="chat",
    category=Category.CHAT_APPS,
    brand_icon="whatsapp",
    brand_color="#25D366",
    docs_url="https://developers.facebook.com/docs/whatsapp/cloud-api/get-started",
    description="A WhatsApp Business phone number on Meta's Cloud API that answers one-on-one "
    "chats. Replies are possible for 24 hours after the user's last message; after that only "
    "an approved template (template_name) can reach them. Needs a public HTTPS webhook URL.",
    transport=Transport.WEBHOOK,
    # No edit API; "typing" is the read receipt with a typing indicator (one call).
    capabilities=Capabilities(edit=False, typing=True, attachments=True),
    limits=Limits(max_text=MAX_TEXT),
)
