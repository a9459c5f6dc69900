"""One MCP server kept connected: started, watched, and restarted on the shared backoff.

While it is up its tools are offered to the model; the moment the connection
ends (the process exits, the HTTP server goes away, a health check goes
unanswered) they are withdrawn, calls in flight end with an error result the
model reads, and one log line says what happened and when the next try is.
A call never waits longer than the server's ``timeout``.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from pyclaw_app.agent.mcp._types import (
    McpConnectionLost,
    McpServerState,
    McpServerStatus,
    McpToolInfo,
    McpUnavailable,
)
from pyclaw_app.agent.tools.registry import ToolError
from pyclaw_app.backoff import Backoff
from pyclaw_app.config_mcp import McpServerConfig

if TYPE_CHECKING:
    from mcp import Client

__all__ = ["CALL_GRACE", "LogFn", "McpServer", "Sleep"]

_log = logging.getLogger(__name__)

LogFn = Callable[[str, str], None]
"""(level, message): where the server's ups and downs are told (the gateway's log)."""
Sleep = Callable[[float], Awaitable[None]]

CALL_GRACE = 2.0
"""Seconds past the server's timeout before a call is given up on without the SDK's
own timeout (which also tells the server to stop)."""


def _default_backoff() -> Backoff:
    return Backoff(base=1.0, cap=60.0, reset_after=300.0)


class McpServer:
    def __init__(self, config: McpServerConfig, log: LogFn, *, backoff: Backoff | None = None,
                 sleep: Sleep = asyncio.sleep) -> None:
        self.config = config
        self._log = log
        self._backoff = backoff or _default_backoff()
        self._sleep = sleep
        self.state = McpServerState.STOPPED
        self.error: str | None = None
        self.restarts = 0
        self._tools: tuple[McpToolInfo, ...] = ()
        self._client: Client | None = None
        self._group: anyio.abc.TaskGroup | None = None
        self._lost = anyio.Event()
        self._lost_reason = ""
        self._told = ""
        self._task: asyncio.Task[None] | None = None
        self._stop_scope = anyio.CancelScope()
        self._delay = 0.0

    @property
    def name(self) -> str:
        return self.config.name

    # ---- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        if self._task is not None:
            raise RuntimeError(f"MCP server {self.name} is already started")
        self._task = asyncio.create_task(self._run(), name=f"mcp:{self.name}")

    async def stop(self) -> None:
        """Withdraw the tools and end the connection (a stdio server's process too); safe
        to call twice.

        Through the run's anyio cancel scope, never ``task.cancel()``: the SDK stops a
        stdio server inside a shielded scope, which a native cancellation can break,
        leaving the process behind."""
        task, self._task = self._task, None
        self._withdraw()
        self._stop_scope.cancel()
        if task is not None:
            await task
        self.state = McpServerState.STOPPED

    # ---- what the agent sees -------------------------------------------------------------
    @property
    def tools(self) -> tuple[McpToolInfo, ...]:
        """Every tool the server lists, while it is up; nothing while it is down."""
        return self._tools if self.state == McpServerState.UP else ()

    def offered(self) -> list[McpToolInfo]:
        """The tools the config's ``tools`` allowlist lets through."""
        return self._allowed(self.tools)

    def _allowed(self, tools: tuple[McpToolInfo, ...]) -> list[McpToolInfo]:
        allowed = self.config.tools
        return [t for t in tools if allowed is None or t.name in allowed]

    def status(self) -> McpServerStatus:
        channels = tuple(self.config.channels) if self.config.channels is not None else None
        return McpServerStatus(self.name, self.config.transport, self.state, self.tools,
                               tuple(t.exposed for t in self.offered()), self.error,
                               self.restarts, channels)

    async def call(self, tool: str, arguments: dict[str, Any]) -> str:
        """Run ``tool``; every failure is a :class:`ToolError` worded for the model."""
        group, client = self._group, self._client
        if self.state != McpServerState.UP or group is None or client is None:
            raise ToolError(self._unavailable())
        outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        try:
            group.start_soon(self._call, client, tool, arguments, outcome,
                             name=f"mcp:{self.name}:{tool}")
        except RuntimeError as exc:  # the connection's group closed just now
            raise ToolError(self._unavailable()) from exc
        return await outcome

    def _unavailable(self) -> str:
        why = f" ({self.error})" if self.error else ""
        return (f"the MCP server {self.name!r} is not available right now{why}; it is being "
                "restarted. Tell the user this tool cannot be used at the moment.")

    async def _call(self, client: Client, tool: str, arguments: dict[str, Any],
                    outcome: asyncio.Future[str]) -> None:
        """A task of the connection's group: the SDK is only ever awaited from there."""
        from pyclaw_app.agent.mcp import _client

        timeout = self.config.timeout
        result: str | BaseException
        try:
            with anyio.fail_after(timeout + CALL_GRACE):
                answer = await _client.call_tool(client, tool, arguments, timeout)
            text = _client.result_text(answer)
            result = ToolError(text or "the tool reported an error") if answer.is_error \
                else text
        except McpConnectionLost as exc:
            self._connection_ended(str(exc))
            result = ToolError(f"the MCP server {self.name!r} stopped during the call; it is "
                               "being restarted. Tell the user this tool failed this time.")
        except TimeoutError:
            result = ToolError(f"the MCP tool {tool!r} of server {self.name!r} did not answer "
                               f"within {timeout:g} seconds")
        except ToolError as exc:
            result = exc
        except anyio.get_cancelled_exc_class():
            _settle(outcome, ToolError(f"the connection to the MCP server {self.name!r} was "
                                       "lost during the call; it is being restarted"))
            raise
        except Exception as exc:  # noqa: BLE001 - any SDK failure is the model's error result
            _log.warning("MCP call %s.%s failed", self.name, tool, exc_info=True)
            result = ToolError(f"the MCP call failed ({type(exc).__name__})")
        _settle(outcome, result)

    # ---- the supervised connection -------------------------------------------------------
    async def _run(self) -> None:
        try:
            from pyclaw_app.agent.mcp import _client  # the SDK loads with the first server
        except ImportError as exc:
            self.state, self.error = McpServerState.DOWN, f"the MCP SDK is missing ({exc})"
            self._log("error", f"MCP server {self.name} cannot start: {self.error}; install "
                               "pyclaw with its dependencies (the `mcp` package)")
            return
        with self._stop_scope:
            while True:
                self.state = McpServerState.STARTING
                try:
                    await self._connection()
                    reason = self._lost_reason or "the connection ended"
                except Exception as exc:  # noqa: BLE001 - every failure means: down, try again
                    reason = _client.describe(exc)
                self._down(reason)
                await self._sleep(self._delay)
                self.restarts += 1

    def _down(self, reason: str) -> None:
        was_up = bool(self._tools)
        withdrawn = len(self._allowed(self._tools))
        self._withdraw()
        self._tools = ()
        self.state = McpServerState.DOWN
        self.error = reason
        self._delay = delay = self._backoff.next_delay()
        attempt = self._backoff.attempts
        tools = f"its {withdrawn} tools are withdrawn from the prompt; " if withdrawn else ""
        # The first failure after working is an error; the retries that follow are
        # warnings, told when the reason changes and then at attempts 2, 4, 8...: a
        # server that stays down overnight writes a few lines, not one a minute.
        if was_up or reason != self._told or attempt & (attempt - 1) == 0:
            self._told = reason
            self._log("error" if was_up else "warning",
                      f"MCP server {self.name} is down: {reason}; {tools}restarting in "
                      f"{delay:.1f}s (attempt {attempt})")

    async def _connection(self) -> None:
        """One connection, from start to its end. Its deadline (``connect_timeout``) covers
        the start and the first tool list, and is lifted once the server is up."""
        from pyclaw_app.agent.mcp import _client

        missing = self.config.missing_secrets()
        if missing:
            raise McpUnavailable(f"the secret {missing[0]} is not set: store it with "
                                 f"`pyclaw secret set {missing[0]}`")
        self._lost = anyio.Event()
        self._lost_reason = ""
        connected = False
        with anyio.CancelScope(
                deadline=anyio.current_time() + self.config.connect_timeout) as starting:
            async with _client.open_client(self.config, self._stream_ended) as client, \
                    anyio.create_task_group() as group:
                listed = await _client.list_tools(client)
                starting.deadline = math.inf
                connected = True
                self._client, self._group = client, group
                self._publish(_client.tool_infos(self.name, listed), first=True)
                try:
                    await self._watch(client)
                finally:
                    self._withdraw()
                    group.cancel_scope.cancel()
        if starting.cancelled_caught and not connected:
            raise McpUnavailable(f"no answer within {self.config.connect_timeout:g} seconds")

    async def _watch(self, client: Client) -> None:
        """Until the connection ends: wait for its end, and every ``health_interval`` list
        the tools again (a hung server fails this; a changed tool list is picked up)."""
        from pyclaw_app.agent.mcp import _client

        while True:
            with anyio.move_on_after(self.config.health_interval):
                await self._lost.wait()
                return
            try:
                with anyio.fail_after(self.config.connect_timeout):
                    listed = await _client.list_tools(client)
            except Exception as exc:  # the health check failed: restart
                raise McpUnavailable(f"the health check failed: {_client.describe(exc)}") \
                    from exc
            self._publish(_client.tool_infos(self.name, listed), first=False)

    def _stream_ended(self) -> None:
        self._connection_ended("the server closed the connection" if self.config.url else
                               "the server process exited")

    def _connection_ended(self, reason: str) -> None:
        if not self._lost.is_set():
            self._lost_reason = reason
            self._lost.set()
        self._withdraw()

    def _withdraw(self) -> None:
        """The tools leave the prompt at once (before the connection is torn down)."""
        self._client = self._group = None
        if self.state == McpServerState.UP:
            self.state = McpServerState.DOWN

    def _publish(self, tools: tuple[McpToolInfo, ...], *, first: bool) -> None:
        changed = [t.name for t in tools] != [t.name for t in self._tools]
        self._tools = tools
        if self.state != McpServerState.UP:
            self.state = McpServerState.UP
            self.error = None
        offered = [t.name for t in self.offered()]
        unknown = sorted(set(self.config.tools or ()) - {t.name for t in tools})
        if first or changed:
            shown = ", ".join(offered) if offered else "none"
            self._log("info", f"MCP server {self.name} {'connected' if first else 'changed'}: "
                              f"{len(tools)} tools, offered to the model: {shown}")
        if first and unknown:
            self._log("warning", f"MCP server {self.name}: tools {unknown} are in its "
                                 "allowlist but the server does not list them")


def _settle(outcome: asyncio.Future[str], result: str | BaseException) -> None:
    if outcome.done():
        return
    if isinstance(result, BaseException):
        outcome.set_exception(result)
    else:
        outcome.set_result(result)
