"""What views may use: the ControlPlane protocol and its row types."""

from pyclaw_app.control.plane import ControlPlane, Subscription
from pyclaw_app.control.types import ChannelStatus, Counters, LogRow, TrafficRow

__all__ = ["ChannelStatus", "ControlPlane", "Counters", "LogRow", "Subscription", "TrafficRow"]
