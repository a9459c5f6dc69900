"""MCP servers for the Settings view: list them with their state, test, save and delete.

The form's values come back with a ``transport`` choice (not a field of the model) and
the fields of both transports (a hidden field keeps what it holds); only the chosen
transport's fields are validated. Secret header and variable values travel in the
form's ``secrets`` field and go to the secret store; a blank one keeps the stored
value only while the server reaches the same place (:func:`config_from_form`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from pyclaw_app.agent.mcp import (
    McpServerState,
    McpServerStatus,
    McpUnavailable,
    config_from_form,
    probe_server,
)
from pyclaw_app.agent.mcp.form import SECRETS_FIELD
from pyclaw_app.config import save_config
from pyclaw_app.config_mcp import TRANSPORT_FIELD, McpServerConfig, mcp_secret_key
from pyclaw_app.control.types import FieldError, McpServerRow, McpServers, ProbeOutcome
from pyclaw_app.errors import ConfigError
from pyclaw_app.gateway import Gateway
from pyclaw_app.secrets import SecretStore, redactor

__all__ = ["McpAdmin", "form_schema"]

STDIO_ONLY = ("command", "args", "env", "secret_env", "cwd")
HTTP_ONLY = ("url", "headers", "secret_headers")
TRANSPORTS = {"stdio": "A program pyclaw starts (stdio)",
              "http": "An endpoint it connects to (streamable HTTP)"}


def form_schema() -> dict[str, Any]:
    """``McpServerConfig``'s schema with the transport choice first."""
    schema = McpServerConfig.model_json_schema()
    transport = {"type": "string", "enum": list(TRANSPORTS), "default": "stdio",
                 "title": "Transport", "options": TRANSPORTS, "group": "essentials",
                 "description": "stdio runs a command on this machine (npx, uvx, a script); "
                                "HTTP reaches a server by its URL"}
    properties = schema.get("properties", {})
    first = {k: properties[k] for k in ("name",) if k in properties}
    schema["properties"] = first | {TRANSPORT_FIELD: transport} | {
        k: v for k, v in properties.items() if k not in first}
    return schema


def _short(kind: str, name: str) -> str:
    """A secret as the form names it: ``headers.Authorization``."""
    return f"{kind}.{name}"


def _values(config: McpServerConfig) -> dict[str, Any]:
    return config.model_dump(mode="json") | {TRANSPORT_FIELD: config.transport}


def _target(config: McpServerConfig) -> str:
    if config.command is not None:
        return " ".join([config.command, *config.args])
    return str(config.url)


def _only_transport(values: dict[str, Any]) -> dict[str, Any]:
    """The values without the other transport's fields and the transport choice itself."""
    transport = values.get(TRANSPORT_FIELD) or ("http" if values.get("url") else "stdio")
    drop = set(HTTP_ONLY if transport == "stdio" else STDIO_ONLY) | {TRANSPORT_FIELD}
    body = {k: v for k, v in values.items() if k not in drop}
    kind = "env" if transport == "stdio" else "headers"
    secrets = values.get(SECRETS_FIELD)
    if isinstance(secrets, dict):
        body[SECRETS_FIELD] = {k: v for k, v in secrets.items()
                               if str(k).partition(".")[0] == kind}
    return body


def _field_errors(exc: ValidationError) -> list[FieldError]:
    return [FieldError(str(e["loc"][0]) if e["loc"] else "", e["msg"].removeprefix(
        "Value error, ")) for e in exc.errors()]


def _renamed(saved: McpServerConfig, name: str) -> McpServerConfig:
    """``saved`` under a new name, its secrets filed under that name."""
    values = {mcp_secret_key(name, kind, short): saved.secret_values()[old]
              for kind, short in saved.secret_names()
              if (old := mcp_secret_key(saved.name, kind, short)) in saved.secret_values()}
    return McpServerConfig.model_validate(saved.model_dump() | {"name": name}).with_secrets(values)


def _keys(configs: Iterable[McpServerConfig]) -> set[str]:
    return {mcp_secret_key(c.name, kind, name) for c in configs for kind, name in c.secret_names()}


