"""A connector that misbehaves on command, to test the gateway's supervision."""

from __future__ import annotations

from pydantic import Field

from connectors.base import Capabilities, ChannelConfig, ConnectorSpec, Transport


class FlakyConfig(ChannelConfig):
    dm_policy: str = "open"  # type: ignore[assignment]
    script: str = Field("", description="Key into runtime.SCRIPTS selecting the misbehaviour")


SPEC = ConnectorSpec(name="flaky", title="Flaky (tests)", config_model=FlakyConfig,
                     transport=Transport.POLLING, capabilities=Capabilities(typing=True))
