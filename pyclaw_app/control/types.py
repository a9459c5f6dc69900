"""Plain rows the views render. Dataclasses only: the Android monitor has no pydantic."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyclaw_app.model import UsageRow

__all__ = ["ChannelStatus", "Counters", "LogRow", "TrafficRow", "UsageRow"]


@dataclass(frozen=True, slots=True)
class TrafficRow:
    """One journal row: a message in or a reply out."""

    id: int
    ts: float
    direction: str  # "in" | "out"
    channel: str
    chat: str
    sender: str
    text: str
    status: str
    thread: str | None = None
    reply_to_id: int | None = None  # for "out": the inbound journal row it answers
    latency_ms: float | None = None  # for "out": inbound received -> reply sent
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ChannelStatus:
    name: str
    type: str
    title: str
    icon: str
    state: str  # a pyclaw_app.model.ChannelState value
    enabled: bool = True
    reason: str = ""
    last_error: str = ""
    last_message_ts: float | None = None
    config_error: str = ""


@dataclass(frozen=True, slots=True)
class LogRow:
    id: int
    ts: float
    channel: str
    level: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Counters:
    """Today's totals (local midnight onwards)."""

    inbound: int = 0
    outbound: int = 0
    failed: int = 0


@dataclass(frozen=True, slots=True)
class ChannelType:
    """A channel type the gateway can run; ``schema`` is its config model's JSON Schema.

    Fields carry UI hints in the schema: ``secret: true`` (mask, keyring), ``description``
    (help text), ``enum`` (a choice), ``default``.
    """

    type: str
    title: str
    icon: str
    description: str
    docs_url: str
    transport: str
    schema: dict[str, Any]
    install: str = ""
    """Set when the type cannot run here: the command that installs its SDK (then ``schema``
    is still the real config model, but the type cannot be added until it is installed)."""


@dataclass(frozen=True, slots=True)
class ChannelForm:
    """A configured channel's values for its edit form; secrets are never included."""

    name: str
    type: str
    values: dict[str, Any]
    secrets_set: tuple[str, ...] = ()
    """Secret fields that have a stored value (the form shows "saved; leave blank to keep")."""


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str  # "" for the form as a whole
    message: str


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    ok: bool
    message: str


@dataclass(frozen=True, slots=True)
class PairingRow:
    code: str
    channel: str
    sender_id: str
    sender_name: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class GroupRow:
    """A group chat that addressed the bot and waits for the owner's decision."""

    channel: str
    chat: str
    requested_by: str
    created_at: float


@dataclass(frozen=True, slots=True)
class MessageDetail:
    """One journal row with what answered it: the reply and every LLM call made for it."""

    message: TrafficRow
    platform_id: str | None
    reply: TrafficRow | None
    llm_calls: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class SettingsForm:
    """Providers and agent settings for the Settings view; API keys are never included."""

    providers: tuple[dict[str, Any], ...]
    keys_set: tuple[str, ...]
    """Provider names whose API key is stored (the form shows "saved; leave blank to keep")."""
    agent: dict[str, Any]
    provider_schema: dict[str, Any]
    agent_schema: dict[str, Any]
