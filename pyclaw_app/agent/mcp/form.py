"""A server config from the Settings form, for Test connection and Save.

The form never shows stored secrets: a blank secret field means "keep the stored
value". That value is only reused while the server is the same place (same
``url``, or same ``command``, ``args`` and ``cwd``): otherwise whoever may edit the
form could point it at their own endpoint and read the secret off the wire.
"""

from __future__ import annotations

from typing import Any

from pyclaw_app.config_mcp import McpServerConfig, SecretKind, mcp_secret_key

__all__ = ["SECRETS_FIELD", "config_from_form"]

SECRETS_FIELD = "secrets"
"""The form's extra field: ``{"headers.Authorization": "...", "env.GITHUB_TOKEN": "..."}``;
blank values keep the stored ones."""

_TARGET = ("url", "command", "args", "cwd")


def config_from_form(values: dict[str, Any], saved: McpServerConfig | None
                     ) -> McpServerConfig:
    """Validate ``values`` (raises pydantic's ValidationError) and attach its secrets."""
    body = {k: v for k, v in values.items() if k != SECRETS_FIELD and v is not None}
    config = McpServerConfig.model_validate(body)
    typed: dict[str, str] = {}
    for short, value in (values.get(SECRETS_FIELD) or {}).items():
        kind, _, name = str(short).partition(".")
        if kind in ("headers", "env") and name and value:
            typed[mcp_secret_key(config.name, _kind(kind), name)] = str(value)
    kept: dict[str, str] = {}
    if saved is not None and saved.name == config.name and all(
            getattr(saved, f) == getattr(config, f) for f in _TARGET):
        kept = saved.secret_values()
    return config.with_secrets(kept | typed)


def _kind(text: str) -> SecretKind:
    return "headers" if text == "headers" else "env"
