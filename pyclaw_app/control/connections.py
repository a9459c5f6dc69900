"""A cap on the connections one address may hold open on the shared HTTP server.

aiohttp closes a connection whose request head does not arrive in time (its keep-alive
timer runs from the first byte; ``WebhookServer`` sets it to ``header_timeout``), but one
source could still open hundreds at once. ``LimitedSite`` listens like aiohttp's TCPSite
and wraps each connection's protocol: one over the per-source cap is closed before aiohttp
sees it.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import Counter

from aiohttp import web

__all__ = ["ConnectionLimit", "LimitedSite"]

_log = logging.getLogger(__name__)


class ConnectionLimit:
    """Open connections per source address; ``enter`` refuses one past ``per_source``."""

    def __init__(self, per_source: int) -> None:
        self.per_source = per_source
        self._open: Counter[str] = Counter()
        self._warned: set[str] = set()

    def open_from(self, source: str) -> int:
        return self._open[source]

    def enter(self, source: str) -> bool:
        if self._open[source] >= self.per_source:
            if source not in self._warned:  # once per episode, not once per connection
                self._warned.add(source)
                _log.warning("closing connections from %s: it already holds %d (the most one "
                             "address may hold, server.max_connections_per_source)",
                             source, self.per_source)
            return False
        self._open[source] += 1
        return True

    def leave(self, source: str) -> None:
        self._open[source] -= 1
        if self._open[source] <= 0:
            del self._open[source]
            self._warned.discard(source)


class _Admitted(asyncio.Protocol):
    """aiohttp's protocol for one connection, reached only if the source is under its cap."""

    def __init__(self, inner: asyncio.Protocol, limit: ConnectionLimit) -> None:
        self._inner = inner
        self._limit = limit
        self._source = ""
        self._admitted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        self._source = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        if not self._limit.enter(self._source):
            transport.abort()
            return
        self._admitted = True
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._admitted:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._admitted else None

    def pause_writing(self) -> None:
        if self._admitted:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._admitted:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._admitted:
            self._admitted = False
            self._limit.leave(self._source)
            self._inner.connection_lost(exc)


class LimitedSite(web.BaseSite):
    """A TCP site (plain or TLS) whose connections pass ``limit`` first."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, limit: ConnectionLimit,
                 *, ssl_context: ssl.SSLContext | None = None,
                 handshake_timeout: float = 10.0) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._host = host
        self._port = port
        self._limit = limit
        self._handshake_timeout = handshake_timeout
        self.bound_port = port

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host}:{self.bound_port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None  # the runner was set up before its sites start

        def factory() -> asyncio.Protocol:
            return _Admitted(server(), self._limit)

        self._server = await asyncio.get_running_loop().create_server(
            factory, self._host, self._port, ssl=self._ssl_context, backlog=self._backlog,
            ssl_handshake_timeout=self._handshake_timeout if self._ssl_context else None)
        if self._server.sockets:
            self.bound_port = int(self._server.sockets[0].getsockname()[1])
