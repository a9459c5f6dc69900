"""Channel administration for the setup forms: list types, validate, save, probe, apply.

Forms are generated from each connector's JSON Schema, so this module is the
only place that turns form values back into a pydantic config. Secrets typed
into a form go to the secret store and never come back out: an edit form shows
only *whether* a secret is set, and a blank secret field means "keep it".
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from pyclaw_app.channels import Category, ChannelConfig, registry
from pyclaw_app.config import ChannelEntry, channel_secret_key, save_config
from pyclaw_app.control.types import ChannelForm, ChannelType, FieldError, ProbeOutcome
from pyclaw_app.errors import ConfigError
from pyclaw_app.gateway import Gateway
from pyclaw_app.secrets import SecretStore, redactor

__all__ = ["ChannelAdmin", "channel_types"]

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
PROBE_TIMEOUT = 20.0


def _secret_fields(model: type[ChannelConfig]) -> list[str]:
    return [name for name, info in model.model_fields.items()
            if isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get("secret")]


def _catalog_order(kind: ChannelType) -> tuple[int, str, bool, str]:
    """Catalog order: the known categories in their order, then a plugin's own (by name),
    then types with none; within one, those that can be added before those to install."""
    known = [c.value for c in Category]
    rank = known.index(kind.category) if kind.category in known else len(known)
    return rank, kind.category or "\uffff", bool(kind.install), kind.title.casefold()


def channel_types() -> list[ChannelType]:
    """Every channel type in catalog order (``_catalog_order``), those whose SDK is missing
    with the command that installs it, so nothing a user could add is hidden."""
    ready = [ChannelType(type=name, title=spec.title, icon=spec.icon,
                         description=spec.description, docs_url=spec.docs_url,
                         transport=spec.transport.value,
                         schema=spec.config_model.model_json_schema(),
                         category=spec.category, brand_icon=spec.brand_icon,
                         brand_color=spec.brand_color)
             for name, spec in registry.specs().items()]
    missing = [ChannelType(type=m.type, title=m.title,
                           icon=m.spec.icon if m.spec else "extension_off",
                           description=f"Not available: {m.reason}.", docs_url="",
                           transport="", schema={}, install=m.install,
                           category=m.spec.category if m.spec else "",
                           brand_icon=m.spec.brand_icon if m.spec else "",
                           brand_color=m.spec.brand_color if m.spec else "")
               for m in registry.unavailable().values()]
    return sorted(ready + missing, key=_catalog_order)


class ChannelAdmin:
    def __init__(self, gateway: Gateway, secrets: SecretStore, config_path: Path | None) -> None:
        self.gateway = gateway
        self.secrets = secrets
        self.config_path = config_path

    def types(self) -> list[ChannelType]:
        return channel_types()

    def form(self, name: str) -> ChannelForm:
        entry = self.gateway.channels[name].entry
        try:
            model = registry.get_spec(entry.type).config_model
        except KeyError:
            return ChannelForm(name, entry.type, dict(entry.raw))
        secret = _secret_fields(model)
        if entry.config is not None:
            values = entry.config.model_dump(mode="json", exclude=set(secret))
        else:
            values = {k: v for k, v in entry.raw.items() if k not in secret and k != "type"}
        stored = tuple(f for f in secret if self.secrets.get(channel_secret_key(name, f))
                       or (entry.config is not None and getattr(entry.config, f, None)))
        return ChannelForm(name, entry.type, values, stored)

    def validate(self, name: str, type_name: str, values: dict[str, Any]
                 ) -> tuple[ChannelConfig | None, list[FieldError]]:
        """Form values -> config; blank secret fields keep the stored secret."""
        errors: list[FieldError] = []
        if not NAME.match(name):
            errors.append(FieldError("name", "use 1-32 lowercase letters, digits, - or _"))
        try:
            model = registry.get_spec(type_name).config_model
        except KeyError as exc:
            return None, [*errors, FieldError("type", exc.args[0])]
        body = {k: v for k, v in values.items() if v is not None and k != "type"}
        for field in _secret_fields(model):
            if not body.get(field):
                body.pop(field, None)
                kept = self._stored_secret(name, field)
                if kept:
                    body[field] = kept
        try:
            config = model.model_validate(body)
        except ValidationError as exc:
            errors += [FieldError(str(e["loc"][0]) if e["loc"] else "", e["msg"])
                       for e in exc.errors()]
            return None, errors
        return (config, []) if not errors else (None, errors)

    def _stored_secret(self, name: str, field: str) -> str | None:
        value = self.secrets.get(channel_secret_key(name, field))
        rt = self.gateway.channels.get(name)
        if value is None and rt is not None and rt.entry.config is not None:
            current = getattr(rt.entry.config, field, None)
            if isinstance(current, SecretStr):
                value = current.get_secret_value()
        return value

    async def save(self, name: str, type_name: str, values: dict[str, Any]) -> list[FieldError]:
        """Validate, store secrets, write the YAML and apply it to the running gateway."""
        config, errors = self.validate(name, type_name, values)
        if config is None:
            return errors
        existing = self.gateway.channels.get(name)
        if existing is not None and existing.type != type_name:
            return [FieldError("name", f"a {existing.type} channel is already called {name}")]
        entry = ChannelEntry(name, type_name, config, None, {"type": type_name})
        self.gateway.config.channels[name] = entry
        try:
            self._write()
        except (OSError, ConfigError) as exc:
            return [FieldError("", f"could not save the config file: {exc}")]
        await self.gateway.apply_channel(entry)
        await self.gateway.config_saved()
        return []

    async def delete(self, name: str) -> None:
        rt = self.gateway.channels.get(name)
        if rt is None:
            return
        await self.gateway.remove_channel(name)
        self.gateway.config.channels.pop(name, None)
        for field in _secret_fields(rt.spec.config_model) if rt.spec else []:
            self.secrets.delete(channel_secret_key(name, field))
        self._write()
        await self.gateway.config_saved()

    async def set_enabled(self, name: str, enabled: bool) -> list[FieldError]:
        form = self.form(name)
        return await self.save(name, form.type, {**form.values, "enabled": enabled})

    async def probe(self, name: str, type_name: str, values: dict[str, Any]) -> ProbeOutcome:
        """"Test connection" with the form's values. A blank secret means the stored one,
        and that is sent only where the saved config would send it: with any connection
        setting changed, the secret must be typed again (else whoever may run probes could
        point one at their own server and read the stored token off the request)."""
        config, errors = self.validate(name, type_name, values)
        if config is None:
            return ProbeOutcome(False, "; ".join(f"{e.field}: {e.message}" if e.field
                                                 else e.message for e in errors))
        refusal = self._stored_secret_elsewhere(name, type_name, values, config)
        if refusal:
            return ProbeOutcome(False, refusal)
        connector = registry.connector_class(type_name)(name, config)
        try:
            result = await asyncio.wait_for(connector.probe(), PROBE_TIMEOUT)
        except TimeoutError:
            return ProbeOutcome(False, f"no answer within {PROBE_TIMEOUT:.0f} seconds")
        except Exception as exc:  # noqa: BLE001 - a probe must report, not raise
            return ProbeOutcome(False, redactor(f"{type(exc).__name__}: {exc}"))
        finally:
            try:
                await asyncio.wait_for(connector.stop(), 5)
            except Exception:  # noqa: BLE001 - cleanup of a never-started connector
                pass
        return ProbeOutcome(result.ok, redactor(result.message))

    def _stored_secret_elsewhere(self, name: str, type_name: str, values: dict[str, Any],
                                 config: ChannelConfig) -> str:
        """Why the stored secrets may not go with these settings ("" when they may)."""
        model = type(config)
        kept = [f for f in _secret_fields(model)
                if not values.get(f) and getattr(config, f, None) is not None]
        if not kept:
            return ""
        rt = self.gateway.channels.get(name)
        saved = rt.entry.config if rt is not None and rt.type == type_name else None
        if saved is None:
            changed = ["the channel is not saved as this type"]
        else:
            # The kit's own fields (policy, enabled) never change where a probe connects.
            fields = set(model.model_fields) - set(ChannelConfig.model_fields) - set(kept)
            now = config.model_dump(mode="json", include=fields)
            before = saved.model_dump(mode="json", include=fields)
            changed = sorted(f for f in fields if now.get(f) != before.get(f))
        if not changed:
            return ""
        secrets = " and ".join(kept)
        return (f"Type the {secrets} again to test these settings: a stored secret is only "
                f"sent with the saved connection settings, and these differ "
                f"({', '.join(changed)}).")

    def _write(self) -> None:
        cfg = self.gateway.config
        if cfg.path is None:
            if self.config_path is None:
                raise ConfigError("no config file path to save to")
            cfg.path = self.config_path
        save_config(cfg, self.secrets)
