"""The control API: a LocalControlPlane served over HTTP for the remote monitor (Android).

Three routes on the shared server, all behind ``Authorization: Bearer <token>``:
``POST /api/v1/call/<method>`` runs one ControlPlane method (JSON keyword arguments
in, JSON result out), ``GET /api/v1/events`` streams the bus as Server-Sent
Events and ``GET /api/v1/access`` says what the token may do. SSE rather than a
WebSocket keeps the monitor's imports to httpx alone, which is what the Android
build can carry (design.md §5).

Two tokens (``rights``): the monitor token reads, the admin token may also change.
Everything a caller sends is checked before it reaches the plane (``arguments``), so
bad input is a 4xx with a reason, never a traceback; an address that keeps sending
wrong tokens waits before it may try again (``throttle``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import logging
import math
from typing import Any

from aiohttp import web

from pyclaw_app.control.arguments import ArgumentError, Signature
from pyclaw_app.control.local import LocalControlPlane
from pyclaw_app.control.rights import Role, Tokens, allowed
from pyclaw_app.control.throttle import AuthThrottle
from pyclaw_app.errors import PyclawError

__all__ = ["CALLS", "ControlApi", "to_json"]

_log = logging.getLogger(__name__)

# Methods the monitor may call; ``rights.READ_ONLY`` says which a monitor token may use.
CALLS = frozenset({
    "recent_traffic", "counters_today", "channels", "logs", "export_logs", "message_detail",
    "retry_message", "chat_send", "chat_history", "chat_reset", "chat_files", "chat_file",
    "config_errors",
    "channel_types", "channel_form", "validate_channel", "save_channel", "delete_channel",
    "probe_channel", "set_channel_enabled", "start_channel", "stop_channel", "restart_channel",
    "settings_form", "validate_settings", "save_settings", "list_models", "usage", "budgets",
    "budget_form", "save_budgets",
    "pairing_requests", "approve_pairing", "group_requests", "decide_group",
    "schedules", "create_schedule", "set_schedule_enabled", "delete_schedule",
    "explain_schedule",
    "channel_health", "provider_health",
    "people", "person_detail", "link_accounts", "unlink_account", "conversation",
    "mcp_servers", "save_mcp_server", "delete_mcp_server", "test_mcp_server",
    "profiles", "save_profile", "delete_profile",
    "first_run_state", "close_first_run", "find_local_servers", "test_completion",
})
KEEPALIVE = 15.0
BODY_TIMEOUT = 10.0
ADMIN_HINT = "`pyclaw monitor-token --admin` on the gateway's machine prints the admin token"


def to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    return value


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


def _decode(body: bytes) -> dict[str, Any]:
    """A call's JSON body as keyword arguments; ArgumentError says what is wrong with it."""
    if not body.strip():
        return {}
    try:
        kwargs = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise ArgumentError("the body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ArgumentError(f"the body is not JSON ({exc.msg})") from None
    except RecursionError:
        raise ArgumentError("the body is nested too deeply") from None
    if not isinstance(kwargs, dict):
        raise ArgumentError("the body must be a JSON object of arguments")
    return kwargs


class ControlApi:
    def __init__(self, plane: LocalControlPlane, tokens: Tokens, *,
                 throttle: AuthThrottle | None = None,
                 body_timeout: float = BODY_TIMEOUT) -> None:
        self.plane = plane
        self._tokens = ((Role.ADMIN, tokens.admin.encode()),
                        (Role.MONITOR, tokens.monitor.encode()))
        self.throttle = throttle or AuthThrottle()
        self.body_timeout = body_timeout
        self._signatures = {name: Signature(getattr(plane, name)) for name in CALLS}
        self._streams: set[Any] = set()

    def install(self, app: web.Application) -> None:
        app.router.add_post("/api/v1/call/{method}", self._call)
        app.router.add_get("/api/v1/events", self._events)
        app.router.add_get("/api/v1/access", self._access)
        app.on_shutdown.append(self._end_streams)

    async def _end_streams(self, app: web.Application) -> None:
        for subscription in list(self._streams):
            subscription.close()

    def _authenticate(self, request: web.Request) -> Role | web.Response:
        """The token's role, or the answer to send instead (401, 429, 400)."""
        source = request.remote or "?"
        wait = self.throttle.retry_after(source)
        if wait > 0:
            seconds = str(math.ceil(wait))
            return _error(429, f"too many wrong tokens from this address: try again in "
                          f"{seconds} s", **{"Retry-After": seconds})
        try:
            presented = request.headers.get("Authorization", "").encode("ascii")
        except UnicodeEncodeError:
            self._failed(source)
            return _error(400, "the Authorization header must be ASCII: Bearer <token>")
        role = None
        for candidate, token in self._tokens:  # both compared, in constant time each
            if hmac.compare_digest(presented, b"Bearer " + token) and role is None:
                role = candidate
        if role is None:
            self._failed(source)
            return _error(401, "missing or wrong API token")
        self.throttle.succeeded(source)
        return role

    def _failed(self, source: str) -> None:
        delay = self.throttle.failed(source)
        if delay > 0:
            _log.warning("control API: repeated wrong tokens from %s; it waits %.0f s before "
                         "its next try is checked", source, delay)

    async def _access(self, request: web.Request) -> web.Response:
        role = self._authenticate(request)
        if isinstance(role, web.Response):
            return role
        methods = sorted(m for m in CALLS if allowed(role, m))
        return web.json_response({"role": role.value, "methods": methods})

    async def _call(self, request: web.Request) -> web.Response:
        role = self._authenticate(request)
        if isinstance(role, web.Response):
            return role
        method = request.match_info["method"]
        signature = self._signatures.get(method)
        if signature is None:
            return _error(404, f"unknown method {method!r}")
        if not allowed(role, method):
            return _error(403, f"{method} needs the admin token: this is the read-only "
                          f"monitor token, which can only watch ({ADMIN_HINT})")
        try:
            body = await asyncio.wait_for(request.read(), self.body_timeout)
        except TimeoutError:
            return _error(408, f"the body took longer than {self.body_timeout:g}s to arrive")
        try:
            kwargs = _decode(body)
            signature.check(kwargs)
        except ArgumentError as exc:
            return _error(400, str(exc))
        try:
            result = getattr(self.plane, method)(**kwargs)
            if asyncio.iscoroutine(result):
                result = await result
        except (PyclawError, KeyError, ValueError) as exc:
            field = getattr(exc, "field", None)  # a ScheduleError names the value at fault
            if isinstance(field, str):
                return web.json_response({"error": str(exc), "field": field}, status=422)
            return _error(422, str(exc))
        except Exception:  # noqa: BLE001 - a bug must not become a traceback for the caller
            _log.exception("control API: %s failed", method)
            return _error(500, f"{method} failed inside the gateway (see its log)")
        return web.json_response({"result": to_json(result)})

    async def _events(self, request: web.Request) -> web.StreamResponse:
        role = self._authenticate(request)
        if isinstance(role, web.Response):
            return role
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
