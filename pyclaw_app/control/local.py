"""The in-process ControlPlane: the desktop app's views read the gateway directly."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pyclaw_app.bus import BusSubscription
from pyclaw_app.channels import registry
from pyclaw_app.control import health
from pyclaw_app.control.admin import ChannelAdmin
from pyclaw_app.control.chat import file_content, sent_files
from pyclaw_app.control.conversation import ConversationPage, read_conversation
from pyclaw_app.control.export import export_rows
from pyclaw_app.control.first_run import Candidate, FirstRunAdmin
from pyclaw_app.control.mcp import McpAdmin
from pyclaw_app.control.profiles import ProfilesAdmin
from pyclaw_app.control.schedules import create_job, explain, row_of, set_enabled
from pyclaw_app.control.settings import SettingsAdmin
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
from pyclaw_app.errors import ConnectorError
from pyclaw_app.gateway import Gateway
from pyclaw_app.secrets import SecretStore, redactor
from pyclaw_app.store import JournalRow
from pyclaw_app.store.identities import Identity

__all__ = ["MAX_PAGE", "LocalControlPlane"]

MAX_PAGE = 1000
"""The most rows one page may ask for: a remote caller cannot pull a whole table at once."""


def _page(limit: int) -> int:
    return max(1, min(limit, MAX_PAGE))


class LocalControlPlane:
    def __init__(self, gateway: Gateway, secrets: SecretStore, config_path: Path | None = None,
                 local_channel: str = "local", *, clock: Callable[[], float] = time.time,
                 local_servers: Sequence[Candidate] | None = None) -> None:
        self.gateway = gateway
        self.clock = clock
        """Wall time for the health windows (tests move it by hand)."""
        self.admin = ChannelAdmin(gateway, secrets, config_path)
        self.settings = SettingsAdmin(gateway, secrets)
        self.mcp = McpAdmin(gateway, secrets)
        self.profile_admin = ProfilesAdmin(gateway, secrets)
        self.first_run = FirstRunAdmin(gateway, local_servers, clock=clock)
        """The first-run guide's side: ``local_servers`` are the loopback ports it asks
        (None: ``PYCLAW_LOCAL_SERVERS`` or the usual ones)."""
        self.local_channel = local_channel
        self.notices: list[str] = []
        """Warnings about how the gateway is served (the host adds them); shown with the
        config errors, so both the panel and the monitor put them in their banner."""

    def subscribe(self, maxsize: int = 2000) -> BusSubscription:
        return self.gateway.bus.subscribe(maxsize)

    async def recent_traffic(self, limit: int = 200, channel: str | None = None
                             ) -> list[TrafficRow]:
        rows = await self.gateway.store.journal.recent(_page(limit), channel=channel)
        by_id = {r.id: r for r in rows}
        return [_traffic(r, by_id.get(r.reply_to) if r.reply_to else None) for r in rows]

    async def counters_today(self) -> Counters:
        midnight = dt.datetime.combine(dt.date.today(), dt.time()).timestamp()
        counts = await self.gateway.store.journal.counts_since(midnight)
        return Counters(counts["in"], counts["out"], counts["failed"])

    async def channels(self) -> list[ChannelStatus]:
        out = []
        for rt in self.gateway.runtime_rows():
            spec = rt.spec
            out.append(ChannelStatus(
                name=rt.name, type=rt.type, title=spec.title if spec else rt.type,
                icon=spec.icon if spec else "help", state=rt.state.value,
                enabled=bool(rt.entry.config.enabled) if rt.entry.config else False,
                reason=rt.reason, last_error=rt.last_error, last_message_ts=rt.last_message_ts,
                config_error=str(rt.entry.error) if rt.entry.error else ""))
        return out

    async def channel_health(self, channel: str | None = None, hours: int = 24
                             ) -> list[ChannelHealth]:
        names = [n for n in self.gateway.channels if channel in (None, n)]
        return await health.channel_health(self.gateway.store.db, names, self.clock(), hours)

    async def provider_health(self) -> list[ProviderHealth]:
        failover = self.gateway.agent.failover
        breaker = failover.breaker
        resting: dict[str, str] = {}
        for link in failover.links:
            if breaker.state(link.key) == "open" and link.provider.name not in resting:
                resting[link.provider.name] = (
                    f"{link.key} failed {breaker.failures} times in a row; it rests and is "
                    f"tried again in {breaker.resting_for(link.key):.0f} s")
        names = [p.name for p in self.gateway.config.providers]
        return await health.provider_health(self.gateway.store.db, names, self.clock(), resting)

    async def logs(self, *, channel: str | None = None, level: str | None = None,
                   search: str | None = None, before_id: int | None = None,
                   since: float | None = None, until: float | None = None,
                   limit: int = 100) -> list[LogRow]:
        rows = await self.gateway.store.logs.page(channel=channel, level=level, search=search,
                                                  before_id=before_id, since=since, until=until,
                                                  limit=_page(limit))
        return [LogRow(**r) for r in rows]

    async def export_logs(self, fmt: str, *, channel: str | None = None,
                          level: str | None = None, search: str | None = None,
                          since: float | None = None, until: float | None = None) -> str:
        """Every matching log line (not just a page) as JSONL or CSV text."""
        rows: list[dict[str, Any]] = []
        before: int | None = None
        while True:
            page = await self.gateway.store.logs.page(channel=channel, level=level,
                                                      search=search, before_id=before,
                                                      since=since, until=until, limit=MAX_PAGE)
            rows += page
            if len(page) < MAX_PAGE:
                break
            before = page[-1]["id"]
        return export_rows(rows, fmt)

    async def message_detail(self, message_id: int) -> MessageDetail | None:
        journal = self.gateway.store.journal
        row = await journal.get(message_id)
        if row is None:
            return None
        inbound = await journal.get(row.reply_to) if row.reply_to else row
        reply = await journal.reply_of(inbound.id) if inbound is not None else None
        calls = await self.gateway.store.db.fetchall(
            "SELECT ts, provider, model, input_tokens, output_tokens, latency_ms, cost, error"
            " FROM llm_calls WHERE message_id=? ORDER BY id",
            (inbound.id if inbound else message_id,))
        shown = inbound or row
        return MessageDetail(_traffic(shown, None), shown.platform_id,
                             _traffic(reply, shown) if reply else None,
                             tuple(dict(c) for c in calls))

    async def retry_message(self, message_id: int) -> bool:
        return await self.gateway.retry(message_id)

    # ---- channel setup ---------------------------------------------------------------------
    def channel_types(self) -> list[ChannelType]:
        return self.admin.types()

    def channel_form(self, name: str) -> ChannelForm:
        return self.admin.form(name)

    async def save_channel(self, name: str, type_name: str, values: dict[str, Any]
                           ) -> list[FieldError]:
        return await self.admin.save(name, type_name, values)

    def validate_channel(self, name: str, type_name: str, values: dict[str, Any]
                         ) -> list[FieldError]:
        return self.admin.validate(name, type_name, values)[1]

    async def delete_channel(self, name: str) -> None:
        await self.admin.delete(name)

    async def probe_channel(self, name: str, type_name: str, values: dict[str, Any]
                            ) -> ProbeOutcome:
        return await self.admin.probe(name, type_name, values)

    async def set_channel_enabled(self, name: str, enabled: bool) -> list[FieldError]:
        return await self.admin.set_enabled(name, enabled)

    async def start_channel(self, name: str) -> None:
        if self.gateway.supervisor is not None:
            self.gateway.supervisor.reset(name)
        await self.gateway.start_channel(name)
        await self.gateway.resume_unfinished(name)

    async def stop_channel(self, name: str) -> None:
        await self.gateway.stop_channel(name)

    async def restart_channel(self, name: str) -> None:
        if self.gateway.supervisor is not None:
            self.gateway.supervisor.reset(name)
        await self.gateway.restart_channel(name, "restarted from the control panel")

    # ---- assistant settings and usage ------------------------------------------------------
    def settings_form(self) -> SettingsForm:
        return self.settings.form()

    def validate_settings(self, providers: list[dict[str, Any]], agent: dict[str, Any]
                          ) -> list[FieldError]:
        return self.settings.validate(providers, agent)[2]

    async def save_settings(self, providers: list[dict[str, Any]], agent: dict[str, Any]
                            ) -> list[FieldError]:
        if self.gateway.config.path is None:
            self.gateway.config.path = self.admin.config_path
        return await self.settings.save(providers, agent)

    async def list_models(self, provider: dict[str, Any]) -> tuple[list[str], ProbeOutcome]:
        return await self.settings.list_models(provider)

    async def usage(self, *, since: float | None = None, until: float | None = None,
                    channel: str | None = None) -> list[UsageRow]:
        return await self.settings.usage(since=since, until=until, channel=channel)

    async def budgets(self) -> list[BudgetRow]:
        return [BudgetRow(s.scope, s.channel, s.sender, s.sender_name, s.period, s.unit,
                          s.spent, s.limit, s.resets_at)
                for s in await self.gateway.agent.budget.status()]

    async def budget_form(self) -> BudgetForm:
        return self.settings.budget_form()

    async def save_budgets(self, caps: list[dict[str, Any]]) -> list[FieldError]:
        if self.gateway.config.path is None:
            self.gateway.config.path = self.admin.config_path
        return await self.settings.save_budgets(caps)

    # ---- MCP servers -----------------------------------------------------------------------
    async def mcp_servers(self) -> McpServers:
        return self.mcp.servers()

    async def save_mcp_server(self, values: dict[str, Any], original_name: str | None = None
                              ) -> list[FieldError]:
        if self.gateway.config.path is None:
            self.gateway.config.path = self.admin.config_path
        return await self.mcp.save(values, original_name)

    async def delete_mcp_server(self, name: str) -> list[FieldError]:
        if self.gateway.config.path is None:
            self.gateway.config.path = self.admin.config_path
        return await self.mcp.delete(name)

    async def test_mcp_server(self, values: dict[str, Any], original_name: str | None = None
                              ) -> tuple[list[str], ProbeOutcome]:
        return await self.mcp.test(values, original_name)

    # ---- profiles --------------------------------------------------------------------------
    async def profiles(self) -> Profiles:
        return self.profile_admin.list()

    async def save_profile(self, values: dict[str, Any], original_name: str | None = None
                           ) -> list[FieldError]:
        if self.gateway.config.path is None:
            self.gateway.config.path = self.admin.config_path
        return await self.profile_admin.save(values, original_name)

    async def delete_profile(self, name: str) -> list[FieldError]:
        if self.gateway.config.path is None:
            self.gateway.config.path = self.admin.config_path
        return await self.profile_admin.delete(name)

    # ---- first-run guide -------------------------------------------------------------------
    async def first_run_state(self) -> FirstRunState:
        return await self.first_run.state()

    async def close_first_run(self, how: str = "skipped") -> FirstRunState:
        return await self.first_run.close(how)

    async def find_local_servers(self) -> list[LocalServer]:
        return await self.first_run.find_local_servers()

    async def test_completion(self, provider: dict[str, Any]) -> CompletionCheck:
        return await self.first_run.test_completion(provider)

    # ---- access ----------------------------------------------------------------------------
    async def pairing_requests(self) -> list[PairingRow]:
        return [PairingRow(p.code, p.channel, p.sender_id, p.sender_name, p.expires_at)
                for p in await self.gateway.store.access.pending()]

    async def approve_pairing(self, code: str) -> bool:
        return await self.gateway.store.access.approve(code) is not None

    async def group_requests(self) -> list[GroupRow]:
        return [GroupRow(g.channel, g.chat, g.requested_by, g.created_at)
                for g in await self.gateway.store.access.pending_groups()]

    async def decide_group(self, channel: str, chat: str, approve: bool) -> bool:
        access = self.gateway.store.access
        decide = access.approve_group if approve else access.reject_group
        return await decide(channel, chat) is not None

    # ---- scheduled jobs --------------------------------------------------------------------
    async def schedules(self, channel: str | None = None) -> list[ScheduleRow]:
        return [row_of(job) for job in await self.gateway.store.schedules.jobs(channel=channel)]

    async def create_schedule(self, channel: str, chat: str, text: str, kind: str = "text",
                              at: str | None = None, in_minutes: float | None = None,
                              cron: str | None = None, timezone: str | None = None,
                              missed: str = "run_once", thread: str | None = None
                              ) -> ScheduleRow:
        gateway = self.gateway
        job = await create_job(gateway.store.schedules, gateway.config,
                               gateway.scheduler.clock(), channel=channel, chat=chat, text=text,
                               kind=kind, at=at, in_minutes=in_minutes, cron=cron,
                               timezone=timezone, missed=missed, thread=thread)
        return row_of(job)

    async def set_schedule_enabled(self, job_id: int, enabled: bool) -> ScheduleRow | None:
        job = await set_enabled(self.gateway.store.schedules, job_id, enabled,
                                self.gateway.scheduler.clock())
        return row_of(job) if job is not None else None

    async def delete_schedule(self, job_id: int) -> bool:
        return await self.gateway.store.schedules.delete(job_id)

    async def explain_schedule(self, at: str | None = None, cron: str | None = None,
                               timezone: str | None = None) -> str:
        return explain(self.gateway.scheduler.clock(), at=at, cron=cron, timezone=timezone)

    # ---- people (linked accounts) ----------------------------------------------------------
    async def people(self) -> list[PersonRow]:
        return [_person(i) for i in await self.gateway.store.identities.list_all()]

    async def person_detail(self, person_id: int, limit: int = 200) -> PersonDetail | None:
        identities = self.gateway.store.identities
        identity = await identities.get(person_id)
        if identity is None:
            return None
        accounts = [a.key for a in identity.accounts]
        conversations = [ConversationRow(r["channel"], r["chat"], r["thread"],
                                         bool(r["is_group"]), r["messages"], r["last_ts"])
                         for r in await identities.conversations_of(accounts)]
        traffic = [TrafficRow(
            id=r["id"], ts=r["created_at"], direction=r["direction"], channel=r["channel"],
            chat=r["chat"], sender=r["sender_name"] or r["sender_id"], text=r["text"],
            status=r["status"], thread=r["thread"], reply_to_id=r["reply_to"],
            latency_ms=(r["updated_at"] - r["asked_at"]) * 1000
            if r["direction"] == "out" and r["asked_at"] is not None else None,
            error=r["error"]) for r in await identities.traffic_of(accounts, _page(limit))]
        return PersonDetail(_person(identity), tuple(conversations), tuple(traffic))

    async def conversation(self, person_id: int | None = None, message_id: int | None = None,
                           conv: str | None = None, before_id: int | None = None,
                           limit: int = 30) -> ConversationPage | None:
        return await read_conversation(self.gateway.store, redactor, person_id=person_id,
                                       message_id=message_id, conv=conv, before_id=before_id,
                                       limit=limit)

    async def link_accounts(self, channel: str, sender_id: str, other_channel: str,
                            other_sender_id: str) -> PersonRow:
        identities = self.gateway.store.identities
        identity = await identities.link(await identities.known_account(channel, sender_id),
                                         await identities.known_account(other_channel,
                                                                        other_sender_id))
        return _person(identity)

    async def unlink_account(self, channel: str, sender_id: str) -> bool:
        return await self.gateway.store.identities.unlink(channel, sender_id)

    def _local(self) -> Any:
        """The running local-chat connector (its ``post``/``address`` are its public API)."""
        rt = self.gateway.channels.get(self.local_channel)
        if rt is None or not isinstance(rt.connector, registry.connector_class("local")):
            raise ConnectorError("the local chat channel is not running")
        return rt.connector

    async def chat_send(self, text: str, chat: str = "app") -> None:
        await self._local().post(text, chat=chat)

    async def chat_history(self, chat: str = "app", limit: int = 100) -> list[TrafficRow]:
        connector = self._local()
        conv = connector.address(chat).key
        rows = await self.gateway.store.journal.since_reset(conv, _page(limit))
        return [_traffic(r, None) for r in reversed(rows)]

    async def chat_reset(self, chat: str = "app") -> None:
        await self.gateway.store.journal.reset_conversation(self._local().address(chat).key)

    async def chat_files(self, chat: str = "app", limit: int = 100) -> list[ChatFile]:
        journal = self.gateway.store.journal
        rows = await journal.since_reset(self._local().address(chat).key, _page(limit))
        return await sent_files(journal, self.gateway.attachments.outbound, rows)

    async def chat_file(self, reply_id: int, idx: int, chat: str = "app") -> ChatFileContent:
        return await file_content(self.gateway.store.journal, self.gateway.attachments.outbound,
                                  self._local().address(chat).key, reply_id, idx)

    def config_errors(self) -> list[str]:
        errors = [str(e) for e in self.gateway.config.errors]
        outage = self.gateway.store.db.outage
        if outage:
            errors.append(f"Database: writes are failing ({outage}); messages are held and "
                          "retried until it recovers.")
        return errors + self.notices


def _person(identity: Identity) -> PersonRow:
    accounts = tuple(AccountRow(a.channel, a.sender_id, a.sender_name, a.via, a.linked_at)
                     for a in identity.accounts)
    name = identity.name or next((a.sender_name for a in accounts if a.sender_name), "")
    return PersonRow(identity.id, name or (accounts[0].sender_id if accounts else ""), accounts)


def _traffic(row: JournalRow, answered: JournalRow | None) -> TrafficRow:
    latency = (row.updated_at - answered.created_at) * 1000 if answered else None
    return TrafficRow(
        id=row.id, ts=row.created_at, direction=row.direction, channel=row.channel,
        chat=row.chat, sender=row.sender_name or row.sender_id, text=row.text, status=row.status,
        thread=row.thread, reply_to_id=row.reply_to, latency_ms=latency, error=row.error)

