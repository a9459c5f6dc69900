"""Messenger's config model and spec; imports pydantic and the kit only."""

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

__all__ = ["MAX_TEXT", "SPEC", "MessageTag", "MessengerConfig"]

MAX_TEXT = 2000
"""``message.text`` "has a 2000 character limit" (Send API reference). Meta does not say how
it counts; UTF-16 code units are the stricter reading (an emoji is two), so a part that
fits here fits however Meta counts characters."""

MessageTag = Literal["", "ACCOUNT_UPDATE", "CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE",
                     "HUMAN_AGENT"]


class MessengerConfig(ChannelConfig):
    page_access_token: SecretStr | None = secret_field(
        "The Page access token (Meta app > Messenger > Messenger API Settings > Generate "
        "token, or a system user's token for the Page) with pages_messaging permission. "
        "A user access token does not work.", required=True)
    app_secret: SecretStr | None = secret_field(
        "The app secret (App settings > Basic): every webhook POST is checked against it "
        "(X-Hub-Signature-256). Not the verify token.", required=True)
    verify_token: SecretStr | None = secret_field(
        "Any string you choose; enter the same one as the Verify token when you add this "
        "channel's callback URL under Messenger API Settings > Configure webhooks.", required=True)
    api_version: str = Field("v23.0", pattern=r"^v\d+\.\d+$",
                             description="Graph API version used for every call.")
    api_base: str = Field("https://graph.facebook.com", description="Graph API base URL. "
                          "Change only for a proxy.")
    message_tag: MessageTag = Field(
        "", description="A message tag for replies Messenger refuses because the person "
        "last wrote more than 24 hours ago (the standard messaging window). Only for what "
        "the tag allows: ACCOUNT_UPDATE, CONFIRMED_EVENT_UPDATE, POST_PURCHASE_UPDATE (never "
        "promotional), HUMAN_AGENT (a person answering, up to 7 days; needs Meta's Human "
        "Agent permission). Empty: no tag, such a reply fails with a clear log line.")
    mark_seen: bool = Field(True, description="Mark the person's message as seen when the "
                            "answer starts (the seen receipt in Messenger).")

    def needs_webhook(self) -> bool:
        return True  # Messenger only pushes: set the callback URL to /webhook/<name>


SPEC = ConnectorSpec(
    name="messenger",
    title="Messenger",
    config_model=MessengerConfig,
    runtime="connectors.messenger.runtime:MessengerConnector",
    icon="messenger",
    category=Category.CHAT_APPS,
    brand_icon="messenger",
    brand_color="#0866FF",
    docs_url="https://developers.facebook.com/docs/messenger-platform/getting-started/app-setup",
    description="A Facebook Page that answers people who message it on Messenger. Replies "
    "are possible for 24 hours after the person's last message; after that only a message "
    "tag (message_tag) can reach them. Needs a public HTTPS webhook URL.",
    transport=Transport.WEBHOOK,
    # No edit API for Pages; typing is the typing_on sender action.
    capabilities=Capabilities(edit=False, typing=True, attachments=True),
    limits=Limits(max_text=MAX_TEXT, text_length=utf16_len),
)
