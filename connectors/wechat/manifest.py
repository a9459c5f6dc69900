"""The WeChat Official Account's config model and spec; imports pydantic and the kit only."""

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

__all__ = ["MAX_TEXT", "SPEC", "WeChatConfig"]

MAX_TEXT = 2048
"""Bytes of UTF-8 a customer-service text may have: WeChat answers 45002 "content size out
of limit" beyond it (the OA docs give no number; 2048 is what WeChat enforces by its
developer community's measurements and what WeCom documents for the same kind of text, in
bytes), so a reply is split in bytes, not characters: 682 Chinese characters fit a part."""



class WeChatConfig(ChannelConfig):
    app_id: str = Field("", description="The account's AppID (开发者ID), from Settings and "
                        "Development > Basic Configuration (设置与开发 > 基本配置). It is also "
                        "the receive id of safe-mode messages.")
    app_secret: SecretStr | None = secret_field(
        "The AppSecret (开发者密码) from the same page; it gets the access_token replies are "
        "sent with. Add this server's public IP to the IP whitelist there, or WeChat refuses "
        "the token.", required=True)
    token: SecretStr | None = secret_field(
        "The Token you entered in Server Configuration (服务器配置): every callback's "
        "signature is checked with it.", required=True)
    encoding_aes_key: SecretStr | None = secret_field(
        "The EncodingAESKey (43 characters) from Server Configuration; needed in the "
        "compatible and safe message modes.")
    encryption: Literal["safe", "compatible", "plaintext"] = Field(
        "safe", description="The Message Encryption Method (消息加解密方式) chosen in Server "
        "Configuration. safe (安全模式, recommended): messages are encrypted and their "
        "signature covers the message; compatible (兼容模式): both forms are sent, the "
        "encrypted one is read; plaintext (明文模式): the signature covers only the "
        "timestamp and nonce, not the message.")
    token_endpoint: Literal["stable_token", "token"] = Field(
        "stable_token", description="How the access_token is got. stable_token (recommended): "
        "does not invalidate the token other tools of this account hold; token: the "
        "classic /cgi-bin/token, whose every fetch replaces the account's token.")
    api_base: str = Field("https://api.weixin.qq.com", description="WeChat API base URL. "
                          "Change only for a proxy (or api2.weixin.qq.com, the backup "
                          "domain).")

    def needs_webhook(self) -> bool:
        return True  # WeChat only pushes: the Server URL is /webhook/<channel name>

    def missing_secrets(self) -> list[str]:
        keyless = self.encryption != "plaintext" and self.encoding_aes_key is None
        return super().missing_secrets() + (["encoding_aes_key"] if keyless else [])


SPEC = ConnectorSpec(
    name="wechat",
    title="WeChat Official Account",
    config_model=WeChatConfig,
    runtime="connectors.wechat.runtime:WeChatConnector",
    icon="chat",
    category=Category.CHAT_APPS,
    brand_icon="wechat",
    brand_color="#07C160",
    docs_url="https://developers.weixin.qq.com/doc/offiaccount/Basic_Information/"
    "Access_Overview.html",
    description="A WeChat Official Account (公众号, a verified service or subscription "
    "account with the customer-service message permission) that answers its followers. "
    "Replies go through the customer-service API, possible for 48 hours after the user's "
    "last message and at most five per message they send. Needs a public webhook URL on "
    "port 80 or 443.",
    transport=Transport.WEBHOOK,
    # No edit API; typing is the customer-service "Typing" command (shown for 15 s).
    capabilities=Capabilities(edit=False, typing=True, attachments=True),
    limits=Limits(max_text=MAX_TEXT, text_length=utf8_len),
)
