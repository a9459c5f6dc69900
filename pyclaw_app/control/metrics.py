"""Prometheus metrics of one gateway, served as ``GET /metrics`` on the shared HTTP server.

Counters and histograms follow the event bus: the gateway already emits an event for every
step of a message (design.md §1), so counting needs no hook in the flow. Gauges are read
when Prometheus scrapes: channel states from the gateway, the journal's open rows (the
queue) with one indexed query, the store's outage flag, the lanes' backlog. Each gateway
has its own :class:`CollectorRegistry` (never the process-wide default), so several
gateways in one process, as in the tests, never share a series.

Added latency is what the gateway itself adds to an answer: from the message's receipt
(journaled) to the reply handed to the platform, minus the time its LLM calls took. A
message resumed after a restart was received by another run, so it is not observed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from pyclaw_app.bus import BusSubscription
from pyclaw_app.control.probes import StoreCheck, check_store
from pyclaw_app.gateway import Gateway
from pyclaw_app.model import ChannelState, Event, EventKind

__all__ = ["LATENCY_BUCKETS", "GatewayMetrics"]

_log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LLM_BUCKETS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0)
MAX_OPEN = 10_000
"""Messages whose receipt is remembered until their reply; beyond this the oldest are
forgotten (a message waiting for a stopped channel must not grow memory without end)."""
SUBSCRIBER_QUEUE = 20_000
"""Events buffered for the counters between two turns of their task (streamed replies emit
one per chunk); drops are exported, so a count that lost events says so."""


@dataclass(slots=True)
class _Open:
    received: float
    llm_seconds: float = 0.0


class _EventCounters:
    """The bus's events turned into counters and histograms."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(name, doc, labels, registry=registry)

        self.messages_in = counter("pyclaw_messages_in", "Messages received and journaled",
                                   "channel")
        self.messages_out = counter("pyclaw_messages_out", "Replies delivered to the platform",
                                    "channel")
        self.messages_failed = counter(
            "pyclaw_messages_failed", "Messages that ended without a delivered reply "
            "(LLM failure, send failed, uncertain)", "channel")
        self.messages_skipped = counter(
            "pyclaw_messages_skipped", "Messages not answered on purpose (policy, budget, "
            "empty)", "channel")
        self.messages_duplicate = counter(
            "pyclaw_messages_duplicate", "Redelivered messages recognised and not answered "
            "again", "channel")
        self.llm_calls = counter("pyclaw_llm_calls", "LLM calls, successful or not",
                                 "provider", "model")
        self.llm_errors = counter("pyclaw_llm_errors", "LLM calls that failed",
                                  "provider", "model")
        self.llm_tokens = counter("pyclaw_llm_tokens", "Tokens the LLM calls used",
                                  "provider", "model", "kind")
        self.llm_cost = counter("pyclaw_llm_cost_dollars",
                                "US dollars the LLM calls cost (from the providers' prices)",
                                "provider", "model")
        self.llm_latency = Histogram(
            "pyclaw_llm_latency_seconds", "Duration of successful LLM calls",
            ("provider",), buckets=LLM_BUCKETS, registry=registry)
        self.added_latency = Histogram(
            "pyclaw_added_latency_seconds", "Receipt to reply handed to the platform, minus "
            "LLM time: what the gateway adds", ("channel",), buckets=LATENCY_BUCKETS,
            registry=registry)
        self._open: OrderedDict[int, _Open] = OrderedDict()

    def observe(self, event: Event) -> None:
        kind, channel, data = event.kind, event.channel, event.data
        if "instance" in data:
            return  # another instance's, fanned out to this one's bus: counted where it ran
        if kind == EventKind.MESSAGE_RECEIVED:
            self.messages_in.labels(channel).inc()
            self._open[data["id"]] = _Open(event.ts)
            if len(self._open) > MAX_OPEN:
                self._open.popitem(last=False)
        elif kind == EventKind.LLM_CALL:
            self._llm_call(data)
        elif kind == EventKind.REPLY_SENT:
            self.messages_out.labels(channel).inc()
            opened = self._open.pop(data.get("reply_to_id"), None)
            if opened is not None:
                self.added_latency.labels(channel).observe(
                    max(0.0, event.ts - opened.received - opened.llm_seconds))
        elif kind == EventKind.MESSAGE_FAILED:
            self.messages_failed.labels(channel).inc()
            self._open.pop(data.get("id"), None)
        elif kind == EventKind.MESSAGE_SKIPPED:
            self.messages_skipped.labels(channel).inc()
            self._open.pop(data.get("id"), None)
        elif kind == EventKind.MESSAGE_DUPLICATE:
            self.messages_duplicate.labels(channel).inc()

    def _llm_call(self, data: dict[str, Any]) -> None:
        provider, model = str(data.get("provider", "")), str(data.get("model", ""))
        seconds = float(data.get("latency_ms") or 0.0) / 1000
        self.llm_calls.labels(provider, model).inc()
        if data.get("error"):
            self.llm_errors.labels(provider, model).inc()
        else:
            self.llm_latency.labels(provider).observe(seconds)
        for kind in ("input", "output"):
            tokens = int(data.get(f"{kind}_tokens") or 0)
            if tokens:
                self.llm_tokens.labels(provider, model, kind).inc(tokens)
        cost = float(data.get("cost") or 0.0)
        if cost:
            self.llm_cost.labels(provider, model).inc(cost)
        opened = self._open.get(data.get("id"))
        if opened is not None:
            opened.llm_seconds += seconds


