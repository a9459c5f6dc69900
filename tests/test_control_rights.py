"""The control API's two tokens, probes that keep stored secrets home, and its bad-input
answers: a real GatewayHost on 127.0.0.1, a fake Telegram and a fake LLM, and a server
that records whatever reaches it (where a leaked secret would land)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiohttp import web

from cli import main as cli_main
from pyclaw_app.control.api import CALLS, ControlApi
from pyclaw_app.control.host import GatewayHost
from pyclaw_app.control.local import MAX_PAGE
from pyclaw_app.control.remote import AdminRequired, RemoteControlPlane
from pyclaw_app.control.rights import ADMIN_TOKEN_KEY, MONITOR_TOKEN_KEY, READ_ONLY, Tokens
from pyclaw_app.control.throttle import AuthThrottle
from pyclaw_app.control.webhooks import WebhookServer
from pyclaw_app.secrets import FileSecretStore
from tests.conftest import provider_section
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.telegram_api import FakeTelegram
from tests.support import eventually

LLM_KEY = "sk-stored-provider-key-0123456789"


class Recorder:
    """An HTTP server that answers 401 to everything and keeps what it was sent."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> Recorder:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._any)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site.port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _any(self, request: web.Request) -> web.Response:
        self.seen.append(f"{request.path_qs} {dict(request.headers)} {await request.text()}")
        return web.json_response({"ok": False, "error_code": 401,
                                  "description": "Unauthorized"}, status=401)

    def saw(self, secret: str) -> bool:
        return any(secret in line for line in self.seen)


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        yield fake


@pytest.fixture
async def llm() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key=LLM_KEY, models=("m-1",)) as server:
        yield server  # type: ignore[misc]


@pytest.fixture
async def host(tmp_path: Path, llm: FakeOpenAI) -> AsyncIterator[GatewayHost]:
    config = tmp_path / "pyclaw.yaml"
    config.write_text(yaml.safe_dump({
        "server": {"port": 0, "control_api": True},
        "providers": [provider_section(llm)]}))
    running = await GatewayHost.start(config, tmp_path / "data")
    yield running
    await running.stop()


@pytest.fixture
def url(host: GatewayHost) -> str:
    assert host.server is not None
    return host.server.url


def token(host: GatewayHost, key: str) -> str:
    value = host.runtime.secrets.get(key)
    assert value
    return value


async def call(url: str, auth: str | bytes | None, method: str, body: Any = None
               ) -> httpx.Response:
    headers: dict[str, Any] = {} if auth is None else {
        "Authorization": auth if isinstance(auth, bytes) else f"Bearer {auth}"}
    content = body if isinstance(body, bytes) else json.dumps(body or {}).encode()
    async with httpx.AsyncClient(base_url=url) as client:
        return await client.post(f"/api/v1/call/{method}", content=content, headers=headers)


def telegram_values(telegram: FakeTelegram, **extra: object) -> dict[str, object]:
    return {"token": telegram.token, "base_url": f"{telegram.url}/bot",
            "base_file_url": f"{telegram.url}/file/bot", "poll_timeout": 1,
            "dm_policy": "open", **extra}


# -- two tokens ----------------------------------------------------------------------------


async def test_the_phones_token_only_watches(host: GatewayHost, url: str) -> None:
    """The token phones already hold (the one key there was) is now read-only: every method
    outside READ_ONLY answers 403 with where the admin token is, and changes nothing."""
    assert READ_ONLY < CALLS
    monitor = token(host, MONITOR_TOKEN_KEY)
    for method in sorted(CALLS - READ_ONLY):
        resp = await call(url, monitor, method, {})
        assert resp.status_code == 403, method
        assert "pyclaw monitor-token --admin" in resp.json()["error"]
    resp = await call(url, monitor, "probe_channel",
                      {"name": "x", "type_name": "local", "values": {}})
    assert resp.status_code == 403
    resp = await call(url, monitor, "save_channel",
                      {"name": "second", "type_name": "local", "values": {}})
    assert resp.status_code == 403 and "second" not in host.runtime.gateway.channels
    for method in ("channels", "logs", "usage", "recent_traffic", "counters_today",
                   "config_errors", "settings_form", "channel_types"):
        assert (await call(url, monitor, method)).status_code == 200, method
    async with httpx.AsyncClient(base_url=url) as client, client.stream(
            "GET", "/api/v1/events", headers={"Authorization": f"Bearer {monitor}"}) as resp:
        assert resp.status_code == 200


