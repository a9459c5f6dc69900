"""The tool registry: what the model is offered, and the one place tool calls are run.

A tool never raises into the agent: an unknown name, bad arguments, a
timeout or a bug in the tool all become an error *result* the model reads
(and usually recovers from), so a misbehaving tool cannot fail a turn.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from pyclaw_app.agent.providers.base import ToolCall, ToolSpec
from pyclaw_app.agent.tools.notes import Notes
from pyclaw_app.attachments.store import FileRow
from pyclaw_app.channels.contract import OutboundFile
from pyclaw_app.model import Inbound
from pyclaw_app.store.schedules import ScheduleStore

__all__ = ["FileSender", "Tool", "ToolContext", "ToolError", "ToolRegistry", "ToolResult",
           "ToolSource"]

_log = logging.getLogger(__name__)

TOOL_TIMEOUT = 10.0
MAX_RESULT_CHARS = 8000

_JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str, "integer": int, "number": (int, float), "boolean": bool,
    "object": dict, "array": list,
}


class ToolError(Exception):
    """A tool's own, expected failure; its message is what the model reads."""


class FileSender(Protocol):
    """How one turn's tools send files: bound by the gateway to the conversation the message
    came from, so a file can go nowhere else (no tool names an address)."""

    @property
    def channel_title(self) -> str:
        """The platform's name ("Telegram"), for what the model is told."""
        ...

    @property
    def can_send(self) -> bool:
        """The channel can send files (``capabilities.files``)."""
        ...

    async def received(self) -> list[FileRow]:
        """The files people sent in this conversation that are still stored, newest first."""
        ...

    def stored_path(self, row: FileRow) -> Path:
        """Where one of ``received`` is on disk."""
        ...

    async def send(self, file: OutboundFile) -> str:
        """Send ``file`` here under the journal's custody; returns its platform id. Raises
        ConnectorError (DeliveryUncertain when it may have arrived)."""
        ...


@dataclass(frozen=True, slots=True)
class ToolContext:
    """What a tool may know about the turn it runs in."""

    inbound: Inbound
    notes: Notes
    """This turn's notes: the person's in a direct message, the group's in a group."""
    now: Callable[[], datetime]
    schedules: ScheduleStore | None = None
    """The scheduled jobs (the schedule tools answer that scheduling is unavailable
    without them)."""
    files: FileSender | None = None
    """Sending files to this conversation (``send_file``); None where a turn has no
    conversation to send to (a scheduled task's run)."""


Handler = Callable[[dict[str, Any], ToolContext], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    """A JSON Schema object: ``{"type": "object", "properties": ..., "required": [...]}``."""
    handler: Handler
    timeout: float | None = None
    """Seconds this tool may take; the registry's timeout when None (MCP tools have their own)."""
    max_result_chars: int | None = None
    """Longest result the model reads; ``MAX_RESULT_CHARS`` when None."""

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec(self.name, self.description, self.parameters)


class ToolSource(Protocol):
    """Tools that come and go (MCP servers), asked for once per turn."""

    def tools_for(self, inbound: Inbound) -> Sequence[Tool]:
        """The tools this message's conversation may use right now."""
        ...

    def unavailable_note(self, inbound: Inbound,
                         servers: Collection[str] | None = None) -> str | None:
        """A line for the system prompt when some of them are missing right now (only
        those of ``servers`` when given: the ones the turn's profile allows)."""
        ...


@dataclass(frozen=True, slots=True)
class ToolResult:
    content: str
    is_error: bool = False


class ToolRegistry:
    def __init__(self, tools: Iterable[Tool] = (), *, timeout: float = TOOL_TIMEOUT) -> None:
        self._tools: dict[str, Tool] = {}
        self.timeout = timeout
        for tool in tools:
            self.register(tool)

    def register(self, tool: Tool) -> None:
        if tool.name in self._tools:
            raise ValueError(f"tool {tool.name!r} is already registered")
        self._tools[tool.name] = tool

    def names(self) -> list[str]:
        return list(self._tools)

    def specs(self) -> list[ToolSpec]:
        return [tool.spec for tool in self._tools.values()]

    def select(self, names: Sequence[str] | None) -> ToolRegistry:
        """A registry with only ``names`` (all when None); unknown names raise ValueError."""
        if names is None:
            return ToolRegistry(self._tools.values(), timeout=self.timeout)
        unknown = sorted(set(names) - set(self._tools))
        if unknown:
            raise ValueError(f"unknown tools {unknown}; known: {sorted(self._tools)}")
        return ToolRegistry((self._tools[n] for n in names), timeout=self.timeout)

    def extended(self, tools: Iterable[Tool]) -> ToolRegistry:
        """This registry plus ``tools`` (one turn's MCP tools); a name already taken keeps
        its first tool, and the clash is logged."""
        merged = dict(self._tools)
        for tool in tools:
            if tool.name in merged:
                _log.warning("tool %r is offered twice; the second one is ignored", tool.name)
                continue
            merged[tool.name] = tool
        return ToolRegistry(merged.values(), timeout=self.timeout)

    async def run(self, call: ToolCall, ctx: ToolContext) -> ToolResult:
        tool = self._tools.get(call.name)
        if tool is None:
            return ToolResult(f"error: there is no tool named {call.name!r}", is_error=True)
        problem = call.error or _check_arguments(tool.parameters, call.arguments)
        if problem:
            return ToolResult(f"error: {problem}", is_error=True)
        timeout = tool.timeout or self.timeout
        try:
            content = await asyncio.wait_for(tool.handler(call.arguments, ctx), timeout)
        except ToolError as exc:
            return ToolResult(f"error: {exc}", is_error=True)
        except TimeoutError:
            return ToolResult(f"error: the tool took longer than {timeout:.0f}s",
                              is_error=True)
        except Exception as exc:  # noqa: BLE001 - a tool bug becomes a result, never a failed turn
            _log.exception("tool %s failed", call.name)
            return ToolResult(f"error: the tool failed ({type(exc).__name__})", is_error=True)
        limit = tool.max_result_chars or MAX_RESULT_CHARS
        if len(content) > limit:
            content = (content[:limit] + f" [truncated: the result was {len(content):,} "
                       f"characters, only the first {limit:,} are shown]")
        return ToolResult(content)


def _check_arguments(schema: dict[str, Any], arguments: dict[str, Any]) -> str | None:
    """The first problem with ``arguments`` against the top level of ``schema``, if any."""
    properties: dict[str, Any] = schema.get("properties", {})
    for name in schema.get("required", []):
        if name not in arguments:
            return f"missing required argument {name!r}"
    for name, value in arguments.items():
        prop = properties.get(name)
        if prop is None:
            if schema.get("additionalProperties") is False:
                return f"unexpected argument {name!r}"
            continue
        expected = _JSON_TYPES.get(str(prop.get("type", "")))
        if expected is None:
            continue
        wrong_bool = isinstance(value, bool) and prop.get("type") in ("integer", "number")
        if wrong_bool or not isinstance(value, expected):
            return f"argument {name!r} must be of type {prop['type']}"
    return None
