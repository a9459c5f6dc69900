"""Prometheus /metrics and the /healthz and /readyz probes on the shared HTTP server.

The end-to-end test runs the real Slack connector (Events API, signed webhooks) against the
Slack fake through a real gateway, scrapes /metrics over HTTP and reads it with the
exposition-format parser of ``prometheus_client``: the counters must match what the journal
and the usage table recorded.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from pyclaw_app.bus import Bus
from pyclaw_app.config import load_config
from pyclaw_app.config_storage import STORAGE_PASSWORD_ENV, StorageConfig
from pyclaw_app.control.host import GatewayHost
from pyclaw_app.control.metrics import GatewayMetrics
from pyclaw_app.control.webhooks import WebhookServer
from pyclaw_app.gateway import Gateway
from pyclaw_app.model import Address, ChannelState, Event, EventKind, Inbound
from pyclaw_app.secrets import FileSecretStore
from tests.conftest import GatewayFactory, StoreFactory, provider_section
from tests.fakes.openai_api import FakeOpenAI, Fault
from tests.fakes.slack_api import SlackFake
from tests.stores import ON_EACH_STORE
from tests.support import eventually

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample by name and labels (the parser rejects text that is not the format)."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def get(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.text()


async def scrape(server: WebhookServer) -> Samples:
    status, content_type, text = await get(f"{server.url}/metrics")
    assert status == 200, text
    assert content_type.startswith("text/plain") and "version=" in content_type
    return parse(text)


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data), "utf-8")
    return path


@pytest.fixture
async def slack() -> AsyncIterator[SlackFake]:
    fake = SlackFake()
    await fake.start()
    yield fake
    await fake.stop()


def storage_section(storage: StorageConfig | None, monkeypatch: pytest.MonkeyPatch
                    ) -> dict[str, Any]:
    """The config's ``storage`` for the test's store, its password in the environment as a
    deployment gives it."""
    if storage is None or storage.password is None:
        return {}
    monkeypatch.setenv(STORAGE_PASSWORD_ENV, storage.password.get_secret_value())
    return {"storage": {"url": storage.url}}


@pytest.fixture
async def host(tmp_path: Path, slack: SlackFake, fake_llm: FakeOpenAI,
               storage: StorageConfig | None, monkeypatch: pytest.MonkeyPatch
               ) -> AsyncIterator[GatewayHost]:
    config = write_config(tmp_path / "pyclaw.yaml", {
        **storage_section(storage, monkeypatch),
        "server": {"port": 0},
        "providers": [provider_section(fake_llm, prices={"*": {"input": 3.0, "output": 15.0}})],
        "channels": {"work": {"type": "slack", "mode": "events", "dm_policy": "open",
                              "bot_token": slack.bot_token,
                              "signing_secret": slack.signing_secret,
                              "base_url": slack.api_url}}})
    running = await GatewayHost.start(config, tmp_path / "data")
    yield running
    await running.stop()


async def settled(gateway: Gateway, count: int) -> bool:
    row = await gateway.store.db.fetchone(
        "SELECT COUNT(*) AS n FROM messages WHERE direction='in'"
        " AND status IN ('replied', 'failed', 'skipped')")
    return row is not None and row["n"] >= count


@ON_EACH_STORE
async def test_counters_match_what_the_gateway_did(
        host: GatewayHost, slack: SlackFake, fake_llm: FakeOpenAI) -> None:
    assert host.server is not None  # started for the webhook channel: /metrics rides along
    gateway = host.runtime.gateway
    url = f"{host.server.url}/webhook/work"
    await eventually(lambda: gateway.channels["work"].state == ChannelState.ONLINE)
    for i in range(3):
        assert (await slack.post_event(url, slack.message_event("D0042", f"hello {i}")))[0] == 200
    await eventually(lambda: settled(gateway, 3))
    event = slack.message_event("D0042", "said twice")
    assert (await slack.post_event(url, event, retry_num=1))[0] == 200
    assert (await slack.post_event(url, event))[0] == 200  # a redelivery: one more duplicate
    fake_llm.faults.append(Fault(status=500))
    assert (await slack.post_event(url, slack.message_event("D0042", "model down")))[0] == 200
    await eventually(lambda: settled(gateway, 5))
    await gateway.lanes.join()

    samples = await scrape(host.server)
    work = {"channel": "work"}
    assert value(samples, "pyclaw_messages_in_total", **work) == 5
    assert value(samples, "pyclaw_messages_duplicate_total", **work) == 1
    assert value(samples, "pyclaw_messages_out_total", **work) == 4
    assert value(samples, "pyclaw_messages_failed_total", **work) == 1
    assert value(samples, "pyclaw_added_latency_seconds_count", **work) == 4
    llm = {"provider": "fake", "model": "fake-model"}
    assert value(samples, "pyclaw_llm_calls_total", **llm) == 5
    assert value(samples, "pyclaw_llm_errors_total", **llm) == 1
    assert value(samples, "pyclaw_llm_latency_seconds_count", provider="fake") == 4

    await gateway.store.db.write(lambda conn: None)  # usage rows are written without waiting
    usage = await gateway.store.db.fetchone(
        "SELECT SUM(input_tokens) AS tin, SUM(output_tokens) AS tout, SUM(cost) AS cost,"
        " COUNT(error) AS errors FROM llm_calls")
    assert usage is not None and usage["tin"] > 0 and usage["errors"] == 1
    assert value(samples, "pyclaw_llm_tokens_total", **llm, kind="input") == usage["tin"]
    assert value(samples, "pyclaw_llm_tokens_total", **llm, kind="output") == usage["tout"]
    assert value(samples, "pyclaw_llm_cost_dollars_total", **llm) == pytest.approx(
        usage["cost"])

    assert value(samples, "pyclaw_channel_state", channel="work", state="online") == 1
    assert value(samples, "pyclaw_channel_state", channel="work", state="offline") == 0
    assert value(samples, "pyclaw_store_up") == 1
    assert value(samples, "pyclaw_store_outage") == 0
    assert value(samples, "pyclaw_lane_jobs") == 0
    assert value(samples, "pyclaw_metrics_events_dropped_total") == 0
    assert not [k for k in samples if k[0] == "pyclaw_journal_open"]  # every row finished
    assert value(samples, "pyclaw_instance_active") == 1  # it holds its store


@ON_EACH_STORE
async def test_open_journal_rows_are_the_queue(host: GatewayHost, slack: SlackFake) -> None:
    """A message for a stopped channel waits in the journal: the queue gauge shows it."""
    assert host.server is not None
    gateway = host.runtime.gateway
    await eventually(lambda: gateway.channels["work"].state == ChannelState.ONLINE)
    message = slack.message_event("D0042", "wait for me")
    assert (await slack.post_event(f"{host.server.url}/webhook/work", message))[0] == 200
    await eventually(lambda: settled(gateway, 1))
    await gateway.stop_channel("work")
    result = await gateway.store.journal.submit(  # as another instance's ingress would
        Inbound(Address("work", "D0042"), "late-1", "queued"))
    assert not result.duplicate
    samples = await scrape(host.server)
    assert value(samples, "pyclaw_journal_open", channel="work", status="received") == 1
    assert value(samples, "pyclaw_channel_state", channel="work", state="stopped") == 1


@ON_EACH_STORE
async def test_readyz_names_a_channel_not_started_and_a_closed_store(
        tmp_path: Path, fake_llm: FakeOpenAI, open_store: StoreFactory) -> None:
    config = write_config(tmp_path / "pyclaw.yaml", {
        "providers": [provider_section(fake_llm)],
        "channels": {"local": {"type": "local"},
                     "spare": {"type": "local", "enabled": False}}})
    store = await open_store(tmp_path / "data")
    gateway = Gateway(load_config(config, FileSecretStore(tmp_path / "s.json")), store, Bus())
    server = WebhookServer(gateway, "127.0.0.1", 0)
    await server.start()  # before the gateway, as GatewayHost does
    try:
        assert (await get(f"{server.url}/healthz"))[0] == 200
        status, _, text = await get(f"{server.url}/readyz")
        body = json.loads(text)
        assert status == 503
        assert body["not_ready"] == ["channel local", "channel spare"]
        assert body["channels"] == {"local": "stopped", "spare": "stopped"}
        assert body["store"] == "ok"

        await gateway.start()
        status, _, text = await get(f"{server.url}/readyz")
        assert status == 200, text
        assert json.loads(text) == {"ready": True, "store": "ok", "not_ready": [],
                                        "channels": {"local": "online", "spare": "disabled"}}

        await gateway.stop_channel("local")
        status, _, text = await get(f"{server.url}/readyz")
        assert (status, json.loads(text)["not_ready"]) == (503, ["channel local"])
        await gateway.start_channel("local")
        assert (await get(f"{server.url}/readyz"))[0] == 200

        await store.close()
        status, _, text = await get(f"{server.url}/readyz")
        body = json.loads(text)
        assert status == 503 and body["not_ready"] == ["store"]
        assert body["store"].startswith("unreachable")
        assert (await get(f"{server.url}/healthz"))[0] == 200  # alive: nothing to restart
        samples = await scrape(server)
        assert value(samples, "pyclaw_store_up") == 0
    finally:
        await server.stop()
        await gateway.stop()


async def test_metrics_on_starts_the_server_and_says_the_instance_is_active(
        tmp_path: Path) -> None:
    """No webhook channel and no control API: ``server.metrics: on`` starts the server anyway
    (a container's probes and Prometheus need it); the gateway holds its store."""
    config = write_config(tmp_path / "pyclaw.yaml", {"server": {"port": 0, "metrics": "on"}})
    running = await GatewayHost.start(config, tmp_path / "data")
    try:
        assert running.server is not None and running.server.metrics is not None
        samples = await scrape(running.server)
        assert value(samples, "pyclaw_instance_active") == 1
        assert value(samples, "pyclaw_channel_state", channel="local", state="online") == 1
    finally:
        await running.stop()


async def test_metrics_off_serves_the_probes_only(tmp_path: Path) -> None:
    config = write_config(tmp_path / "pyclaw.yaml",
                          {"server": {"port": 0, "webhooks": "on", "metrics": "off"}})
    running = await GatewayHost.start(config, tmp_path / "data")
    try:
        assert running.server is not None and running.server.metrics is None
        assert (await get(f"{running.server.url}/metrics"))[0] == 404
        assert (await get(f"{running.server.url}/readyz"))[0] == 200
    finally:
        await running.stop()


async def test_no_server_without_a_reason(tmp_path: Path) -> None:
    """The desktop default opens no port: metrics ``auto`` rides on a server, never starts one."""
    config = write_config(tmp_path / "pyclaw.yaml", {"server": {"port": 0}})
    running = await GatewayHost.start(config, tmp_path / "data")
    try:
        assert running.server is None
    finally:
        await running.stop()


async def test_added_latency_leaves_out_llm_time_and_each_gateway_counts_its_own(
        make_gateway: GatewayFactory, tmp_path: Path) -> None:
    """Events with set times: received at 100 s, 2 s in the model, reply handed over at
    103.5 s, so the gateway added 1.5 s."""
    first = await make_gateway()
    second = await make_gateway(data_dir=tmp_path / "other")
    metrics = [GatewayMetrics(first), GatewayMetrics(second)]
    for m in metrics:
        m.start()
    try:
        first.bus.publish(Event(EventKind.MESSAGE_RECEIVED, "local", {"id": 7}, ts=100.0))
        first.bus.publish(Event(EventKind.LLM_CALL, "local", {
            "id": 7, "provider": "p", "model": "m", "input_tokens": 10, "output_tokens": 5,
            "latency_ms": 2000.0, "cost": 0.5, "error": None}, ts=102.0))
        first.bus.publish(Event(EventKind.REPLY_SENT, "local", {"id": 8, "reply_to_id": 7},
                                ts=103.5))
        one = parse((await metrics[0].render()).decode())
        two = parse((await metrics[1].render()).decode())
    finally:
        for m in metrics:
            await m.stop()
    bucket = "pyclaw_added_latency_seconds_bucket"
    assert value(one, bucket, channel="local", le="1.0") == 0
    assert value(one, bucket, channel="local", le="2.5") == 1
    assert value(one, "pyclaw_added_latency_seconds_sum", channel="local") == 1.5
    assert value(one, "pyclaw_llm_cost_dollars_total", provider="p", model="m") == 0.5
    assert value(one, "pyclaw_llm_tokens_total", provider="p", model="m", kind="input") == 10
    assert value(two, "pyclaw_messages_out_total", channel="local") is None
    assert value(two, "pyclaw_llm_calls_total", provider="p", model="m") is None


@pytest.mark.parametrize("storage", ["sqlite"], indirect=True)  # a full disk, as SQLite has it
async def test_a_store_outage_shows_in_metrics_and_readiness(
        fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway({"providers": [provider_section(fake_llm)]})
    server = WebhookServer(gateway, "127.0.0.1", 0)
    await server.start()
    try:
        db = gateway.store.db
        await db.write(lambda conn: None)  # what the start queued is written
        await db.pragma(f"max_page_count={await db.pragma('page_count')}")  # the disk is full
        local = gateway.channels["local"].connector
        held = asyncio.create_task(local.post("x" * 20_000, chat="full"))  # needs new pages
        await eventually(lambda: db.outage)
        samples = await scrape(server)
        assert value(samples, "pyclaw_store_outage") == 1
        assert value(samples, "pyclaw_store_up") == 1  # it reads; it cannot write
        status, _, text = await get(f"{server.url}/readyz")
        assert status == 503
        assert json.loads(text)["store"] == "writes failing"

        await db.pragma("max_page_count=1073741823")  # space freed
        await held
        await eventually(lambda: db.outage is None)
        assert value(await scrape(server), "pyclaw_store_outage") == 0
        assert (await get(f"{server.url}/readyz"))[0] == 200
    finally:
        await server.stop()