@dataclass(frozen=True, slots=True)
class _Scrape:
    """What a scrape read before rendering (the registry's collectors are synchronous)."""

    store: StoreCheck


class _Gauges:
    """Read at scrape time from the gateway and the values :meth:`GatewayMetrics.render`
    fetched just before."""

    def __init__(self, gateway: Gateway, subscription: BusSubscription) -> None:
        self.gateway = gateway
        self.subscription = subscription
        self.scrape: _Scrape | None = None

    def describe(self) -> list[Metric]:
        return []  # nothing to read at registration; the names are checked at collect

    def collect(self) -> Iterator[Metric]:
        gw = self.gateway
        states = GaugeMetricFamily("pyclaw_channel_state", "1 for the state each channel is "
                                   "in now, 0 for the others", labels=["channel", "state"])
        for rt in gw.runtime_rows():
            for state in ChannelState:
                states.add_metric([rt.name, state.value], float(rt.state == state))
        yield states
        yield GaugeMetricFamily("pyclaw_lane_jobs", "Messages queued or in progress in this "
                                "instance's conversation lanes", value=gw.lanes.pending())
        yield GaugeMetricFamily("pyclaw_lanes_active", "Conversations with work in progress",
                                value=gw.lanes.active)
        yield GaugeMetricFamily("pyclaw_lane_backlog_limit", "Lane jobs at which intake "
                                "waits for room (backpressure)", value=gw.lanes.max_backlog)
        yield GaugeMetricFamily("pyclaw_store_outage", "1 while store writes are failing and "
                                "being retried", value=float(gw.store.db.outage is not None))
        yield GaugeMetricFamily("pyclaw_instance_active", "1 while this instance holds the "
                                "store and runs the channels, 0 while it stands by",
                                value=float(gw.store.db.holds_instance))
        if gw.shared is not None:
            yield GaugeMetricFamily("pyclaw_instances_live", "Instances sharing the work that "
                                    "were alive at this one's last sweep (itself included)",
                                    value=gw.shared.live_instances)
            receiving = GaugeMetricFamily(
                "pyclaw_channel_receiving", "1 on the instance receiving for a channel that "
                "allows one consumer (its ingress lease), 0 on the others", labels=["channel"])
            for rt in gw.runtime_rows():
                if not gw.shared.everywhere(rt.name):
                    receiving.add_metric([rt.name], float(gw.shared.receives(rt.name)))
            yield receiving
        yield CounterMetricFamily("pyclaw_metrics_events_dropped", "Bus events the counters "
                                  "missed because their queue was full",
                                  value=self.subscription.dropped)
        if self.scrape is None:
            return
        store = self.scrape.store
        yield GaugeMetricFamily("pyclaw_store_up", "1 if the store answered this scrape's "
                                "query", value=float(store.reachable))
        if store.reachable:
            open_rows = GaugeMetricFamily(
                "pyclaw_journal_open", "Inbound messages journaled and not finished, per "
                "channel and status (shared by every instance on one database)",
                labels=["channel", "status"])
            for (channel, status), n in sorted(store.open_rows.items()):
                open_rows.add_metric([channel, status], n)
            yield open_rows


class GatewayMetrics:
    """One gateway's registry, fed from its bus while :meth:`start` ed."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.registry = CollectorRegistry()
        self._counters = _EventCounters(self.registry)
        self._subscription: BusSubscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._gauges: _Gauges | None = None

    def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("metrics already started")
        self._subscription = self.gateway.bus.subscribe(SUBSCRIBER_QUEUE)
        self._gauges = _Gauges(self.gateway, self._subscription)
        self.registry.register(self._gauges)
        self._task = asyncio.create_task(self._follow(self._subscription),
                                         name="metrics:events")

    async def stop(self) -> None:
        if self._subscription is not None:
            self._subscription.close()
        if self._task is not None:
            await self._task
            self._task = None
        if self._gauges is not None:
            self.registry.unregister(self._gauges)
            self._gauges = None

    def install(self, app: web.Application) -> None:
        app.router.add_get("/metrics", self._handle)

    async def render(self) -> bytes:
        """The exposition text, counting every event emitted before the call."""
        if self._subscription is None or self._gauges is None:
            raise RuntimeError("metrics not started")
        while batch := await self._subscription.get_batch(timeout=0):
            self._observe(batch)
        store = await check_store(self.gateway.store)
        # No await from here on: a scrape running beside this one cannot swap the readings.
        self._gauges.scrape = _Scrape(store)
        return generate_latest(self.registry)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await self.render()
        response = web.Response(body=body)
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def _follow(self, subscription: BusSubscription) -> None:
        while True:
            batch = await subscription.get_batch()
            if not batch and subscription.closed:
                return
            self._observe(batch)

    def _observe(self, events: list[Event]) -> None:
        for event in events:
            self._counters.observe(event)
