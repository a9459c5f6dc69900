"""One WebSocket connection to ``/api/v4/websocket``: login by authentication challenge, then
events until the connection ends.

The login is the documented challenge ``{"seq": 1, "action": "authentication_challenge",
"data": {"token": ...}}``; the server answers ``{"status": "OK", "seq_reply": 1}`` and a
``hello`` event (in either order), or closes the socket when it does not accept the token.
Liveness is ours to judge: after ``ping_interval`` seconds without a frame the client sends
a WebSocket ping (the server answers it, as every RFC 6455 peer does), and a connection
that stays silent ``ping_timeout`` seconds more is taken for dead. Pings the server sends
are answered here too (``autoping`` is off so that pongs are seen as traffic).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp

from connectors.mattermost._parse import Frame, parse_frame
from pyclaw_app.errors import FatalConnectorError, RetryableError

__all__ = ["Socket"]

LOGIN_TIMEOUT = 15.0
_MAX_FRAME = 8 * 1024 * 1024
_ENDED = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED,
          aiohttp.WSMsgType.ERROR)


class Socket:
    """A logged-in event stream; ``frames`` yields each frame (None for one that is not
    Mattermost's JSON) and ends when the server closes the connection."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, *, ping_interval: float,
                 ping_timeout: float) -> None:
        self._ws = ws
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._early: list[Frame | None] = []
        self.connection_id = ""
        self.server_version = ""

    @classmethod
    async def open(cls, session: aiohttp.ClientSession, url: str, token: str, *,
                   ping_interval: float, ping_timeout: float) -> Socket:
        try:
            ws = await session.ws_connect(url, autoping=False, max_msg_size=_MAX_FRAME,
                                          timeout=aiohttp.ClientWSTimeout(ws_close=5.0))
        except aiohttp.WSServerHandshakeError as exc:
            raise RetryableError(f"the Mattermost server refused the WebSocket (HTTP "
                                 f"{exc.status}); a proxy in front of it must pass "
                                 "WebSocket upgrades to /api/v4/websocket") from None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise RetryableError(f"cannot open the Mattermost WebSocket: "
                                 f"{type(exc).__name__}: {exc}") from None
        socket = cls(ws, ping_interval=ping_interval, ping_timeout=ping_timeout)
        try:
            await socket._send({"seq": 1, "action": "authentication_challenge",
                                "data": {"token": token}})
            await asyncio.wait_for(socket._login(), LOGIN_TIMEOUT)
        except TimeoutError:
            await socket.close()
            raise RetryableError(f"the Mattermost WebSocket sent no hello within "
                                 f"{LOGIN_TIMEOUT:g}s of the login") from None
        except BaseException:
            await socket.close()
            raise
        return socket

    async def _send(self, body: dict[str, Any]) -> None:
        try:
            await self._ws.send_str(json.dumps(body))
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise RetryableError(f"the Mattermost WebSocket closed: {exc}") from None

    async def _login(self) -> None:
        """Until ``hello``: a FAIL answer to the challenge is the server's refusal; events
        that come before ``hello`` are kept for ``frames``."""
        while True:
            message = await self._ws.receive()
            if message.type in _ENDED:
                raise RetryableError("the Mattermost server closed the WebSocket at login "
                                     "(it does so when it does not accept the token)")
            if message.type is aiohttp.WSMsgType.PING:
                await self._ws.pong(message.data)
                continue
            if message.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                continue
            frame = parse_frame(message.data)
            if frame is not None and frame.seq_reply == 1:
                if frame.status != "OK":
                    raise FatalConnectorError(f"the Mattermost server refused the WebSocket "
                                              f"login: {frame.error or frame.status}")
            elif frame is not None and frame.event == "hello":
                data = frame.data or {}
                self.connection_id = str(data.get("connection_id") or "")
                self.server_version = str(data.get("server_version") or "")
                return
            else:
                self._early.append(frame)

    async def frames(self, on_traffic: Callable[[], None]) -> AsyncIterator[Frame | None]:
        early, self._early = self._early, []
        for frame in early:
            yield frame
        pinged = False
        while True:
            try:
                message = await asyncio.wait_for(
                    self._ws.receive(), self._ping_timeout if pinged else self._ping_interval)
            except TimeoutError:
                if pinged:
                    raise RetryableError(f"no answer to a WebSocket ping in "
                                         f"{self._ping_timeout:g}s") from None
                try:
                    await self._ws.ping()
                except (aiohttp.ClientError, ConnectionError) as exc:
                    raise RetryableError(f"the Mattermost WebSocket closed: {exc}") from None
                pinged = True
                continue
            if message.type in _ENDED:
                return
            pinged = False
            on_traffic()
            if message.type is aiohttp.WSMsgType.PING:
                await self._ws.pong(message.data)
            elif message.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                yield parse_frame(message.data)

    @property
    def close_code(self) -> int | None:
        return self._ws.close_code

    async def close(self) -> None:
        if not self._ws.closed:
            try:
                await self._ws.close()
            except (aiohttp.ClientError, ConnectionError, TimeoutError):
                pass
