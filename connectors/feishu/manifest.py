"""Feishu's config model and spec; imports pydantic and the kit only."""

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
)

__all__ = ["FEISHU", "LARK", "MAX_TEXT", "SAFE_MAX_TEXT", "SPEC", "FeishuConfig"]

FEISHU = "https://open.feishu.cn"
LARK = "https://open.larksuite.com"
MAX_TEXT = 8000
"""Characters per reply part by default. Feishu's only limit is bytes: a text message's
request body may be up to 150 KB (im/v1/messages create/reply/update, error 230025). The
text travels JSON-encoded twice (``content`` is a JSON string inside the JSON body), which
costs at most 7 bytes per character (a control character: ``\\u0001`` escaped again), so
``SAFE_MAX_TEXT`` characters always fit. 8,000 is a reading choice below that: a few
screens in the chat window, and a streamed draft is re-sent whole on each edit."""
SAFE_MAX_TEXT = 20_000
"""The most characters that always fit 150 KB after both encodings (20,000 x 7 < 150,000)."""


class FeishuConfig(ChannelConfig):
    app_id: str = Field("", description="The custom app's App ID (cli_...), from the "
                        "developer console's Credentials & Basic Info page.")
    app_secret: SecretStr | None = secret_field(
        "The App Secret from the same page; exchanged for a tenant_access_token (renewed "
        "before it expires) for every IM API call.", required=True)
    verification_token: SecretStr | None = secret_field(
        "Verification Token (Events & Callbacks > Encryption Strategy): every event "
        "carries it and one without it is refused.", required=True)
    encrypt_key: SecretStr | None = secret_field(
        "Encrypt Key from the same page. Recommended: events then arrive AES-encrypted and "
        "signed (X-Lark-Signature), and replayed or forged requests are refused. Leave empty "
        "only if no Encrypt Key is set in the console.")
    base_url: str = Field(FEISHU, description="Open platform address: https://open.feishu.cn "
                          "for Feishu (China), https://open.larksuite.com for Lark (the "
                          "international edition). An app lives on one of them only.")
    max_text: int = Field(MAX_TEXT, ge=500, le=SAFE_MAX_TEXT, description="Longest reply "
                          "part in characters; longer replies are sent as several messages. "
                          f"At most {SAFE_MAX_TEXT:,}, which always fits Feishu's 150 KB.")

    @field_validator("base_url")
    @classmethod
    def _origin_only(cls, value: str) -> str:
        """The app secret and the token go to this host: an origin, https (http only for a
        loopback test server), no path, no credentials."""
        value = value.strip().rstrip("/")
        parts = urlsplit(value)
        loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
        if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
            raise ValueError("base_url must be https://open.feishu.cn, https://open.larksuite"
                             ".com or another https origin")
        if not parts.hostname or parts.path or parts.query or parts.fragment or \
                "@" in parts.netloc:
            raise ValueError("base_url must be an origin (scheme and host) without a path")
        return value

    def needs_webhook(self) -> bool:
        return True  # events are pushed to the Request URL: /webhook/<channel name>


SPEC = ConnectorSpec(
    name="feishu",
    title="Feishu / Lark",
    config_model=FeishuConfig,
    runtime="connectors.feishu.runtime:FeishuConnector",
    icon="chat",
    category=Category.TEAM_CHAT,
    brand_icon="feishu",
    brand_color="#3370FF",
    docs_url="https://open.feishu.cn/document/home/introduction-to-custom-app-development/"
    "self-built-application-development-process",
    description="A Feishu (or Lark) custom app with the bot feature: answers one-on-one chats "
    "and, in groups, @mentions and replies to its messages (group_reply), in threads where "
    "the user wrote in one. Replies stream by editing the message. Needs a public HTTPS "
    "Request URL for events.",
    requires=("cryptography",),
    install="pip install 'pyclaw[feishu]'",
    transport=Transport.WEBHOOK,
    # Text messages can be edited (20 times each); bots have no typing indicator.
    capabilities=Capabilities(edit=True, typing=False, threads=True, attachments=True),
    limits=Limits(max_text=MAX_TEXT),
)
