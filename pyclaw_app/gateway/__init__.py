"""The gateway core: channel lifecycle, intake, the turn and delivery (one job a module)."""

from pyclaw_app.gateway.channels import ChannelRuntime
from pyclaw_app.gateway.core import Gateway
from pyclaw_app.gateway.intake import MAX_INBOUND_CHARS

__all__ = ["MAX_INBOUND_CHARS", "ChannelRuntime", "Gateway"]
