"""The remote monitor: the control API over HTTP + SSE, and a client the Android build can carry."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from pyclaw_app.control.host import API_TOKEN_KEY, GatewayHost
from pyclaw_app.control.remote import RemoteControlPlane, RemoteError
from pyclaw_app.model import EventKind
from tests.conftest import provider_section
from tests.fakes.openai_api import FakeOpenAI
from tests.support import eventually

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
async def host(tmp_path: Path, fake_llm: FakeOpenAI) -> AsyncIterator[GatewayHost]:
    config = tmp_path / "pyclaw.yaml"
    config.write_text(yaml.safe_dump({"server": {"port": 0, "control_api": True},
                                      "providers": [provider_section(fake_llm)]}))
    running = await GatewayHost.start(config, tmp_path / "data")
    yield running
    await running.stop()


@pytest.fixture
async def remote(host: GatewayHost) -> AsyncIterator[RemoteControlPlane]:
    assert host.server is not None
    token = host.runtime.secrets.get(API_TOKEN_KEY)
    assert token
    plane = await RemoteControlPlane(host.server.url, token).connect()
    yield plane
    await plane.close()


async def test_wrong_token_is_refused(host: GatewayHost) -> None:
    assert host.server is not None
    with pytest.raises(RemoteError, match="wrong API token"):
        await RemoteControlPlane(host.server.url, "guess").connect()


async def test_monitor_sees_live_traffic_and_can_chat(remote: RemoteControlPlane,
                                                      host: GatewayHost) -> None:
    assert [c.name for c in await remote.channels()] == ["local"]
    sub = remote.subscribe()
    await eventually(lambda: host.runtime.gateway.bus.subscribers >= 1)
    await remote.chat_send("hello from the phone")

    async def reply() -> list[object]:
        events = await sub.get_batch(100, timeout=0.2)
        seen.extend(events)
        return [e for e in seen if e.kind == EventKind.REPLY_SENT]

    seen: list = []
    sent = await eventually(reply)
    assert sent[0].data["text"] == "Echo: hello from the phone"
    sub.close()

    traffic = await remote.recent_traffic(10)
    assert {t.text for t in traffic} == {"hello from the phone", "Echo: hello from the phone"}
    inbound = next(t for t in traffic if t.direction == "in")
    detail = await remote.message_detail(inbound.id)
    assert detail is not None and detail.reply is not None
    assert (await remote.counters_today()).inbound == 1
    assert "telegram" in {t.type for t in remote.channel_types()}
    assert remote.settings_form().providers[0]["name"] == "fake"


async def test_monitor_changes_channels_and_gets_field_errors(remote: RemoteControlPlane,
                                                              host: GatewayHost) -> None:
    errors = await remote.save_channel("Bad Name", "local", {})
    assert [e.field for e in errors] == ["name"]
    assert await remote.save_channel("second", "local", {"max_text": 500}) == []
    assert remote.channel_form("second").values["max_text"] == 500
    assert "second" in host.runtime.gateway.channels
    assert (await remote.probe_channel("x", "local", {})).ok


ANDROID_CANNOT_CARRY = ("pydantic", "aiosqlite", "aiohttp", "openai", "anthropic", "telegram",
                        "discord", "slack_sdk", "keyring", "connectors")


def test_client_imports_nothing_the_android_build_cannot_carry() -> None:
    code = ("import sys, pyclaw_app.control.remote, views.app, views.connect; "
            f"bad = [m for m in {ANDROID_CANNOT_CARRY!r} if m in sys.modules]; "
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == "[]"


def test_main_without_the_gateway_packages_runs_the_monitor_and_imports_none_of_them() -> None:
    """main.py as on Android: pydantic is not installed, so it must pick the monitor, and
    serving it must not pull in any gateway package (ft.run is stubbed: nothing is served)."""
    code = (
        "import sys\n"
        "sys.modules['pydantic'] = None  # what find_spec and import see on Android\n"
        "import flet as ft\n"
        "served = []\n"
        "ft.run = lambda main, **kw: served.append((main.__qualname__, kw['view'].name))\n"
        "import main\n"
        "main.main(['--web'])\n"
        f"bad = [m for m in {ANDROID_CANNOT_CARRY!r} if sys.modules.get(m) is not None]\n"
        "print(served, bad)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == "[('make_monitor_main.<locals>.main', 'WEB_BROWSER')] []"
