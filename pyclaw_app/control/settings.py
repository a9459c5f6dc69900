"""Providers and agent settings for the Settings view, and the budgets form of the Usage view:
validate, keep keys secret, write the YAML, apply live."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from pyclaw_app.agent import Agent
from pyclaw_app.agent.agent import make_provider
from pyclaw_app.budgets import CapRow, RowError, config_of, rows_of
from pyclaw_app.config import (
    AgentConfig,
    Config,
    ProviderConfig,
    provider_secret_key,
    save_config,
)
from pyclaw_app.control.types import (
    BudgetForm,
    FieldError,
    ProbeOutcome,
    SettingsForm,
    UsageRow,
)
from pyclaw_app.errors import ConfigError, PyclawError
from pyclaw_app.gateway import Gateway
from pyclaw_app.secrets import SecretStore, redactor

__all__ = ["SettingsAdmin", "budget_schema"]

LIST_TIMEOUT = 20.0
ENDPOINT_FIELDS = ("kind", "base_url")
"""Where a provider's requests go: a stored key is only sent there."""
DEFAULT_HOSTS = {"openai": "api.openai.com", "anthropic": "api.anthropic.com"}


def _endpoint(config: ProviderConfig) -> str:
    """host[:port] the provider's requests go to, for messages."""
    if not config.base_url:
        return DEFAULT_HOSTS.get(config.kind, config.kind)
    parts = urlsplit(config.base_url)
    return parts.netloc or config.base_url


def _connection_failure(exc: BaseException, where: str, timeout: float) -> str | None:
    """"Refused" or "timed out", read from the cause chain (None: neither).

    The SDKs blur them: openai's aiohttp transport reports a refused connection
    as "Request timed out.", anthropic's as "Connection error.". What happened
    is still in the chain: a ``ConnectionRefusedError`` or a ``TimeoutError``.
    """
    seen: BaseException | None = exc
    timed_out = False
    for _ in range(32):  # chains are short; a cycle must not hang Test connection
        if seen is None:
            break
        if isinstance(seen, ConnectionRefusedError):
            return (f"connection refused: nothing is listening at {where} "
                    "(is the server running, and is the base URL right?)")
        timed_out = timed_out or isinstance(seen, TimeoutError)
        seen = seen.__cause__ or seen.__context__
    if timed_out:
        return f"timed out: {where} did not answer within {timeout:g} seconds"
    return None


def budget_schema(cfg: Config) -> dict[str, Any]:
    """``CapRow``'s schema with the channel picked from the configured ones (typed freely
    when there are none yet)."""
    schema = CapRow.model_json_schema()
    props: dict[str, Any] = schema["properties"]
    names = sorted(cfg.channels)
    if names:
        props["channel"] = {**props["channel"], "enum": names, "default": names[0]}
    return schema


def _row_errors(index: int, exc: ValidationError) -> list[FieldError]:
    """A row's validation errors under their fields; a whole-row check names its field
    before a colon ("channel: name the channel...")."""
    out = []
    for e in exc.errors():
        message = str(e["msg"]).removeprefix("Value error, ")
        field = str(e["loc"][0]) if e["loc"] else ""
        head, colon, rest = message.partition(": ")
        if not field and colon and head in CapRow.model_fields:
            field, message = head, rest
        out.append(FieldError(f"caps.{index}.{field}" if field else f"caps.{index}", message))
    return out


