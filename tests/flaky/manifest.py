"""A connector that misbehaves on command, to test the gateway's supervision."""

from __future__ import annotations

from pydantic import Field

from pyclaw_app.channels import Capabilities, ChannelConfig, ConnectorSpec, Transport


class FlakyConfig(ChannelConfig):
    dm_policy: str = "open"  # type: ignore[assignment]
    script: str = Field("", description="Key into runtime.SCRIPTS selecting the misbehaviour")


SPEC = ConnectorSpec(name="flaky", title="Flaky (tests)", config_model=FlakyConfig,
                     runtime="tests.flaky.runtime:FlakyConnector",
                     transport=Transport.POLLING, capabilities=Capabilities(typing=True))
