"""Webhook-style channels on the one shared server: verified before parsing, answered once."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml

from pyclaw_app.control.host import GatewayHost
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
    assert all("secret-payload-text" not in r["message"] and not r["data"] for r in logs)
    assert any("signature" in r["message"] for r in logs)

    async with aiohttp.ClientSession() as session, session.post(
            f"{runtime.server.url}/webhook/nope", data=b"{}") as resp:
        assert resp.status == 404