class SettingsAdmin:
    def __init__(self, gateway: Gateway, secrets: SecretStore) -> None:
        self.gateway = gateway
        self.secrets = secrets

    def form(self) -> SettingsForm:
        cfg = self.gateway.config
        providers = tuple(p.model_dump(mode="json", exclude={"api_key"}) for p in cfg.providers)
        keys = tuple(p.name for p in cfg.providers if p.api_key is not None)
        return SettingsForm(providers, keys, cfg.agent.model_dump(mode="json"),
                            ProviderConfig.model_json_schema(), AgentConfig.model_json_schema())

    def validate(self, providers: list[dict[str, Any]], agent: dict[str, Any]
                 ) -> tuple[list[ProviderConfig], AgentConfig | None, list[FieldError]]:
        errors: list[FieldError] = []
        built: list[ProviderConfig] = []
        current = {p.name: p for p in self.gateway.config.providers}
        for index, raw in enumerate(providers):
            body = {k: v for k, v in raw.items() if v is not None}
            if not body.get("api_key"):
                body.pop("api_key", None)
                old = current.get(str(body.get("name")))
                if old is not None and old.api_key is not None:
                    body["api_key"] = old.api_key.get_secret_value()
            try:
                built.append(ProviderConfig.model_validate(body))
            except ValidationError as exc:
                errors += [FieldError(f"providers.{index}.{e['loc'][0]}" if e["loc"]
                                      else f"providers.{index}", e["msg"]) for e in exc.errors()]
        names = [p.name for p in built]
        for name in {n for n in names if names.count(n) > 1}:
            errors.append(FieldError("providers", f"two providers are called {name!r}"))
        try:
            agent_config: AgentConfig | None = AgentConfig.model_validate(agent)
        except ValidationError as exc:
            agent_config = None
            errors += [FieldError(f"agent.{e['loc'][0]}" if e["loc"] else "agent", e["msg"])
                       for e in exc.errors()]
        if agent_config is not None and agent_config.provider and \
                agent_config.provider not in names:
            errors.append(FieldError("agent.provider",
                                     f"no provider is called {agent_config.provider!r}"))
        return built, agent_config, errors

    async def save(self, providers: list[dict[str, Any]], agent: dict[str, Any]
                   ) -> list[FieldError]:
        """Validate, store keys in the secret store, write the YAML, swap the agent live."""
        built, agent_config, errors = self.validate(providers, agent)
        if errors or agent_config is None:
            return errors
        cfg = self.gateway.config
        removed = {p.name for p in cfg.providers} - {p.name for p in built}
        cfg.providers, cfg.agent = built, agent_config
        try:
            save_config(cfg, self.secrets)
        except (OSError, ConfigError) as exc:
            return [FieldError("", f"could not save the config file: {exc}")]
        for name in removed:
            self.secrets.delete(provider_secret_key(name))
        await self.gateway.replace_agent(Agent.from_config(cfg, self.gateway.store,
                                                           tool_source=self.gateway.mcp,
                                                           media=self.gateway.attachments))
        await self.gateway.config_saved()
        return []

    async def list_models(self, provider: dict[str, Any]) -> tuple[list[str], ProbeOutcome]:
        """The provider's model list: doubles as "Test connection" for a provider form.

        A blank key means the stored one, which is sent only to the saved provider's
        endpoint: with ``kind`` or ``base_url`` changed the key must be typed again (else
        whoever may test could point the form at their own server and read the key)."""
        built, _, errors = self.validate([provider], self.gateway.config.agent.model_dump())
        if errors:
            return [], ProbeOutcome(False, "; ".join(f"{e.field}: {e.message}" for e in errors))
        if not provider.get("api_key") and built[0].api_key is not None:
            saved = next(p for p in self.gateway.config.providers if p.name == built[0].name)
            moved = [f for f in ENDPOINT_FIELDS
                     if getattr(saved, f) != getattr(built[0], f)]
            if moved:
                return [], ProbeOutcome(False, (
                    "Type the API key again to test this endpoint: the stored key is only sent "
                    f"to the saved provider's endpoint, and {' and '.join(moved)} changed."))
        client = make_provider(built[0])
        where = _endpoint(built[0])
        try:
            models = await asyncio.wait_for(client.list_models(), LIST_TIMEOUT)
        except TimeoutError:
            return [], ProbeOutcome(
                False, f"timed out: {where} did not answer within {LIST_TIMEOUT:g} seconds")
        except PyclawError as exc:
            words = _connection_failure(exc, where, min(built[0].timeout, LIST_TIMEOUT))
            return [], ProbeOutcome(False, redactor(words or str(exc)))
        finally:
            await client.close()
        return models, ProbeOutcome(True, f"{len(models)} models available")

    def budget_form(self) -> BudgetForm:
        cfg = self.gateway.config
        return BudgetForm(tuple(r.model_dump(mode="json") for r in rows_of(cfg.budgets)),
                          budget_schema(cfg))

    async def save_budgets(self, caps: list[dict[str, Any]]) -> list[FieldError]:
        """Check every row (a channel must be configured), write ``budgets:`` to the YAML
        and swap the caps the budget guard checks, from the next LLM call on. The spend
        counted so far stays: a cap that is raised allows more at once, one that is added
        already counts today's spend."""
        cfg = self.gateway.config
        rows: list[CapRow] = []
        errors: list[FieldError] = []
        for index, raw in enumerate(caps):
            if not isinstance(raw, dict):
                errors.append(FieldError(f"caps.{index}", "a cap must be a mapping of fields"))
                continue
            try:
                row = CapRow.model_validate({k: v for k, v in raw.items() if v is not None})
            except ValidationError as exc:
                errors += _row_errors(index, exc)
                continue
            channel = row.who[1]
            if channel and channel not in cfg.channels:
                known = ", ".join(sorted(cfg.channels)) or "none"
                errors.append(FieldError(f"caps.{index}.channel",
                                         f"no channel is called {channel!r} (configured: "
                                         f"{known})"))
            rows.append(row)
        if errors:
            return errors
        try:
            section = config_of(rows, cfg.budgets)
        except RowError as exc:
            return [FieldError(f"caps.{exc.index}.{exc.field}", str(exc))]
        before, cfg.budgets = cfg.budgets, section
        try:
            save_config(cfg, self.secrets)
        except (OSError, ConfigError) as exc:
            cfg.budgets = before
            return [FieldError("", f"could not save the config file: {exc}")]
        self.gateway.agent.budget.reconfigure(section)
        await self.gateway.config_saved()
        return []

    async def usage(self, *, since: float | None = None, until: float | None = None,
                    channel: str | None = None) -> list[UsageRow]:
        return await self.gateway.store.usage.breakdown(since=since, until=until,
                                                        channel=channel)


