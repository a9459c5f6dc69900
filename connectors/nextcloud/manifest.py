"""Nextcloud Talk's config model and spec; imports pydantic and the kit only."""

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
)

__all__ = ["MAX_TEXT", "SPEC", "NextcloudConfig"]

MAX_TEXT = 32_000
"""The bot API answers 413 above 32,000 characters (``mb_strlen``, so code points: Python's
``len``); servers before Talk 16.0.1 allowed 1,000, read from the ``max-length`` capability
at start (docs/bots.md in github.com/nextcloud/spreed)."""


class NextcloudConfig(ChannelConfig):
    server_url: str = Field(
        "", description="Your Nextcloud's address, e.g. https://cloud.example.com. Replies "
        "are posted there and nowhere else, whatever a webhook names.")
    secret: SecretStr | None = secret_field(
        "The shared secret given to occ talk:bot:install (40 to 128 characters). It checks "
        "every webhook (X-Nextcloud-Talk-Signature) and signs every reply.", required=True)
    bot_name: str = Field(
        "pyclaw", description="The bot's name as given to occ talk:bot:install: people "
        "mention it as @name, and Talk shows its messages as \"name (Bot)\".")
    backend_url: str = Field(
        "", description="Only if Nextcloud names itself differently in its webhooks "
        "(X-Nextcloud-Talk-Backend is its overwrite.cli.url): that address. Webhooks that "
        "name any server but this one or server_url are refused.")
    direct_conversations: list[str] = Field(
        default_factory=list, description="Tokens of conversations that are yours and the "
        "bot's alone (the last part of the conversation's link): every message there is "
        "answered, like a direct message (dm_policy applies). Talk's webhooks do not say who "
        "else is in a conversation, so every other one is treated as a group (group_reply).")

    def needs_webhook(self) -> bool:
        return True  # Talk only pushes: the bot's URL is /webhook/<channel name>


SPEC = ConnectorSpec(
    name="nextcloud",
    title="Nextcloud Talk",
    config_model=NextcloudConfig,
    runtime="connectors.nextcloud.runtime:NextcloudConnector",
    icon="forum",
    category=Category.TEAM_CHAT,
    brand_icon="nextcloud",
    brand_color="#0082C9",
    docs_url="https://nextcloud-talk.readthedocs.io/en/latest/bots/",
    description="A Nextcloud Talk webhook bot (Nextcloud 27.1 / Talk 17.1 or newer). An "
    "administrator installs it on the server with occ talk:bot:install <bot_name> <secret> "
    "https://<your host>/webhook/<channel name> --feature webhook --feature response, then "
    "a moderator enables it in each conversation (Conversation settings > Bots, or occ "
    "talk:bot:setup <bot id> <token>). Every request both ways is signed: Nextcloud signs "
    "each webhook (messages, bot added or removed, reactions) with the secret, and the bot "
    "signs each reply. Replies carry a random referenceId; Talk never sends a bot's own "
    "messages back to it. Needs a public HTTPS webhook URL the Nextcloud server can reach.",
    transport=Transport.WEBHOOK,
    # The bot API has no edit and no typing endpoint; files arrive as rich-object
    # parameters, reported as attachment metadata.
    capabilities=Capabilities(edit=False, typing=False, attachments=True),
    limits=Limits(max_text=MAX_TEXT),
)
