from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from pyclaw_app.channels import Connector, ConnectorContext, ProbeResult
from pyclaw_app.errors import ConnectorError, FatalConnectorError
from pyclaw_app.model import Address, ChannelState, Inbound, Outbound
from tests.flaky.manifest import SPEC, FlakyConfig


@dataclass
class Script:
    """What instances of the flaky connector do; shared across restarts."""

    fail_starts: int = 0
    fatal_start: bool = False
    hang_in_stop: bool = False
    release: asyncio.Event = field(default_factory=asyncio.Event)
    submit_in_stop: Inbound | None = None
    """Submitted from inside stop(), as a poller finishing its batch while it is stopped."""
    submitted_in_stop: int = 0
    starts: int = 0
    stops: int = 0
    typing_seconds: float = 0.0
    typing_done: int = 0
    typing_cancelled: int = 0
    instances: list[FlakyConnector] = field(default_factory=list)


SCRIPTS: dict[str, Script] = {}


class FlakyConnector(Connector):
    spec = SPEC
    config: FlakyConfig

    def __init__(self, name: str, config: FlakyConfig) -> None:
        super().__init__(name, config)
        self.script = SCRIPTS[config.script]
        self.script.instances.append(self)
        self.ctx: ConnectorContext | None = None
        self.sent: list[Outbound] = []

    async def start(self, ctx: ConnectorContext) -> None:
        self.script.starts += 1
        if self.script.fatal_start:
            raise FatalConnectorError("bad token (flaky)")
        if self.script.fail_starts > 0:
            self.script.fail_starts -= 1
            raise ConnectorError("platform unreachable (flaky)")
        self.ctx = ctx
        ctx.set_state(ChannelState.ONLINE, "flaky online")

    async def stop(self) -> None:
        self.script.stops += 1
        if self.script.submit_in_stop is not None and self.ctx is not None:
            await self.ctx.submit(self.script.submit_in_stop)
            self.script.submitted_in_stop += 1
        if self.script.hang_in_stop:
            while not self.script.release.is_set():  # ignores cancellation, like a bad SDK
                try:
                    await self.script.release.wait()
                except asyncio.CancelledError:
                    continue

    async def send_part(self, address: Address, text: str, reply_to: str | None) -> str:
        self.sent.append(Outbound(address, text, reply_to))
        return str(len(self.sent))

    async def typing(self, address: Address) -> None:
        """Slow, like a request waiting for a pooled connection; records if it is cancelled."""
        try:
            await asyncio.sleep(self.script.typing_seconds)
        except asyncio.CancelledError:
            self.script.typing_cancelled += 1
            raise
        self.script.typing_done += 1

    async def probe(self) -> ProbeResult:
        return ProbeResult(True, "flaky")


CONNECTOR = FlakyConnector
