"""A DDP client (Meteor's protocol, Rocket.Chat's realtime API) over aiohttp's WebSocket.

No maintained async Python DDP client exists (``python-ddp`` and ``DDPClient`` are
unmaintained and thread-based), and the part Rocket.Chat needs is small: ``connect``,
``method`` calls answered by ``result``, ``sub`` answered by ``ready`` or ``nosub``,
``changed`` events, and heartbeats both ways (the server pings: answer ``pong``; a silent
server is pinged, and one that stays silent counts as a dead connection).

Before ``serve`` starts reading, :meth:`DdpConnection.request` waits for its own answer
and keeps any event that came first for :meth:`next_frame`; afterwards method calls are
sent without waiting (typing), and their answers reach ``next_frame``'s caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp

from pyclaw_app.errors import FatalConnectorError, RetryableError

__all__ = ["DdpConnection", "DdpError", "websocket_url"]

CLOSE_TIMEOUT = 2.0
"""Seconds a close waits for the server's close frame (a dead server must not hold a stop)."""
ANSWER_TIMEOUT = 30.0
"""Seconds the handshake and a ``request`` may take before the connection counts as dead."""
_CLOSED = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED,
           aiohttp.WSMsgType.ERROR)


class DdpError(Exception):
    """A method's or subscription's error answer: ``error`` is its code, ``reason`` words."""

    def __init__(self, error: object, reason: str) -> None:
        super().__init__(f"{reason} [{error}]" if reason else str(error))
        self.error = error
        self.reason = reason


def websocket_url(server_url: str) -> str:
    """``https://chat.example.com`` -> ``wss://chat.example.com/websocket``."""
    if server_url.startswith("https://"):
        return "wss://" + server_url.removeprefix("https://") + "/websocket"
    return "ws://" + server_url.removeprefix("http://") + "/websocket"


class DdpConnection:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse, *, ping_interval: float,
                 on_traffic: Callable[[], None]) -> None:
        self._ws = ws
        self._ping_interval = ping_interval
        self._on_traffic = on_traffic
        self._ids = itertools.count(1)
        self._early: deque[dict[str, Any]] = deque()
        self.session = ""

    @classmethod
    async def open(cls, http: aiohttp.ClientSession, url: str, *, ping_interval: float,
                   on_traffic: Callable[[], None]) -> DdpConnection:
        """Open the socket and shake hands (``connect`` -> ``connected``); ``on_traffic``
        is called for every frame that arrives (liveness is traffic, pongs included)."""
        try:
            ws = await http.ws_connect(url, autoping=True, heartbeat=None,
                                       max_msg_size=16 * 1024 * 1024,
                                       timeout=aiohttp.ClientWSTimeout(ws_receive=None,
                                                                       ws_close=CLOSE_TIMEOUT))
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status in (401, 403, 404):
                raise FatalConnectorError(f"Rocket.Chat refused the realtime connection at "
                                          f"{url} (HTTP {exc.status}); check server_url") from None
            raise RetryableError(f"Rocket.Chat realtime API at {url}: HTTP {exc.status}") \
                from None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise RetryableError(f"cannot reach Rocket.Chat's realtime API at {url}: "
                                 f"{type(exc).__name__}: {exc}") from None
        conn = cls(ws, ping_interval=ping_interval, on_traffic=on_traffic)
        try:
            async with _answer_within("the DDP handshake"):
                await conn.send({"msg": "connect", "version": "1", "support": ["1"]})
                while True:
                    frame = await conn._read()
                    if frame.get("msg") == "connected":
                        conn.session = str(frame.get("session", ""))
                        return conn
                    if frame.get("msg") == "failed":
                        raise FatalConnectorError("Rocket.Chat does not speak DDP version 1 "
                                                  f"(it offered {frame.get('version')!r})")
        except BaseException:
            await conn.close()
            raise

    @property
    def closed(self) -> bool:
        return self._ws.closed

    def next_id(self) -> str:
        return str(next(self._ids))

    async def send(self, frame: dict[str, Any]) -> None:
        try:
            await self._ws.send_str(json.dumps(frame, separators=(",", ":")))
        except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
            raise RetryableError(f"the Rocket.Chat realtime connection broke: {exc}") from None

    async def request(self, frame: dict[str, Any]) -> dict[str, Any]:
        """Send a ``method`` or ``sub`` and wait for its ``result``/``ready``/``nosub``; raises
        :class:`DdpError` with the server's error. Other frames wait for ``next_frame``."""
        wanted = frame["id"]
        async with _answer_within(f"the {frame.get('method') or frame.get('name')} call"):
            return await self._answer(frame, wanted)

    async def _answer(self, frame: dict[str, Any], wanted: object) -> dict[str, Any]:
        await self.send(frame)
        while True:
            answer = await self._read()
            kind = answer.get("msg")
            if kind == "result" and answer.get("id") == wanted:
                _raise_error(answer)
                return answer
            if kind == "ready" and wanted in (answer.get("subs") or []):
                return answer
            if kind == "nosub" and answer.get("id") == wanted:
                _raise_error(answer)
                raise DdpError("nosub", "the server ended the subscription")
            if kind in ("changed", "added", "removed", "result"):
                self._early.append(answer)

    async def next_frame(self) -> dict[str, Any]:
        """The next frame for the caller (events, method results); heartbeats are handled
        here. RetryableError when the connection ends or falls silent."""
        if self._early:
            return self._early.popleft()
        return await self._read()

    async def _read(self) -> dict[str, Any]:
        pinged = False
        while True:
            try:  # not wait_for: on Python 3.11 it can swallow a cancellation
                async with asyncio.timeout(self._ping_interval):
                    message = await self._ws.receive()
            except TimeoutError:
                if pinged:
                    raise RetryableError("the Rocket.Chat server did not answer a ping for "
                                         f"{self._ping_interval:g}s") from None
                await self.send({"msg": "ping", "id": f"ping-{self.next_id()}"})
                pinged = True
                continue
            if message.type in _CLOSED:
                code = self._ws.close_code
                raise RetryableError("the Rocket.Chat realtime connection closed"
                                     + (f" (code {code})" if code else ""))
            if message.type is not aiohttp.WSMsgType.TEXT:
                continue
            pinged = False
            self._on_traffic()
            try:
                frame = json.loads(message.data)
            except ValueError:
                continue
            if not isinstance(frame, dict):
                continue
            kind = frame.get("msg")
            if kind == "ping":
                await self.send({"msg": "pong", **({"id": frame["id"]} if "id" in frame
                                                   else {})})
                continue
            if kind in ("pong", "updated", None):
                continue
            return frame

    async def close(self) -> None:
        if not self._ws.closed:
            await self._ws.close()


@contextlib.asynccontextmanager
async def _answer_within(what: str) -> AsyncIterator[None]:
    try:
        async with asyncio.timeout(ANSWER_TIMEOUT):
            yield
    except TimeoutError:
        raise RetryableError(f"Rocket.Chat did not answer {what} within "
                             f"{ANSWER_TIMEOUT:g}s") from None


def _raise_error(answer: dict[str, Any]) -> None:
    error = answer.get("error")
    if error is None:
        return
    if isinstance(error, dict):
        raise DdpError(error.get("error"), str(error.get("reason") or error.get("message")
                                               or ""))
    raise DdpError(error, "")
