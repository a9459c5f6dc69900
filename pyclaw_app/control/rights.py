"""Who may call what on the control API: a read-only monitor token and an admin token.

The phone holds a token that can be lost with the phone, so that token only *watches*:
traffic, channel states, logs, usage, the event stream and the forms (which never hold a
secret). Everything that changes the gateway, spends money or makes it connect somewhere
(saving, starting and stopping channels, chat, retries, approvals, "Test connection",
listing a provider's models) needs the admin token.

A method is admin-only unless it is named in ``READ_ONLY``: a new control-plane method is
safe by default, and making it readable is one line here.
"""

from __future__ import annotations

import enum
import secrets as token_source
from dataclasses import dataclass

from pyclaw_app.secrets import SecretStore

__all__ = ["ADMIN_TOKEN_KEY", "MONITOR_TOKEN_KEY", "READ_ONLY", "Role", "Tokens", "allowed",
           "control_tokens"]

# The key of the one token pyclaw had before the split. Phones hold it, so it stays what a
# phone may do: it becomes the read-only monitor token, and an upgrade narrows a lost
# phone's reach instead of widening it. Full control takes the new admin token.
MONITOR_TOKEN_KEY = "control.api_token"
ADMIN_TOKEN_KEY = "control.admin_token"

READ_ONLY = frozenset({
    "recent_traffic", "counters_today", "channels", "logs", "export_logs", "message_detail",
    "chat_history", "chat_files", "chat_file", "config_errors", "channel_types",
    "channel_form", "settings_form",
    "usage", "budgets", "budget_form", "pairing_requests", "group_requests",
    "channel_health", "provider_health", "schedules", "explain_schedule",
    "people", "person_detail", "mcp_servers", "conversation", "profiles",
    "first_run_state",
})


class Role(enum.Enum):
    MONITOR = "monitor"
    ADMIN = "admin"


def allowed(role: Role, method: str) -> bool:
    return role is Role.ADMIN or method in READ_ONLY


@dataclass(frozen=True, slots=True)
class Tokens:
    monitor: str
    admin: str


def _token(secrets: SecretStore, key: str) -> str:
    token = secrets.get(key)
    if not token:
        token = token_source.token_urlsafe(32)
        secrets.set(key, token)
    return token


def control_tokens(secrets: SecretStore) -> Tokens:
    """Both bearer tokens, each made on first use and kept in the secret store."""
    return Tokens(_token(secrets, MONITOR_TOKEN_KEY), _token(secrets, ADMIN_TOKEN_KEY))
