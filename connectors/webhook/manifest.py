"""The signed webhook's config model and spec; imports pydantic and the kit only."""

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
)

__all__ = ["MAX_TEXT", "SPEC", "SYNC_MAX_TEXT", "WebhookConfig"]

MAX_TEXT = 4000
"""Default longest callback part; the protocol is ours, so it is a setting (``max_text``)."""
SYNC_MAX_TEXT = 1_000_000
"""In sync mode a reply is one part: an HTTP response has no message limit, and the channel
cannot tell which part of a split reply is the last one."""

DESCRIPTION = """\
For Home Assistant, n8n, scripts and anything without its own channel. POST JSON to \
/webhook/<channel name>: {"id": unique message id (the dedupe key), "chat": conversation id, \
"text", "sender": {"id", "name"}, "group": false, "mentioned": false, "reply_to_bot": false, \
"attachments": [{"kind", "name", "mime", "url", "size"}], "callback_url": optional}; unknown \
fields are ignored. Sign it: header X-Pyclaw-Timestamp (Unix seconds, within 5 minutes of \
ours, else 401 as a replay) and X-Pyclaw-Signature: sha256=<hex HMAC-SHA256(secret, \
"<timestamp>." + raw body)> (else 401); a malformed body is 400 with the reason. \
reply_mode callback: answered 202 once stored; the reply's parts are POSTed to the callback \
URL as {"in_reply_to", "chat", "text", "part"}, signed the same way with the same secret; a \
2xx answer may carry {"id"}; 429 and 5xx are retried. reply_mode sync: the request is held \
until the reply is ready and answered 200 {"reply"}; after sync_timeout it is answered 202 \
and the reply goes to the callback. See docs/webhook-channel.md."""


class WebhookConfig(ChannelConfig):
    secret: SecretStr | None = secret_field(
        "Shared secret: every request must be signed with it (X-Pyclaw-Signature), and every "
        "callback is signed with it. Use a long random string.", required=True)
    callback_url: str = Field("", description="Where reply parts are POSTed (http or https); "
                              "empty: replies only in sync mode, and probe waits for "
                              "requests.")
    reply_mode: Literal["callback", "sync"] = Field(
        "callback", description="callback: answer 202 once the message is stored and POST the "
        "reply to the callback URL. sync: hold the request open and answer with the reply "
        "(falls back to the callback after sync_timeout).")
    sync_timeout: float = Field(25.0, gt=0, le=300, description="Seconds a sync request is "
                                "held open for its reply before it is answered 202.")
    allow_request_callback: bool = Field(
        False, description="Let a request name its own callback_url. Even then only hosts in "
        "callback_hosts are accepted, so a caller cannot make the gateway POST anywhere.")
    callback_hosts: list[str] = Field(
        default_factory=list, description="Hosts a request's callback_url may name (host, or "
        "host:port for that port only), with allow_request_callback.")
    max_text: int = Field(MAX_TEXT, ge=100, le=SYNC_MAX_TEXT,
                          description="Longest callback part; longer replies are split.")

    def needs_webhook(self) -> bool:
        return True  # requests come in at /webhook/<channel name>


SPEC = ConnectorSpec(
    name="webhook",
    title="Signed webhook",
    config_model=WebhookConfig,
    runtime="connectors.webhook.runtime:WebhookConnector",
    icon="webhook",
    category=Category.DEVELOPER,
    docs_url="",  # the protocol is ours: docs/webhook-channel.md in the repository
    description=DESCRIPTION,
    transport=Transport.WEBHOOK,
    capabilities=Capabilities(attachments=True),
    limits=Limits(max_text=MAX_TEXT),
)
