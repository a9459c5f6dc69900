"""What the gateway's parts (channels, intake, turn) see of the gateway: one narrow protocol,
so none of them imports another and data still flows one way."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from pyclaw_app.model import ChannelState, EventKind

if TYPE_CHECKING:
    from pyclaw_app.agent import Agent
    from pyclaw_app.attachments import AttachmentPipeline
    from pyclaw_app.gateway.channels import ChannelRuntime
    from pyclaw_app.gateway.delivery import Delivery
    from pyclaw_app.gateway.intake import Intake
    from pyclaw_app.gateway.shared import SharedWork
    from pyclaw_app.lanes import Lanes
    from pyclaw_app.policy import AccessPolicy
    from pyclaw_app.store import Store

__all__ = ["Host"]


class Host(Protocol):
    store: Store
    lanes: Lanes
    agent: Agent
    attachments: AttachmentPipeline
    policy: AccessPolicy
    delivery: Delivery
    intake: Intake
    channels: dict[str, ChannelRuntime]
    shared: SharedWork | None
    """Set when this gateway shares the work with other instances (``storage.shared``)."""
    clock: Callable[[], float]
    stream_interval: float
    stop_timeout: float

    def channel_log(self, channel: str, level: str, message: str, **data: Any) -> None: ...

    def set_state(self, name: str, state: ChannelState, reason: str = "") -> None: ...

    def emit(self, kind: EventKind, channel: str, **data: Any) -> None: ...
