"""The connector contract: what every channel provides and what the gateway gives it.

A connector turns one platform's traffic into :class:`Inbound` messages and
sends the gateway's reply parts back to the platform. It owns its tasks and
its SDK client, nothing else: the journal, the lanes, splitting, retries and
the LLM are the gateway's. Setup forms are generated from
``spec.config_model``'s JSON Schema, so the model's field metadata (``secret``,
descriptions, ``docs``) is the whole UI.
"""

from __future__ import annotations

import abc
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from pyclaw_app.channels.webhook import WebhookRequest, WebhookResponse
from pyclaw_app.errors import ConnectorError, FatalConnectorError
from pyclaw_app.model import Address, Attachment, ChannelState, Inbound

__all__ = [
    "AttachmentSource",
    "AttachmentUnavailable",
    "Capabilities",
    "Category",
    "ChannelConfig",
    "Connector",
    "ConnectorContext",
    "ConnectorSpec",
    "FileKind",
    "GroupReply",
    "Limits",
    "OutboundFile",
    "ProbeResult",
    "StateStore",
    "SubmitResult",
    "Transport",
    "secret_field",
]

GroupReply = Literal["mention", "reply", "all"]

_OLD_GROUP_KEYS = {"group_mode": {"mention": "reply", "all": "all"},
                   "guild_mode": {"mention": "reply", "all": "all"},
                   "require_mention": {True: "reply", False: "all"}}
"""Per-channel names the group rule had before it was one field; read, never written."""


class ChannelConfig(BaseModel):
    """Base of every channel's config model; unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid")

    # Titles, option labels, "group" and "shown_when" are read by the setup forms
    # (views/forms.py): what the user reads, and which fields apply together.
    enabled: bool = Field(True, title="Enabled", description="Start this channel with the "
                          "gateway.", json_schema_extra={"group": "essentials"})
    dm_policy: Literal["pairing", "allowlist", "open", "disabled"] = Field(
        "pairing", title="Direct messages", description="Who may talk in direct messages. "
        "pairing: strangers get a code the owner approves; allowlist: only approved senders; "
        "open: anyone.", json_schema_extra={"group": "access", "options": {
            "pairing": "Pairing: strangers ask the owner",
            "allowlist": "Allowlist: approved senders only",
            "open": "Open: anyone",
            "disabled": "Off: no direct messages"}})
    group_policy: Literal["open", "allowlist", "disabled"] = Field(
        "allowlist", title="Groups", description="Which groups the bot talks in. allowlist: the "
        "groups in allow_groups and those the owner approved (a new group that addresses the "
        "bot gets one notice and waits for `pyclaw groups approve`); open: any group it is in, "
        "so anyone who adds it spends your tokens; disabled: none.",
        json_schema_extra={"group": "access", "options": {
            "allowlist": "Allowlist: approved groups only",
            "open": "Open: any group it is in",
            "disabled": "Off: no groups"}})
    group_reply: GroupReply = Field(
        "reply", title="Answer in groups", description="When the bot answers in a group. "
        "mention: only when @mentioned; reply: when @mentioned or when someone replies to one "
        "of its messages (or writes in one of its threads); all: every message it can read. "
        "Direct messages are always answered (subject to dm_policy).",
        json_schema_extra={"group": "access",
                           "shown_when": {"group_policy": ["allowlist", "open"]},
                           "options": {"mention": "When @mentioned",
                                       "reply": "When @mentioned or replied to",
                                       "all": "Every message"}})
    allow_from: list[str] = Field(default_factory=list, title="Allowed senders",
                                  description="Sender ids always allowed in direct messages.",
                                  json_schema_extra={
                                      "group": "access",
                                      "shown_when": {"dm_policy": ["pairing", "allowlist"]}})
    allow_groups: list[str] = Field(default_factory=list, title="Allowed groups",
                                    description="Group chat ids allowed with group_policy "
                                    "allowlist.", json_schema_extra={
                                        "group": "access",
                                        "shown_when": {"group_policy": ["allowlist"]}})
    rate_limit_per_minute: int = Field(20, ge=0, title="Messages per minute per sender",
                                       description="Per sender; 0 turns it off.",
                                       json_schema_extra={"group": "access"})
    stream_replies: bool = Field(True, title="Stream replies", description="Show replies "
                                 "growing as they are written (edits the message about once a "
                                 "second) where the platform allows editing.",
                                 json_schema_extra={"group": "advanced"})
    # The default and why: pyclaw_app/gateway/bursts.py.
    burst: Literal["separate", "collect"] = Field(
        "separate", title="Several messages in a row", description="separate: each message "
        "gets its own reply. collect: what one person sends in a row (\"hi\" / \"can you\" / "
        "\"book a table\") is answered together in one reply, quoting the last message: the "
        "messages that come while the assistant is answering, or within burst_settle seconds "
        "of each other. Fewer LLM calls and one coherent answer in direct chats; a command "
        "(/reset) and another person's message are always answered on their own. Channels "
        "where each request waits for its own answer (the OpenAI-compatible API) always "
        "answer separately.", json_schema_extra={"group": "advanced", "options": {
            "separate": "Answer each message",
            "collect": "Answer a burst together"}})
    voice_replies: bool = Field(
        False, title="Voice replies", description="When someone sends a voice note, answer "
        "with a voice message as well as the text, spoken by the speech service set up under "
        "attachments.speech. Only where the channel can send files; if speech fails, the text "
        "still goes out and the channel log says why.", json_schema_extra={"group": "advanced"})
    burst_settle: float = Field(
        2.0, ge=0, le=60, title="Wait for more (seconds)", description="With collect: how "
        "long the chat must be quiet before the assistant starts answering (at most three "
        "times this after the first message). 0 starts at once and still collects what "
        "arrives while it answers.", json_schema_extra={"group": "advanced",
                                                         "shown_when": {"burst": ["collect"]}})

    @model_validator(mode="before")
    @classmethod
    def _read_old_group_keys(cls, data: Any) -> Any:
        """Configs written before ``group_reply`` keep working: the old key is translated."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for key, mapping in _OLD_GROUP_KEYS.items():
            if key in data and key not in cls.model_fields:
                value = data.pop(key)
                if value not in mapping:
                    raise ValueError(f"{key} (now group_reply) must be one of "
                                     f"{', '.join(map(str, mapping))}")
                data.setdefault("group_reply", mapping[value])
        return data

    def needs_webhook(self) -> bool:
        """True when the platform pushes to our shared webhook server in this configuration."""
        return False

    def missing_secrets(self) -> list[str]:
        """The secret fields this configuration cannot run without and has no value for (none
        in the keyring or the environment): ``pyclaw check`` and the config loader report
        them, so a user learns before the start fails. Override for secrets that only one
        mode needs."""
        return [name for name, info in type(self).model_fields.items()
                if isinstance(info.json_schema_extra, dict)
                and info.json_schema_extra.get("required_secret")
                and getattr(self, name) is None]


