"""python-telegram-bot's networking backend on aiohttp instead of httpx.

PTB documents ``telegram.request.BaseRequest`` as the place to plug in another
HTTP library; ``Bot`` and everything above it stay PTB's. Two reasons to do it:

- CPU: under load, PTB's ``HTTPXRequest`` spent ~1.5 ms per ``sendMessage`` in
  httpx/httpcore/anyio (bench/RESULTS.md, section 4); aiohttp needs a fraction.
- Cancellation: a request cancelled while it waits for a pooled connection
  leaks the slot in httpcore 1.0 (encode/httpcore#1093), which once wedged the
  whole channel. aiohttp releases the connection when its task is cancelled.

Failures say whether the request can have reached Telegram: ``NotSent`` (no
connection was made: safe to send again) or ``AnswerLost`` (a ``TimedOut``: it
went out, the answer did not come back), so a reply is never sent twice.

Timeouts map as PTB defines them: ``connect`` to aiohttp's ``sock_connect``,
``read`` to ``sock_read`` and ``pool`` plus ``connect`` to ``connect`` (the time
to get a connection, waiting for a free one included). aiohttp has no separate
write timeout; a write that stalls is caught by the read timeout that follows.
"""

from __future__ import annotations

from urllib.parse import urlencode

import aiohttp
from telegram._utils.defaultvalue import DefaultValue
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

__all__ = ["AiohttpRequest", "AnswerLost", "NotSent"]

_Timeout = float | None


class AiohttpRequest(BaseRequest):
    """One aiohttp session with a bounded connection pool, created in ``initialize``."""

    def __init__(self, *, connection_pool_size: int = 8, read_timeout: _Timeout = 5.0,
                 connect_timeout: _Timeout = 5.0, pool_timeout: _Timeout = 1.0) -> None:
        self._pool_size = connection_pool_size
        self._read_timeout = read_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_size),
                headers={"User-Agent": self.USER_AGENT})

    async def shutdown(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: _Timeout | DefaultValue[None] = BaseRequest.DEFAULT_NONE,
        write_timeout: _Timeout | DefaultValue[None] = BaseRequest.DEFAULT_NONE,
        connect_timeout: _Timeout | DefaultValue[None] = BaseRequest.DEFAULT_NONE,
        pool_timeout: _Timeout | DefaultValue[None] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        session = self._session
        if session is None or session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        read = self._read_timeout if isinstance(read_timeout, DefaultValue) else read_timeout
        connect = (self._connect_timeout if isinstance(connect_timeout, DefaultValue)
                   else connect_timeout)
        pool = self._pool_timeout if isinstance(pool_timeout, DefaultValue) else pool_timeout
        timeout = aiohttp.ClientTimeout(
            total=None, sock_read=read, sock_connect=connect,
            connect=None if connect is None or pool is None else connect + pool)
        try:
            body = _body(request_data)
            headers = _FORM if isinstance(body, bytes) else None
            async with session.request(method, url, data=body, headers=headers,
                                       timeout=timeout) as response:
                return response.status, await response.read()
        except aiohttp.ConnectionTimeoutError as exc:
            # aiohttp's connect time-out counts the wait for a pooled connection too: under a
            # burst the gateway's own pool, not the network, is the usual reason.
            raise NotSent(f"no connection within {timeout.connect or 0:.0f} s: all "
                          f"{self._pool_size} of the bot's connections were busy, or the Bot "
                          f"API did not accept a new one (aiohttp.{type(exc).__name__})"
                          ) from exc
        except aiohttp.ClientConnectorError as exc:
            raise NotSent(f"aiohttp.{type(exc).__name__}: {exc}") from exc
        except (TimeoutError, aiohttp.ClientError) as exc:  # aiohttp's timeouts subclass both
            raise AnswerLost(f"aiohttp.{type(exc).__name__}: {exc}") from exc


class NotSent(NetworkError):
    """No connection could be had (refused, connect time-out, no free pooled connection):
    the request never left, so sending it again cannot make a duplicate."""


class AnswerLost(TimedOut):
    """The request was (or may have been) written but no whole answer came back (read
    time-out, connection cut): Telegram may have acted on it."""


_FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _body(request_data: RequestData | None) -> aiohttp.FormData | bytes | None:
    """Form fields as PTB's httpx backend sends them: urlencoded, multipart with files.
    Without files the body is encoded here, to the same bytes: handed a dict, aiohttp
    builds a FormData and a multipart writer (with a random boundary) per request before
    it finds it urlencoded, 26 us against 10 (bench/RESULTS.md, section 10)."""
    if request_data is None:
        return None
    fields = request_data.json_parameters
    if not request_data.contains_files:
        return urlencode(fields).encode()
    form = aiohttp.FormData(fields, quote_fields=False)  # file names verbatim, as httpx does
    for name, (filename, content, mimetype) in request_data.multipart_data.items():
        form.add_field(name, content, filename=filename, content_type=mimetype)
    return form