async def test_the_admin_token_may_change_and_the_client_knows_its_role(
        host: GatewayHost, url: str) -> None:
    admin = await RemoteControlPlane(url, token(host, ADMIN_TOKEN_KEY)).connect()
    monitor = await RemoteControlPlane(url, token(host, MONITOR_TOKEN_KEY)).connect()
    try:
        assert (admin.role, admin.read_only) == ("admin", False)
        assert (monitor.role, monitor.read_only) == ("monitor", True)
        assert (await admin.probe_channel("x", "local", {})).ok
        assert await admin.save_channel("second", "local", {}) == []
        with pytest.raises(AdminRequired, match="stop_channel needs the admin token"):
            await monitor.stop_channel("second")
        assert [c.name for c in await monitor.channels()] == ["local", "second"]
    finally:
        await admin.close()
        await monitor.close()


def test_monitor_token_prints_the_kept_token_and_admin_the_other(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An upgrade keeps the token phones hold (now read-only); --admin makes the new one."""
    data = tmp_path / "data"
    FileSecretStore(data / "secrets.json").set(MONITOR_TOKEN_KEY, "the-token-the-phone-has")
    assert cli_main(["monitor-token", "--data-dir", str(data)]) == 0
    assert capsys.readouterr().out.strip() == "the-token-the-phone-has"
    assert cli_main(["monitor-token", "--admin", "--data-dir", str(data)]) == 0
    admin = capsys.readouterr().out.strip()
    assert len(admin) >= 40 and admin != "the-token-the-phone-has"
    assert FileSecretStore(data / "secrets.json").get(ADMIN_TOKEN_KEY) == admin
    assert cli_main(["monitor-token", "--admin", "--data-dir", str(data)]) == 0
    assert capsys.readouterr().out.strip() == admin  # made once, then kept


# -- stored secrets stay with the saved settings --------------------------------------------


async def test_a_channel_probe_aimed_elsewhere_does_not_carry_the_stored_token(
        host: GatewayHost, telegram: FakeTelegram) -> None:
    plane = host.plane
    assert await plane.save_channel("tg", "telegram", telegram_values(telegram)) == []
    async with Recorder() as thief:
        moved = telegram_values(telegram, token="", base_url=f"{thief.url}/bot",
                                base_file_url=f"{thief.url}/file/bot")
        outcome = await plane.probe_channel("tg", "telegram", moved)
        assert not outcome.ok
        assert "Type the token again" in outcome.message and "base_url" in outcome.message
        assert not thief.seen and telegram.token not in outcome.message

        # another type with a field called token does not get Telegram's either
        as_discord = await plane.probe_channel("tg", "discord", {
            "token": "", "api_base": f"{thief.url}/api/v10", "gateway_url": f"ws://{thief.url}"})
        assert not as_discord.ok and "not saved as this type" in as_discord.message
        assert not thief.seen

        retyped = await plane.probe_channel("tg", "telegram", {**moved,
                                                               "token": "1:typed-again"})
        assert not retyped.ok and thief.saw("1:typed-again")  # what the caller sent, only
        assert not thief.saw(telegram.token)

    policy_only = telegram_values(telegram, token="", allow_from=["42"], dm_policy="pairing")
    kept = await plane.probe_channel("tg", "telegram", policy_only)
    assert kept.ok and telegram.username in kept.message  # the saved server, the stored token


async def test_a_model_listing_aimed_elsewhere_does_not_carry_the_stored_key(
        host: GatewayHost, llm: FakeOpenAI) -> None:
    plane = host.plane
    saved = {**provider_section(llm), "api_key": LLM_KEY}
    assert await plane.save_settings([saved], {}) == []
    async with Recorder() as thief:
        moved = {**saved, "api_key": "", "base_url": f"{thief.url}/v1"}
        models, outcome = await plane.list_models(moved)
        assert (models, outcome.ok) == ([], False)
        assert "Type the API key again" in outcome.message and "base_url" in outcome.message
        assert not thief.seen
        _, anthropic = await plane.list_models({**saved, "api_key": "", "kind": "anthropic"})
        assert not anthropic.ok and "kind" in anthropic.message
        assert not thief.saw(LLM_KEY)
    models, outcome = await plane.list_models({**saved, "api_key": "", "model": "m-1"})
    assert outcome.ok and models == ["m-1"]  # the saved endpoint gets the stored key


# -- bad input is a 4xx with a reason -------------------------------------------------------


async def test_a_non_utf8_authorization_header_is_a_400(url: str) -> None:
    port = int(url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /api/v1/call/channels HTTP/1.1\r\nHost: x\r\n"
                 b"Authorization: Bearer \xff\xfe\xc3\r\nContent-Length: 2\r\n\r\n{}")
    await writer.drain()
    head = await asyncio.wait_for(reader.read(4096), 5)
    writer.close()
    await writer.wait_closed()
    assert head.split(b" ")[1] == b"400", head
    assert b"must be ASCII" in head


@pytest.mark.parametrize(("method", "body", "says"), [
    ("logs", {"limit": "ten"}, "limit: expected an integer, got a string"),
    ("logs", {"limit": True}, "limit: expected an integer, got a boolean"),
    ("logs", {"search": ["a"]}, "search: expected a string or null, got a list"),
    ("recent_traffic", {"limit": 10**30}, "out of range"),
    ("message_detail", {"message_id": 2**70}, "out of range"),
    ("message_detail", {}, "needs the argument 'message_id'"),
    ("channels", {"verbose": 1}, "has no argument 'verbose'"),
    ("channel_form", {"name": {"x": 1}}, "name: expected a string, got an object"),
    ("save_channel", {"name": "a", "type_name": "local", "values": 5},
     "values: expected an object, got a number"),
    ("save_settings", {"providers": [1], "agent": {}}, "providers[0]: expected an object"),
    ("logs", {"since": float("nan")}, "must be finite"),
    ("logs", b'{"search": "\\ud800"}', "not valid Unicode"),
    ("save_channel", {"name": "a", "type_name": "local",
                      "values": {"x": {"y": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]
                                                  ]]]]]]]]]]]]]]]]}}}, "nested deeper"),
    ("logs", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ("logs", b"\xff\xfe{}", "not UTF-8"),
    ("logs", b"{not json", "not JSON"),
    ("logs", b"[1, 2]", "must be a JSON object"),
])
async def test_bad_arguments_are_400_with_the_reason(
        host: GatewayHost, url: str, method: str, body: Any, says: str) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    resp = await call(url, token(host, ADMIN_TOKEN_KEY), method, raw)
    assert resp.status_code == 400, resp.text
    assert says in resp.json()["error"]


async def test_log_pages_are_clamped(host: GatewayHost, url: str) -> None:
    gateway = host.runtime.gateway
    for n in range(MAX_PAGE + 5):
        gateway.channel_log("local", "info", f"line {n}")
    await eventually(lambda: gateway.store.logs.page(channel="local", search="line 1004"))
    admin = token(host, ADMIN_TOKEN_KEY)
    resp = await call(url, admin, "logs", {"channel": "local", "limit": -1})
    assert resp.status_code == 200 and len(resp.json()["result"]) == 1
    resp = await call(url, admin, "logs", {"channel": "local", "limit": 10**9})
    assert len(resp.json()["result"]) == MAX_PAGE
    resp = await call(url, admin, "recent_traffic", {"limit": -1})
    assert resp.status_code == 200


# -- wrong tokens back off per source --------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_throttle_lets_a_few_through_then_doubles_the_wait() -> None:
    clock = Clock()
    throttle = AuthThrottle(free_failures=3, base_delay=2, max_delay=10, clock=clock)
    assert [throttle.failed("a") for _ in range(3)] == [0, 0, 0]
    assert throttle.retry_after("a") == 0
    assert throttle.failed("a") == 2 and throttle.retry_after("a") == 2
    assert throttle.retry_after("b") == 0  # per source
    clock.now += 2
    assert throttle.retry_after("a") == 0
    assert throttle.failed("a") == 4
    clock.now += 4
    assert [throttle.failed("a") for _ in range(3)] == [8, 10, 10]  # capped
    throttle.succeeded("a")
    assert throttle.retry_after("a") == 0 and throttle.failed("a") == 0


def test_the_throttle_forgets_old_failures() -> None:
    clock = Clock()
    throttle = AuthThrottle(free_failures=2, forget_after=60, clock=clock)
    assert [throttle.failed("a") for _ in range(2)] == [0, 0]
    clock.now += 61  # a typo an hour ago does not count against today's
    assert throttle.failed("a") == 0
    assert throttle.failed("a") == 0 and throttle.failed("a") > 0


def test_the_throttle_forgets_the_oldest_sources_first() -> None:
    throttle = AuthThrottle(free_failures=0, max_sources=2, clock=Clock())
    for source in ("a", "b", "c"):
        throttle.failed(source)
    assert throttle.retry_after("a") == 0 and throttle.retry_after("c") > 0


async def test_wrong_tokens_from_one_address_get_429_until_the_wait_is_over(
        host: GatewayHost) -> None:
    clock = Clock()
    tokens = Tokens(monitor="m" * 43, admin="a" * 43)
    api = ControlApi(host.plane, tokens, throttle=AuthThrottle(free_failures=3, clock=clock))
    server = WebhookServer(host.runtime.gateway, "127.0.0.1", 0)
    await server.start(api.install)
    try:
        statuses = [(await call(server.url, "guess", "channels")).status_code
                    for _ in range(4)]
        assert statuses == [401, 401, 401, 401]
        blocked = await call(server.url, tokens.admin, "channels")  # even the right one
        assert blocked.status_code == 429 and blocked.headers["Retry-After"] == "1"
        assert "too many wrong tokens" in blocked.json()["error"]
        clock.now += 1
        assert (await call(server.url, tokens.monitor, "channels")).status_code == 200
        assert (await call(server.url, "guess", "channels")).status_code == 401  # fresh count
    finally:
        await server.stop()
