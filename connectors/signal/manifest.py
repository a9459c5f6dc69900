"""What the setup form and the registry know about Signal; imports pydantic and the kit only."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from pyclaw_app.channels import (
    Capabilities,
    Category,
    ChannelConfig,
    ConnectorSpec,
    Limits,
    Transport,
    is_loopback,
    secret_field,
    utf8_len,
)

__all__ = ["DEFAULT_URL", "MAX_TEXT", "SPEC", "SignalConfig"]

DEFAULT_URL = "http://127.0.0.1:8080"
MAX_TEXT = 2000
"""UTF-8 bytes of one message body. signal-cli sends a longer text as a 2,000-byte body plus
the whole text as a "long text" attachment (``MAX_MESSAGE_SIZE_BYTES`` in its
``ServiceConfig``); parts of at most 2,000 bytes stay plain messages every Signal app shows
whole, and their edits (streamed replies) stay plain too."""


class SignalConfig(ChannelConfig):
    url: str = Field(
        DEFAULT_URL, description="Address of signal-cli's HTTP daemon, started as "
        "`signal-cli -a +NUMBER daemon --http 127.0.0.1:8080 --receive-mode manual` "
        "(manual: messages wait on Signal's servers while this channel is not connected, "
        "instead of being read and dropped by the daemon). The daemon has no "
        "authentication: keep it on 127.0.0.1, or put it behind an https reverse proxy.")
    account: str = Field(
        pattern=r"^\+[1-9][0-9]{6,14}$",
        description="The bot's phone number with country code, e.g. +4915112345678, as "
        "signal-cli knows it. Register it once with `signal-cli -a +NUMBER register` and "
        "`signal-cli -a +NUMBER verify CODE` (a number of its own), or link signal-cli to "
        "an existing phone with `signal-cli link -n pyclaw`. A daemon started without -a "
        "serves every account it has; this picks the bot's.")
    bearer_token: SecretStr | None = secret_field(
        "Only for a reverse proxy in front of the daemon that asks for a bearer token "
        "(signal-cli itself has no authentication); sent as Authorization: Bearer on every "
        "request. Leave empty for a daemon on this machine.")
    allow_insecure_http: bool = Field(
        False, description="Allow a plain http:// url on another machine. Everything the "
        "bot reads and writes (and the bearer token) then crosses the network in clear; "
        "use https unless the network is yours alone.")
    request_timeout: float = Field(
        60.0, ge=5, le=600, description="Seconds one call to the daemon may take; a send "
        "waits for Signal's servers, which can take a while for large groups.")
    event_timeout: float = Field(
        45.0, ge=1, le=600, description="Seconds without a byte on the event stream after "
        "which it is taken for dead and opened again. The daemon sends a keep-alive every "
        "15 s, so keep this above 15.")

    @field_validator("url")
    @classmethod
    def _origin(cls, url: str) -> str:
        """Messages and the token go to this host: http or https, a host, no credentials."""
        url = url.strip().rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc \
                or parts.query or parts.fragment:
            raise ValueError("url must be http(s)://host:port of signal-cli's daemon, e.g. "
                             f"{DEFAULT_URL}")
        return url

    @model_validator(mode="after")
    def _tls_beyond_loopback(self) -> SignalConfig:
        host = urlsplit(self.url).hostname or ""
        if self.url.startswith("http://") and not is_loopback(host) \
                and not self.allow_insecure_http:
            raise ValueError(f"url {self.url} is plain http to another machine: use https "
                             "(a TLS reverse proxy in front of signal-cli), or set "
                             "allow_insecure_http on a network that is yours alone")
        return self


SPEC = ConnectorSpec(
    name="signal",
    title="Signal",
    config_model=SignalConfig,
    runtime="connectors.signal.runtime:SignalConnector",
    requires=(),
    install="",
    icon="lock",
    category=Category.CHAT_APPS,
    brand_icon="signal",
    brand_color="#3B45FD",
    docs_url="https://github.com/AsamK/signal-cli/blob/master/man/signal-cli-jsonrpc.5.adoc",
    description="A Signal number through signal-cli's JSON-RPC daemon (HTTP and server-sent "
                "events): answers direct messages and, in groups, mentions and replies to the "
                "bot; quotes the message it answers, streams replies by editing and shows "
                "typing. Registering or linking the number is done with signal-cli; allow_from "
                "takes phone numbers (+4915...), or the ACI of a sender who hides theirs.",
    transport=Transport.WEBSOCKET,
    capabilities=Capabilities(edit=True, typing=True, attachments=True, send_only=True),
    limits=Limits(max_text=MAX_TEXT, text_length=utf8_len),
)
