"""One Stream-mode connection: the WebSocket to ``endpoint?ticket=...`` and its acks.

The official SDK's ``DingTalkStreamClient.start`` owns its loop (it reconnects forever on
fixed sleeps, catches cancellation, fetches tickets with blocking ``requests``, and acks a
callback whatever became of it), so the channel drives the protocol's pieces itself: the
kit's ``run_connected`` supervises the reconnects, this module keeps one socket, and the
acks are the SDK's own ``AckMessage`` frames, sent only when the connector says so (after
the journal took the message).

Liveness: aiohttp pings every :data:`PING_INTERVAL` seconds and closes a socket whose pong
does not come, so a quiet socket that is still open is a live one; the server's SYSTEM
``ping`` frames are traffic too.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote_plus

import aiohttp
from dingtalk_stream.frames import AckMessage, Headers

from connectors.dingtalk._parse import Frame, parse_frame
from pyclaw_app.errors import RetryableError

__all__ = ["IDLE", "PING_INTERVAL", "StreamSocket"]

PING_INTERVAL = 20.0
CLOSE_TIMEOUT = 2.0
"""Seconds a close handshake may take; a server that does not answer is cut."""
CONNECT_TIMEOUT = 20.0
IDLE = object()
"""What :meth:`StreamSocket.next` returns after a quiet :data:`PING_INTERVAL`."""
NOT_JSON = object()
"""What :meth:`StreamSocket.next` returns for a text frame that is not a JSON object."""


class StreamSocket:
    """A connected Stream WebSocket; :meth:`next` reads, :meth:`ack` answers."""

    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse
                 ) -> None:
        self._session = session
        self._ws = ws

    @classmethod
    async def connect(cls, endpoint: str, ticket: str) -> StreamSocket:
        """Open the socket the ticket is for (a ticket opens one connection, within 90 s)."""
        session = aiohttp.ClientSession(trust_env=False, timeout=aiohttp.ClientTimeout(
            total=None, connect=CONNECT_TIMEOUT))
        separator = "&" if "?" in endpoint else "?"
        try:
            ws = await session.ws_connect(
                f"{endpoint}{separator}ticket={quote_plus(ticket)}", heartbeat=PING_INTERVAL,
                autoping=True, timeout=aiohttp.ClientWSTimeout(ws_close=CLOSE_TIMEOUT),
                max_msg_size=8 * 1024 * 1024)
        except aiohttp.WSServerHandshakeError as exc:
            await session.close()
            raise RetryableError(f"DingTalk refused the Stream connection (HTTP {exc.status}: "
                                 f"{exc.message})") from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            await session.close()
            raise RetryableError(f"cannot open the DingTalk Stream connection "
                                 f"({type(exc).__name__}: {exc})") from None
        return cls(session, ws)

    async def next(self) -> Frame | object:
        """The next frame, :data:`NOT_JSON`, or :data:`IDLE`; RetryableError once the
        connection has ended."""
        try:
            message = await self._ws.receive(timeout=PING_INTERVAL)
        except TimeoutError:
            return IDLE
        if message.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
            frame = parse_frame(message.data)
            return NOT_JSON if frame is None else frame
        if message.type == aiohttp.WSMsgType.ERROR:
            raise RetryableError(f"DingTalk Stream connection failed: {self._ws.exception()!r}")
        code = self._ws.close_code
        raise RetryableError(f"DingTalk closed the Stream connection"
                             f"{f' (code {code})' if code is not None else ''}")

    async def ack(self, message_id: str, data: Any, *, code: int = AckMessage.STATUS_OK,
                  message: str = "OK") -> bool:
        """Answer one frame as the protocol (and the SDK) does; False when the socket is gone
        (the frame is then delivered again, and the journal knows it)."""
        ack = AckMessage()
        ack.code = code
        ack.headers.message_id = message_id
        ack.headers.content_type = Headers.CONTENT_TYPE_APPLICATION_JSON
        ack.message = message
        ack.data = data
        try:
            await self._ws.send_str(json.dumps(ack.to_dict()))
        except (ConnectionError, RuntimeError, aiohttp.ClientError):
            return False
        return True

    async def close(self) -> None:
        try:
            await self._ws.close()
        finally:
            await self._session.close()
