"""The one interface views talk to.

The desktop app uses the in-process implementation; the Android monitor will
use a remote one over HTTP + WebSocket. Views therefore never touch the store,
the gateway or an SDK, only these methods and the plain rows in ``types``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from pyclaw_app.control.conversation import ConversationPage
from pyclaw_app.control.types import (
    BudgetForm,
    BudgetRow,
    ChannelForm,
    ChannelHealth,
    ChannelStatus,
    ChannelType,
    ChatFile,
    ChatFileContent,
    CompletionCheck,
    Counters,
    FieldError,
    FirstRunState,
    GroupRow,
    LocalServer,
    LogRow,
    McpServers,
    MessageDetail,
    PairingRow,
    PersonDetail,
    PersonRow,
    ProbeOutcome,
    Profiles,
    ProviderHealth,
    ScheduleRow,
    SettingsForm,
    TrafficRow,
    UsageRow,
)
from pyclaw_app.model import Event

__all__ = ["ControlPlane", "Subscription"]


class Subscription(Protocol):
    """A bounded stream of events; when the reader is slow the oldest are dropped and counted."""

    @property
    def dropped(self) -> int: ...

    def __aiter__(self) -> AsyncIterator[Event]: ...

    async def get_batch(self, max_items: int = 500, timeout: float | None = None) -> list[Event]:
        """Wait for at least one event (or ``timeout``), then return all queued up to max_items."""
        ...

    def close(self) -> None: ...


class ControlPlane(Protocol):
    def subscribe(self, maxsize: int = 2000) -> Subscription: ...

    async def recent_traffic(self, limit: int = 200, channel: str | None = None
                             ) -> list[TrafficRow]: ...

    async def counters_today(self) -> Counters: ...

    async def channels(self) -> list[ChannelStatus]: ...

    async def channel_health(self, channel: str | None = None, hours: int = 24
                             ) -> list[ChannelHealth]:
        """Each channel's (or the named one's) last ``hours`` clock hours: errors, warnings
        and seconds per state in each hour, and the state changes behind them."""
        ...

    async def provider_health(self) -> list[ProviderHealth]:
        """Each configured provider: "failing" when its latest call of the last day failed or
        its circuit breaker rests a model, "ok" after a success, "idle" without calls."""
        ...

    async def logs(self, *, channel: str | None = None, level: str | None = None,
                   search: str | None = None, before_id: int | None = None,
                   since: float | None = None, until: float | None = None,
                   limit: int = 100) -> list[LogRow]:
        """Newest first; pass the last row's id as ``before_id`` for the next page."""
        ...

    async def export_logs(self, fmt: str, *, channel: str | None = None,
                          level: str | None = None, search: str | None = None,
                          since: float | None = None, until: float | None = None) -> str:
        """All matching lines as ``"jsonl"`` or ``"csv"`` text."""
        ...

    async def message_detail(self, message_id: int) -> MessageDetail | None: ...

    async def retry_message(self, message_id: int) -> bool: ...

    # channel setup: forms are generated from ChannelType.schema
    def channel_types(self) -> list[ChannelType]: ...

    def channel_form(self, name: str) -> ChannelForm: ...

    def validate_channel(self, name: str, type_name: str, values: dict[str, Any]
                         ) -> list[FieldError]: ...

    async def save_channel(self, name: str, type_name: str, values: dict[str, Any]
                           ) -> list[FieldError]:
        """Validate, store secrets in the keyring, save the YAML and apply it live."""
        ...

    async def delete_channel(self, name: str) -> None: ...

    async def probe_channel(self, name: str, type_name: str, values: dict[str, Any]
                            ) -> ProbeOutcome:
        """"Test connection" with the form's values (blank secrets: the stored ones)."""
        ...

    async def set_channel_enabled(self, name: str, enabled: bool) -> list[FieldError]: ...

    async def start_channel(self, name: str) -> None: ...

    async def stop_channel(self, name: str) -> None: ...

    async def restart_channel(self, name: str) -> None: ...

    # assistant settings: forms generated from provider_schema / agent_schema
    def settings_form(self) -> SettingsForm: ...

    def validate_settings(self, providers: list[dict[str, Any]], agent: dict[str, Any]
                          ) -> list[FieldError]:
        """Field names are dotted: ``providers.0.base_url``, ``agent.history_tokens``."""
        ...

    async def save_settings(self, providers: list[dict[str, Any]], agent: dict[str, Any]
                            ) -> list[FieldError]:
        """Blank ``api_key`` keeps the stored key; applies to the next message, no restart."""
        ...

    async def list_models(self, provider: dict[str, Any]) -> tuple[list[str], ProbeOutcome]:
        """Models the provider offers; also the provider form's "Test connection"."""
        ...

    async def usage(self, *, since: float | None = None, until: float | None = None,
                    channel: str | None = None) -> list[UsageRow]:
        """Per day x provider x model x channel: calls, tokens, cost, latency p50/p95."""
        ...

    async def budgets(self) -> list[BudgetRow]:
        """Each spending cap with what its current day or month has spent; empty when no
        budgets are configured."""
        ...

    async def budget_form(self) -> BudgetForm:
        """The configured caps, one row each, and the schema the form is generated from."""
        ...

    async def save_budgets(self, caps: list[dict[str, Any]]) -> list[FieldError]:
        """Replace every cap with ``caps`` (the form's rows): checked, written to the YAML
        (comments and order kept) and applied from the next LLM call. Field names are
        ``caps.<index>.<field>``."""
        ...

    # MCP servers: the form is generated from McpServers.schema; secrets never come back
    async def mcp_servers(self) -> McpServers:
        """Every configured server with its live state and tools, and the form's schema."""
        ...

    async def save_mcp_server(self, values: dict[str, Any], original_name: str | None = None
                              ) -> list[FieldError]:
        """Add (``original_name`` None) or replace a server, then start or reconnect it
        live. ``values["secrets"]`` holds ``{"headers.Authorization": value}``; a blank value
        keeps the stored one while the server reaches the same place."""
        ...

    async def delete_mcp_server(self, name: str) -> list[FieldError]:
        """Remove the server, stop it and delete its stored secrets."""
        ...

    async def test_mcp_server(self, values: dict[str, Any], original_name: str | None = None
                              ) -> tuple[list[str], ProbeOutcome]:
        """Start or reach the server once with the form's values: its tool names."""
        ...

    # profiles: the form is generated from Profiles.schema
    async def profiles(self) -> Profiles:
        """Every profile (per channel or chat settings) with its problems, and the form."""
        ...

    async def save_profile(self, values: dict[str, Any], original_name: str | None = None
                           ) -> list[FieldError]:
        """Add (``original_name`` None), replace or rename a profile; checked against the
        config (channels, providers, tools, chats other profiles have), saved and applied
        to the next message."""
        ...

    async def delete_profile(self, name: str) -> list[FieldError]: ...

    # the first-run guide
    async def first_run_state(self) -> FirstRunState:
        """Whether the guide opens by itself: no provider yet, and not skipped or finished."""
        ...

    async def close_first_run(self, how: str = "skipped") -> FirstRunState:
        """Remember that the owner skipped (``"skipped"``) or finished (``"finished"``) it."""
        ...

    async def find_local_servers(self) -> list[LocalServer]:
        """OpenAI-compatible servers answering on the gateway machine's usual loopback
        ports, with their models; empty when none answers."""
        ...

    async def test_completion(self, provider: dict[str, Any]) -> CompletionCheck:
        """One short chat completion with these provider values (a blank key is no key)."""
        ...

    async def pairing_requests(self) -> list[PairingRow]: ...

    async def approve_pairing(self, code: str) -> bool: ...

    async def group_requests(self) -> list[GroupRow]:
        """Groups that addressed the bot under group_policy allowlist and wait for a decision."""
        ...

    async def decide_group(self, channel: str, chat: str, approve: bool) -> bool:
        """Approve (answered from now on) or reject (silent for good) a waiting group; False
        when that group never asked."""
        ...

    # scheduled jobs: a bad value raises ValueError naming it (422 over the control API)
    async def schedules(self, channel: str | None = None) -> list[ScheduleRow]: ...

    async def create_schedule(self, channel: str, chat: str, text: str, kind: str = "text",
                              at: str | None = None, in_minutes: float | None = None,
                              cron: str | None = None, timezone: str | None = None,
                              missed: str = "run_once", thread: str | None = None
                              ) -> ScheduleRow:
        """A job for a chat of a configured channel: exactly one of ``at`` (ISO time),
        ``in_minutes`` or ``cron`` (with an IANA ``timezone``); ``kind`` "text" sends
        ``text``, "task" sends the assistant's answer to it."""
        ...

    async def set_schedule_enabled(self, job_id: int, enabled: bool) -> ScheduleRow | None:
        """Pause, or resume from the next occurrence; None when there is no such job."""
        ...

    async def delete_schedule(self, job_id: int) -> bool: ...

    async def explain_schedule(self, at: str | None = None, cron: str | None = None,
                               timezone: str | None = None) -> str:
        """The timing in words (and a cron job's next run), checked like create_schedule
        checks it: what the Add form shows while the owner types."""
        ...

    async def people(self) -> list[PersonRow]:
        """Every person with linked accounts (``/link``, ``pyclaw identities link``)."""
        ...

    async def person_detail(self, person_id: int, limit: int = 200) -> PersonDetail | None:
        """One person's accounts, conversations across channels and latest ``limit``
        messages (with the replies); None when there is no such person."""
        ...

    async def conversation(self, person_id: int | None = None, message_id: int | None = None,
                           conv: str | None = None, before_id: int | None = None,
                           limit: int = 30) -> ConversationPage | None:
        """One conversation as a chat, ``limit`` exchanges (message, LLM and tool calls,
        replies) before ``before_id``: a person's direct chats on all their channels, the
        chat of a journal message, or a conversation key (exactly one). Read-only."""
        ...

    async def link_accounts(self, channel: str, sender_id: str, other_channel: str,
                            other_sender_id: str) -> PersonRow:
        """Join two accounts into one person (the owner's link, no code needed)."""
        ...

    async def unlink_account(self, channel: str, sender_id: str) -> bool:
        """The account leaves its person; False when it was not linked."""
        ...

    async def chat_send(self, text: str, chat: str = "app") -> None:
        """Post as the user of the local channel; the reply arrives as events."""
        ...

    async def chat_history(self, chat: str = "app", limit: int = 100) -> list[TrafficRow]:
        """The local chat since its last reset (``chat_reset`` or ``/reset``), oldest first."""
        ...

    async def chat_reset(self, chat: str = "app") -> None:
        """Start a new conversation: the assistant and ``chat_history`` forget the old one
        (its messages stay in the journal, for Logs)."""
        ...

    async def chat_files(self, chat: str = "app", limit: int = 100) -> list[ChatFile]:
        """The files the assistant sent among the rows ``chat_history`` returns, oldest
        first (what they are, never where they are stored)."""
        ...

    async def chat_file(self, reply_id: int, idx: int, chat: str = "app") -> ChatFileContent:
        """One of those files' bytes (at most ``CHAT_FILE_LIMIT``); ValueError (422 over the
        control API) when it is not a file of this chat, is gone or is too large."""
        ...

    def config_errors(self) -> list[str]: ...