def secret_field(description: str, *, default: str | None = None, required: bool = False,
                 **extra: Any) -> Any:
    """A config field the UI masks and the config loader fills from the keyring, never from YAML.

    ``required``: the channel cannot run without it in any configuration, so ``pyclaw
    check`` reports it missing (a secret needed only in one mode is reported by the config
    model's ``missing_secrets`` instead).
    """
    return Field(
        default=SecretStr(default) if default is not None else None,
        description=description,
        json_schema_extra={"secret": True, **({"required_secret": True} if required else {}),
                           **extra},
    )


class Transport(StrEnum):
    LOCAL = "local"
    POLLING = "polling"
    WEBSOCKET = "websocket"
    WEBHOOK = "webhook"


class Category(StrEnum):
    """Where a channel type sits in the Add channel catalog; the order here is its order.

    A plugin may name a category of its own (any string); it is listed after these.
    """

    CHAT_APPS = "Chat apps"
    TEAM_CHAT = "Team chat"
    OPEN_PROTOCOLS = "Open protocols"
    DEVELOPER = "Developer"


@dataclass(frozen=True, slots=True)
class Capabilities:
    edit: bool = False
    typing: bool = False
    threads: bool = False
    attachments: bool = False
    reactions: bool = False
    live: bool = False
    """The reply's text is shown as the model writes it through ``reply_delta`` (an HTTP
    stream), not through edits of a sent message."""
    send_only: bool = False
    """The connector can run without receiving (``Connector.receives`` false): its replies
    go over the platform's REST API, not over the connection that receives. Instances that
    share the work (``storage.shared``) then answer this channel's conversations too while
    another one holds its single-consumer connection."""
    files: bool = False
    """The connector can send pictures, files and voice messages (``send_file``)."""


