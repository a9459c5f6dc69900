"""What views may use: the ControlPlane protocol and its row types."""

from pyclaw_app.control.plane import ControlPlane, Subscription
from pyclaw_app.control.types import (
    ChannelForm,
    ChannelStatus,
    ChannelType,
    Counters,
    FieldError,
    GroupRow,
    LogRow,
    MessageDetail,
    PairingRow,
    ProbeOutcome,
    SettingsForm,
    TrafficRow,
    UsageRow,
)

__all__ = [
    "ChannelForm",
    "ChannelStatus",
    "ChannelType",
    "ControlPlane",
    "Counters",
    "FieldError",
    "GroupRow",
    "LogRow",
    "MessageDetail",
    "PairingRow",
    "ProbeOutcome",
    "SettingsForm",
    "Subscription",
    "TrafficRow",
    "UsageRow",
]
