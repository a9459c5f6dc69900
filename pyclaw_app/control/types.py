"""Plain rows the views render. Dataclasses only: the Android monitor has no pydantic."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyclaw_app.model import UsageRow

__all__ = ["CHAT_FILE_LIMIT", "BudgetForm", "BudgetRow", "ChannelStatus", "ChatFile",
           "ChatFileContent", "Counters", "LogRow", "ScheduleRow", "TrafficRow", "UsageRow"]


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
    category: str = ""
    """Its group in the Add channel catalog ("Chat apps", "Team chat"...; "" from an older
    gateway). The list comes in catalog order, so groups are shown as they first appear."""
    brand_icon: str = ""
    """The platform's logo, ``icons/channels/<brand_icon>.svg`` under the app's assets;
    empty: the Material ``icon``."""
    brand_color: str = ""
    """``#RRGGBB`` of the tile behind the logo."""


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
class BudgetForm:
    """The budgets form: every configured cap as the values of one row, and the row's
    schema (``budgets.CapRow``, the channel picked from the configured ones)."""

    caps: tuple[dict[str, Any], ...]
    schema: dict[str, Any]


@dataclass(frozen=True, slots=True)
class BudgetRow:
    """One spending cap (``budgets:`` in the config) and what its period has spent."""

    scope: str  # "overall" | "channel" | "person"
    channel: str  # "" for overall
    sender: str  # the sender id of a person cap, else ""
    sender_name: str
    period: str  # "daily" | "monthly"
    unit: str  # "cost" (US dollars) | "tokens"
    spent: float
    limit: float
    resets_at: float
    """Epoch seconds when the period ends and the cap starts again from zero."""


@dataclass(frozen=True, slots=True)
class StateSpan:
    """A stretch of time a channel spent in one state (``end`` is the snapshot time for the
    state it is still in)."""

    start: float
    end: float
    state: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class HealthHour:
    """One clock hour of a channel's history: log errors and warnings, seconds per state."""

    start: float
    errors: int = 0
    warnings: int = 0
    states: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ChannelHealth:
    """A channel's recent history: ``hours`` oldest first, the last one still running."""

    channel: str
    since: float
    until: float
    hours: tuple[HealthHour, ...] = ()
    spans: tuple[StateSpan, ...] = ()
    changes: int = 0
    """State changes recorded in the window."""


@dataclass(frozen=True, slots=True)
class ProviderHealth:
    """How an LLM provider is doing, judged by its real calls of the last day."""

    name: str
    state: str  # "ok" | "failing" | "idle" (no call in the window)
    reason: str = ""
    last_call: float | None = None
    calls: int = 0
    errors: int = 0


@dataclass(frozen=True, slots=True)
class AccountRow:
    """One sender on one channel, linked to a person."""

    channel: str
    sender_id: str
    sender_name: str
    via: str  # "code" (/link in chat) | "owner" (CLI, control panel)
    linked_at: float


@dataclass(frozen=True, slots=True)
class PersonRow:
    """Accounts linked to one person (``/link``): they share one long-term memory."""

    id: int
    name: str
    accounts: tuple[AccountRow, ...]


@dataclass(frozen=True, slots=True)
class ConversationRow:
    """A conversation a person wrote in, on one of their accounts."""

    channel: str
    chat: str
    thread: str | None
    is_group: bool
    messages: int  # the person's own messages in it
    last_ts: float


@dataclass(frozen=True, slots=True)
class PersonDetail:
    """A person's accounts, their conversations across channels and their latest traffic."""

    person: PersonRow
    conversations: tuple[ConversationRow, ...]
    traffic: tuple[TrafficRow, ...]
    """Newest first: the person's messages and the replies to them (in a group, only
    theirs)."""


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


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    """A scheduled job: where it speaks, what it sends and when (``timing`` in words)."""

    id: int
    channel: str
    chat: str
    thread: str | None
    created_by: str
    action: str  # "text": the body is sent as written; "task": the assistant's answer to it
    body: str
    timing: str
    cron: str | None
    at: float | None
    timezone: str
    missed: str  # "run_once" | "skip"
    enabled: bool
    next_run: float | None
    last_run: float | None
    created_at: float
    paused_reason: str = ""
    """Why the gateway paused the job (its creator lost access); "" otherwise."""


