"""What the setup form and the registry know about QQ over OneBot v11; imports no network code."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

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

__all__ = ["MAX_TEXT", "SPEC", "QqConfig"]

MAX_TEXT = 4500
"""UTF-16 units of one message's text. OneBot v11 itself names no limit; mirai's
``Contact.sendMessage`` documents "单条消息最大可发送 4500 字符或 50 张图片" (one message carries at
most 4500 characters or 50 images), counted as Kotlin string length, i.e. UTF-16 units. The
protocol's own ceiling is higher (oicq's author measured about 6000 Han characters or 18000
bytes), so 4500 stays clear of it and of the long-message risk control beyond it."""


class QqConfig(ChannelConfig):
    url: str = Field(
        description="The OneBot v11 forward WebSocket of your QQ bridge, e.g. "
        "ws://127.0.0.1:3001 (NapCat: Network settings, a WebSocket server; go-cqhttp: "
        "servers.ws; Lagrange.OneBot: a ForwardWebSocket implementation). Use the root path "
        "/, which carries both events and API calls, not /event or /api.")
    access_token: SecretStr | None = secret_field(
        "The access token (NapCat: the WebSocket server's Token; go-cqhttp: access-token). "
        "Leave empty only if the bridge has none, and then let it listen on 127.0.0.1 alone: "
        "without a token anyone who reaches the port can send as your QQ account.")
    api_timeout: float = Field(
        30.0, gt=0, le=300, description="Seconds to wait for the bridge to answer an API call. "
        "A message whose answer does not come in time may still have been sent, so it is "
        "marked uncertain and not sent again.")
    idle_check: float = Field(
        60.0, ge=1, le=600, description="Seconds of silence after which the bot asks the bridge "
        "for its status (get_status), when the bridge sends no heartbeat events. With "
        "heartbeats on, two missed beats mean the connection is dead and it is made again.")

    @field_validator("url")
    @classmethod
    def _websocket_url(cls, url: str) -> str:
        url = url.strip()
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ValueError("url must be a ws:// or wss:// address, e.g. ws://127.0.0.1:3001")
        if "access_token" in parse_qs(parts.query):
            raise ValueError("put the token in access_token (kept in the keyring), not in url")
        return url


SPEC = ConnectorSpec(
    name="qq",
    title="QQ (OneBot v11)",
    config_model=QqConfig,
    runtime="connectors.qq.runtime:QqConnector",
    requires=(),  # aiohttp, which every gateway install has (pyclaw[core])
    install="",
    icon="chat_bubble",
    category=Category.CHAT_APPS,
    brand_icon="qq",
    brand_color="#1EBAFC",
    docs_url="https://github.com/botuniverse/onebot-11",
    description="A QQ account run by a OneBot v11 bridge (NapCat, go-cqhttp, Lagrange.OneBot), "
                "reached over its forward WebSocket: answers private chats and, in groups, "
                "@mentions and replies to the bot. QQ has no typing indicator or edits over "
                "OneBot, and the bridge does not keep messages sent while the bot is away.",
    transport=Transport.WEBSOCKET,
    capabilities=Capabilities(attachments=True),
    limits=Limits(max_text=MAX_TEXT, text_length=utf16_len),
)
