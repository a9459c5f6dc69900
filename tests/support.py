"""Test helpers shared by unit, contract and end-to-end tests."""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pyclaw_app.channels import SubmitResult
from pyclaw_app.model import ChannelState, Inbound

__all__ = ["MemoryState", "RecordingContext", "eventually"]


async def eventually(check: Callable[[], Any] | Callable[[], Awaitable[Any]],
                     timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll ``check`` until it returns something truthy; fail with its last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = check()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")
        await asyncio.sleep(interval)


@dataclass
class MemoryState:
    """``ctx.state`` in memory (values round-trip through JSON like the real one)."""

    values: dict[str, str] = field(default_factory=dict)

    async def get(self, key: str, default: Any = None) -> Any:
        return json.loads(self.values[key]) if key in self.values else default

    async def set(self, key: str, value: Any) -> None:
        self.values[key] = json.dumps(value)

    async def delete(self, key: str) -> None:
        self.values.pop(key, None)


@dataclass
class RecordingContext:
    """A ConnectorContext that journals in memory: for connector unit tests without a gateway."""

    channel: str = "test"
    inbound: list[Inbound] = field(default_factory=list)
    logs: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    states: list[tuple[ChannelState, str]] = field(default_factory=list)
    heartbeats: int = 0
    crashes: list[tuple[str, bool]] = field(default_factory=list)
    state: MemoryState = field(default_factory=MemoryState)
    _seen: dict[str, int] = field(default_factory=dict)

    async def submit(self, inbound: Inbound) -> SubmitResult:
        if inbound.platform_id in self._seen:
            return SubmitResult(self._seen[inbound.platform_id], duplicate=True)
        self.inbound.append(inbound)
        self._seen[inbound.platform_id] = len(self.inbound)
        return SubmitResult(len(self.inbound), duplicate=False)

    def log(self, level: str, message: str, **data: Any) -> None:
        self.logs.append((level, message, data))

    def set_state(self, state: ChannelState, reason: str = "") -> None:
        self.states.append((state, reason))

    def heartbeat(self) -> None:
        self.heartbeats += 1

    def crashed(self, reason: str, *, fatal: bool = False) -> None:
        self.crashes.append((reason, fatal))

    def commands(self) -> list[tuple[str, str]]:
        return [("help", "What I can do"), ("reset", "Forget this conversation")]
