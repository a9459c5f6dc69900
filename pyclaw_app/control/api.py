"""The control API: a LocalControlPlane served over HTTP for the remote monitor (Android).

Two routes on the shared server, both behind ``Authorization: Bearer <token>``:
``POST /api/v1/call/<method>`` runs one ControlPlane method (JSON keyword arguments
in, JSON result out) and ``GET /api/v1/events`` streams the bus as Server-Sent
Events. SSE rather than a WebSocket keeps the monitor's imports to httpx alone,
which is what the Android build can carry (design.md §5).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import logging
from typing import Any

from aiohttp import web

from pyclaw_app.control.local import LocalControlPlane
from pyclaw_app.errors import PyclawError

__all__ = ["CALLS", "ControlApi", "to_json"]

_log = logging.getLogger(__name__)

# Methods the monitor may call. Channel and settings *changes* are included: the token is
# the owner's, and the monitor is a full control panel.
CALLS = frozenset({
    "recent_traffic", "counters_today", "channels", "logs", "export_logs", "message_detail",
    "retry_message", "chat_send", "chat_history", "chat_reset", "config_errors",
    "channel_types", "channel_form", "validate_channel", "save_channel", "delete_channel",
    "probe_channel", "set_channel_enabled", "start_channel", "stop_channel", "restart_channel",
    "settings_form", "validate_settings", "save_settings", "list_models", "usage",
    "pairing_requests", "approve_pairing",
})
KEEPALIVE = 15.0


def to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    return value


class ControlApi:
    def __init__(self, plane: LocalControlPlane, token: str) -> None:
        self.plane = plane
        self._token = token
        self._streams: set[Any] = set()

    def install(self, app: web.Application) -> None:
        app.router.add_post("/api/v1/call/{method}", self._call)
        app.router.add_get("/api/v1/events", self._events)
        app.on_shutdown.append(self._end_streams)

    async def _end_streams(self, app: web.Application) -> None:
        for subscription in list(self._streams):
            subscription.close()

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        return hmac.compare_digest(header.encode(), f"Bearer {self._token}".encode())

    async def _call(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error": "missing or wrong API token"}, status=401)
        method = request.match_info["method"]
        if method not in CALLS:
            return web.json_response({"error": f"unknown method {method!r}"}, status=404)
        try:
            kwargs = await request.json() if request.can_read_body else {}
        except json.JSONDecodeError:
            return web.json_response({"error": "body is not JSON"}, status=400)
        if not isinstance(kwargs, dict):
            return web.json_response({"error": "body must be a JSON object"}, status=400)
        try:
            result = getattr(self.plane, method)(**kwargs)
            if asyncio.iscoroutine(result):
                result = await result
        except TypeError as exc:
            return web.json_response({"error": f"bad arguments: {exc}"}, status=400)
        except (PyclawError, KeyError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=422)
        return web.json_response({"result": to_json(result)})

    async def _events(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return web.json_response({"error": "missing or wrong API token"}, status=401)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache"})
        await response.prepare(request)
        subscription = self.plane.subscribe(maxsize=5000)
        self._streams.add(subscription)
        try:
            while not subscription.closed:
                batch = await subscription.get_batch(500, timeout=KEEPALIVE)
                if not batch:
                    await response.write(b": keep-alive\n\n")
                    continue
                payload = b"".join(
                    b"data: " + json.dumps({"kind": e.kind.value, "channel": e.channel,
                                            "data": e.data, "ts": e.ts},
                                           default=str).encode() + b"\n\n" for e in batch)
                await response.write(payload)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._streams.discard(subscription)
            subscription.close()
        return response
