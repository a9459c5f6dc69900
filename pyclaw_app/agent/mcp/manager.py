"""The gateway's MCP servers, and the tools they offer to each turn.

The agent asks once per turn (:meth:`McpManager.tools_for`): the tools of the
servers that are up, allowed on the message's channel and in each server's
``tools`` allowlist. A server that is down offers nothing, and the turn's
system prompt says which servers are missing (:meth:`McpManager.unavailable_note`)
so the model can tell the user instead of pretending the tool never existed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Sequence
from typing import Any

from pyclaw_app.agent.mcp._types import McpServerState, McpServerStatus, McpToolInfo
from pyclaw_app.agent.mcp.server import CALL_GRACE, LogFn, McpServer, Sleep
from pyclaw_app.agent.tools.registry import Tool, ToolContext
from pyclaw_app.backoff import Backoff
from pyclaw_app.config_mcp import McpServerConfig
from pyclaw_app.model import Inbound

__all__ = ["McpManager"]

_log = logging.getLogger(__name__)


def _to_logger(level: str, message: str) -> None:
    _log.log(logging.getLevelNamesMapping().get(level.upper(), logging.INFO), "%s", message)


class McpManager:
    def __init__(self, configs: Sequence[McpServerConfig] = (), log: LogFn | None = None, *,
                 backoff: Callable[[], Backoff] | None = None,
                 sleep: Sleep = asyncio.sleep) -> None:
        self._configs = list(configs)
        self._log = log if log is not None else _to_logger
        self._backoff = backoff
        self._sleep = sleep
        self._servers: dict[str, McpServer] = {}
        self._started = False

    async def start(self) -> None:
        """Start every enabled server in the background: a slow or broken one never holds
        up the gateway, it just offers no tools until it is up."""
        if self._started:
            raise RuntimeError("the MCP manager is already started")
        self._started = True
        for config in self._configs:
            self._launch(config)

    async def stop(self) -> None:
        self._started = False
        servers, self._servers = list(self._servers.values()), {}
        await asyncio.gather(*(server.stop() for server in servers))

    async def apply(self, configs: Sequence[McpServerConfig]) -> None:
        """New settings: servers that reach the same place keep their connection (new
        channels, tools and limits apply at the next turn); the rest are restarted, removed
        or started."""
        self._configs = list(configs)
        if not self._started:
            return
        wanted = {c.name: c for c in configs if c.enabled}
        for name in [n for n in self._servers if n not in wanted]:
            await self._servers.pop(name).stop()
            self._log("info", f"MCP server {name} removed")
        for name, config in wanted.items():
            server = self._servers.get(name)
            if server is not None and server.config.same_connection(config):
                server.config = config
                continue
            if server is not None:
                await self._servers.pop(name).stop()
            self._launch(config)

    def _launch(self, config: McpServerConfig) -> None:
        if not config.enabled:
            return
        backoff = self._backoff() if self._backoff is not None else None
        server = McpServer(config, self._log, backoff=backoff, sleep=self._sleep)
        self._servers[config.name] = server
        server.start()

    # ---- per turn --------------------------------------------------------------------------
    def tools_for(self, inbound: Inbound) -> list[Tool]:
        """The MCP tools this message's conversation may use, as registry tools."""
        tools: list[Tool] = []
        for server in self._serving(inbound):
            for info in server.offered():
                tools.append(_tool(server, info))
        return tools

    def unavailable_note(self, inbound: Inbound,
                         servers: Collection[str] | None = None) -> str | None:
        """A line for the system prompt naming the servers of this channel that are down
        (only those of ``servers``, the turn's profile's, when given)."""
        down = [s.name for s in self._serving(inbound) if s.state != McpServerState.UP
                and (servers is None or s.name in servers)]
        if not down:
            return None
        return (f"Note: the tools of the MCP server(s) {', '.join(down)} are unavailable right "
                "now (starting or restarting). If the user asks for something that needs them, "
                "say that they are temporarily unavailable.")

    def _serving(self, inbound: Inbound) -> list[McpServer]:
        channel = inbound.address.channel
        return [s for s in self._servers.values()
                if s.config.channels is None or channel in s.config.channels]

    def status(self) -> list[McpServerStatus]:
        """Every configured server, running or not (disabled ones as stopped)."""
        out = []
        for config in self._configs:
            server = self._servers.get(config.name)
            out.append(server.status() if server is not None else McpServerStatus(
                config.name, config.transport, McpServerState.STOPPED,
                error=None if config.enabled else "disabled"))
        return out

    def server(self, name: str) -> McpServer | None:
        return self._servers.get(name)


def _tool(server: McpServer, info: McpToolInfo) -> Tool:
    async def handler(arguments: dict[str, Any], ctx: ToolContext) -> str:
        return await server.call(info.name, arguments)

    config = server.config
    return Tool(info.exposed, info.description, info.parameters, handler,
                timeout=config.timeout + 2 * CALL_GRACE, max_result_chars=config.max_output_chars)