@dataclass(frozen=True, slots=True)
class Limits:
    max_text: int = 4000
    """Longest single message, in the platform's own unit (see ``text_length``)."""
    text_length: Callable[[str], int] = len
    """How the platform counts characters (Telegram counts UTF-16 code units)."""
    edits_per_second: float | None = None
    """How many live-draft edits the channel sends per second over all its drafts together
    (the platform's rate limit for the bot, with room left for replies); None: each draft
    edits once per ``stream_interval`` whatever the others do."""


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
    runtime: str = ""
    """``module:Class`` of the connector; imported only when a channel of this type runs."""
    requires: tuple[str, ...] = ()
    """Modules the runtime imports (its SDK); the registry checks them without importing."""
    install: str = ""
    """The command that installs what ``requires`` names, shown when it is missing."""
    category: str = ""
    """A :class:`Category` (or a plugin's own name); the catalog groups and searches by it."""
    brand_icon: str = ""
    """The platform's logo, ``assets/icons/channels/<brand_icon>.svg`` in the app (one
    colour, drawn white on ``brand_color``); empty: the Material ``icon`` is shown."""
    brand_color: str = ""
    """The platform's colour as ``#RRGGBB``, the tile behind ``brand_icon``."""


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """What the gateway did with an inbound message.

    ``journal_id`` is its row (0 when it was not journaled), ``duplicate`` says it was
    seen before, ``ignored`` that it was group chatter not addressed to the bot
    (``group_reply``), which is not stored at all. ``quarantined``: the message itself
    could not be stored (what the gateway could not repair, such as a chat id UTF-8 cannot
    encode), so it was kept raw as a dead letter (``pyclaw dead-letters``, an error in the
    channel's log) and will not be answered; retrying it could never help. Acknowledge the
    platform in every case: while the database is failing (disk full), ``submit`` waits or
    raises instead of returning.
    """

    journal_id: int
    duplicate: bool
    ignored: bool = False
    quarantined: bool = False


@dataclass(frozen=True, slots=True)
class AttachmentSource:
    """Where an attachment's bytes are, as the channel found out (``fetch_attachment``).

    Either ``url`` (fetched by the gateway, streamed under its size cap, with ``headers``
    such as the bot token's Authorization) or ``data`` when the connector already holds the
    bytes (a mail part, an SDK that only downloads itself). ``size`` is what the platform
    said, checked before anything is downloaded. ``ssl_context`` is the channel's own trust
    (its ``ca_file``) for a server with a private certificate authority; None: the system's.
    """

    url: str | None = field(default=None, repr=False)  # Bot API file links hold the token
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    data: bytes | None = field(default=None, repr=False)
    size: int | None = None
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False)


FileKind = Literal["image", "audio", "voice", "file"]
"""How a file is shown where it arrives: a picture, a playable audio file, a voice message
(Telegram's round play button), or a document to download."""


@dataclass(frozen=True, slots=True)
class OutboundFile:
    """A file the assistant sends (``Connector.send_file``).

    Its bytes are either held (``data``) or stored under the data directory (``path``,
    absolute), so a large stored attachment is read only by the connector that uploads it.
    ``mime`` was checked by pyclaw (sniffed, or chosen for text pyclaw wrote); ``caption``
    is shown with the file where the platform has captions.
    """

    name: str
    mime: str
    kind: FileKind = "file"
    data: bytes | None = field(default=None, repr=False)
    path: Path | None = None
    caption: str = ""

    def __post_init__(self) -> None:
        if (self.data is None) == (self.path is None):
            raise ValueError("an OutboundFile holds either data or a path, not both or none")

    def content(self) -> bytes:
        """The bytes to upload; a stored file that is gone is a FatalConnectorError (sending
        again cannot bring it back)."""
        if self.data is not None:
            return self.data
        assert self.path is not None
        try:
            return self.path.read_bytes()
        except OSError as exc:
            raise FatalConnectorError(f"the file {self.name} is no longer stored "
                                      f"({type(exc).__name__})") from exc


class AttachmentUnavailable(ConnectorError):
    """The platform will not hand the file over (too big for bots, deleted, no access);
    the message says why, in words the sender can read."""


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    message: str
    """"connected as @name" on success, or a reason a user can act on."""


class StateStore(Protocol):
    """A channel's own small key/value store in the database (cursors, sync tokens).

    Values are JSON; each ``set`` is durable when it returns, so a cursor saved after
    the messages it covers were submitted is never ahead of the journal.
    """

    async def get(self, key: str, default: Any = None) -> Any: ...

    async def set(self, key: str, value: Any) -> None: ...

    async def delete(self, key: str) -> None: ...


class ConnectorContext(Protocol):
    """What the gateway gives a running connector."""

    @property
    def channel(self) -> str: ...

    @property
    def state(self) -> StateStore:
        """This channel's persistent key/value store (survives restarts)."""
        ...

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

    def crashed(self, reason: str, *, fatal: bool = False) -> None:
        """A background task of the connector died: the supervisor restarts the channel
        (with backoff) unless ``fatal``, and the channel log and state say why."""
        ...

    def commands(self) -> list[tuple[str, str]]:
        """(name, description) of the chat commands the assistant understands (``/help``...),
        for platforms with a command menu (Telegram ``setMyCommands``)."""
        ...


