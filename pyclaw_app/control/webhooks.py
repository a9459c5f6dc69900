"""The one HTTP server that webhook-style channels (and the control API) share.

``GET`` and ``POST /webhook/<channel>`` (and paths below it) hand the request (method, query,
headers, raw body) to that channel's connector, which verifies the platform's
signature before it parses anything (``ConnectorBase.receive``). The server only
routes and bounds the request: a body over ``MAX_BODY`` gets 413, one that
trickles in slower than ``BODY_TIMEOUT`` gets 408, a request head that is not in
within ``HEADER_TIMEOUT`` (or an idle kept-alive connection) is closed, and one
address holds at most ``MAX_CONNECTIONS_PER_SOURCE`` connections. It never reads a
payload, so it can never leak one into a log. With an ``ssl_context`` it speaks https.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncGenerator, Callable

from aiohttp import web

from pyclaw_app.channels.webhook import WebhookRequest
from pyclaw_app.control.connections import ConnectionLimit, LimitedSite
from pyclaw_app.control.metrics import GatewayMetrics
from pyclaw_app.control.probes import Probes
from pyclaw_app.gateway import Gateway

__all__ = ["BODY_TIMEOUT", "HEADER_TIMEOUT", "MAX_BODY", "MAX_CONNECTIONS_PER_SOURCE",
           "WebhookServer"]

_log = logging.getLogger(__name__)

MAX_BODY = 2 * 1024 * 1024
BODY_TIMEOUT = 10.0
"""Seconds a sender may take to deliver the body (a slow-loris holds no worker longer)."""
HEADER_TIMEOUT = 10.0
MAX_CONNECTIONS_PER_SOURCE = 100
"""Telegram alone may open up to 100 webhook connections; a reverse proxy is one source."""


class WebhookServer:
    def __init__(self, gateway: Gateway, host: str = "127.0.0.1", port: int = 8787, *,
                 body_timeout: float = BODY_TIMEOUT, header_timeout: float = HEADER_TIMEOUT,
                 max_connections_per_source: int = MAX_CONNECTIONS_PER_SOURCE,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.gateway = gateway
        self.host = host
        self.port = port
        self.body_timeout = body_timeout
        self.header_timeout = header_timeout
        self.connections = ConnectionLimit(max_connections_per_source)
        self.ssl_context = ssl_context
        self._runner: web.AppRunner | None = None
        self.metrics: GatewayMetrics | None = None
        """``/metrics`` while the server runs, unless ``server.metrics: off``."""

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    async def start(self, *installers: Callable[[web.Application], None]) -> None:
        """Listen; ``installers`` add more routes (the control API) to the same server."""
        app = web.Application(client_max_size=MAX_BODY)
        for route in ("/webhook/{channel}", "/webhook/{channel}/{rest:.*}"):
            app.router.add_route("GET", route, self._handle)
            app.router.add_route("POST", route, self._handle)
        for install in installers:
            install(app)
        Probes(self.gateway).install(app)  # /healthz, /readyz
        if self.gateway.config.server.metrics != "off":
            self.metrics = GatewayMetrics(self.gateway)
            self.metrics.start()
            self.metrics.install(app)
        # aiohttp's keep-alive timer runs from a connection's first byte and between
        # requests: it is the header timeout (a request in progress is never cut).
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None,
                                     keepalive_timeout=self.header_timeout)
        await self._runner.setup()
        site = LimitedSite(self._runner, self.host, self.port, self.connections,
                           ssl_context=self.ssl_context, handshake_timeout=self.header_timeout)
        await site.start()
        self.port = site.bound_port
        _log.info("webhook server listening on %s", self.url)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.metrics is not None:
            await self.metrics.stop()
            self.metrics = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["channel"]
        try:
            body = await asyncio.wait_for(request.read(), self.body_timeout)
        except web.HTTPRequestEntityTooLarge:
            self.gateway.channel_log(name, "warning", "rejected an oversized webhook request")
            return web.Response(status=413, text="payload too large")
        except TimeoutError:
            self.gateway.channel_log(name, "warning", "rejected a webhook request whose body "
                                     f"took longer than {self.body_timeout:g}s to arrive")
            return web.Response(status=408, text="request body too slow")
        answer = await self.gateway.webhook(name, WebhookRequest(
            method=request.method, body=body, headers=dict(request.headers),
            query=dict(request.query), path=request.path, remote=request.remote or ""))
        body_out = answer.body.encode() if isinstance(answer.body, str) else answer.body
        if answer.stream is None:
            return web.Response(status=answer.status, body=body_out,
                                content_type=answer.content_type)
        return await _stream(request, answer.status, answer.content_type, body_out,
                             answer.stream)


async def _stream(request: web.Request, status: int, content_type: str, head: bytes,
                  chunks: AsyncGenerator[bytes, None]) -> web.StreamResponse:
    """A response written as it is produced; a client that goes away ends the stream (the
    producer is closed, so it stops waiting for text nobody will read)."""
    response = web.StreamResponse(status=status, headers={"Cache-Control": "no-cache"})
    response.content_type = content_type
    await response.prepare(request)
    try:
        if head:
            await response.write(head)
        async for chunk in chunks:
            await response.write(chunk)
        await response.write_eof()
    except ConnectionResetError:
        _log.info("webhook client went away mid-stream on %s", request.path)
    finally:
        await chunks.aclose()
    return response
