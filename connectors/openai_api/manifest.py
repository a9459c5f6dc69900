"""The OpenAI-compatible API channel's config model and spec; imports pydantic and the kit only."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pyclaw_app.channels import (
    Capabilities,
    Category,
    ChannelConfig,
    ConnectorSpec,
    Limits,
    Transport,
)

__all__ = ["MAX_TEXT", "SPEC", "OpenAIApiConfig"]

MAX_TEXT = 1_000_000
"""A reply is one HTTP response, so one part: a response has no message limit."""

DESCRIPTION = """\
Serves POST /webhook/<channel name>/v1/chat/completions (streaming and not) and GET .../v1/models, \
so any OpenAI client library (base_url = https://<your host>/webhook/<channel name>/v1) talks to \
the assistant with its tools and memory. Each client gets its own bearer key: \
`pyclaw api-key issue <channel name> <client>` prints it once; only its hash is stored. The \
gateway keeps the conversation: only the newest user message of a request is taken; the \
request's `user` field (or the X-Pyclaw-Conversation header) picks the conversation within a \
client. An Idempotency-Key header makes a retried request the same message."""


class OpenAIApiConfig(ChannelConfig):
    """Each caller holds a key issued for it, so the access rule is the key itself."""

    dm_policy: Literal["pairing", "allowlist", "open", "disabled"] = Field(
        "open", description="Who may talk: every client with a key issued for this channel "
        "(open), or only the client names in allow_from (allowlist).")
    rate_limit_per_minute: int = Field(0, ge=0, description="Per client; 0 turns it off.")
    model_name: str = Field("pyclaw", min_length=1, max_length=64,
                            description="The model id clients see in /v1/models and in "
                            "answers (what they send as `model` is accepted and echoed).")
    reply_timeout: float = Field(
        120.0, gt=0, le=900, description="Seconds a request is held open for its reply; "
        "after that it is answered 504 and the reply is kept in the log only.")

    def needs_webhook(self) -> bool:
        return True  # requests come in at /webhook/<channel name>/v1/...


SPEC = ConnectorSpec(
    name="openai_api",
    title="OpenAI-compatible API",
    config_model=OpenAIApiConfig,
    runtime="connectors.openai_api.runtime:OpenAIApiConnector",
    icon="api",
    category=Category.DEVELOPER,
    brand_icon="openai",
    brand_color="#10A37F",
    docs_url="https://platform.openai.com/docs/api-reference/chat/create",
    description=DESCRIPTION,
    transport=Transport.WEBHOOK,
    capabilities=Capabilities(attachments=True, live=True),
    limits=Limits(max_text=MAX_TEXT),
)
