"""The built-in local chat channel: the app's Chat view and ``pyclaw chat`` talk through it."""

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


class LocalConfig(ChannelConfig):
    """The local chat is the owner's own window: open by default."""

    dm_policy: Literal["pairing", "allowlist", "open", "disabled"] = "open"
    rate_limit_per_minute: int = Field(0, ge=0, description="Per sender; 0 turns it off.")
    max_text: int = Field(32000, ge=100, description="Longest single reply part.")


SPEC = ConnectorSpec(
    name="local",
    title="Local chat",
    config_model=LocalConfig,
    runtime="connectors.local.runtime:LocalConnector",
    icon="chat_bubble",
    category=Category.DEVELOPER,
    description="Talk to the assistant from the pyclaw app or the terminal. Needs no account.",
    transport=Transport.LOCAL,
    # The Chat view streams from reply.delta events; files are stored, named in the log.
    capabilities=Capabilities(typing=True, files=True),
    limits=Limits(max_text=32000),
)
