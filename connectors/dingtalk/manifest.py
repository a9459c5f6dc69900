"""DingTalk's config model and spec; imports pydantic and the kit only."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator

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

__all__ = ["API_BASE", "MAX_TEXT", "OAPI_BASE", "SPEC", "DingTalkConfig"]

API_BASE = "https://api.dingtalk.com"
OAPI_BASE = "https://oapi.dingtalk.com"
MAX_TEXT = 6000
"""UTF-8 bytes of one reply part. The robot send APIs take the message as ``msgParam``, a
JSON string of at most 15,000 bytes ("The length must not exceed 15,000 bytes", Send group
chat messages with a bot, open.dingtalk.com); JSON escaping can double a part (newlines,
quotes) and the markdown title rides along, so 6,000 bytes of text always fits, and the
session webhook (which takes the same text) stays within it too."""


class DingTalkConfig(ChannelConfig):
    client_id: str = Field(
        "", description="Client ID (formerly AppKey) of the enterprise internal app that owns "
        "the robot: open-dev.dingtalk.com > your app > Credentials & Basic Info.")
    client_secret: SecretStr | None = secret_field(
        "Client Secret (formerly AppSecret) of the same app. The channel opens its Stream "
        "connection and gets access tokens with it.", required=True)
    robot_code: str = Field(
        "", description="The robot's RobotCode (robot configuration page). Empty: the Client "
        "ID, which is the robot code of an enterprise internal app's robot.")
    bot_name: str = Field(
        "", description="The robot's name as people @mention it in groups. DingTalk cuts the "
        "@mention out of plain text messages but not out of rich text ones; with the name "
        "set, a leading or trailing @name is cut there too.")
    message_format: Literal["markdown", "text"] = Field(
        "markdown", description="markdown: replies are sent as DingTalk markdown (headings, "
        "lists, bold, links render); text: plain text, exactly as written.")
    api_base: str = Field(API_BASE, description="DingTalk's OpenAPI base URL (Stream "
                          "connections, access tokens, robot sends). Change only for a proxy "
                          "or a test server.")
    oapi_base: str = Field(OAPI_BASE, description="Where DingTalk's session webhooks live. "
                           "A reply goes to the webhook a message names only if it is on "
                           "this host (or api_base's). Change only for a proxy or a test "
                           "server.")

    @field_validator("api_base", "oapi_base")
    @classmethod
    def _no_trailing_slash(cls, url: str) -> str:
        return url.strip().rstrip("/")


SPEC = ConnectorSpec(
    name="dingtalk",
    title="DingTalk",
    config_model=DingTalkConfig,
    runtime="connectors.dingtalk.runtime:DingTalkConnector",
    requires=("dingtalk_stream",),
    install="pip install 'pyclaw[dingtalk]'",
    icon="chat",
    category=Category.TEAM_CHAT,
    brand_icon="dingtalk",
    brand_color="#3296FA",
    docs_url="https://open.dingtalk.com/document/orgapp/robot-overview",
    description="An enterprise internal app robot in Stream mode (no public URL needed): "
    "answers 1:1 chats and, in groups, the messages that @mention it (DingTalk delivers a "
    "robot nothing else there). Replies go through the message's session webhook while it "
    "is valid, then through the robot send API. No edits or typing indicator.",
    transport=Transport.WEBSOCKET,
    # The robot API cannot edit a sent message or show typing; AI cards can stream, but
    # they need a card template of the user's own and are not used.
    capabilities=Capabilities(edit=False, typing=False, threads=False, attachments=True),
    limits=Limits(max_text=MAX_TEXT, text_length=utf8_len),
)
