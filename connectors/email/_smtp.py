"""Sending one reply mail over SMTP (aiosmtplib), with every outcome sorted once.

One connection per mail: replies are rare next to a mailbox's traffic, and a fresh
connection has no state a previous failure could have spoiled. The steps are taken one
by one so the outcome is known exactly:

- anything before ``DATA`` was answered (refused connection, a 4xx to ``MAIL``/``RCPT``)
  means the mail was certainly not accepted: :class:`RetryableError`, sent again later;
- a 5xx refusal (of the sender, the recipient or the content) cannot be fixed by
  retrying: :class:`FatalConnectorError` naming what was refused; so are a refused login,
  an untrusted certificate and a server that offers no TLS;
- a connection lost or timed out after the message went out in ``DATA`` but before the
  server's answer: the server may have queued it and cannot be asked,
  :class:`DeliveryUncertain` (never sent again automatically).

SMTP has no Retry-After: a 421/450/451/452 carries no delay, so the gateway's own retry
pause applies.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from email.message import EmailMessage

import aiosmtplib

from pyclaw_app.errors import DeliveryUncertain, FatalConnectorError, RetryableError

__all__ = ["SmtpSettings", "login_check", "send_mail"]

TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int
    tls: str
    login: str
    password: str
    context: ssl.SSLContext

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def client(self) -> aiosmtplib.SMTP:
        implicit = self.tls == "implicit"
        return aiosmtplib.SMTP(hostname=self.host, port=self.port, username=self.login,
                               password=self.password, use_tls=implicit,
                               start_tls=not implicit, tls_context=self.context,
                               timeout=TIMEOUT)


def _refused(settings: SmtpSettings, exc: aiosmtplib.SMTPResponseException, what: str
             ) -> Exception:
    text = f"{exc.code} {exc.message}".strip()
    if 400 <= exc.code < 500:
        return RetryableError(f"the SMTP server {settings.where} deferred {what}: {text}")
    return FatalConnectorError(f"the SMTP server {settings.where} refused {what}: {text}")


async def _connect(settings: SmtpSettings) -> aiosmtplib.SMTP:
    """Connected, TLS on and logged in; the failures a user can fix are fatal."""
    client = settings.client()
    try:
        try:
            await client.connect()
        except aiosmtplib.SMTPConnectError as exc:
            if isinstance(exc.__cause__, ssl.SSLError):  # aiosmtplib wraps the handshake's
                raise exc.__cause__ from exc
            raise
    except aiosmtplib.SMTPAuthenticationError as exc:
        raise FatalConnectorError(f"SMTP login refused for {settings.login!r} at "
                                  f"{settings.where}: wrong username or password "
                                  f"({exc.code} {exc.message})") from exc
    except ssl.SSLCertVerificationError as exc:
        raise FatalConnectorError(f"the SMTP server {settings.where} has a TLS certificate "
                                  f"this machine does not trust ({exc.verify_message}); set "
                                  "ca_file to its authority's PEM file") from exc
    except (ssl.SSLError, aiosmtplib.SMTPNotSupported) as exc:
        raise FatalConnectorError(f"TLS refused by the SMTP server {settings.where} ({exc}): "
                                  "check smtp_port and smtp_tls (implicit is port 465, "
                                  "starttls port 587)") from exc
    except aiosmtplib.SMTPResponseException as exc:
        raise _refused(settings, exc, "the connection") from exc
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise RetryableError(f"cannot reach the SMTP server {settings.where}: {exc}") from exc
    return client


async def login_check(settings: SmtpSettings) -> None:
    """Connect, start TLS and log in, then leave: Test connection's SMTP half."""
    client = await _connect(settings)
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError):
        client.close()


async def send_mail(settings: SmtpSettings, message: EmailMessage, *, sender: str,
                    recipient: str) -> None:
    client = await _connect(settings)
    try:
        try:
            await client.mail(sender)
            await client.rcpt(recipient)
        except aiosmtplib.SMTPResponseException as exc:
            raise _refused(settings, exc, f"the mail to {recipient}") from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise RetryableError(f"the SMTP connection to {settings.where} failed before "
                                 f"the mail was sent: {exc}") from exc
        try:
            await client.data(message.as_bytes())
        except aiosmtplib.SMTPResponseException as exc:
            raise _refused(settings, exc, f"the mail to {recipient}") from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise DeliveryUncertain(f"the SMTP connection to {settings.where} was lost "
                                    f"after the mail to {recipient} went out; it may have "
                                    "been delivered, so it is not sent again") from exc
    except BaseException:
        client.close()
        raise
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        client.close()
