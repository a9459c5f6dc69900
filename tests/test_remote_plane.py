"""The remote monitor: the control API over HTTP + SSE, and a client the Android build can carry."""

from __future__ import annotations

import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import yaml
from pydantic import ValidationError

from pyclaw_app.config import ServerConfig
from pyclaw_app.control.host import GatewayHost
from pyclaw_app.control.remote import RemoteControlPlane, RemoteError
from pyclaw_app.control.rights import ADMIN_TOKEN_KEY, MONITOR_TOKEN_KEY
from pyclaw_app.control.transport import is_loopback
from pyclaw_app.errors import ConfigError
from pyclaw_app.model import EventKind
from tests.conftest import provider_section
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.tls import self_signed
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
    token = host.runtime.secrets.get(ADMIN_TOKEN_KEY)
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
    telegram = next(t for t in remote.channel_types() if t.type == "telegram")
    # the phone's catalog groups and draws it as the desktop's does
    assert (telegram.category, telegram.brand_icon) == ("Chat apps", "telegram")
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
    serving it must not pull in any gateway package (ft.run_async, what the panel's loop
    runs, is stubbed: nothing is served)."""
    code = (
        "import sys\n"
        "sys.modules['pydantic'] = None  # what find_spec and import see on Android\n"
        "import flet as ft\n"
        "served = []\n"
        "async def run_async(main, **kw):\n"
        "    served.append((main.__qualname__, kw['view'].name))\n"
        "ft.run_async = run_async\n"
        "import main\n"
        "main.main(['--web'])\n"
        f"bad = [m for m in {ANDROID_CANNOT_CARRY!r} if sys.modules.get(m) is not None]\n"
        "print(served, bad)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout.strip().splitlines()
    assert out[0].startswith("pyclaw control panel: http://127.0.0.1:")  # where it serves
    assert out[-1] == "[('make_monitor_main.<locals>.main', 'WEB_BROWSER')] []"


# -- beyond loopback: TLS, or an explicit and announced plain http -------------------------


async def start_host(tmp_path: Path, server: dict[str, object]) -> GatewayHost:
    config = tmp_path / "pyclaw.yaml"
    config.write_text(yaml.safe_dump({"server": {"port": 0, "control_api": True, **server}}))
    return await GatewayHost.start(config, tmp_path / "data")


async def test_plain_http_beyond_loopback_is_refused_and_said(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    running = await start_host(tmp_path, {"host": "0.0.0.0"})
    try:
        assert running.server is None  # nothing else needed it, so nothing listens
        notice = "The control API is not served: server.host 0.0.0.0"
        assert any(e.startswith(notice) and "server.tls_cert" in e
                   for e in running.plane.config_errors())
        assert any(r.levelname == "ERROR" and notice in r.getMessage() for r in caplog.records)
    finally:
        await running.stop()


async def test_webhooks_still_run_when_the_control_api_is_refused(tmp_path: Path) -> None:
    running = await start_host(tmp_path, {"host": "0.0.0.0", "webhooks": "on"})
    try:
        assert running.server is not None
        port = running.server.port
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/healthz")).status_code == 200
            refused = await client.post("/api/v1/call/channels",
                                        headers={"Authorization": "Bearer x"})
            assert refused.status_code == 404  # no control API routes at all
    finally:
        await running.stop()


async def test_allow_insecure_http_serves_and_warns_in_the_log_and_the_monitor(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    running = await start_host(tmp_path, {"host": "0.0.0.0", "allow_insecure_http": True})
    try:
        assert running.server is not None
        token = running.runtime.secrets.get(MONITOR_TOKEN_KEY)
        assert token
        remote = await RemoteControlPlane(f"http://127.0.0.1:{running.server.port}",
                                          token).connect()
        try:
            assert any(e.startswith("Security: the control API is served over plain http")
                       for e in remote.config_errors())  # the monitor's banner shows it
        finally:
            await remote.close()
        assert any(r.levelname == "WARNING" and "plain http" in r.getMessage()
                   for r in caplog.records)
    finally:
        await running.stop()


async def test_tls_serves_the_control_api_over_https(tmp_path: Path) -> None:
    made = self_signed(tmp_path)
    cert, key = made.cert, made.key
    running = await start_host(tmp_path, {"host": "127.0.0.1", "tls_cert": str(cert),
                                          "tls_key": str(key)})
    try:
        assert running.server is not None and running.server.url.startswith("https://")
        token = running.runtime.secrets.get(ADMIN_TOKEN_KEY)
        assert token
        trusted = ssl.create_default_context(cafile=str(cert))
        remote = await RemoteControlPlane(
            running.server.url, token,
            transport=httpx.AsyncHTTPTransport(verify=trusted)).connect()
        try:
            assert [c.name for c in await remote.channels()] == ["local"]
            assert not remote.config_errors()
        finally:
            await remote.close()
        async with httpx.AsyncClient() as plain:
            with pytest.raises(httpx.HTTPError):  # no plain http beside it
                await plain.get(f"http://127.0.0.1:{running.server.port}/healthz")
    finally:
        await running.stop()


async def test_an_unreadable_certificate_stops_the_start_with_its_path(tmp_path: Path) -> None:
    (tmp_path / "bad.pem").write_text("not a certificate")
    with pytest.raises(ConfigError, match=r"server.tls_cert: cannot load the TLS certificate"):
        await start_host(tmp_path, {"tls_cert": str(tmp_path / "bad.pem"),
                                    "tls_key": str(tmp_path / "bad.pem")})


def test_tls_cert_and_key_go_together() -> None:
    with pytest.raises(ValidationError, match="tls_cert and tls_key go together"):
        ServerConfig(tls_cert=Path("cert.pem"))


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.8.9.1", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("LOCALHOST", True), ("0.0.0.0", False), ("::", False),
    ("192.168.1.20", False), ("gateway.lan", False)])
def test_what_counts_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
