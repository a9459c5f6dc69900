"""What the setup form and the registry know about Twitch chat; imports no network code."""

from __future__ import annotations

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

__all__ = ["MAX_TEXT", "SPEC", "TwitchConfig", "channel_name"]

MAX_TEXT = 500
"""Characters of one chat message: Twitch cuts a longer one at 500."""


def channel_name(name: str) -> str:
    """``#login`` in lower case, as Twitch writes a channel: ``MyStream`` -> ``#mystream``."""
    return "#" + name.strip().lstrip("#").lower()


class TwitchConfig(ChannelConfig):
    login: str = Field(min_length=1, max_length=25, description="The bot account's Twitch "
                       "login name (the lower-case name in its channel URL, "
                       "twitch.tv/<login>). People address the bot as @login.")
    oauth_token: SecretStr | None = secret_field(
        "A user access token of the bot account with the chat:read and chat:edit scopes "
        "(the oauth: prefix is optional). Get one from your Twitch application "
        "(dev.twitch.tv/console) with the authorization code flow, or a token generator "
        "you trust. Tokens expire: when the channel log says the login failed, make a "
        "new one.", required=True)
    channels: list[str] = Field(default_factory=list, description="Channels whose chat the "
                                "bot joins, e.g. #mystream (the broadcaster's login). Make the "
                                "bot a moderator or VIP there (/mod botname): it may then send "
                                "100 messages per 30 seconds instead of 20, without the one "
                                "second pause between messages.")
    host: str = Field("irc.chat.twitch.tv", min_length=1,
                      description="Twitch's chat server. Change only for a test server.")
    port: int = Field(6697, ge=1, le=65535, description="6697 is TLS, 6667 plain text.")
    tls: bool = Field(True, description="Connect with TLS (leave on: the token is sent on "
                      "connect).")
    tls_verify: bool = Field(True, description="Check the server's certificate; leave on.")
    ca_file: str = Field("", description="PEM file with the CA that signed the server's "
                         "certificate, for a test server. Blank: the system's trusted CAs.")
    messages_per_window: int = Field(
        20, ge=1, le=7500, description="Messages the bot may send per window in channels "
        "where it is not a moderator, VIP or the broadcaster (Twitch: 20 per 30 seconds; "
        "more only for an account Twitch raised the limit of). Twitch drops what goes "
        "over, so the bot waits instead.")
    moderator_messages_per_window: int = Field(
        100, ge=1, le=7500, description="The same where the bot is a moderator, VIP or "
        "the broadcaster (Twitch: 100 per 30 seconds).")
    rate_window: float = Field(30.0, gt=0, le=300, description="Seconds of Twitch's rate "
                               "limit window (30); also how long the bot pauses after "
                               "Twitch reports that it sent too fast.")
    joins_per_10s: int = Field(20, ge=1, le=2000, description="Channels the bot may JOIN "
                               "per 10 seconds (Twitch: 20; 2000 for a verified bot). On "
                               "connect the bot joins its channels at this pace.")
    ping_interval: float = Field(60.0, ge=1, description="Seconds of silence from the server "
                                 "after which the bot sends its own PING.")
    ping_timeout: float = Field(15.0, ge=1, description="Seconds to wait for its answer "
                                "before the connection is taken for dead and made again.")

    @field_validator("login")
    @classmethod
    def _login(cls, login: str) -> str:
        login = login.strip().lstrip("@#").lower()
        if not login or not all(c.isalnum() or c == "_" for c in login):
            raise ValueError("a Twitch login has only letters, digits and _")
        return login

    @field_validator("channels")
    @classmethod
    def _channel_names(cls, channels: list[str]) -> list[str]:
        names = [channel_name(c) for c in channels if c.strip().lstrip("#")]
        bad = [n for n in names if not all(c.isalnum() or c == "_" for c in n[1:])]
        if bad:
            raise ValueError(f"not Twitch channel names: {', '.join(bad)}")
        return list(dict.fromkeys(names))


SPEC = ConnectorSpec(
    name="twitch",
    title="Twitch chat",
    config_model=TwitchConfig,
    runtime="connectors.twitch.runtime:TwitchConnector",
    requires=(),
    install="",
    icon="live_tv",
    category=Category.CHAT_APPS,
    brand_icon="twitch",
    brand_color="#9146FF",
    docs_url="https://dev.twitch.tv/docs/chat/irc/",
    description="A bot in Twitch channels' chat: answers @mentions and replies to its "
                "messages, paced to Twitch's rate limits. Chat only: whispers are Twitch's "
                "API, not chat, and are not read.",
    transport=Transport.WEBSOCKET,
    capabilities=Capabilities(attachments=True),
    limits=Limits(max_text=MAX_TEXT),
)
