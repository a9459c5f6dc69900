"""What the setup form and the registry know about Matrix; imports pydantic and the kit only."""

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

__all__ = ["MAX_TEXT", "SPEC", "MatrixConfig"]

MAX_TEXT = 8000
"""UTF-8 bytes of one message body. Matrix caps a whole event at 65536 bytes of JSON, and a
streamed edit (``m.replace``) carries the text twice (``body`` and ``m.new_content``), with
JSON escaping on top (up to six bytes per character): 8 000 bytes keeps ordinary text far
under the cap, and each part is a screenful any client shows whole."""


class MatrixConfig(ChannelConfig):
    homeserver: str = Field(
        "https://matrix.org", description="The bot account's homeserver, e.g. "
        "https://matrix.example.org (the client API base URL, not the server name).")
    user_id: str = Field(
        "", description="The bot account's full Matrix ID, e.g. @assistant:example.org. "
        "Create it like any user (Element's sign-up, or register_new_matrix_user on Synapse).")
    access_token: SecretStr | None = secret_field(
        "An access token of the bot account (Element: Settings, Help & About, Access "
        "Token). Either this or the password.")
    password: SecretStr | None = secret_field(
        "The bot account's password: the channel logs in on every start (as the device "
        "named below). Either this or an access token.")
    device_name: str = Field(
        "pyclaw", description="Name of the session (device) a password login creates; shown "
        "in the account's session list.")
    invite_policy: Literal["allowed", "any", "never"] = Field(
        "allowed", description="Which room invites the bot accepts. allowed: from users in "
        "allow_from (from anyone while dm_policy is open); any: every invite; never: the "
        "bot only stays in rooms it was joined to by hand. Declined invites are logged.")
    sync_timeout: int = Field(
        30, ge=1, le=120, description="Seconds one /sync long poll waits for new events.")

    @field_validator("homeserver")
    @classmethod
    def _no_trailing_slash(cls, url: str) -> str:
        return url.strip().rstrip("/")

    def missing_secrets(self) -> list[str]:
        neither = self.access_token is None and self.password is None
        return super().missing_secrets() + (["access_token"] if neither else [])


SPEC = ConnectorSpec(
    name="matrix",
    title="Matrix",
    config_model=MatrixConfig,
    runtime="connectors.matrix.runtime:MatrixConnector",
    requires=("nio",),
    install="pip install 'pyclaw[matrix]'",
    icon="forum",
    category=Category.OPEN_PROTOCOLS,
    brand_icon="matrix",
    brand_color="#000000",
    docs_url="https://matrix.org/docs/chat_basics/matrix-for-im/",
    description="A Matrix account (Synapse, Dendrite, Conduit, matrix.org...): answers direct "
                "chats and, in rooms, mentions and replies. Accepts invites by policy, streams "
                "replies by editing (m.replace) and shows typing. End-to-end encrypted rooms "
                "are not supported yet.",
    transport=Transport.POLLING,
    capabilities=Capabilities(edit=True, typing=True, threads=True, attachments=True,
                              send_only=True, files=True),
    limits=Limits(max_text=MAX_TEXT, text_length=utf8_len),
)