@dataclass(frozen=True, slots=True)
class McpServerRow:
    """One configured MCP server for its Settings card and edit form; never a secret value."""

    name: str
    transport: str  # "stdio" | "http"
    target: str
    """The command line or the URL, in words."""
    enabled: bool
    values: dict[str, Any]
    """The config as the form edits it (``transport`` included), without secret values."""
    secrets_set: tuple[str, ...]
    """Secrets that have a value, as the form names them: ``headers.Authorization``."""
    state: str  # "starting" | "up" | "down" | "stopped"
    tools: tuple[str, ...] = ()
    """The server's own tool names, as it last listed them."""
    offered: int = 0
    """How many of them its ``tools`` allowlist lets through to the model."""
    error: str = ""
    """Why it is down or stopped (redacted)."""
    restarts: int = 0


@dataclass(frozen=True, slots=True)
class McpServers:
    """The MCP servers section: every server, and the JSON Schema its form is made from."""

    servers: tuple[McpServerRow, ...]
    schema: dict[str, Any]


@dataclass(frozen=True, slots=True)
class LocalServer:
    """An OpenAI-compatible server answering on this machine's loopback (the first-run
    guide offers it as the provider)."""

    name: str
    """What it most likely is, from its port: "Ollama", "LM Studio", ..."""
    base_url: str
    """Its OpenAI-compatible root, ``http://127.0.0.1:PORT/v1``."""
    models: tuple[str, ...] = ()
    note: str = ""
    """Why no models are listed though it answered (it wants an API key, say)."""


@dataclass(frozen=True, slots=True)
class CompletionCheck:
    """One short chat completion through a provider: its answer, or why there is none."""

    ok: bool
    failure: str
    """"" when it answered; else "refused", "timed_out", "unauthorized", "model",
    "invalid" (the settings themselves) or "error"."""
    message: str
    answer: str = ""


@dataclass(frozen=True, slots=True)
class FirstRunState:
    """Whether the first-run guide opens by itself, and why."""

    show: bool
    """No provider is configured and the guide was neither skipped nor finished."""
    has_provider: bool
    closed: str = ""
    """"skipped" or "finished" once the owner closed the guide; "" before."""


@dataclass(frozen=True, slots=True)
class ProfileRow:
    """One profile (``profiles`` in the YAML) as Settings lists it."""

    name: str
    values: dict[str, Any]
    """The form's values: the profile's fields (unset ones None) and its ``name``."""
    used_on: tuple[str, ...]
    """Its ``match`` entries: channels, or channel:chat."""
    answers_with: str
    """The chain in words: "fake/fake-small, then local/llama3" or "the assistant's"."""
    problems: tuple[str, ...] = ()
    """What does not add up with the rest of the config (an unknown channel, say)."""


@dataclass(frozen=True, slots=True)
class Profiles:
    """Every profile, and the form's schema (``ProfileConfig`` plus its name, with the
    configured providers, channels and tools named in it)."""

    profiles: tuple[ProfileRow, ...]
    schema: dict[str, Any]


CHAT_FILE_LIMIT = 8 * 1024 * 1024
"""The largest file ``chat_file`` hands over (bytes). Its bytes travel base64 in one JSON
answer of the control API to the remote monitor, so a bigger one would tie up a phone's
connection and memory; the chat shows such a file's chip without a preview or a save."""


@dataclass(frozen=True, slots=True)
class ChatFile:
    """A file the assistant sent in the local chat: one file part of a reply, as the Chat view
    shows it (never its stored path)."""

    reply_id: int
    """The reply's journal row; with ``idx`` it names the file for ``chat_file``."""
    idx: int
    reply_to_id: int | None
    """The question it answers: the view puts the file beside that reply's text."""
    name: str
    mime: str
    kind: str  # "image" | "audio" | "voice" | "file"
    size: int
    """Bytes on disk; -1 when the stored file is gone (the retention sweep removed it)."""
    ts: float
    before_text: bool = True
    """Sent before the reply's text (a tool's file); False for one after it (a voice reply)."""
    caption: str = ""
    status: str = "sent"  # the part's custody: pending | sent | uncertain | failed


@dataclass(frozen=True, slots=True)
class ChatFileContent:
    """A sent file's bytes, base64 (JSON carries them to the monitor unchanged)."""

    name: str
    mime: str
    size: int
    data: str
