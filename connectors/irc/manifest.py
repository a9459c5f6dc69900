"""What the setup form and the registry know about IRC; imports no network code."""

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
    utf8_len,
)

__all__ = ["SPEC", "IrcConfig", "fallback_nicks", "line_budget"]

LINE_BYTES = 512
"""RFC 1459's line limit, CR LF and the source prefix the server adds included (tags aside)."""
_USER_BYTES = 11  # USERLEN 10 plus the "~" a server adds when identd did not answer
_HOST_BYTES = 63  # HOSTLEN of common servers; cloaks are shorter
_NICK_TARGET_BYTES = 32  # NICKLEN of common servers: a direct message's target


class IrcConfig(ChannelConfig):
    host: str = Field(min_length=1, description="IRC server host name, e.g. irc.libera.chat.")
    port: int = Field(6697, ge=1, le=65535,
                      description="Server port: 6697 is TLS on most networks, 6667 plain text.")
    tls: bool = Field(True, description="Connect with TLS. Turn off only for a server on a "
                      "trusted network that has no TLS port: passwords then go in clear.")
    tls_verify: bool = Field(True, description="Check the server's certificate and host name. "
                             "Leave on; for a server with its own CA, give ca_file instead.")
    ca_file: str = Field("", description="PEM file with the CA certificate(s) that signed the "
                         "server's certificate (a private network or a self-signed server). "
                         "Blank: the system's trusted CAs.")
    nick: str = Field("pyclaw", min_length=1, max_length=30,
                      description="The bot's nick; people address it as `nick: question`.")
    alt_nicks: list[str] = Field(default_factory=list, description="Nicks to try when the "
                                 "nick is in use. Blank: the nick with 1 to 3 underscores.")
    username: str = Field("pyclaw", min_length=1, max_length=10,
                          description="The user name (ident) shown in nick!user@host.")
    realname: str = Field("pyclaw assistant", description="The real name shown by /whois.")
    sasl_account: str = Field("", description="Account to log in with SASL PLAIN (register "
                              "it with the network's NickServ first). Blank: no login; many "
                              "networks then limit what the bot may do.")
    sasl_password: SecretStr | None = secret_field(
        "Password of the SASL account (the NickServ password).")
    server_password: SecretStr | None = secret_field(
        "Server password (PASS), for a private server or a bouncer; most networks have none.")
    channels: list[str] = Field(default_factory=list, description="Channels to join on "
                                "connect and after every reconnect, e.g. #pyclaw (or "
                                "`#channel key` for a channel with a key).")
    send_burst: int = Field(4, ge=1, le=50, description="Lines the bot may send at once "
                            "before pacing starts (flood control).")
    send_rate: float = Field(1.0, gt=0, le=100, description="Lines per second after the "
                             "burst. Servers disconnect clients that send faster than they "
                             "allow (Excess Flood); one line a second is safe on most networks.")
    ping_interval: float = Field(90.0, ge=1, description="Seconds of silence from the server "
                                 "after which the bot sends its own PING.")
    ping_timeout: float = Field(30.0, ge=1, description="Seconds to wait for the answer to "
                                "that PING before the connection is taken for dead and "
                                "made again.")

    @field_validator("channels")
    @classmethod
    def _channel_names(cls, channels: list[str]) -> list[str]:
        names = [c.strip() for c in channels if c.strip()]
        bad = [c for c in names if c[0] not in "#&+!" or "," in c]
        if bad:
            raise ValueError(f"not channel names: {', '.join(bad)} (they start with #)")
        return names

    def missing_secrets(self) -> list[str]:
        """The SASL password is needed only when an account is set."""
        missing = super().missing_secrets()
        if self.sasl_account and self.sasl_password is None:
            missing.append("sasl_password")
        return missing


def fallback_nicks(config: IrcConfig) -> list[str]:
    """The nick, then the configured alternatives (or the nick with underscores)."""
    alts = config.alt_nicks or [config.nick + "_" * n for n in range(1, 4)]
    return [config.nick, *[a for a in alts if a and a != config.nick]]


def line_budget(config: IrcConfig) -> int:
    """UTF-8 bytes of text one PRIVMSG line may carry, for every target this config can
    send to: 512 less CR LF, the ``:nick!user@host`` prefix the server relays it with (at
    the longest nick we may get and a host as long as servers allow), ``PRIVMSG``, the
    longest target (a configured channel, or a nick for a direct message) and `` :``."""
    nick = max(len(n.encode()) for n in fallback_nicks(config))
    target = max([_NICK_TARGET_BYTES, *(len(c.split()[0].encode()) for c in config.channels)])
    prefix = 1 + nick + 1 + _USER_BYTES + 1 + _HOST_BYTES + 1
    return LINE_BYTES - 2 - prefix - len("PRIVMSG ") - target - 2


SPEC = ConnectorSpec(
    name="irc",
    title="IRC",
    config_model=IrcConfig,
    runtime="connectors.irc.runtime:IrcConnector",
    requires=(),
    install="",
    icon="tag",
    category=Category.OPEN_PROTOCOLS,
    docs_url="https://modern.ircdocs.horse/",
    description="A bot on an IRC network (TLS, SASL): answers direct messages, and "
                "`nick: question` in the channels it joins.",
    transport=Transport.WEBSOCKET,
    capabilities=Capabilities(typing=True, attachments=True),
    limits=Limits(max_text=line_budget(IrcConfig(host="irc.example")), text_length=utf8_len),
)
