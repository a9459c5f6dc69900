"""A running gateway with its control plane and its HTTP server (webhooks, control API).

This is what ``pyclaw`` (the panel) and ``pyclaw gateway`` (headless) run. The
HTTP server starts only when something needs it: a webhook-style channel, or
``server.control_api`` for the remote monitor.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from pyclaw_app.config import Config
from pyclaw_app.control.api import ControlApi
from pyclaw_app.control.local import LocalControlPlane
from pyclaw_app.control.rights import control_tokens
from pyclaw_app.control.transport import ControlApiPlan, plan_control_api, tls_context
from pyclaw_app.control.webhooks import WebhookServer
from pyclaw_app.runtime import GatewayRuntime

__all__ = ["GatewayHost", "close_host", "configure_host", "open_host", "open_local_plane"]

_log = logging.getLogger(__name__)


@dataclass
class GatewayHost:
    runtime: GatewayRuntime
    plane: LocalControlPlane
    server: WebhookServer | None = None

    @classmethod
    async def start(cls, config_path: Path | None = None, data_dir: Path | None = None
                    ) -> GatewayHost:
        """Open the store as its one gateway (or its standby: then the HTTP server answers
        ``/healthz`` while ``start`` waits, and ``/readyz`` is 503 until the takeover),
        serve, and start the channels."""
        runtime = await GatewayRuntime.open(config_path, data_dir)
        storage = runtime.gateway.config.storage
        standby = storage.standby
        if not standby:
            try:
                await (runtime.join_shared() if storage.shared else runtime.hold_store())
            except BaseException:
                await runtime.store.close()
                raise
        plane = LocalControlPlane(runtime.gateway, runtime.secrets, runtime.config_path)
        config = runtime.gateway.config
        plan = plan_control_api(config.server)
        if plan.notice:
            (_log.warning if plan.serve else _log.error)("%s", plan.notice)
            plane.notices.append(plan.notice)
        server = None
        try:
            if _wants_server(config, plan):
                # Before the channels: a platform may call us as soon as its webhook is set.
                server = WebhookServer(
                    runtime.gateway, config.server.host, config.server.port,
                    header_timeout=config.server.header_timeout,
                    max_connections_per_source=config.server.max_connections_per_source,
                    ssl_context=tls_context(config.server))
                installers = []
                if plan.serve:
                    installers.append(ControlApi(plane, control_tokens(runtime.secrets)).install)
                await server.start(*installers)
            if standby:
                await runtime.hold_store(standby=True)
            await runtime.gateway.start()
        except BaseException:
            if server is not None:
                await server.stop()
            await runtime.store.close()
            raise
        return cls(runtime, plane, server)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
        await self.runtime.stop()


def _wants_server(config: Config, plan: ControlApiPlan) -> bool:
    if plan.serve or config.server.webhooks == "on" or config.server.metrics == "on":
        return True
    if config.server.webhooks == "off":
        return False
    return any(e.config is not None and e.config.enabled and e.config.needs_webhook()
               for e in config.channels.values())


_paths: dict[str, Path | None] = {"config": None, "data_dir": None}
_host: GatewayHost | None = None
_lock: asyncio.Lock | None = None


def configure_host(config_path: Path | None, data_dir: Path | None) -> None:
    """Set the paths ``open_host`` uses (the CLI calls this before starting Flet)."""
    _paths["config"], _paths["data_dir"] = config_path, data_dir


async def open_host() -> GatewayHost:
    """The process-wide gateway, started on first use by whichever Flet session comes first."""
    global _host, _lock
    if _lock is None:
        _lock = asyncio.Lock()
    async with _lock:
        if _host is None:
            _host = await GatewayHost.start(_paths["config"], _paths["data_dir"])
    return _host


async def open_local_plane() -> LocalControlPlane:
    """The process-wide gateway's plane, started on first use (by the first Flet session)."""
    return (await open_host()).plane


async def close_host() -> None:
    global _host
    if _host is not None:
        await _host.stop()
    _host = None
