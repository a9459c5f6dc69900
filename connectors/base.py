"""The connector contract: what every channel module provides and what the gateway gives it.

A connector turns one platform's traffic into :class:`Inbound` messages and
:class:`Outbound` replies back into platform calls. It owns its tasks and its
SDK client, nothing else: the journal, lanes and the LLM are the gateway's.
Setup forms are generated from ``spec.config_model``'s JSON Schema, so the
model's field metadata (``secret``, ``help``, ``docs``) is the whole UI.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from pyclaw_app.model import Address, ChannelState, Inbound, Outbound

__all__ = [
    "Capabilities",
    "ChannelConfig",
    "Connector",
    "ConnectorContext",
    "ConnectorSpec",
    "Limits",
    "ProbeResult",
    "SubmitResult",
    "Transport",
    "secret_field",
    "split_text",
    "utf16_len",
]


class ChannelConfig(BaseModel):
    """Base of every channel's config model; unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Start this channel with the gateway.")
    dm_policy: Literal["pairing", "allowlist", "open", "disabled"] = Field(
        "pairing", description="Who may talk in direct messages. pairing: strangers get a code "
        "the owner approves; allowlist: only approved senders; open: anyone.")
    group_policy: Literal["open", "allowlist", "disabled"] = Field(
        "open", description="Groups (the bot answers there only when mentioned or replied to).")
    allow_from: list[str] = Field(default_factory=list,
                                  description="Sender ids always allowed in direct messages.")
    allow_groups: list[str] = Field(default_factory=list,
                                    description="Group chat ids allowed with group_policy "
                                    "allowlist.")
    rate_limit_per_minute: int = Field(20, ge=0, description="Per sender; 0 turns it off.")
    stream_replies: bool = Field(True, description="Show replies growing as they are written "
                                 "(edits the message about once a second) where the platform "
                                 "allows editing.")

    def needs_webhook(self) -> bool:
        """True when the platform pushes to our shared webhook server in this configuration."""
        return False


def secret_field(description: str, *, default: str | None = None, **extra: Any) -> Any:
    """A config field the UI masks and the config loader fills from the keyring, never from YAML."""
    return Field(
        default=SecretStr(default) if default is not None else None,
        description=description,
        json_schema_extra={"secret": True, **extra},
    )


class Transport(StrEnum):
    LOCAL = "local"
    POLLING = "polling"
    WEBSOCKET = "websocket"
    WEBHOOK = "webhook"


@dataclass(frozen=True, slots=True)
class Capabilities:
    edit: bool = False
    typing: bool = False
    threads: bool = False
    attachments: bool = False
    reactions: bool = False


@dataclass(frozen=True, slots=True)
class Limits:
    max_text: int = 4000
    """Longest single message, in the platform's own unit (see ``text_length``)."""
    text_length: Callable[[str], int] = len
    """How the platform counts characters (Telegram counts UTF-16 code units)."""


@dataclass(frozen=True, slots=True)
class ConnectorSpec:
    name: str
    title: str
    config_model: type[ChannelConfig]
    icon: str = "chat"
    docs_url: str = ""
    description: str = ""
    transport: Transport = Transport.POLLING
    capabilities: Capabilities = field(default_factory=Capabilities)
    limits: Limits = field(default_factory=Limits)


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """What the journal says about an inbound message: its row id and whether it was seen before."""

    journal_id: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    message: str
    """"connected as @name" on success, or a reason a user can act on."""


class ConnectorContext(Protocol):
    """What the gateway gives a running connector."""

    @property
    def channel(self) -> str: ...

    async def submit(self, inbound: Inbound) -> SubmitResult:
        """Journal the message; returns only once it is durable. Ack the platform after this."""
        ...

    def log(self, level: str, message: str, **data: Any) -> None:
        """A line in this channel's log (SQLite + UI); secrets are redacted on the way."""
        ...

    def set_state(self, state: ChannelState, reason: str = "") -> None: ...

    def heartbeat(self) -> None:
        """Call after each successful poll/event: liveness is judged by traffic, not flags."""
        ...

    def commands(self) -> list[tuple[str, str]]:
        """(name, description) of the chat commands the assistant understands (``/help``...),
        for platforms with a command menu (Telegram ``setMyCommands``)."""
        ...


class Connector(abc.ABC):
    """One configured channel. Subclasses set ``spec`` and implement the four coroutines."""

    spec: ClassVar[ConnectorSpec]

    def __init__(self, name: str, config: ChannelConfig) -> None:
        self.name = name
        self.config = config

    @abc.abstractmethod
    async def start(self, ctx: ConnectorContext) -> None:
        """Connect and begin delivering; returns once the background tasks are running."""

    @abc.abstractmethod
    async def send(self, outbound: Outbound) -> list[str]:
        """Deliver a reply, split to the platform's limit; returns the platform ids of the parts."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop tasks and close clients; safe to call twice and after a failed start."""

    @abc.abstractmethod
    async def probe(self) -> ProbeResult:
        """A cheap credentials check for the setup form's "Test connection"."""

    async def typing(self, address: Address) -> None:  # noqa: B027 - optional capability
        """Show a typing indicator where the platform has one; no-op by default."""

    async def edit(self, address: Address, platform_id: str, text: str) -> None:
        """Replace the text of a message this connector sent (``capabilities.edit``).

        The gateway streams a reply by sending a draft and editing it about once a second;
        ``text`` always fits within ``spec.limits.max_text``. Raise RetryableError(retry_after)
        on a rate limit, FatalConnectorError when the message can no longer be edited.
        """
        raise NotImplementedError(f"{self.spec.name} cannot edit messages")


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


_BOUNDARIES: tuple[tuple[str, ...], ...] = (
    ("\n\n",),
    ("\n",),
    (". ", "! ", "? ", "。", "！", "？"),
    (" ", "\t"),
)


def split_text(text: str, limit: int, length: Callable[[str], int] = len) -> list[str]:
    """Split ``text`` into parts no longer than ``limit`` whose concatenation is ``text``.

    Cuts prefer paragraph, then line, then sentence, then word boundaries and
    fall back to a hard cut (never inside a surrogate pair). Separators stay on
    the end of the part before the cut, so ``"".join(parts) == text`` always.
    """
    if limit < 2:
        raise ValueError("limit must be at least 2")
    parts: list[str] = []
    rest = text
    while length(rest) > limit:
        window = _prefix_within(rest, limit, length)
        cut = _best_cut(window)
        parts.append(rest[:cut])
        rest = rest[cut:]
    if rest or not parts:
        parts.append(rest)
    return parts


def _prefix_within(text: str, limit: int, length: Callable[[str], int]) -> str:
    """Longest prefix of ``text`` whose platform length is within ``limit``."""
    if length is len:
        return text[:limit]
    lo, hi = 0, min(len(text), limit)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if length(text[:mid]) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo]


def _best_cut(window: str) -> int:
    floor = len(window) // 4  # a cut that leaves a tiny part is worse than a word cut
    for seps in _BOUNDARIES:
        best = max((window.rfind(s) + len(s) for s in seps if window.rfind(s) > 0), default=-1)
        if best > floor:
            return best
    return max(len(window), 1)
