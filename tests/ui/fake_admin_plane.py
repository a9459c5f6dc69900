"""FakeControlPlane plus the admin side: real connector schemas, validation, logs, journal detail.

Validation uses each connector's real pydantic config model, the way the
gateway's ChannelAdmin does, so forms are tested against the errors users
will really see. Everything else is in memory and recorded for assertions.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from typing import Any

from pydantic import ValidationError

from pyclaw_app.agent.mcp import config_from_form
from pyclaw_app.channels import registry
from pyclaw_app.config_mcp import McpServerConfig, mcp_secret_key
from pyclaw_app.control import (
    ChannelForm,
    ChannelStatus,
    ChannelType,
    FieldError,
    GroupRow,
    LogRow,
    McpServerRow,
    MessageDetail,
    PairingRow,
    ProbeOutcome,
)
from pyclaw_app.control.admin import channel_types
from pyclaw_app.control.export import export_rows
from pyclaw_app.control.mcp import HTTP_ONLY, STDIO_ONLY
from pyclaw_app.model import Event, EventKind
from tests.ui.fake_plane import FakeControlPlane

__all__ = ["FakeAdminPlane"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def _secret_fields(type_name: str) -> list[str]:
    model = registry.get_spec(type_name).config_model
    return [n for n, info in model.model_fields.items()
            if isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get("secret")]


class FakeAdminPlane(FakeControlPlane):
    def __init__(self, channels: list[ChannelStatus] | None = None, **kwargs: Any) -> None:
        super().__init__(channels, **kwargs)
        self.configs: dict[str, tuple[str, dict[str, Any]]] = {}
        self.secrets: dict[tuple[str, str], str] = {}
        self.log_rows: list[LogRow] = []
        self.details: dict[int, MessageDetail] = {}
        self.pairings: list[PairingRow] = []
        self.groups: list[GroupRow] = []
        self.calls: list[tuple[str, Any]] = []
        self.extra_types: list[ChannelType] = []
        """Types the registry here does not have (one whose SDK is missing, say)."""
        self.probe_outcome = ProbeOutcome(True, "connected as @fake_bot")
        self.mcp_secrets: dict[tuple[str, str], str] = {}
        """(server, "headers.Authorization") -> value, as the secret store would hold them."""
        self.mcp_tools = ["read_file", "write_file"]
        """What test_mcp_server lists and a saved server offers; a command or URL with
        "missing" in it fails its test instead."""
        self.mcp_state = "up"
        """The state a saved server is listed in."""
        self.probe_gate: asyncio.Event | None = None
        """When set, probe_channel waits for it (so a test can see the progress ring)."""
        self.probing = asyncio.Event()
        self.start_fails = ""
        """When set, start_channel leaves the channel offline with this reason."""

    # -- seeding -------------------------------------------------------------------------------

    def add_log(self, channel: str, level: str, message: str, *, ts: float | None = None,
                data: dict[str, Any] | None = None, publish: bool = False) -> LogRow:
        row = LogRow(len(self.log_rows) + 1, time.time() if ts is None else ts, channel, level,
                     message, data or {})
        self.log_rows.append(row)
        if publish:
            self.publish(Event(EventKind.LOG, channel, {"level": level, "message": message}))
        return row

    def configure(self, name: str, type_name: str, values: dict[str, Any],
                  state: str = "online") -> None:
        secret = _secret_fields(type_name)
        for field in secret:
            if values.get(field):
                self.secrets[(name, field)] = values[field]
        self.configs[name] = (type_name, {k: v for k, v in values.items() if k not in secret})
        spec = registry.get_spec(type_name)
        status = ChannelStatus(name, type_name, spec.title, spec.icon, state,
                               enabled=bool(values.get("enabled", True)))
        self.channel_list = [c for c in self.channel_list if c.name != name] + [status]

    # -- admin side of the ControlPlane --------------------------------------------------------

    def channel_types(self) -> list[ChannelType]:
        return channel_types() + self.extra_types

    def channel_form(self, name: str) -> ChannelForm:
        type_name, values = self.configs[name]
        stored = tuple(f for f in _secret_fields(type_name) if (name, f) in self.secrets)
        return ChannelForm(name, type_name, dict(values), stored)

    def validate_channel(self, name: str, type_name: str, values: dict[str, Any]
                         ) -> list[FieldError]:
        self.calls.append(("validate", (name, type_name, dict(values))))
        errors = [] if _NAME.match(name) else [
            FieldError("name", "use 1-32 lowercase letters, digits, - or _")]
        body = {k: v for k, v in values.items() if v is not None}
        for field in _secret_fields(type_name):
            if not body.get(field):
                body.pop(field, None)
                if (name, field) in self.secrets:
                    body[field] = self.secrets[(name, field)]
        try:
            registry.get_spec(type_name).config_model.model_validate(body)
        except ValidationError as exc:
            errors += [FieldError(str(e["loc"][0]) if e["loc"] else "", e["msg"])
                       for e in exc.errors()]
        return errors

    async def save_channel(self, name: str, type_name: str, values: dict[str, Any]
                           ) -> list[FieldError]:
        errors = self.validate_channel(name, type_name, values)
        if not errors:
            self.calls.append(("save", (name, type_name, dict(values))))
            self.configure(name, type_name, values)
        return errors

    async def probe_channel(self, name: str, type_name: str, values: dict[str, Any]
                            ) -> ProbeOutcome:
        self.calls.append(("probe", (name, type_name, dict(values))))
        self.probing.set()
        if self.probe_gate is not None:
            await self.probe_gate.wait()
        return self.probe_outcome

    async def set_channel_enabled(self, name: str, enabled: bool) -> list[FieldError]:
        self.calls.append(("enabled", (name, enabled)))
        self.channel_list = [dataclasses.replace(c, enabled=enabled) if c.name == name else c
                             for c in self.channel_list]
        self.set_state(name, "online" if enabled else "disabled",
                       "" if enabled else "disabled in config")
        return []

    async def start_channel(self, name: str) -> None:
        """Starting works, unless ``start_fails`` says why it does not."""
        self.calls.append(("start", name))
        if self.start_fails:
            self.set_state(name, "offline", self.start_fails)
        else:
            self.set_state(name, "online", "polling")

    async def stop_channel(self, name: str) -> None:
        self.calls.append(("stop", name))
        self.publish(Event(EventKind.CHANNEL_STATE, name, {"state": "stopped", "reason": ""}))

    async def restart_channel(self, name: str) -> None:
        self.calls.append(("restart", name))

    async def delete_channel(self, name: str) -> None:
        self.calls.append(("delete", name))
        self.configs.pop(name, None)
        self.channel_list = [c for c in self.channel_list if c.name != name]

    async def pairing_requests(self) -> list[PairingRow]:
        return list(self.pairings)

    async def approve_pairing(self, code: str) -> bool:
        self.calls.append(("approve", code))
        before = len(self.pairings)
        self.pairings = [p for p in self.pairings if p.code != code]
        return len(self.pairings) < before

    async def group_requests(self) -> list[GroupRow]:
        return list(self.groups)

    async def decide_group(self, channel: str, chat: str, approve: bool) -> bool:
        self.calls.append(("approve_group" if approve else "reject_group", f"{channel}/{chat}"))
        before = len(self.groups)
        self.groups = [g for g in self.groups if (g.channel, g.chat) != (channel, chat)]
        return len(self.groups) < before

    # -- logs and journal ----------------------------------------------------------------------

    async def logs(self, *, channel: str | None = None, level: str | None = None,
                   search: str | None = None, before_id: int | None = None,
                   since: float | None = None, until: float | None = None,
                   limit: int = 100) -> list[LogRow]:
        self.calls.append(("logs", {"channel": channel, "level": level, "search": search,
                                    "before_id": before_id, "since": since}))
        rows = [r for r in reversed(self.log_rows)
                if (channel is None or r.channel == channel)
                and (level is None or r.level == level)
                and (before_id is None or r.id < before_id)
                and (since is None or r.ts >= since)
                and (until is None or r.ts <= until)
                and (not search or search.lower() in r.message.lower())]
        return rows[:limit]

    async def export_logs(self, fmt: str, *, channel: str | None = None,
                          level: str | None = None, search: str | None = None,
                          since: float | None = None, until: float | None = None) -> str:
        rows = await self.logs(channel=channel, level=level, search=search, since=since,
                               until=until, limit=10**9)
        return export_rows([dataclasses.asdict(r) for r in rows], fmt)

    def _mcp_config(self, values: dict[str, Any], original_name: str | None) -> Any:
        """The real model's validation, the other transport's fields dropped like the plane."""
        drop = set(HTTP_ONLY if values.get("transport") != "http" else STDIO_ONLY)
        body = {k: v for k, v in values.items() if k not in drop | {"transport"}}
        name = original_name or body.get("name")
        kept = [n for (server, n) in self.mcp_secrets if server == name]
        saved = next((r for r in self.mcp_rows if r.name == name), None)
        base = None
        if saved is not None and kept:
            stored = {k: v for k, v in saved.values.items() if k != "transport"}
            base = McpServerConfig.model_validate(stored).with_secrets({
                mcp_secret_key(saved.name, *n.split(".", 1)): self.mcp_secrets[(saved.name, n)]
                for n in kept})
        return config_from_form(body, base)

    async def test_mcp_server(self, values: dict[str, Any], original_name: str | None = None
                              ) -> tuple[list[str], ProbeOutcome]:
        self.calls.append(("test_mcp", dict(values)))
        try:
            config = self._mcp_config(values, original_name)
        except ValidationError as exc:
            return [], ProbeOutcome(False, "; ".join(e["msg"] for e in exc.errors()))
        if "missing" in str(config.command or config.url):
            return [], ProbeOutcome(False, "the program was not found")
        return list(self.mcp_tools), ProbeOutcome(True, f"{len(self.mcp_tools)} tools available")

    async def save_mcp_server(self, values: dict[str, Any], original_name: str | None = None
                              ) -> list[FieldError]:
        self.calls.append(("save_mcp", (dict(values), original_name)))
        try:
            config = self._mcp_config(values, original_name)
        except ValidationError as exc:
            return [FieldError(str(e["loc"][0]) if e["loc"] else "", e["msg"])
                    for e in exc.errors()]
        missing = [k.removeprefix(f"mcp_servers.{config.name}.")
                   for k in config.missing_secrets()]
        if missing:
            return [FieldError(f"secrets.{m}", "type its value") for m in missing]
        prefix = f"mcp_servers.{config.name}."
        for key, value in config.secret_values().items():
            self.mcp_secrets[(config.name, key.removeprefix(prefix))] = value
        row = McpServerRow(
            config.name, config.transport, config.command or str(config.url), config.enabled,
            config.model_dump(mode="json") | {"transport": config.transport},
            tuple(f"{k}.{n}" for k, n in config.secret_names()
                  if (config.name, f"{k}.{n}") in self.mcp_secrets),
            self.mcp_state, tuple(self.mcp_tools), len(self.mcp_tools))
        rows = [r for r in self.mcp_rows if r.name not in (original_name, config.name)]
        self.mcp_rows = [*rows, row]
        return []

    async def delete_mcp_server(self, name: str) -> list[FieldError]:
        self.calls.append(("delete_mcp", name))
        if not any(r.name == name for r in self.mcp_rows):
            return [FieldError("", f"no MCP server is called {name!r}")]
        self.mcp_rows = [r for r in self.mcp_rows if r.name != name]
        self.mcp_secrets = {k: v for k, v in self.mcp_secrets.items() if k[0] != name}
        return []

    async def message_detail(self, message_id: int) -> MessageDetail | None:
        return self.details.get(message_id)

    async def retry_message(self, message_id: int) -> bool:
        self.calls.append(("retry", message_id))
        return message_id in self.details
