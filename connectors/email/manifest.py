"""What the setup form and the registry know about Email; imports no mail library."""

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

__all__ = ["MAX_TEXT", "SPEC", "EmailConfig"]

MAX_TEXT = 100_000
"""Characters of one reply mail. Mail has no small limit (SMTP servers cap whole messages
at megabytes); one reply is one mail, and only a runaway answer is cut into several."""

TlsMode = Literal["implicit", "starttls"]


class EmailConfig(ChannelConfig):
    address: str = Field(
        "", description="The bot's mail address, e.g. assistant@example.org: replies come "
        "from it, and mail from it is never answered. Use a mailbox of its own; every new "
        "mail in it is read as a message to the assistant.")
    display_name: str = Field("", description="The name shown beside the address in replies.")
    imap_host: str = Field("", description="IMAP server, e.g. imap.example.org.")
    imap_port: int = Field(993, ge=1, le=65535,
                           description="993 for implicit TLS, 143 for STARTTLS.")
    imap_tls: TlsMode = Field(
        "implicit", description="implicit: TLS from the first byte (port 993); starttls: "
        "connect in the clear and upgrade (port 143). The channel never logs in without TLS.")
    username: str = Field("", description="IMAP login. Blank: the address.")
    password: SecretStr | None = secret_field(
        "IMAP password (for Gmail, Outlook and others with two-step sign-in: an app "
        "password).", required=True)
    folder: str = Field("INBOX", description="The mailbox folder to read.")
    smtp_host: str = Field("", description="SMTP server for replies, e.g. smtp.example.org.")
    smtp_port: int = Field(465, ge=1, le=65535,
                           description="465 for implicit TLS, 587 for STARTTLS.")
    smtp_tls: TlsMode = Field(
        "implicit", description="implicit: TLS from the first byte (port 465); starttls: "
        "upgrade after connecting (port 587). Never sent without TLS.")
    smtp_username: str = Field("", description="SMTP login. Blank: the IMAP login.")
    smtp_password: SecretStr | None = secret_field(
        "SMTP password. Blank: the IMAP password.")
    ca_file: str = Field(
        "", description="A PEM file of the certificate authority to trust for servers with "
        "a private or self-signed certificate. Blank: the system's trusted authorities.")
    allow_senders: list[str] = Field(
        default_factory=list, description="Only mail from these addresses or domains "
        "(alice@example.org, example.org) is read; everyone else is ignored with a log line. "
        "Blank: anyone (dm_policy still applies). This trusts the From header, which anyone "
        "can forge unless your mail server enforces SPF/DKIM/DMARC: the channel drops mail "
        "whose topmost Authentication-Results header says dmarc=fail, but a server that "
        "writes none gives it nothing to check.")
    subject: str = Field("Message from your assistant",
                         description="Subject of a reply to a mail that had none.")
    poll_interval: float = Field(
        60.0, ge=1.0, le=120.0, description="Seconds between checks for new mail on a "
        "server without IMAP IDLE (push); with IDLE new mail is read at once. At most 120: "
        "each check is the sign of life the gateway watches for.")
    max_mail_bytes: int = Field(
        25_000_000, ge=10_000, description="Read at most this many bytes of one mail; the "
        "rest of a larger one (big attachments) is not downloaded.")

    @property
    def login(self) -> str:
        return self.username.strip() or self.address.strip()

    @property
    def smtp_login(self) -> str:
        return self.smtp_username.strip() or self.login


SPEC = ConnectorSpec(
    name="email",
    title="Email",
    config_model=EmailConfig,
    runtime="connectors.email.runtime:EmailConnector",
    requires=("aioimaplib", "aiosmtplib"),
    install="pip install 'pyclaw[email]'",
    icon="mail",
    category=Category.OPEN_PROTOCOLS,
    docs_url="https://datatracker.ietf.org/doc/html/rfc2177",
    description="A mailbox of its own: reads new mail over IMAP (IDLE push, or polling) "
                "and answers each sender by SMTP, threaded under their mail.",
    transport=Transport.POLLING,
    capabilities=Capabilities(attachments=True, threads=False, send_only=True, files=True),
    limits=Limits(max_text=MAX_TEXT),
)
