"""What the setup form and the registry know about Zulip; imports pydantic and the kit only."""

from __future__ import annotations

import re

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

__all__ = ["MAX_TEXT", "MAX_TOPIC", "SPEC", "ZulipConfig"]

MAX_TEXT = 10_000
"""Unicode code points of one message (Python's ``len``): Zulip's ``max_message_length``
before the server says otherwise in its ``/register`` answer (it has always been 10,000;
a server truncates a longer message, it does not refuse it)."""
MAX_TOPIC = 60
"""Code points of a topic name (``max_topic_length``) before the server says otherwise."""
_API_SUFFIX = re.compile(r"/api(/v1)?/?$")


class ZulipConfig(ChannelConfig):
    site: str = Field(
        "", description="Your Zulip organization's address, e.g. https://example.zulipchat.com "
        "(the zuliprc file's site). Every call, with the API key, goes there and nowhere else.")
    email: str = Field(
        "", description="The bot's email as Zulip shows it (the zuliprc file's email), e.g. "
        "assistant-bot@example.zulipchat.com. Create a Generic bot under Personal settings, "
        "Bots, Add a new bot.")
    api_key: SecretStr | None = secret_field(
        "The bot's API key (the zuliprc file's key; Personal settings, Bots, the bot's "
        "download or key icon).", required=True)
    backfill_limit: int = Field(
        1000, ge=1, le=5000, description="Most messages fetched back (GET /messages) after "
        "the event queue expired or after a restart; when more arrived while the bot was "
        "away, only the newest this many are answered and the skip is logged.")

    @field_validator("site")
    @classmethod
    def _bare_site(cls, url: str) -> str:
        """The organization URL without a trailing slash or ``/api/v1`` (people paste either)."""
        return _API_SUFFIX.sub("", url.strip().rstrip("/"))


SPEC = ConnectorSpec(
    name="zulip",
    title="Zulip",
    config_model=ZulipConfig,
    runtime="connectors.zulip.runtime:ZulipConnector",
    icon="forum",
    category=Category.TEAM_CHAT,
    brand_icon="zulip",
    brand_color="#6492FE",
    docs_url="https://zulip.com/api/running-bots",
    description="A Zulip bot account (Zulip Cloud or self-hosted). It answers direct messages "
                "and, in streams it is subscribed to, messages that @-mention it or quote it; "
                "each stream topic is its own conversation and replies go to the same topic. "
                "Receives through Zulip's event queue, fetches back what it missed when the "
                "queue expired, streams replies by editing the message and shows typing.",
    transport=Transport.POLLING,
    capabilities=Capabilities(edit=True, typing=True, threads=True, attachments=True,
                              send_only=True),
    limits=Limits(max_text=MAX_TEXT),
)