class Connector(abc.ABC):
    """One configured channel. Most channels subclass :class:`ConnectorBase` instead, which
    implements ``start``/``stop`` on top of ``open``/``close`` and supervised tasks."""

    spec: ClassVar[ConnectorSpec]

    def __init__(self, name: str, config: ChannelConfig) -> None:
        self.name = name
        self.config = config
        self.receives = True
        """False when started to send only (``Capabilities.send_only``): another instance
        receives for this channel, so ``start`` opens the client and polls or listens for
        nothing."""

    @property
    def limits(self) -> Limits:
        """What the gateway splits replies to: the spec's, unless the config changes them."""
        return self.spec.limits

    @property
    def capabilities(self) -> Capabilities:
        """What this channel can do as configured: the spec's, unless a mode changes them
        (a reply sent as the HTTP response cannot be edited)."""
        return self.spec.capabilities

    @abc.abstractmethod
    async def start(self, ctx: ConnectorContext) -> None:
        """Connect and begin delivering; returns once the background tasks are running."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop tasks and close clients; safe to call twice and after a failed start."""

    @abc.abstractmethod
    async def probe(self) -> ProbeResult:
        """A cheap credentials check for the setup form's "Test connection"."""

    @abc.abstractmethod
    async def send_part(self, address: Address, text: str, reply_to: str | None) -> str:
        """Send one message (already within ``spec.limits``); returns its platform id.

        One request, no retries and no splitting: the gateway splits, journals each part
        before it goes, and retries. Raise RetryableError (with ``retry_after``) when the
        part was certainly not delivered and may be tried again, FatalConnectorError
        when retrying cannot help, and DeliveryUncertain when the request went out but
        its answer was lost (the part is then never sent again). ``reply_to`` is the
        platform id of the message being answered, given for the first part only.
        """

    async def send_file(self, address: Address, file: OutboundFile, reply_to: str | None
                        ) -> str:
        """Send one file (``capabilities.files``) to ``address``; returns its platform id.

        The error contract of ``send_part``: one request (or the platform's one upload
        flow), no retries; RetryableError when it certainly did not go out,
        FatalConnectorError when retrying cannot help (too big, not allowed), and
        DeliveryUncertain when it may have arrived (it is then never sent again).
        ``reply_to`` quotes the message being answered where the platform can.
        """
        raise FatalConnectorError(f"{self.spec.title} channels cannot send files")

    async def typing(self, address: Address) -> None:  # noqa: B027 - optional capability
        """Show a typing indicator where the platform has one; no-op by default."""

    async def edit(self, address: Address, platform_id: str, text: str) -> None:
        """Replace the text of a message this connector sent (``capabilities.edit``).

        The gateway streams a reply by sending a draft and editing it about once a second;
        ``text`` always fits within ``spec.limits.max_text``. Raise RetryableError(retry_after)
        on a rate limit, FatalConnectorError when the message can no longer be edited.
        """
        raise NotImplementedError(f"{self.spec.name} cannot edit messages")

    def reply_delta(self, address: Address, reply_to: str, delta: str) -> None:  # noqa: B027
        """More text of the reply being written to ``reply_to`` (``capabilities.live``).

        Called on the event loop as the model streams; it must not block. The reply itself
        still arrives through ``send_part``, which stays the one delivery the journal
        keeps custody of.
        """

    def reply_reset(self, address: Address, reply_to: str) -> None:  # noqa: B027
        """The text streamed so far for ``reply_to`` was thrown away upstream (a failover to
        another provider, a tool call): what follows starts the reply over."""

    async def fetch_attachment(self, attachment: Attachment) -> AttachmentSource:
        """Where the bytes of ``attachment`` (one of an Inbound this connector made) are.

        One lookup, no download: the gateway downloads under ``attachments.max_bytes``,
        checks the type by the bytes, and stores the file. Raise AttachmentUnavailable with
        the platform's reason, RetryableError when the platform is unreachable.
        """
        raise AttachmentUnavailable(f"pyclaw cannot download files from {self.spec.title} yet")

    async def handle_webhook(self, request: WebhookRequest) -> WebhookResponse:
        """One request the platform made to ``/webhook/<channel>`` (GET or POST).

        Webhook channels verify the platform's signature before parsing anything and
        answer 2xx only after ``ctx.submit`` returned (see ``ConnectorBase.receive``).
        """
        return WebhookResponse(404, f"{self.spec.title} channels do not take webhooks")
