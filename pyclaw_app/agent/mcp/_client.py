"""The one module that touches the MCP SDK: open a client for a config, list, call, describe.

Imported only when a server is started or tested, so a gateway without MCP servers
never loads the SDK. Two SDK details shape it:

- A connection's end is seen at once: the transport's read stream is wrapped
  (``Transport`` is the SDK's public protocol) and reports its end of stream, so a
  stdio server that exits, or an HTTP connection that drops, is noticed without
  waiting for the next health check.
- The SDK is built on anyio task groups: a failing HTTP transport cancels the
  tasks inside its scope. Callers therefore never await the SDK from their own
  task; :class:`~pyclaw_app.agent.mcp.server.McpServer` runs each call in a task
  of the connection's own group and hands the outcome back.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2
import mcp_types as types
from mcp import Client, MCPError, StdioServerParameters
from mcp.client import Transport
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from pydantic import ValidationError

from pyclaw_app import __version__
from pyclaw_app.agent.mcp._names import exposed_names
from pyclaw_app.agent.mcp._types import McpConnectionLost, McpToolInfo, McpUnavailable
from pyclaw_app.agent.tools.registry import ToolError
from pyclaw_app.config_mcp import McpServerConfig

__all__ = ["call_tool", "describe", "list_tools", "open_client", "result_text", "tool_infos"]

MAX_PAGES = 50
"""tools/list pages followed at most: a server whose cursor never ends cannot hang us."""
STDERR_LINES = 20
SSE_READ_TIMEOUT = 300.0
_BOX = re.compile(r"[\u2500-\u259f]+")


class _StderrTail:
    """The last lines a stdio server wrote to stderr: its traceback when it dies.

    The SDK wants a real file for the child's stderr; a pipe read by a daemon thread
    keeps only a bounded tail, however chatty the server is.
    """

    def __init__(self, lines: int = STDERR_LINES) -> None:
        read_fd, write_fd = os.pipe()
        self.file = os.fdopen(write_fd, "w")
        self._lines: deque[str] = deque(maxlen=lines)
        self._thread = threading.Thread(target=self._read, args=(read_fd,), daemon=True,
                                        name="mcp-stderr")
        self._thread.start()

    def _read(self, fd: int) -> None:
        with os.fdopen(fd, "rb") as pipe:
            for line in pipe:
                # Servers often log with rich: drop its box drawing, keep the words.
                text = " ".join(_BOX.sub(" ", line.decode("utf-8", "replace")).split())
                if text:
                    self._lines.append(text)

    def spawned(self) -> None:
        """Our copy of the write end closes once the child holds its own, so the reader
        sees the end when the child exits."""
        if not self.file.closed:
            self.file.close()

    def tail(self, lines: int = 3) -> str:
        return " | ".join(list(self._lines)[-lines:])


class _WatchedStream:
    """A transport's read stream that reports its end (the SDK's ``ReadStream`` protocol)."""

    def __init__(self, inner: Any, on_end: Callable[[], None]) -> None:
        self._inner = inner
        self._on_end = on_end

    @property
    def last_context(self) -> Any:
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> Any:
        try:
            return await self._inner.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._on_end()
            raise

    def __aiter__(self) -> _WatchedStream:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> _WatchedStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


@dataclass
class _Diagnostics:
    """What helps explain a failure: the server's last stderr lines, failed HTTP codes."""

    stderr: _StderrTail | None = None
    http_status: list[int] = field(default_factory=list)

    def hint(self) -> str:
        if self.http_status:
            status = self.http_status[-1]
            auth = " (check the server's secret headers)" if status in (401, 403) else ""
            return f"the server answered HTTP {status}{auth}"
        return self.stderr.tail() if self.stderr is not None else ""


@contextlib.asynccontextmanager
async def _watched(transport: Transport, on_end: Callable[[], None],
                   entered: Callable[[], None]) -> AsyncIterator[Any]:
    async with contextlib.AsyncExitStack() as stack:
        try:
            read, write = await stack.enter_async_context(transport)
        finally:
            entered()
        yield _WatchedStream(read, on_end), write


@contextlib.asynccontextmanager
async def _http(config: McpServerConfig, statuses: list[int]) -> AsyncIterator[Any]:
    async def remember(response: httpx2.Response) -> None:
        if response.status_code >= 400:
            statuses.append(response.status_code)

    assert config.url is not None
    timeout = httpx2.Timeout(config.connect_timeout,
                             read=max(SSE_READ_TIMEOUT, config.timeout + 30))
    async with httpx2.AsyncClient(headers=config.request_headers(), timeout=timeout,
                                  event_hooks={"response": [remember]}) as http, \
            streamable_http_client(config.url, http_client=http) as streams:
        yield streams


