"""The lifecycle of a channel whose platform is one REST API behind a :class:`ChannelHttp`.

Webhook platforms (LINE, WhatsApp, Viber...) all start the same way: check the
settings the channel cannot run without, make the client, ask the platform who
the bot is (a bad token fails the start), then go online; Test connection asks
the same question with a client of its own. A channel supplies the client, the
question and, where the platform needs one, a step after it (Viber's
``set_webhook``).
"""

from __future__ import annotations

from pyclaw_app.channels.contract import ChannelConfig, ProbeResult
from pyclaw_app.channels.http import ChannelHttp
from pyclaw_app.channels.lifecycle import ConnectorBase
from pyclaw_app.errors import ConnectorError, RetryableError

__all__ = ["RestConnector"]


class RestConnector(ConnectorBase):
    """Implement ``make_http``, ``whoami`` and ``send_part``; ``check_config`` and
    ``connected`` where the platform needs them."""

    def __init__(self, name: str, config: ChannelConfig) -> None:
        super().__init__(name, config)
        self._http: ChannelHttp | None = None

    def make_http(self) -> ChannelHttp:
        """A client for the platform's API with this channel's credentials."""
        raise NotImplementedError

    async def whoami(self, http: ChannelHttp) -> str:
        """The bot's name as the platform reports it (the token's first check)."""
        raise NotImplementedError

    def check_config(self) -> None:
        """Raise FatalConnectorError for a setting the channel cannot run without (the secret
        its webhooks are verified with, say); checked before start and after the probe."""

    async def connected(self, http: ChannelHttp) -> None:
        """Called once the platform knows the bot, before the channel goes online."""

    @property
    def http(self) -> ChannelHttp:
        """The running channel's client; RetryableError while it is not running."""
        if self._http is None or not self.running:
            raise RetryableError(f"{self.spec.title} channel {self.name!r} is not running")
        return self._http

    async def open(self) -> None:
        self.check_config()
        self._http = self.make_http()
        name = await self.whoami(self._http)
        await self.connected(self._http)
        self.went_online(f"connected as {name}")

    async def close(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    async def probe(self) -> ProbeResult:
        try:
            http = self.make_http()
            try:
                name = await self.whoami(http)
            finally:
                await http.close()
            self.check_config()
        except ConnectorError as exc:
            return ProbeResult(False, str(exc))
        return ProbeResult(True, f"connected as {name}")
