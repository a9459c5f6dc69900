"""One OneBot v11 forward WebSocket: events in, API calls out, on the same socket.

The client connects to the bridge's universal endpoint with ``Authorization: Bearer
<token>`` (``communication/authorization.md``). Every frame the bridge sends is JSON: an
event (it has ``post_type``) or the answer to a call (``{status, retcode, data, echo}``,
matched to its call by the ``echo`` we gave it, ``communication/ws.md``). A reader task
sorts them: answers complete their call, events go to :attr:`OneBotSocket.events` in
arrival order, and ``None`` there means the connection ended.

A wrong token is refused in one of two ways: go-cqhttp answers the handshake 401 (no
token) or 403 (a wrong one); NapCat accepts the socket, sends ``{"status": "failed",
"retcode": 1403}`` without an echo and closes it. Both end as :class:`ApiFailed` 1401/1403
(the handshake's status as its retcode).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp

__all__ = ["AnswerLost", "ApiFailed", "NotSent", "OneBotSocket"]

_CLOSE_TIMEOUT = 2.0


class NotSent(Exception):
    """The call never left: the connection was not open, or refused before the handshake."""


class AnswerLost(Exception):
    """The call went out and no answer came (the connection ended, or the time ran out)."""


class ApiFailed(Exception):
    """The bridge answered ``status: failed`` (or refused the handshake)."""

    def __init__(self, action: str, retcode: int, message: str) -> None:
        super().__init__(f"{action} failed: retcode {retcode}{f' {message}' if message else ''}")
        self.action = action
        self.retcode = retcode
        self.message = message


def _failure_text(frame: dict[str, Any]) -> str:
    """The bridge's words for a failure: NapCat says ``message``/``wording``, go-cqhttp
    ``msg`` (a code such as GROUP_NOT_FOUND) and ``wording``."""
    words = [str(frame[k]) for k in ("msg", "message", "wording")
             if isinstance(frame.get(k), str) and frame[k]]
    return " / ".join(dict.fromkeys(words))[:300]


class OneBotSocket:
    """An open connection; make it with :meth:`open`, end it with :meth:`close`."""

    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse,
                 on_frame: Callable[[], None], name: str) -> None:
        self._session = session
        self._ws = ws
        self._on_frame = on_frame
        self._echoes = itertools.count(1)
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._refused: ApiFailed | None = None
        self.events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.odd_frames: list[str] = []
        """Frames that were neither an event nor an answer (kept short for the log)."""
        self.last_frame = time.monotonic()
        self.ended = ""
        """Why the connection ended; empty while it is open."""
        self._reader = asyncio.create_task(self._read(), name=f"{name}:reader")

    @classmethod
    async def open(cls, url: str, token: str | None, *, timeout: float,
                   on_frame: Callable[[], None], name: str) -> OneBotSocket:
        """Connect within ``timeout`` seconds; raises ApiFailed(1401/1403) when the token is
        refused at the handshake, NotSent for any other failure to connect (aiohttp's
        exception as the cause)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        # the timeout bounds the handshake; the open socket itself has none (the watchdog
        # judges it by its heartbeats)
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout))
        try:
            ws = await session.ws_connect(url, headers=headers, autoping=True,
                                          timeout=aiohttp.ClientWSTimeout(ws_close=_CLOSE_TIMEOUT),
                                          max_msg_size=64 * 1024 * 1024)
        except aiohttp.WSServerHandshakeError as exc:
            await session.close()
            if exc.status in (401, 403):
                raise ApiFailed("connect", 1000 + exc.status, "") from exc
            raise NotSent(f"the WebSocket handshake was answered {exc.status} "
                          f"{exc.message}") from exc
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            await session.close()
            raise NotSent(f"cannot connect: {exc}") from exc
        except BaseException:
            await session.close()
            raise
        return cls(session, ws, on_frame, name)

    # ---- reading -------------------------------------------------------------------------

    async def _read(self) -> None:
        reason = "the bridge closed the connection"
        try:
            async for msg in self._ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    self._frame(msg.data)
                elif msg.type is aiohttp.WSMsgType.BINARY:
                    self._frame(msg.data.decode("utf-8", "replace"))
                elif msg.type is aiohttp.WSMsgType.ERROR:
                    reason = f"WebSocket error: {self._ws.exception()!r}"
                    break
            if self._ws.close_code is not None:
                reason += f" (close code {self._ws.close_code})"
        except (aiohttp.ClientError, OSError) as exc:
            reason = f"connection lost: {exc!r}"
        except asyncio.CancelledError:
            reason = "closed by the channel"
            raise
        finally:
            self._end(reason)

    def _frame(self, raw: str) -> None:
        self.last_frame = time.monotonic()
        self._on_frame()
        try:
            frame = json.loads(raw)
        except ValueError:
            self.odd_frames.append(f"not JSON: {raw[:80]!r}")
            return
        if not isinstance(frame, dict):
            self.odd_frames.append(f"not an object: {raw[:80]!r}")
        elif "post_type" in frame:
            self.events.put_nowait(frame)
        elif isinstance(frame.get("echo"), str) and frame["echo"] in self._pending:
            future = self._pending.pop(frame["echo"])
            if not future.done():
                future.set_result(frame)
        elif frame.get("retcode") in (1401, 1403):  # NapCat's refusal of the token
            self._refused = ApiFailed("connect", int(frame["retcode"]), _failure_text(frame))
        else:
            self.odd_frames.append(f"an answer to no call of ours: {raw[:80]!r}")

    def _end(self, reason: str) -> None:
        if self.ended:
            return
        self.ended = reason
        for future in self._pending.values():
            if not future.done():
                future.set_exception(self._refused or AnswerLost(reason))
        self._pending.clear()
        self.events.put_nowait(None)

    # ---- calling -------------------------------------------------------------------------

    async def call(self, action: str, params: dict[str, Any], timeout: float) -> Any:
        """One API call; returns its ``data``. Raises NotSent, AnswerLost or ApiFailed."""
        if self.ended:
            raise self._refused or NotSent(self.ended)
        echo = f"pyclaw:{next(self._echoes)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[echo] = future
        # ASCII JSON: a lone surrogate in a reply travels as its \u escape, not as bytes
        # UTF-8 cannot encode
        frame = json.dumps({"action": action, "params": params, "echo": echo},
                           separators=(",", ":"))
        try:
            try:
                await self._ws.send_str(frame)
            except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
                raise NotSent(f"the connection is closing: {exc!r}") from exc
            try:
                answer = await asyncio.wait_for(asyncio.shield(future), timeout)
            except TimeoutError:
                raise AnswerLost(f"no answer to {action} in {timeout:g}s") from None
        finally:
            self._pending.pop(echo, None)
        if answer.get("status") == "failed" or answer.get("retcode") not in (0, 1, None):
            code = answer.get("retcode")
            raise ApiFailed(action, code if isinstance(code, int) else -1,
                            _failure_text(answer))
        return answer.get("data")

    # ---- ending --------------------------------------------------------------------------

    def kill(self, reason: str) -> None:
        """End the connection now (a dead link found by the watchdog)."""
        self._end(reason)
        self._reader.cancel()

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        self._end(self.ended or "closed by the channel")
        with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError):
            await self._ws.close()
        await self._session.close()
