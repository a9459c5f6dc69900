"""The WeCom (企业微信) app's config model and spec; imports pydantic and the kit only."""

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
    utf8_len,
)

__all__ = ["MAX_TEXT", "SPEC", "WeComConfig"]

MAX_TEXT = 2048
"""``text.content`` of an app message: "最长不超过2048个字节，超过将截断" (at most 2,048 bytes,
longer text is cut off, silently) - so a reply is split in bytes of UTF-8."""



class WeComConfig(ChannelConfig):
    corp_id: str = Field("", description="The company's CorpID (企业ID), from My Company > "
                         "Company Information (我的企业 > 企业信息) in the admin console. It is "
                         "also the receive id of the encrypted callbacks.")
    agent_id: int = Field(0, ge=0, description="The app's AgentId, from App Management > "
                          "the self-built app (应用管理 > 自建应用).")
    corp_secret: SecretStr | None = secret_field(
        "The app's Secret, on the same page (sent to the admin's WeCom to view); it gets "
        "the access_token replies are sent with.", required=True)
    token: SecretStr | None = secret_field(
        "The Token of the app's API receive settings (接收消息 > 设置API接收): every callback's "
        "msg_signature is checked with it.", required=True)
    encoding_aes_key: SecretStr | None = secret_field(
        "The EncodingAESKey (43 characters) from the same settings: every callback is "
        "encrypted with it.", required=True)
    api_base: str = Field("https://qyapi.weixin.qq.com", description="WeCom API base URL. "
                          "Change only for a proxy.")

    def needs_webhook(self) -> bool:
        return True  # WeCom only pushes: the receive URL is /webhook/<channel name>


SPEC = ConnectorSpec(
    name="wecom",
    title="WeCom",
    config_model=WeComConfig,
    runtime="connectors.wecom.runtime:WeComConnector",
    icon="chat",
    category=Category.TEAM_CHAT,
    brand_icon="wecom",
    brand_color="#0082EF",
    docs_url="https://developer.work.weixin.qq.com/document/path/90238",
    description="A self-built WeCom (企业微信, WeChat Work) app that answers the members who "
    "write to it. Replies go through the app message API. The API is called from this "
    "server's IP, which must be in the app's trusted IPs; the receive URL must be on a "
    "domain verified for the company.",
    transport=Transport.WEBHOOK,
    # No edit and no typing indicator for app messages (recall exists, editing does not).
    capabilities=Capabilities(edit=False, typing=False, attachments=True),
    limits=Limits(max_text=MAX_TEXT, text_length=utf8_len),
)
