"""What the setup form and the registry know about XMPP; imports no SDK."""

from __future__ import annotations

from typing import Literal
from xml.sax.saxutils import escape

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

__all__ = ["MAX_TEXT", "SPEC", "XmppConfig", "wire_len"]

MAX_TEXT = 8192
"""Bytes of one message body on the wire (UTF-8, XML-escaped). XMPP sets no limit, servers
cap whole stanzas: prosody at 256 KiB (``c2s_stanza_size_limit``), ejabberd at 64 KiB
(``max_stanza_size``) — and every streamed edit (XEP-0308) sends the whole body again, so
8 KiB keeps a worst-case correction far below the smallest common cap and each part a
screenful that any client shows whole."""


def wire_len(text: str) -> int:
    """How long ``text`` is as a ``<body>``: UTF-8 bytes after XML escaping."""
    return len(escape(text).encode("utf-8", "surrogatepass"))


class XmppConfig(ChannelConfig):
    jid: str = Field(
        "", description="The bot's account, e.g. assistant@example.org (create it on your "
        "server like any user: prosodyctl adduser, ejabberdctl register, or a client's "
        "sign-up).")
    password: SecretStr | None = secret_field("The password of that account.", required=True)
    server: str = Field(
        "", description="Host to connect to. Blank: found from the JID's domain (DNS SRV "
        "records, then the domain itself). The certificate is always checked against the "
        "JID's domain, never against this host.")
    port: int = Field(5222, ge=1, le=65535,
                      description="Port with server set: 5222 for STARTTLS, 5223 for direct TLS.")
    tls: Literal["starttls", "direct"] = Field(
        "starttls", description="starttls: connect in the clear and upgrade (port 5222); "
        "direct: TLS from the first byte (XEP-0368, port 5223). Either way the channel never "
        "logs in without TLS.")
    ca_file: str = Field(
        "", description="A PEM file of the certificate authority to trust for a server with "
        "a private or self-signed certificate. Blank: the system's trusted authorities.")
    resource: str = Field("pyclaw", description="The resource of this connection (the part "
                          "after / of the full JID).")
    rooms: list[str] = Field(
        default_factory=list, description="Group chats (XEP-0045 MUC rooms) to join, by "
        "address, e.g. team@conference.example.org. Joined on every connect; with "
        "group_policy allowlist also list them in allow_groups.")
    nick: str = Field("", description="The bot's nickname in rooms; people mention it by "
                      "this name. Blank: the JID's user part.")

    @field_validator("rooms")
    @classmethod
    def _bare_rooms(cls, rooms: list[str]) -> list[str]:
        """Room addresses are compared as lower-case bare JIDs, as servers do."""
        cleaned = [room.strip().lower() for room in rooms if room.strip()]
        bad = [room for room in cleaned if "@" not in room or "/" in room]
        if bad:
            raise ValueError(f"not a room address (room@service, no /nick): {', '.join(bad)}")
        return cleaned

    @property
    def room_nick(self) -> str:
        return self.nick.strip() or self.jid.partition("@")[0] or "pyclaw"


SPEC = ConnectorSpec(
    name="xmpp",
    title="XMPP",
    config_model=XmppConfig,
    runtime="connectors.xmpp.runtime:XmppConnector",
    requires=("slixmpp",),
    install="pip install 'pyclaw[xmpp]'",
    icon="chat_bubble",
    category=Category.OPEN_PROTOCOLS,
    brand_icon="xmpp",
    brand_color="#002B5C",
    docs_url="https://xmpp.org/software/",
    description="An XMPP (Jabber) account: answers 1:1 chats and, in the rooms it joins, "
                "mentions of its nickname. Streams replies by message correction "
                "(XEP-0308) and shows typing (XEP-0085).",
    transport=Transport.WEBSOCKET,
    capabilities=Capabilities(edit=True, typing=True, attachments=True),
    limits=Limits(max_text=MAX_TEXT, text_length=wire_len),
)
