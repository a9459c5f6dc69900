"""Profiles for the Settings view: list them, add or edit one (renaming too), delete one.

The form is ``ProfileConfig``'s schema with the profile's name first and what depends on
the config filled in: the provider is picked from the configured ones (blank: the
assistant's), and the help of "Used on", "Built-in tools" and "MCP servers and tools"
names what exists. A save is checked against the rest of the config as the file would
then be (an unknown channel or provider, a chat another profile already has): each
problem comes back under its field and nothing is written. A good one is written to the
YAML (comments and order kept) and applied to the next message, no restart.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from pyclaw_app.agent import Agent
from pyclaw_app.agent.tools import builtin_tools
from pyclaw_app.config import Config, save_config
from pyclaw_app.control.types import FieldError, ProfileRow, Profiles
from pyclaw_app.errors import ConfigError
from pyclaw_app.gateway import Gateway
from pyclaw_app.profiles import PROFILE_NAME, ProfileConfig, check_profiles, effective
from pyclaw_app.secrets import SecretStore

__all__ = ["INHERIT", "NAME_FIELD", "ProfilesAdmin", "form_schema"]

NAME_FIELD = "name"
INHERIT = ""
"""The provider choice that means "the assistant's default provider"."""


def _names(items: list[str]) -> str:
    return ", ".join(items) if items else "none yet"


def form_schema(cfg: Config) -> dict[str, Any]:
    """``ProfileConfig``'s schema with the name first and the config's names in it."""
    schema = ProfileConfig.model_json_schema()
    props: dict[str, Any] = schema.get("properties", {})
    providers = [p.name for p in cfg.providers]
    props["provider"] = {
        "type": "string", "enum": [INHERIT, *providers], "default": INHERIT,
        "title": props["provider"].get("title", "Provider"), "group": "essentials",
        "options": {INHERIT: "The assistant's default"} | {n: n for n in providers},
        "description": props["provider"].get("description", "")}
    extra = {"match": f"Channels: {_names(list(cfg.channels))}.",
             "tools": f"Built-in: {_names(builtin_tools().names())}.",
             "mcp": f"Servers: {_names([s.name for s in cfg.mcp_servers])}."}
    for field, words in extra.items():
        props[field] = {**props[field], "description": f"{props[field]['description']}. "
                                                       f"{words}"}
    name = {"type": "string", "title": "Name", "group": "essentials", "pattern": PROFILE_NAME,
            "description": "Short name (letters, digits, - or _), e.g. support or family"}
    schema["properties"] = {NAME_FIELD: name} | props
    schema["required"] = [NAME_FIELD]
    return schema


def _values(name: str, profile: ProfileConfig) -> dict[str, Any]:
    return profile.model_dump(mode="json") | {NAME_FIELD: name,
                                              "provider": profile.provider or INHERIT}


def _chain_words(cfg: Config, name: str, profile: ProfileConfig) -> str:
    """The chain a profile answers through, in words."""
    if not profile.own_chain:
        return "the assistant's chain"
    chosen = effective(cfg.agent, name, profile, "")
    by_name = {p.name: p for p in cfg.providers}
    first = by_name.get(chosen.provider or "") if chosen.provider else next(
        iter(cfg.providers), None)
    if first is None:
        return "no provider configured"
    links = [f"{first.name}/{chosen.model or first.model}"]
    for step in chosen.fallbacks:
        known = by_name.get(step.provider)
        links.append(f"{step.provider}/{step.model or (known.model if known else '?')}")
    return ", then ".join(links)


def _field_errors(exc: ValidationError) -> list[FieldError]:
    return [FieldError(str(e["loc"][0]) if e["loc"] else "",
                       e["msg"].removeprefix("Value error, ")) for e in exc.errors()]


class ProfilesAdmin:
    def __init__(self, gateway: Gateway, secrets: SecretStore) -> None:
        self.gateway = gateway
        self.secrets = secrets

    def _problems(self, profiles: Mapping[str, ProfileConfig]) -> dict[str, list[FieldError]]:
        """Each profile's problems with the config, as field errors."""
        cfg = self.gateway.config
        found: dict[str, list[FieldError]] = {}
        for problem in check_profiles(profiles, channels=cfg.channels,
                                      providers=[p.name for p in cfg.providers],
                                      mcp_servers=[s.name for s in cfg.mcp_servers]):
            _, name, *rest = problem.loc
            field = str(rest[0]) if rest else ""
            found.setdefault(str(name), []).append(FieldError(field, problem.message))
        return found

    def list(self) -> Profiles:
        cfg = self.gateway.config
        problems = self._problems(cfg.profiles)
        rows = tuple(ProfileRow(
            name=name, values=_values(name, profile), used_on=tuple(profile.match),
            answers_with=_chain_words(cfg, name, profile),
            problems=tuple(f"{e.field}: {e.message}" if e.field else e.message
                           for e in problems.get(name, [])))
            for name, profile in cfg.profiles.items())
        return Profiles(rows, form_schema(cfg))

    def build(self, values: dict[str, Any]) -> tuple[str, ProfileConfig | None,
                                                      list[FieldError]]:
        """The name and profile the form describes, or the errors under its fields."""
        name = values.get(NAME_FIELD)
        errors = []
        if not isinstance(name, str) or not re.fullmatch(PROFILE_NAME, name):
            errors.append(FieldError(NAME_FIELD, "letters, digits and single - or _ between "
                                                 "them, e.g. support"))
            name = ""
        body = {k: v for k, v in values.items() if k != NAME_FIELD and v is not None}
        if body.get("provider") == INHERIT:
            del body["provider"]
        try:
            profile = ProfileConfig.model_validate(body)
        except ValidationError as exc:
            return name, None, errors + _field_errors(exc)
        known = set(builtin_tools().names())
        unknown = [t for t in profile.tools or () if t not in known]
        if unknown:
            errors.append(FieldError("tools", f"no built-in tool is called "
                                              f"{', '.join(unknown)}; known: "
                                              f"{', '.join(sorted(known))}"))
        return name, (None if errors else profile), errors

    async def save(self, values: dict[str, Any], original_name: str | None = None
                   ) -> list[FieldError]:
        """Validate against the rest of the config, write the YAML, apply at once."""
        if not isinstance(values, dict):
            return [FieldError("", "the profile's values must be a mapping")]
        name, profile, errors = self.build(values)
        if profile is None:
            return errors
        current = self.gateway.config.profiles
        if original_name is not None and original_name not in current:
            return [FieldError("", f"no profile is called {original_name!r}")]
        if name != original_name and name in current:
            return [FieldError(NAME_FIELD, f"another profile is called {name!r}")]
        if original_name is None:
            updated = {**current, name: profile}
        else:  # in place: which profile names a chat first is its order in the file
            updated = {(name if key == original_name else key):
                       (profile if key == original_name else value)
                       for key, value in current.items()}
        mine = self._problems(updated).get(name, [])
        if mine:
            return mine
        return await self._write(updated)

    async def delete(self, name: str) -> list[FieldError]:
        current = self.gateway.config.profiles
        if name not in current:
            return [FieldError("", f"no profile is called {name!r}")]
        return await self._write({k: v for k, v in current.items() if k != name})

    async def _write(self, updated: dict[str, ProfileConfig]) -> list[FieldError]:
        gateway = self.gateway
        cfg = gateway.config
        before, cfg.profiles = cfg.profiles, updated
        try:
            save_config(cfg, self.secrets)
        except (OSError, ConfigError) as exc:
            cfg.profiles = before
            return [FieldError("", f"could not save the config file: {exc}")]
        await gateway.replace_agent(Agent.from_config(cfg, gateway.store,
                                                      tool_source=gateway.mcp,
                                                      media=gateway.attachments))
        await gateway.config_saved()
        return []
