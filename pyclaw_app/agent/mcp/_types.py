"""What the MCP side hands out: a server's tools and state, and its two failures."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["McpConnectionLost", "McpServerState", "McpServerStatus", "McpToolInfo",
           "McpUnavailable"]


class McpUnavailable(Exception):
    """The server cannot be reached or started; the message says why, for the log."""


class McpConnectionLost(McpUnavailable):
    """The connection ended (the process exited, the HTTP server went away)."""


class McpServerState(StrEnum):
    STARTING = "starting"
    UP = "up"
    DOWN = "down"
    """Failed or lost; restarting after a backoff delay."""
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class McpToolInfo:
    """One tool as the server lists it, and the name the model calls it by."""

    name: str
    """The server's own name for it (what ``tools:`` in the config lists)."""
    exposed: str
    """``<server>__<tool>``, valid for every provider."""
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class McpServerStatus:
    """For the Settings view and the Dashboard: how one configured server is doing."""

    name: str
    transport: str
    state: McpServerState
    tools: tuple[McpToolInfo, ...] = ()
    offered: tuple[str, ...] = ()
    """Exposed names of the tools the ``tools:`` allowlist lets through."""
    error: str | None = None
    """Why it is down (redacted), or a config problem."""
    restarts: int = 0
    channels: tuple[str, ...] | None = field(default=None)
