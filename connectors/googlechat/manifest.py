"""Google Chat's config model and spec; imports pydantic and the kit only."""

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
    utf16_len,
)

__all__ = ["CHAT_ISSUER", "MAX_TEXT", "SPEC", "GoogleChatConfig"]

MAX_TEXT = 4096
"""Google answers a longer ``text`` with 400 "Message is longer than 4096 characters"
(INVALID_ARGUMENT). The unit is not documented, so it is counted in UTF-16 code units, which
is never less than the number of code points; the documented 32,000-byte message size is
then never reached either (4,096 x 4 bytes of UTF-8 at most)."""
CHAT_ISSUER = "chat@system.gserviceaccount.com"
"""Who signs the bearer token of every request Google Chat makes to an HTTP endpoint app."""

DESCRIPTION = """\
A Google Chat app (HTTP endpoint) that answers direct messages and, in spaces, @mentions \
(group_reply). Every request carries a bearer token Google signs; it is checked against \
Google's public certificates before the body is read. Replies go through the Chat REST API \
as the app's service account (reply_mode async: long replies in several messages, streamed \
edits), or in the HTTP response itself (reply_mode sync: no service account needed, one \
message per reply, answered within Google's 30-second deadline). Needs a public HTTPS URL."""


class GoogleChatConfig(ChannelConfig):
    audience_type: Literal["project_number", "endpoint_url"] = Field(
        "project_number", description="The Authentication Audience chosen in the Chat API's "
        "Configuration page (Connection settings). project_number: the bearer token is a JWT "
        f"from {CHAT_ISSUER} for the project number. endpoint_url: it is a Google ID token "
        "for the HTTP endpoint URL.")
    project_number: str = Field(
        "", pattern=r"^\d*$", description="The Cloud project's number (digits; Cloud console "
        "> IAM & Admin > Settings). The token's audience with audience_type project_number.")
    endpoint_url: str = Field(
        "", description="The HTTP endpoint URL exactly as entered in the Chat API's "
        "Configuration page (https://<your host>/webhook/<channel name>). The token's "
        "audience with audience_type endpoint_url.")
    reply_mode: Literal["async", "sync"] = Field(
        "async", description="async: answer Google at once and send the reply through the "
        "Chat REST API (needs service_account_key; long replies go as several messages, and "
        "replies stream as edits with stream_replies). sync: hold Google's request and answer "
        "it with the reply (no service account needed, but one message per reply, no "
        "streaming, and after sync_timeout the reply needs the REST API after all).")
    service_account_key: SecretStr | None = secret_field(
        "The JSON key of the app's service account (IAM & Admin > Service accounts > Keys > "
        "Add key > JSON), pasted whole. Replies are sent as the app with it (scope "
        "chat.bot). Required with reply_mode async.")
    sync_timeout: float = Field(25.0, gt=0, le=29, description="Seconds a request is held "
                                "for its reply in sync mode; Google gives up after 30.")
    api_base: str = Field("https://chat.googleapis.com", description="Chat REST API base URL. "
                          "Change only for a proxy.")
    token_uri: str = Field("", description="Where the service account trades its signed JWT "
                           "for an access token. Empty: the key's own token_uri.")
    certs_url: str = Field("", description="Where Google publishes the certificates bearer "
                           "tokens are checked against. Empty: Google's for the "
                           "audience_type (the chat@system.gserviceaccount.com x509 "
                           "metadata, or the OAuth2 v1 certs for ID tokens).")

    def needs_webhook(self) -> bool:
        return True  # Google Chat POSTs interaction events to /webhook/<channel name>

    def missing_secrets(self) -> list[str]:
        keyless = self.reply_mode == "async" and self.service_account_key is None
        return super().missing_secrets() + (["service_account_key"] if keyless else [])


SPEC = ConnectorSpec(
    name="googlechat",
    title="Google Chat",
    config_model=GoogleChatConfig,
    runtime="connectors.googlechat.runtime:GoogleChatConnector",
    requires=("google.auth",),
    install="pip install 'pyclaw[googlechat]'",
    icon="forum",
    category=Category.TEAM_CHAT,
    brand_icon="googlechat",
    brand_color="#34A853",
    docs_url="https://developers.google.com/workspace/chat/configure-chat-api",
    description=DESCRIPTION,
    transport=Transport.WEBHOOK,
    # Edits: PATCH spaces.messages?updateMask=text. Google Chat has no typing indicator for
    # apps. Replies in a space go into the thread of the message they answer.
    capabilities=Capabilities(edit=True, typing=False, threads=True, attachments=True),
    limits=Limits(max_text=MAX_TEXT, text_length=utf16_len),
)
