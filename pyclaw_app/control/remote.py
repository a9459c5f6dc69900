"""RemoteControlPlane: the monitor's view of a gateway running elsewhere, over the control API.

Imports only httpx and the plain row types, so it runs where the gateway's own
dependencies cannot (the Android build: no pydantic, no SDKs). The protocol's
synchronous methods (forms, schemas, config errors) answer from a snapshot
taken by :meth:`connect` and refreshed after every change made through this
plane; local validation is left to the gateway, which checks again on save.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

import httpx

from pyclaw_app.bus import EventQueue
from pyclaw_app.control.conversation import (
    ChatRow,
    ConversationPage,
    Exchange,
    LlmCall,
    ToolCall,
)
from pyclaw_app.control.types import (
    AccountRow,
    BudgetForm,
    BudgetRow,
    ChannelForm,
    ChannelHealth,
    ChannelStatus,
    ChannelType,
    ChatFile,
    ChatFileContent,
    CompletionCheck,
    ConversationRow,
    Counters,
    FieldError,
    FirstRunState,
    GroupRow,
    HealthHour,
    LocalServer,
    LogRow,
    McpServerRow,
    McpServers,
    MessageDetail,
    PairingRow,
    PersonDetail,
    PersonRow,
    ProbeOutcome,
    ProfileRow,
    Profiles,
    ProviderHealth,
    ScheduleRow,
    SettingsForm,
    StateSpan,
    TrafficRow,
    UsageRow,
)
from pyclaw_app.model import Event, EventKind

__all__ = ["AdminRequired", "FieldRefused", "GatewayUnreachable", "RemoteControlPlane",
           "RemoteError", "TokenRefused"]

_log = logging.getLogger(__name__)


class RemoteError(Exception):
    """The gateway refused a call or could not be reached; the message says which."""


class GatewayUnreachable(RemoteError):
    """No HTTP answer at all: connection refused, no route, DNS failure, time-out."""


class TokenRefused(RemoteError):
    """The control API answered 401: the bearer token is missing or wrong."""


class AdminRequired(RemoteError):
    """The control API answered 403: a read-only monitor token asked for a change."""


class FieldRefused(RemoteError):
    """The control API answered 422 naming the value at fault (a schedule's ``cron``, say),
    so a form can show the error on that field, as it does on the desktop."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _rows(cls: type) -> Callable[[Any], Any]:
    return lambda items: [cls(**item) for item in items]


def _detail(item: dict[str, Any] | None) -> MessageDetail | None:
    if item is None:
        return None
    return MessageDetail(TrafficRow(**item["message"]), item["platform_id"],
                         TrafficRow(**item["reply"]) if item["reply"] else None,
                         tuple(item["llm_calls"]))


def _health(item: dict[str, Any]) -> ChannelHealth:
    return ChannelHealth(item["channel"], item["since"], item["until"],
                         tuple(HealthHour(**h) for h in item["hours"]),
                         tuple(StateSpan(**s) for s in item["spans"]), item["changes"])


def _person(item: dict[str, Any]) -> PersonRow:
    return PersonRow(item["id"], item["name"],
                     tuple(AccountRow(**a) for a in item["accounts"]))


def _person_detail(item: dict[str, Any] | None) -> PersonDetail | None:
    if item is None:
        return None
    return PersonDetail(_person(item["person"]),
                        tuple(ConversationRow(**c) for c in item["conversations"]),
                        tuple(TrafficRow(**t) for t in item["traffic"]))


def _conversation(item: dict[str, Any] | None) -> ConversationPage | None:
    if item is None:
        return None
    exchanges = tuple(Exchange(TrafficRow(**e["message"]),
                               tuple(TrafficRow(**r) for r in e["replies"]),
                               tuple(LlmCall(**c) for c in e["llm_calls"]),
                               tuple(ToolCall(**t) for t in e["tool_calls"]))
                      for e in item["exchanges"])
    return ConversationPage(item["title"], tuple(ChatRow(**c) for c in item["chats"]),
                            exchanges, item["older"],
                            _person(item["person"]) if item["person"] else None,
                            tuple(ChatRow(**c) for c in item["elsewhere"]))


def _form(item: dict[str, Any]) -> ChannelForm:
    return ChannelForm(item["name"], item["type"], item["values"], tuple(item["secrets_set"]))


def _settings(item: dict[str, Any]) -> SettingsForm:
    return SettingsForm(tuple(item["providers"]), tuple(item["keys_set"]), item["agent"],
                        item["provider_schema"], item["agent_schema"])


class RemoteSubscription(EventQueue):
    """Events from the gateway's SSE stream, bounded like a local subscription."""

    def __init__(self, plane: RemoteControlPlane, maxsize: int) -> None:
        super().__init__(maxsize)
        self._plane = plane
        self._task = asyncio.create_task(self._read(), name="remote-plane:events")

    async def _read(self) -> None:
        delay = 0.5
        while not self.closed:
            try:
                async with self._plane._client.stream(
                        "GET", "/api/v1/events", timeout=httpx.Timeout(10, read=60)) as resp:
                    if resp.status_code == 401:
                        _log.error("the gateway refused the monitor's API token")
                        return
                    delay = 0.5
                    async for line in resp.aiter_lines():
                        if line.startswith("data: "):
                            self.push(_event(json.loads(line[6:])))
            except (httpx.HTTPError, ValueError) as exc:
                _log.warning("event stream lost (%s); reconnecting", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    def close(self) -> None:
        super().close()
        self._task.cancel()


def _event(raw: dict[str, Any]) -> Event:
    return Event(EventKind(raw["kind"]), raw["channel"], raw["data"], raw["ts"])


class RemoteControlPlane:
    def __init__(self, url: str, token: str, *, transport: httpx.AsyncBaseTransport | None = None
                 ) -> None:
        self._client = httpx.AsyncClient(
            base_url=url.rstrip("/"), headers={"Authorization": f"Bearer {token}"},
            timeout=30.0, transport=transport)
        self._types: list[ChannelType] = []
        self._forms: dict[str, ChannelForm] = {}
        self._settings: SettingsForm | None = None
        self._errors: list[str] = []
        self.role = "admin"
        """What the token may do: "monitor" (read-only) or "admin"; known after connect."""

    @property
    def read_only(self) -> bool:
        return self.role != "admin"

    async def connect(self) -> RemoteControlPlane:
        """Check the token, learn its role and take the snapshot the synchronous methods
        answer from."""
        access = await self._request("GET", "/api/v1/access")
        # A gateway from before the token split has no /access: its one token did it all.
        self.role = "admin" if access.status_code == 404 else str(self._body(access)["role"])
        await self._refresh()
        return self

    async def close(self) -> None:
        await self._client.aclose()

    async def _refresh(self) -> None:
        self._types = _rows(ChannelType)(await self._call("channel_types"))
        self._errors = list(await self._call("config_errors"))
        self._settings = _settings(await self._call("settings_form"))
        self._forms = {}
        for status in await self.channels():
            with contextlib.suppress(RemoteError):
                self._forms[status.name] = _form(await self._call("channel_form",
                                                                  name=status.name))

    async def _request(self, verb: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._client.request(verb, path, **kwargs)
        except (httpx.NetworkError, httpx.TimeoutException) as exc:
            raise GatewayUnreachable(
                f"gateway unreachable at {self._client.base_url}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise RemoteError(f"gateway at {self._client.base_url} failed: {exc}") from exc

    @staticmethod
    def _body(resp: httpx.Response) -> Any:
        if resp.status_code == 401:
            raise TokenRefused("missing or wrong API token")
        try:
            body = resp.json()
        except ValueError:
            raise RemoteError(f"gateway answered HTTP {resp.status_code} without JSON") from None
        if resp.status_code == 403:
            raise AdminRequired(body.get("error", "this token may not do that"))
        if resp.status_code == 422 and isinstance(body.get("field"), str):
            raise FieldRefused(body["field"], body.get("error", "a value was refused"))
        if resp.status_code != 200:
            raise RemoteError(body.get("error", f"HTTP {resp.status_code}"))
        return body

    async def _call(self, method: str, **kwargs: Any) -> Any:
        resp = await self._request("POST", f"/api/v1/call/{method}", json=kwargs)
        return self._body(resp)["result"]

    def subscribe(self, maxsize: int = 2000) -> RemoteSubscription:
        return RemoteSubscription(self, maxsize)

    async def recent_traffic(self, limit: int = 200, channel: str | None = None
                             ) -> list[TrafficRow]:
        return _rows(TrafficRow)(await self._call("recent_traffic", limit=limit,
                                                  channel=channel))

    async def counters_today(self) -> Counters:
        return Counters(**await self._call("counters_today"))

    async def channels(self) -> list[ChannelStatus]:
        return _rows(ChannelStatus)(await self._call("channels"))

    async def channel_health(self, channel: str | None = None, hours: int = 24
                             ) -> list[ChannelHealth]:
        return [_health(item) for item in await self._call("channel_health", channel=channel,
                                                           hours=hours)]

    async def provider_health(self) -> list[ProviderHealth]:
        return _rows(ProviderHealth)(await self._call("provider_health"))

    async def logs(self, **filters: Any) -> list[LogRow]:
        return _rows(LogRow)(await self._call("logs", **filters))

    async def export_logs(self, fmt: str, **filters: Any) -> str:
        return str(await self._call("export_logs", fmt=fmt, **filters))

    async def message_detail(self, message_id: int) -> MessageDetail | None:
        return _detail(await self._call("message_detail", message_id=message_id))

    async def retry_message(self, message_id: int) -> bool:
        return bool(await self._call("retry_message", message_id=message_id))

    async def chat_send(self, text: str, chat: str = "app") -> None:
        await self._call("chat_send", text=text, chat=chat)

    async def chat_history(self, chat: str = "app", limit: int = 100) -> list[TrafficRow]:
        return _rows(TrafficRow)(await self._call("chat_history", chat=chat, limit=limit))

    async def chat_reset(self, chat: str = "app") -> None:
        await self._call("chat_reset", chat=chat)

    async def chat_files(self, chat: str = "app", limit: int = 100) -> list[ChatFile]:
        return _rows(ChatFile)(await self._call("chat_files", chat=chat, limit=limit))

    async def chat_file(self, reply_id: int, idx: int, chat: str = "app") -> ChatFileContent:
        return ChatFileContent(**await self._call("chat_file", reply_id=reply_id, idx=idx,
                                                  chat=chat))

    def config_errors(self) -> list[str]:
        return list(self._errors)

    def channel_types(self) -> list[ChannelType]:
        return list(self._types)

    def channel_form(self, name: str) -> ChannelForm:
        return self._forms[name]

    def validate_channel(self, name: str, type_name: str, values: dict[str, Any]
                         ) -> list[FieldError]:
        return []  # checked by the gateway on save, which answers with field errors

    async def _changed(self, errors: list[dict[str, Any]]) -> list[FieldError]:
        await self._refresh()
        return [FieldError(**e) for e in errors]

    async def save_channel(self, name: str, type_name: str, values: dict[str, Any]
                           ) -> list[FieldError]:
        return await self._changed(await self._call("save_channel", name=name,
                                                    type_name=type_name, values=values))

    async def delete_channel(self, name: str) -> None:
        await self._call("delete_channel", name=name)
        await self._refresh()

    async def probe_channel(self, name: str, type_name: str, values: dict[str, Any]
                            ) -> ProbeOutcome:
        return ProbeOutcome(**await self._call("probe_channel", name=name,
                                               type_name=type_name, values=values))

    async def set_channel_enabled(self, name: str, enabled: bool) -> list[FieldError]:
        return await self._changed(await self._call("set_channel_enabled", name=name,
                                                    enabled=enabled))

    async def start_channel(self, name: str) -> None:
        await self._call("start_channel", name=name)

    async def stop_channel(self, name: str) -> None:
        await self._call("stop_channel", name=name)

    async def restart_channel(self, name: str) -> None:
        await self._call("restart_channel", name=name)

    def settings_form(self) -> SettingsForm:
        if self._settings is None:
            raise RemoteError("not connected: call connect() first")
        return self._settings

    def validate_settings(self, providers: list[dict[str, Any]], agent: dict[str, Any]
                          ) -> list[FieldError]:
        return []  # checked by the gateway on save

    async def save_settings(self, providers: list[dict[str, Any]], agent: dict[str, Any]
                            ) -> list[FieldError]:
        return await self._changed(await self._call("save_settings", providers=providers,
                                                    agent=agent))

    async def list_models(self, provider: dict[str, Any]) -> tuple[list[str], ProbeOutcome]:
        models, outcome = await self._call("list_models", provider=provider)
        return list(models), ProbeOutcome(**outcome)

    async def mcp_servers(self) -> McpServers:
        item = await self._call("mcp_servers")
        return McpServers(tuple(McpServerRow(**{**row, "secrets_set": tuple(row["secrets_set"]),
                                                "tools": tuple(row["tools"])})
                                for row in item["servers"]), item["schema"])

    async def save_mcp_server(self, values: dict[str, Any], original_name: str | None = None
                              ) -> list[FieldError]:
        return [FieldError(**e) for e in await self._call(
            "save_mcp_server", values=values, original_name=original_name)]

    async def delete_mcp_server(self, name: str) -> list[FieldError]:
        return [FieldError(**e) for e in await self._call("delete_mcp_server", name=name)]

    async def test_mcp_server(self, values: dict[str, Any], original_name: str | None = None
                              ) -> tuple[list[str], ProbeOutcome]:
        tools, outcome = await self._call("test_mcp_server", values=values,
                                          original_name=original_name)
        return list(tools), ProbeOutcome(**outcome)

    async def profiles(self) -> Profiles:
        item = await self._call("profiles")
        return Profiles(tuple(ProfileRow(**{**row, "used_on": tuple(row["used_on"]),
                                            "problems": tuple(row["problems"])})
                              for row in item["profiles"]), item["schema"])

    async def save_profile(self, values: dict[str, Any], original_name: str | None = None
                           ) -> list[FieldError]:
        return [FieldError(**e) for e in await self._call(
            "save_profile", values=values, original_name=original_name)]

    async def delete_profile(self, name: str) -> list[FieldError]:
        return [FieldError(**e) for e in await self._call("delete_profile", name=name)]

    async def usage(self, **filters: Any) -> list[UsageRow]:
        return _rows(UsageRow)(await self._call("usage", **filters))

    async def budgets(self) -> list[BudgetRow]:
        return _rows(BudgetRow)(await self._call("budgets"))

    async def budget_form(self) -> BudgetForm:
        item = await self._call("budget_form")
        return BudgetForm(tuple(item["caps"]), item["schema"])

    async def save_budgets(self, caps: list[dict[str, Any]]) -> list[FieldError]:
        return [FieldError(**e) for e in await self._call("save_budgets", caps=caps)]

    async def first_run_state(self) -> FirstRunState:
        return FirstRunState(**await self._call("first_run_state"))

    async def close_first_run(self, how: str = "skipped") -> FirstRunState:
        return FirstRunState(**await self._call("close_first_run", how=how))

    async def find_local_servers(self) -> list[LocalServer]:
        return [LocalServer(**{**s, "models": tuple(s["models"])})
                for s in await self._call("find_local_servers")]

    async def test_completion(self, provider: dict[str, Any]) -> CompletionCheck:
        return CompletionCheck(**await self._call("test_completion", provider=provider))

    async def pairing_requests(self) -> list[PairingRow]:
        return _rows(PairingRow)(await self._call("pairing_requests"))

    async def approve_pairing(self, code: str) -> bool:
        return bool(await self._call("approve_pairing", code=code))

    async def group_requests(self) -> list[GroupRow]:
        return _rows(GroupRow)(await self._call("group_requests"))

    async def decide_group(self, channel: str, chat: str, approve: bool) -> bool:
        return bool(await self._call("decide_group", channel=channel, chat=chat,
                                     approve=approve))

    async def people(self) -> list[PersonRow]:
        return [_person(p) for p in await self._call("people")]

    async def person_detail(self, person_id: int, limit: int = 200) -> PersonDetail | None:
        return _person_detail(await self._call("person_detail", person_id=person_id,
                                               limit=limit))

    async def conversation(self, person_id: int | None = None, message_id: int | None = None,
                           conv: str | None = None, before_id: int | None = None,
                           limit: int = 30) -> ConversationPage | None:
        return _conversation(await self._call("conversation", person_id=person_id,
                                              message_id=message_id, conv=conv,
                                              before_id=before_id, limit=limit))

    async def link_accounts(self, channel: str, sender_id: str, other_channel: str,
                            other_sender_id: str) -> PersonRow:
        return _person(await self._call("link_accounts", channel=channel, sender_id=sender_id,
                                        other_channel=other_channel,
                                        other_sender_id=other_sender_id))

    async def unlink_account(self, channel: str, sender_id: str) -> bool:
        return bool(await self._call("unlink_account", channel=channel, sender_id=sender_id))

    async def schedules(self, channel: str | None = None) -> list[ScheduleRow]:
        return _rows(ScheduleRow)(await self._call("schedules", channel=channel))

    async def create_schedule(self, channel: str, chat: str, text: str, kind: str = "text",
                              at: str | None = None, in_minutes: float | None = None,
                              cron: str | None = None, timezone: str | None = None,
                              missed: str = "run_once", thread: str | None = None
                              ) -> ScheduleRow:
        return ScheduleRow(**await self._call(
            "create_schedule", channel=channel, chat=chat, text=text, kind=kind, at=at,
            in_minutes=in_minutes, cron=cron, timezone=timezone, missed=missed, thread=thread))

    async def set_schedule_enabled(self, job_id: int, enabled: bool) -> ScheduleRow | None:
        item = await self._call("set_schedule_enabled", job_id=job_id, enabled=enabled)
        return ScheduleRow(**item) if item is not None else None

    async def delete_schedule(self, job_id: int) -> bool:
        return bool(await self._call("delete_schedule", job_id=job_id))

    async def explain_schedule(self, at: str | None = None, cron: str | None = None,
                               timezone: str | None = None) -> str:
        return str(await self._call("explain_schedule", at=at, cron=cron, timezone=timezone))
