"""The TCP plumbing the real-server helpers' proxies share: listen, pair, forward, cut.

A test proxy sits on 127.0.0.1 between a connector and a real server so that a test can
make the network misbehave. What every such proxy needs is the same: accept a client,
open its own connection to the server, forward each direction in its own task, and be
able to abort every live connection at once (what a network fault looks like to both
ends). What differs is how each protocol is read (whole IRC lines, whole MQTT packets,
raw bytes) and which faults are injected on top; :class:`TcpProxy` leaves exactly that to
its subclasses' :meth:`~TcpProxy._upstream` and :meth:`~TcpProxy._downstream`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Generic, Self, TypeVar

__all__ = ["Pair", "TcpProxy"]


@dataclass(eq=False)
class Pair:
    """One proxied connection: the client's side and the proxy's own side to the server.

    Compared by identity (``eq=False``) so that it can sit in a set while subclasses add
    mutable per-connection state (a nick, packet ids being lost, a stall flag)."""

    client: asyncio.StreamWriter
    server: asyncio.StreamWriter

    def abort(self) -> None:
        """Reset both sockets at once: no FIN, nothing buffered flushed, as a dead link."""
        for writer in (self.client, self.server):
            writer.transport.abort()


P = TypeVar("P", bound=Pair)


class TcpProxy(Generic[P]):
    """127.0.0.1:<port> forwarding to ``127.0.0.1:<upstream_port>``; ``cut()`` aborts every
    live connection.

    Subclasses implement :meth:`_upstream` (client to server) and :meth:`_downstream`
    (server to client), each reading whole protocol units and writing them on; either may
    return to end the connection. When one ends, or its socket fails, the whole pair is
    aborted, since half a proxied connection is of no use to either end. :meth:`_pair`
    makes the per-connection state (a :class:`Pair` subclass with protocol fields)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.connections = 0
        """Connections accepted and paired with the server so far (a reconnect shows here)."""
        self._server: asyncio.Server | None = None
        self._pairs: set[P] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> Self:
        """Listen on a free port (then in :attr:`port`); returns the proxy, for chaining."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        """Stop listening, cut every connection and wait for the forwarding tasks to end."""
        if self._server is not None:
            self._server.close()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def cut(self) -> int:
        """Abort every live connection at once, as a network fault would; returns how many
        connections there were."""
        pairs, self._pairs = list(self._pairs), set()
        for pair in pairs:
            pair.abort()
        return len(pairs)

    def _pair(self, client: asyncio.StreamWriter, server: asyncio.StreamWriter) -> P:
        """The state of one new connection; a subclass with its own :class:`Pair` says so."""
        raise NotImplementedError

    async def _upstream(self, reader: asyncio.StreamReader, pair: P) -> None:
        """Forward what the client sends (``reader``) to ``pair.server`` until it ends."""
        raise NotImplementedError

    async def _downstream(self, reader: asyncio.StreamReader, pair: P) -> None:
        """Forward what the server sends (``reader``) to ``pair.client`` until it ends."""
        raise NotImplementedError

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.transport.abort()  # the server is down: the client sees a dead link
            return
        self.connections += 1
        pair = self._pair(writer, up_writer)
        self._pairs.add(pair)
        for coro in (self._upstream(reader, pair), self._downstream(up_reader, pair)):
            task = asyncio.create_task(self._forward(coro, pair))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _forward(self, coro: Coroutine[Any, Any, None], pair: P) -> None:
        """Run one direction; when it ends (EOF, a reset, or a fault ending it on purpose)
        abort the pair, so the other direction ends too."""
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            await coro
        pair.abort()
        self._pairs.discard(pair)
