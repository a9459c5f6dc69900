"""The one HTTP server that webhook-style channels (and the control API) share.

``POST /webhook/<channel>`` hands the raw headers and body to that channel's
connector, which verifies the platform's signature or secret before it parses
anything. The server itself only routes: it never reads a payload, so it can
never leak one into a log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web

from pyclaw_app.gateway import Gateway

__all__ = ["WebhookServer"]

_log = logging.getLogger(__name__)

MAX_BODY = 2 * 1024 * 1024


class WebhookServer:
    def __init__(self, gateway: Gateway, host: str = "127.0.0.1", port: int = 8787) -> None:
        self.gateway = gateway
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self, *installers: Callable[[web.Application], None]) -> None:
        """Listen; ``installers`` add more routes (the control API) to the same server."""
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post("/webhook/{channel}", self._handle)
        for install in installers:
            install(app)
        app.router.add_get("/healthz", self._health)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        _log.info("webhook server listening on %s", self.url)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        name = request.match_info["channel"]
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            self.gateway.channel_log(name, "warning", "rejected an oversized webhook request")
            return web.Response(status=413, text="payload too large")
        status, text = await self.gateway.webhook(name, request.headers, body)
        return web.Response(status=status, text=text)

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})
