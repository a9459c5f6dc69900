"""Webhook-style channels on the one shared server: verified before parsing, answered once;
the server routes GET and POST, bounds the body (413), its arrival time (408), the time a
request head may take, and the connections one address may hold."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml

from pyclaw_app.control.api import ControlApi
from pyclaw_app.control.host import GatewayHost
from pyclaw_app.control.rights import Tokens
from pyclaw_app.control.webhooks import MAX_BODY, WebhookServer
from tests.conftest import provider_section
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.slack_api import SlackFake
from tests.support import eventually


@pytest.fixture
async def slack() -> AsyncIterator[SlackFake]:
    fake = SlackFake()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def runtime(tmp_path: Path, slack: SlackFake, fake_llm: FakeOpenAI
                  ) -> AsyncIterator[GatewayHost]:
    config = tmp_path / "pyclaw.yaml"
    config.write_text(yaml.safe_dump({
        "server": {"port": 0},
        "providers": [provider_section(fake_llm)],
        "channels": {"work": {"type": "slack", "mode": "events", "dm_policy": "open",
                              "bot_token": slack.bot_token,
                              "signing_secret": slack.signing_secret,
                              "base_url": slack.api_url}}}))
    rt = await GatewayHost.start(config, tmp_path / "data")
    yield rt
    await rt.stop()


async def test_signed_events_are_answered_once_and_forgeries_rejected(
        runtime: GatewayHost, slack: SlackFake) -> None:
    assert runtime.server is not None  # started because a channel needs it
    url = f"{runtime.server.url}/webhook/work"

    challenge = {"type": "url_verification", "token": "t", "challenge": "c-123"}
    assert await slack.post_event(url, challenge) == (200, "c-123")

    event = slack.message_event("D0042", "hello over http")
    assert (await slack.post_event(url, event))[0] == 200
    await eventually(lambda: [p for p in slack.posts if p.channel == "D0042"])
    assert (await slack.post_event(url, event, retry_num=1))[0] == 200  # Slack's retry
    await runtime.runtime.gateway.lanes.join()
    assert [p.text for p in slack.posts if p.channel == "D0042"] == ["Echo: hello over http"]

    forged = slack.message_event("D0043", "let me in, secret-payload-text")
    status, _ = await slack.post_event(url, forged, secret="not-the-signing-secret")
    assert status == 401
    stale = slack.message_event("D0043", "replayed")
    status, _ = await slack.post_event(url, stale, timestamp=int(time.time()) - 301)
    assert status == 401
    async with aiohttp.ClientSession() as session, session.post(
            url, data=b"{}", headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 401  # unsigned
    await runtime.runtime.gateway.lanes.join()
    assert not [p for p in slack.posts if p.channel == "D0043"]
    logs = await eventually(lambda: runtime.runtime.gateway.store.logs.page(channel="work",
                                                                    level="warning"))
    assert all("secret-payload-text" not in r["message"] + json.dumps(r["data"])
               for r in logs)
    assert any("signature" in r["message"] for r in logs)

    async with aiohttp.ClientSession() as session, session.post(
            f"{runtime.server.url}/webhook/nope", data=b"{}") as resp:
        assert resp.status == 404


async def test_get_is_routed_to_the_channel(runtime: GatewayHost) -> None:
    """Slack only POSTs, so the connector itself refuses a GET (other platforms verify with
    one); the refusal in the channel's log shows the server routed it there."""
    assert runtime.server is not None
    async with aiohttp.ClientSession() as session, session.get(
            f"{runtime.server.url}/webhook/work?challenge=x") as resp:
        assert resp.status == 405
    logs = await eventually(lambda: runtime.runtime.gateway.store.logs.page(channel="work",
                                                                    search="POST only"))
    assert logs


async def test_a_body_over_the_limit_gets_413(runtime: GatewayHost, slack: SlackFake) -> None:
    assert runtime.server is not None
    body = b"x" * (MAX_BODY + 1)
    async with aiohttp.ClientSession() as session, session.post(
            f"{runtime.server.url}/webhook/work", data=body, headers=slack.sign(body)) as resp:
        assert resp.status == 413
    logs = await eventually(lambda: runtime.runtime.gateway.store.logs.page(channel="work",
                                                                    search="oversized"))
    assert logs


async def test_a_body_that_trickles_in_gets_408(runtime: GatewayHost) -> None:
    server = WebhookServer(runtime.runtime.gateway, "127.0.0.1", 0, body_timeout=0.3)
    await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"POST /webhook/work HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        await writer.drain()  # 1 of 100 bytes, then nothing
        status_line = await asyncio.wait_for(reader.readline(), 5)
        writer.close()
        await writer.wait_closed()
        assert status_line.split()[1] == b"408"
    finally:
        await server.stop()
    store = runtime.runtime.gateway.store
    await eventually(lambda: store.logs.page(channel="work", search="longer than 0.3s"))


async def _closed_by_server(reader: asyncio.StreamReader) -> bool:
    """Whether the server ends the connection (EOF or reset) within 5 s of silence here."""
    try:
        return await asyncio.wait_for(reader.read(4096), 5) == b""
    except ConnectionResetError:
        return True


async def test_a_request_head_that_never_ends_is_closed(runtime: GatewayHost) -> None:
    server = WebhookServer(runtime.runtime.gateway, "127.0.0.1", 0, header_timeout=0.3)
    await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"POST /webhook/work HTTP/1.1\r\nHost: x\r\n")  # and no blank line
        await writer.drain()
        assert await _closed_by_server(reader)
        writer.close()
        silent_reader, silent = await asyncio.open_connection("127.0.0.1", server.port)
        assert await _closed_by_server(silent_reader)  # nothing at all, also closed
        silent.close()
    finally:
        await server.stop()


async def test_one_address_holds_at_most_its_share_of_connections(
        runtime: GatewayHost) -> None:
    server = WebhookServer(runtime.runtime.gateway, "127.0.0.1", 0,
                           max_connections_per_source=3)
    await server.start()
    held = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(3)]
    try:
        await eventually(lambda: server.connections.open_from("127.0.0.1") == 3)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        assert await _closed_by_server(reader)  # the fourth is turned away
        writer.close()
        first_reader, first = held[0]
        first.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  # the held ones still work
        await first.drain()
        assert (await asyncio.wait_for(first_reader.readline(), 5)).split()[1] == b"200"
    finally:
        for _, writer in held:
            writer.close()
        await eventually(lambda: server.connections.open_from("127.0.0.1") == 0)
        await server.stop()


async def test_a_slow_control_api_body_gets_408(tmp_path: Path, runtime: GatewayHost) -> None:
    tokens = Tokens(monitor="m" * 43, admin="a" * 43)
    api = ControlApi(runtime.plane, tokens, body_timeout=0.3)
    server = WebhookServer(runtime.runtime.gateway, "127.0.0.1", 0)
    await server.start(api.install)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"POST /api/v1/call/channels HTTP/1.1\r\nHost: x\r\n"
                     b"Authorization: Bearer " + tokens.monitor.encode() +
                     b"\r\nContent-Length: 100\r\n\r\n{")
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 5)
        writer.close()
        await writer.wait_closed()
        assert status_line.split()[1] == b"408"
    finally:
        await server.stop()
