"""Canonical types that every connector, the journal, the agent and the views share.

Connectors translate platform payloads into these and back; nothing above the
connector layer ever sees a platform's own shapes. They are frozen so an
``Inbound`` can be handed to several tasks (journal, lane, event bus) without
anyone changing it under the others' feet.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "Address",
    "Attachment",
    "ChannelState",
    "Event",
    "EventKind",
    "Inbound",
    "MessageStatus",
    "Outbound",
    "UsageRow",
]


@dataclass(frozen=True, slots=True)
class Address:
    """Where a conversation lives: one lane, one history.

    ``channel`` is the configured channel's name (``"telegram"``, ``"work-slack"``),
    ``account`` the bot identity on that platform, ``chat`` the platform's chat or
    room id and ``thread`` a topic or thread inside it (``None`` when flat).
    """

    channel: str
    chat: str
    account: str = ""
    thread: str | None = None

    @property
    def key(self) -> str:
        """Stable conversation key used for lanes and history."""
        return f"{self.channel}|{self.account}|{self.chat}|{self.thread or ''}"


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file that came with a message; the bytes stay on the platform until needed."""

    kind: str  # "image", "audio", "video", "file", "sticker", "location"
    name: str = ""
    mime: str = ""
    size: int | None = None
    url: str | None = None
    platform_id: str | None = None


@dataclass(frozen=True, slots=True)
class Inbound:
    """A message someone sent to the assistant, already in canonical form."""

    address: Address
    platform_id: str
    text: str
    sender_id: str = ""
    sender_name: str = ""
    attachments: tuple[Attachment, ...] = ()
    is_group: bool = False
    mentioned: bool = False
    reply_to_bot: bool = False
    ts: float = field(default_factory=time.time)
    truncated_from: int | None = None
    """Original length when the gateway cut an oversized text (the reply says so)."""


@dataclass(frozen=True, slots=True)
class Outbound:
    """A reply on its way out; ``reply_to`` is the platform id of the message it answers."""

    address: Address
    text: str
    reply_to: str | None = None
    journal_id: int | None = None


class MessageStatus(StrEnum):
    """Journal states. Inbound: received -> processing -> replied | failed | skipped.

    Outbound: pending -> sent | failed.
    """

    RECEIVED = "received"
    PROCESSING = "processing"
    REPLIED = "replied"
    FAILED = "failed"
    SKIPPED = "skipped"
    PENDING = "pending"
    SENT = "sent"


class ChannelState(StrEnum):
    STOPPED = "stopped"
    CONNECTING = "connecting"
    ONLINE = "online"
    DEGRADED = "degraded"
    OFFLINE = "offline"
    DISABLED = "disabled"


class EventKind(StrEnum):
    """Everything the gateway tells the views, in the order the flow produces them."""

    MESSAGE_RECEIVED = "message.received"
    MESSAGE_DUPLICATE = "message.duplicate"
    MESSAGE_PROCESSING = "message.processing"
    LLM_CALL = "llm.call"
    REPLY_DELTA = "reply.delta"
    REPLY_RESET = "reply.reset"
    """Streamed text so far was discarded (failover mid-stream, or tools were called)."""
    REPLY_SENT = "reply.sent"
    MESSAGE_FAILED = "message.failed"
    MESSAGE_SKIPPED = "message.skipped"
    CHANNEL_STATE = "channel.state"
    LOG = "log"


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    channel: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    ts: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True)
class UsageRow:
    """LLM calls of one day x provider x model x channel (local-time days): what the store
    aggregates and the Usage view shows, on the gateway and on the monitor alike."""

    day: str  # YYYY-MM-DD
    provider: str
    model: str
    channel: str
    calls: int
    errors: int
    input_tokens: int
    output_tokens: int
    cost: float
    latency_p50_ms: float
    latency_p95_ms: float
