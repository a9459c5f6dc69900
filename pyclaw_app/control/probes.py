"""``/healthz`` and ``/readyz`` on the shared HTTP server: what an orchestrator asks.

``/healthz`` answers while the event loop turns (a wedged loop cannot answer); it reads
nothing, so a slow database or a platform outage never gets a live process restarted.
``/readyz`` says whether this instance should be given traffic: the store answers a real
query of the journal (and is not waiting out failing writes), and every enabled channel
has been started and is online or degraded. Its 503 body names what is not ready, by
name and state only: the reasons (which may quote a platform's error) stay in the log.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from pyclaw_app.gateway import Gateway
from pyclaw_app.model import ChannelState
from pyclaw_app.store import Store

__all__ = ["READY_STATES", "STORE_TIMEOUT", "Probes", "Readiness", "StoreCheck",
           "check_store", "readiness"]

STORE_TIMEOUT = 2.0
"""Seconds the store may take to answer a probe's or a scrape's query: an orchestrator's
probe timeout is short, and a hung store must show as not ready, not as a hung probe."""
READY_STATES = frozenset({ChannelState.ONLINE, ChannelState.DEGRADED, ChannelState.DISABLED})
"""Channel states that let an instance take traffic (a disabled channel is not expected).
Where an instance stands by for a channel another one holds, that state belongs here too."""

_OPEN_ROWS = ("SELECT channel, status, COUNT(*) AS n FROM messages WHERE direction='in'"
              " AND status IN ('received', 'processing') GROUP BY channel, status")


@dataclass(frozen=True, slots=True)
class StoreCheck:
    """One real query's outcome: the inbound rows not finished yet, per channel and status
    (the journal's queue), or why the store did not answer."""

    reachable: bool
    error: str = ""
    open_rows: dict[tuple[str, str], int] = field(default_factory=dict)


async def check_store(store: Store, timeout: float = STORE_TIMEOUT) -> StoreCheck:
    """Ask the journal for its open rows: the readiness check and the queue-depth gauge in
    one indexed query (``messages_open``)."""
    try:
        rows = await asyncio.wait_for(store.db.fetchall(_OPEN_ROWS), timeout)
    except TimeoutError:
        return StoreCheck(False, f"no answer within {timeout:g}s")
    except Exception as exc:  # noqa: BLE001 - whatever the driver raises, the store is not reachable
        return StoreCheck(False, type(exc).__name__)
    return StoreCheck(True, open_rows={(r["channel"], r["status"]): r["n"] for r in rows})


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    store: str
    channels: dict[str, str]
    """Every configured channel's state; ``not_ready`` lists the ones that hold it back."""
    not_ready: list[str]

    def body(self) -> dict[str, Any]:
        return {"ready": self.ready, "store": self.store, "channels": self.channels,
                "not_ready": self.not_ready}


async def readiness(gateway: Gateway) -> Readiness:
    check = await check_store(gateway.store)
    not_ready: list[str] = []
    if not check.reachable:
        store = f"unreachable: {check.error}"
        not_ready.append("store")
    elif gateway.store.db.outage is not None:
        store = "writes failing"
        not_ready.append("store")
    else:
        store = "ok"
    channels: dict[str, str] = {}
    for name in gateway.config.channels:  # the configured set: before the start, none runs
        rt = gateway.channels.get(name)
        state = rt.state if rt is not None else ChannelState.STOPPED
        channels[name] = state.value
        if state not in READY_STATES:
            not_ready.append(f"channel {name}")
    return Readiness(not not_ready, store, channels, not_ready)


class Probes:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def install(self, app: web.Application) -> None:
        app.router.add_get("/healthz", self._health)
        app.router.add_get("/readyz", self._ready)

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def _ready(self, request: web.Request) -> web.Response:
        state = await readiness(self.gateway)
        return web.json_response(state.body(), status=200 if state.ready else 503)