class McpAdmin:
    def __init__(self, gateway: Gateway, secrets: SecretStore) -> None:
        self.gateway = gateway
        self.secrets = secrets

    def _saved(self, name: str | None) -> McpServerConfig | None:
        return next((s for s in self.gateway.config.mcp_servers if s.name == name), None)

    def servers(self) -> McpServers:
        status = {s.name: s for s in self.gateway.mcp.status()}
        rows = []
        for config in self.gateway.config.mcp_servers:
            stored = set(config.secret_values())
            live = status.get(config.name)
            rows.append(McpServerRow(
                name=config.name, transport=config.transport, target=_target(config),
                enabled=config.enabled, values=_values(config),
                secrets_set=tuple(_short(kind, name) for kind, name in config.secret_names()
                                  if mcp_secret_key(config.name, kind, name) in stored),
                state=self._state(config, live),
                tools=tuple(t.name for t in live.tools) if live is not None else (),
                offered=len(live.offered) if live is not None else 0,
                error=(live.error or "") if live is not None else "",
                restarts=live.restarts if live is not None else 0))
        return McpServers(tuple(rows), form_schema())

    def _state(self, config: McpServerConfig, live: McpServerStatus | None) -> str:
        """The live state; a server launched a moment ago whose task has not begun yet
        reads "stopped" from the manager, and is starting."""
        if live is None:
            return McpServerState.STOPPED.value
        if live.state == McpServerState.STOPPED and config.enabled \
                and self.gateway.mcp.server(config.name) is not None:
            return McpServerState.STARTING.value
        return live.state.value

    def build(self, values: dict[str, Any], original_name: str | None
              ) -> tuple[McpServerConfig | None, list[FieldError]]:
        """The config the form describes, with its secrets (typed or kept), or field errors."""
        body = _only_transport(values)
        saved = self._saved(original_name if original_name is not None else body.get("name"))
        if saved is not None and original_name is not None and body.get("name") != saved.name \
                and isinstance(body.get("name"), str):
            try:
                saved = _renamed(saved, body["name"])
            except ValidationError:
                saved = None  # the new name is invalid: validation below says so
        try:
            config = config_from_form(body, saved)
        except ValidationError as exc:
            return None, _field_errors(exc)
        return config, []

    async def test(self, values: dict[str, Any], original_name: str | None = None
                   ) -> tuple[list[str], ProbeOutcome]:
        config, errors = self.build(values, original_name)
        if config is None:
            return [], ProbeOutcome(False, "; ".join(
                f"{e.field}: {e.message}" if e.field else e.message for e in errors))
        try:
            tools = await probe_server(config)
        except McpUnavailable as exc:
            return [], ProbeOutcome(False, redactor(str(exc)))
        names = [t.name for t in tools]
        return names, ProbeOutcome(True, f"{len(names)} tool{'s' if len(names) != 1 else ''}"
                                         f" available")

    async def save(self, values: dict[str, Any], original_name: str | None = None
                   ) -> list[FieldError]:
        """Validate, store the secrets, write the YAML, then start or reconnect live."""
        config, errors = self.build(values, original_name)
        if config is None:
            return errors
        cfg = self.gateway.config
        current = list(cfg.mcp_servers)
        if original_name is not None and self._saved(original_name) is None:
            return [FieldError("", f"no MCP server is called {original_name!r}")]
        if config.name != original_name and self._saved(config.name) is not None:
            return [FieldError("name", f"another MCP server is called {config.name!r}")]
        missing = [key.removeprefix(f"mcp_servers.{config.name}.")
                   for key in config.missing_secrets()]
        if missing:
            return [FieldError(f"{SECRETS_FIELD}.{m}", "type its value: nothing is saved "
                               "for this server yet") for m in missing]
        if original_name is None:
            updated = [*current, config]
        else:
            updated = [config if s.name == original_name else s for s in current]
        return await self._write(current, updated)

    async def delete(self, name: str) -> list[FieldError]:
        current = list(self.gateway.config.mcp_servers)
        if self._saved(name) is None:
            return [FieldError("", f"no MCP server is called {name!r}")]
        return await self._write(current, [s for s in current if s.name != name])

    async def _write(self, current: list[McpServerConfig], updated: list[McpServerConfig]
                     ) -> list[FieldError]:
        cfg = self.gateway.config
        cfg.mcp_servers = updated
        try:
            save_config(cfg, self.secrets)
        except (OSError, ConfigError) as exc:
            cfg.mcp_servers = current
            return [FieldError("", f"could not save the config file: {exc}")]
        for key in _keys(current) - _keys(updated):
            self.secrets.delete(key)
        await self.gateway.mcp.apply(updated)
        await self.gateway.config_saved()
        return []