@contextlib.asynccontextmanager
async def open_client(config: McpServerConfig,
                      on_end: Callable[[], None]) -> AsyncIterator[Client]:
    """Start (stdio) or reach (HTTP) the server and complete the MCP handshake; any
    failure, then or later inside the block, leaves as :class:`McpUnavailable` with the
    server's own hint (its last stderr lines, the HTTP status it answered)."""
    diagnostics = _Diagnostics()
    if config.command is not None:
        diagnostics.stderr = stderr = _StderrTail()
        params = StdioServerParameters(command=config.command, args=config.args,
                                       env=config.process_env() or None, cwd=config.cwd,
                                       encoding_error_handler="replace")
        transport: Transport = stdio_client(params, errlog=stderr.file)
        entered = stderr.spawned
    else:
        transport = _http(config, diagnostics.http_status)
        entered = _nothing
    client = Client(_watched(transport, on_end, entered), cache=None,
                    client_info=types.Implementation(name="pyclaw", version=__version__))
    try:
        async with client:
            yield client
    except Exception as exc:
        raise McpUnavailable(_explained(exc, diagnostics)) from exc
    finally:
        entered()


def _nothing() -> None:
    return None


def _explained(exc: BaseException, diagnostics: _Diagnostics) -> str:
    reason = describe(exc)
    hint = diagnostics.hint()
    if diagnostics.http_status:  # what the server said matters more than how the SDK took it
        return f"{hint}; {reason}"
    return f"{reason} ({hint})" if hint and hint not in reason else reason


async def list_tools(client: Client) -> list[types.Tool]:
    tools: list[types.Tool] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        page = await client.list_tools(cursor=cursor, cache_mode="refresh")
        tools += page.tools
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


async def call_tool(client: Client, name: str, arguments: dict[str, Any],
                    timeout: float) -> types.CallToolResult:
    """One ``tools/call``; protocol errors become :class:`ToolError` (the model reads them),
    a closed connection :class:`McpConnectionLost`, the server's silence TimeoutError."""
    try:
        return await client.call_tool(name, arguments, read_timeout_seconds=timeout)
    except MCPError as exc:
        if exc.code == types.CONNECTION_CLOSED:
            raise McpConnectionLost("the connection closed during the call") from exc
        if exc.code == types.REQUEST_TIMEOUT:
            raise TimeoutError from exc
        raise ToolError(f"the MCP server refused the call: {exc.message}") from exc
    except ValidationError as exc:
        raise ToolError("the MCP server's answer is not valid MCP") from exc


def tool_infos(server: str, listed: list[types.Tool]) -> tuple[McpToolInfo, ...]:
    """The listed tools as the model is offered them: named ``<server>__<tool>``, with an
    object schema even where the server left ``properties`` out."""
    names = exposed_names(server, [t.name for t in listed])
    out = []
    for tool in listed:
        schema = dict(tool.input_schema or {})
        schema.setdefault("type", "object")
        schema.setdefault("properties", {})
        description = tool.description or tool.title or f"The {tool.name} tool of {server}"
        out.append(McpToolInfo(tool.name, names[tool.name], description, schema))
    return tuple(out)


def result_text(result: types.CallToolResult) -> str:
    """The result as text for the model; media it cannot read here is named, not dropped
    silently, so the model can say what it got."""
    parts: list[str] = []
    for block in result.content:
        if isinstance(block, types.TextContent):
            parts.append(block.text)
        elif isinstance(block, types.ImageContent | types.AudioContent):
            kind = "image" if isinstance(block, types.ImageContent) else "audio"
            size = len(block.data) * 3 // 4
            parts.append(f"[{kind} ({block.mime_type}, about {size:,} bytes) not shown]")
        elif isinstance(block, types.EmbeddedResource):
            res = block.resource
            if isinstance(res, types.TextResourceContents):
                parts.append(f"[{res.uri}]\n{res.text}")
            else:
                parts.append(f"[binary resource {res.uri} ({res.mime_type or 'unknown type'})"
                             " not shown]")
        elif isinstance(block, types.ResourceLink):
            parts.append(f"[resource {block.name}: {block.uri}]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(parts)


def describe(exc: BaseException) -> str:
    """One line for the log: the innermost meaningful error of an exception group."""
    leaf = _leaf(exc)
    if isinstance(leaf, FileNotFoundError):
        return f"the program was not found ({leaf.filename or leaf})"
    if isinstance(leaf, PermissionError):
        return f"the program cannot be run ({leaf})"
    if isinstance(leaf, TimeoutError):
        return "no answer in time"
    if isinstance(leaf, httpx2.ConnectError):
        return f"cannot connect ({leaf})"
    if isinstance(leaf, httpx2.HTTPError):
        return f"{type(leaf).__name__}: {str(leaf).rstrip('.')}"
    if isinstance(leaf, MCPError):
        return f"MCP error {leaf.code}: {leaf.message}"
    if isinstance(leaf, McpUnavailable):
        return str(leaf)
    text = str(leaf).rstrip(".")
    return f"{type(leaf).__name__}: {text}" if text else type(leaf).__name__


def _leaf(exc: BaseException) -> BaseException:
    cancelled = anyio.get_cancelled_exc_class()
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = next((e for e in exc.exceptions if not isinstance(e, cancelled)),
                   exc.exceptions[0])
    return exc
