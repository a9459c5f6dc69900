"""The monitor's connect screen against a REAL gateway's control API, without a browser.

The monitor's page ``main`` runs on a stand-in for ``ft.Page`` (controls are
plain dataclasses until mounted), and the tests drive the controls the way a
user does: fill "Gateway URL" and "API token", press Connect, press Disconnect.
The gateway is a GatewayHost with the control API on 127.0.0.1, as in
tests/test_remote_plane.py; only the credential store is in memory (the real one
talks to the Flet client, which the browser test covers).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import flet as ft
import pytest
import yaml

from cli import _run_monitor, build_parser
from pyclaw_app.control.host import GatewayHost
from pyclaw_app.control.remote import RemoteControlPlane
from pyclaw_app.control.rights import ADMIN_TOKEN_KEY, MONITOR_TOKEN_KEY
from tests.conftest import provider_section
from tests.fakes.openai_api import FakeOpenAI
from tests.support import eventually
from views import app
from views.app import make_monitor_main, wants_monitor
from views.connect import (
    Remembered,
    connect_remote,
    gateway_bar,
    normalize_url,
    plain_http_notice,
    read_only_notice,
)
from views.settings import AppSettings

CHANNEL = "frontdesk"
WRONG_TOKEN = "wrong-token-0123456789abcdefghijklmnopqrstuvwxyz"


# -- the stand-ins -------------------------------------------------------------------------


class FakePage:
    """What the monitor uses of ft.Page, without a Flet session: a wide web page."""

    def __init__(self, width: float = 1280) -> None:
        self.web = True
        self.width = width
        self.route = "/"
        self.controls: list[ft.Control] = []
        self.navigation_bar: ft.NavigationBar | None = None
        self.session = SimpleNamespace(id="test-session")
        self.updates = 0
        self.on_resize: Any = None
        self.on_route_change: Any = None
        self.on_connect: Any = None
        self.on_disconnect: Any = None
        self.on_close: Any = None

    def update(self) -> None:
        self.updates += 1

    async def push_route(self, route: str) -> None:
        self.route = route
        if self.on_route_change is not None:
            await self.on_route_change(SimpleNamespace(route=route))


class MemoryStore:
    """A CredentialStore in memory; ``saved`` counts the saves."""

    def __init__(self, url: str | None = None, token: str | None = None) -> None:
        self.url = url
        self.token = token
        self.saved = 0

    async def load(self) -> Remembered:
        return Remembered(self.url, self.token)

    async def save(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.saved += 1

    async def forget(self) -> None:
        self.url = self.token = None


class Recorder:
    """The real connector, counting calls and keeping the planes it opened."""

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.calls: list[str] = []
        self.planes: list[RemoteControlPlane] = []
        self._gate = gate

    async def __call__(self, url: str, token: str) -> RemoteControlPlane:
        self.calls.append(url)
        if self._gate is not None:
            await self._gate.wait()
        plane = await connect_remote(url, token)
        self.planes.append(plane)
        return plane


def walk(control: object, visible_only: bool = True) -> Iterator[ft.BaseControl]:
    if not isinstance(control, ft.BaseControl):
        return
    if visible_only and isinstance(control, ft.Control) and not control.visible:
        return
    yield control
    for f in dataclasses.fields(control):
        value = getattr(control, f.name, None)
        for item in value if isinstance(value, list) else [value]:
            yield from walk(item, visible_only)


def page_texts(page: FakePage) -> list[str]:
    return [c.value for root in page.controls for c in walk(root)
            if isinstance(c, ft.Text) and c.value]


def field(page: FakePage, label: str) -> ft.TextField:
    return next(c for root in page.controls for c in walk(root)
                if isinstance(c, ft.TextField) and c.label == label)


def button(page: FakePage, text: str) -> Any:
    return next(c for root in page.controls for c in walk(root)
                if isinstance(c, ft.FilledButton | ft.TextButton) and c.content == text)


async def press(page: FakePage, text: str) -> None:
    await button(page, text).on_click(None)


async def connect_with(page: FakePage, url: str, token: str) -> None:
    field(page, "Gateway URL").value = url
    field(page, "API token").value = token
    await press(page, "Connect")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture
async def host(tmp_path: Path, fake_llm: FakeOpenAI) -> AsyncIterator[GatewayHost]:
    config = tmp_path / "pyclaw.yaml"
    config.write_text(yaml.safe_dump({"server": {"port": 0, "control_api": True},
                                      "providers": [provider_section(fake_llm)],
                                      # the Chat view needs the channel called "local"
                                      "channels": {"local": {"type": "local"},
                                                   CHANNEL: {"type": "local"}}}))
    running = await GatewayHost.start(config, tmp_path / "data")
    yield running
    await running.stop()


@pytest.fixture
def gateway(host: GatewayHost) -> tuple[str, str]:
    """(URL, token) of the running gateway's control API."""
    assert host.server is not None
    token = host.runtime.secrets.get(ADMIN_TOKEN_KEY)
    assert token
    return host.server.url, token


@pytest.fixture
def monitor_token(host: GatewayHost) -> str:
    """The read-only token, what `pyclaw monitor-token` prints and a phone should hold."""
    token = host.runtime.secrets.get(MONITOR_TOKEN_KEY)
    assert token
    return token


OpenMonitor = Callable[..., Awaitable[FakePage]]


@pytest.fixture
async def open_monitor() -> AsyncIterator[OpenMonitor]:
    """Run the monitor's page main on a FakePage; every page is closed at teardown."""
    pages: list[FakePage] = []

    async def open_(store: MemoryStore, connector: Recorder, *, url: str | None = None,
                    token: str | None = None) -> FakePage:
        page = FakePage()
        pages.append(page)
        main = make_monitor_main(settings=AppSettings(mode="monitor"), url=url, token=token,
                                 connector=connector, store_factory=lambda: store)
        await main(page)  # type: ignore[arg-type]
        return page

    yield open_
    for page in pages:
        await page.on_close(None)


def live_tasks() -> set[str]:
    return {t.get_name() for t in asyncio.all_tasks()
            if t.get_name().startswith(("ui-live:", "remote-plane:")) and not t.done()}


def on_connect_screen(page: FakePage) -> bool:
    return "Connect to a gateway" in page_texts(page)


# -- failures, explained -------------------------------------------------------------------


async def test_wrong_token_says_401_and_how_to_get_the_token_and_never_shows_it(
        open_monitor: OpenMonitor, gateway: tuple[str, str],
        caplog: pytest.LogCaptureFixture) -> None:
    url, _ = gateway
    store, connector = MemoryStore(), Recorder()
    page = await open_monitor(store, connector)
    caplog.set_level(logging.DEBUG)

    await connect_with(page, url, WRONG_TOKEN)

    assert connector.calls == [url]
    assert on_connect_screen(page)
    error = next(t for t in page_texts(page) if "refused" in t)
    assert error.startswith(f"The gateway at {url} refused this token")
    assert "pyclaw monitor-token" in error
    assert not any(WRONG_TOKEN in t for t in page_texts(page))
    assert WRONG_TOKEN not in caplog.text
    assert (store.url, store.token, store.saved) == (None, None, 0)
    assert not button(page, "Connect").disabled
    assert not field(page, "API token").disabled


async def test_closed_port_says_unreachable_with_the_url_and_the_server_settings(
        open_monitor: OpenMonitor, gateway: tuple[str, str]) -> None:
    _, token = gateway
    url = f"http://127.0.0.1:{free_port()}"
    page = await open_monitor(MemoryStore(), Recorder())

    await connect_with(page, url + "/", token)

    error = next(t for t in page_texts(page) if "Could not reach" in t)
    assert error.startswith(f"Could not reach {url} (")
    assert "server.control_api: true" in error and "0.0.0.0" in error
    assert "127.0.0.1 is this device itself" in error
    assert token not in " ".join(page_texts(page))
    assert field(page, "Gateway URL").value == url  # normalised in place


@pytest.mark.parametrize(("typed", "says"), [
    ("", "Enter the gateway's URL"),
    ("ftp://192.168.1.20:8787", "must start with http:// or https://, not ftp://"),
    ("http://192.168.1.20:99999", "port after ':' must be a number from 1 to 65535"),
    ("http://192.168.1.20:87a7", "port after ':' must be a number from 1 to 65535"),
    ("http://:8787", "has no host name"),
    ("http://192.168.1.20 :8787", "must not contain spaces"),
    ("http://me:secret@192.168.1.20:8787", "Leave the token out of the URL"),
    ("http://192.168.1.20:8787/?token=abc", "without ? or #"),
])
async def test_malformed_url_is_refused_before_any_request(
        open_monitor: OpenMonitor, typed: str, says: str) -> None:
    connector = Recorder()
    page = await open_monitor(MemoryStore(), connector)
    await connect_with(page, typed, "some-token")
    assert connector.calls == []
    assert any(says in t for t in page_texts(page)), page_texts(page)


async def test_missing_token_is_asked_for_before_any_request(
        open_monitor: OpenMonitor) -> None:
    connector = Recorder()
    page = await open_monitor(MemoryStore(), connector)
    await connect_with(page, "192.168.1.20:8787", "   ")
    assert connector.calls == []
    assert any("Enter the API token" in t and "pyclaw monitor-token" in t
               for t in page_texts(page))


def test_urls_are_normalised() -> None:
    assert normalize_url(" 192.168.1.20:8787 ") == "http://192.168.1.20:8787"
    assert normalize_url("localhost:8787") == "http://localhost:8787"
    assert normalize_url("https://gw.example.org/pyclaw/") == "https://gw.example.org/pyclaw"
    assert normalize_url("http://[::1]:8787") == "http://[::1]:8787"


async def test_the_ring_turns_and_the_form_is_locked_while_connecting(
        open_monitor: OpenMonitor, gateway: tuple[str, str]) -> None:
    url, token = gateway
    gate = asyncio.Event()
    connector = Recorder(gate)
    page = await open_monitor(MemoryStore(), connector)
    field(page, "Gateway URL").value = url
    field(page, "API token").value = token
    pressing = asyncio.create_task(press(page, "Connect"), name="test:press-connect")
    await eventually(lambda: connector.calls)
    assert any(t == f"Connecting to {url}…" for t in page_texts(page))
    assert button(page, "Connect").disabled and field(page, "Gateway URL").disabled
    assert any(isinstance(c, ft.ProgressRing) for root in page.controls for c in walk(root))
    await press(page, "Connect")  # a second press while busy does nothing
    assert connector.calls == [url]
    gate.set()
    await pressing
    assert not on_connect_screen(page)


# -- connected, remembered, disconnected ---------------------------------------------------


async def test_right_token_mounts_the_shell_on_the_gateway_and_remembers_it(
        open_monitor: OpenMonitor, gateway: tuple[str, str]) -> None:
    url, token = gateway
    store = MemoryStore()
    page = await open_monitor(store, Recorder())

    await connect_with(page, url, token)

    assert not on_connect_screen(page)
    texts = page_texts(page)
    assert f"Monitoring {url}" in texts
    assert any(CHANNEL in t for t in texts), texts  # the gateway's channel on the dashboard
    assert page.route == "/dashboard"
    rail = [c for c in walk(page.controls[0]) if isinstance(c, ft.NavigationRail)]
    assert [d.label for d in rail[0].destinations][:2] == ["Dashboard", "Channels"]
    assert (store.url, store.token) == (url, token)


async def test_remembered_gateway_connects_without_typing(
        open_monitor: OpenMonitor, gateway: tuple[str, str]) -> None:
    url, token = gateway
    connector = Recorder()
    page = await open_monitor(MemoryStore(url, token), connector)
    assert connector.calls == [url]
    assert not on_connect_screen(page)
    assert any(CHANNEL in t for t in page_texts(page))


async def test_remembered_gateway_that_fails_leaves_the_form_filled_with_the_reason(
        open_monitor: OpenMonitor, gateway: tuple[str, str]) -> None:
    url, _ = gateway
    page = await open_monitor(MemoryStore(url, WRONG_TOKEN), Recorder())
    assert on_connect_screen(page)
    assert field(page, "Gateway URL").value == url
    assert any("refused this token" in t for t in page_texts(page))
    assert button(page, "Forget this gateway").visible


async def test_explicit_url_uses_the_stored_token_only_for_the_same_gateway(
        open_monitor: OpenMonitor, gateway: tuple[str, str]) -> None:
    url, token = gateway
    other = f"http://127.0.0.1:{free_port()}"
    connector = Recorder()
    page = await open_monitor(MemoryStore(other, "token-for-the-other-gateway"), connector,
                              url=url)
    assert connector.calls == []  # no token for this URL: the form asks
    assert field(page, "API token").value == ""

    connector = Recorder()
    page = await open_monitor(MemoryStore(url + "/", token), connector, url=url)
    assert connector.calls == [url] and not on_connect_screen(page)


async def test_disconnect_goes_back_closes_the_plane_and_forgets_only_when_asked(
        open_monitor: OpenMonitor, gateway: tuple[str, str], host: GatewayHost) -> None:
    url, token = gateway
    store, connector = MemoryStore(), Recorder()
    page = await open_monitor(store, connector)
    await connect_with(page, url, token)
    await eventually(lambda: host.runtime.gateway.bus.subscribers >= 1)  # the live stream
    assert live_tasks() == {"ui-live:test-session", "remote-plane:events"}
    assert page.on_resize is not None

    await press(page, "Disconnect")

    assert on_connect_screen(page)
    assert page.navigation_bar is None and page.on_resize is None
    with pytest.raises(RuntimeError, match="closed"):
        await connector.planes[0].channels()
    await eventually(lambda: not live_tasks())  # the live session and its stream stopped
    assert (store.url, store.token) == (url, token)  # nothing forgotten
    assert field(page, "API token").value == token

    await press(page, "Forget this gateway")
    assert (store.url, store.token) == (None, None)
    assert field(page, "API token").value == ""
    assert field(page, "Gateway URL").value == url

    await connect_with(page, url, token)  # and back again
    assert not on_connect_screen(page) and len(connector.planes) == 2


# -- how the monitor is chosen -------------------------------------------------------------


def test_monitor_mode_from_flet_toml_or_when_the_gateway_cannot_run(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert wants_monitor(AppSettings(mode="monitor"))
    assert not wants_monitor(AppSettings(mode="local"))
    monkeypatch.setattr(app, "GATEWAY_MODULES", ("pydantic", "pyclaw_no_such_module"))
    assert wants_monitor(AppSettings(mode="local"))


def test_pyclaw_monitor_takes_an_optional_url(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["monitor"])
    assert (args.url, args.token) == (None, None)
    args = build_parser().parse_args(["monitor", "http://10.0.0.2:8787", "--token", "t"])
    assert (args.url, args.token) == ("http://10.0.0.2:8787", "t")
    assert _run_monitor(None, "t", web=True, host=None, port=None) == 2
    assert "--token needs the gateway's URL" in capsys.readouterr().err


# -- read-only and admin connections -------------------------------------------------------


def icon_button(page: FakePage, tooltip: str) -> ft.IconButton:
    return next(c for root in page.controls for c in walk(root)
                if isinstance(c, ft.IconButton) and c.tooltip == tooltip)


async def test_a_read_only_token_connects_says_what_it_cannot_do_and_refuses_clearly(
        open_monitor: OpenMonitor, gateway: tuple[str, str], monitor_token: str,
        host: GatewayHost) -> None:
    url, _ = gateway
    page = await open_monitor(MemoryStore(), Recorder())
    await connect_with(page, url, monitor_token)

    assert not on_connect_screen(page)
    texts = page_texts(page)
    assert f"Monitoring {url} (read-only)" in texts
    assert read_only_notice() in texts and "pyclaw monitor-token --admin" in read_only_notice()
    assert any(CHANNEL in t for t in texts)  # watching works

    await page.push_route("/channels")
    await icon_button(page, f"Stop {CHANNEL}").on_click(SimpleNamespace(page=page))
    refusal = next(t for t in page_texts(page) if t.startswith("That did not work"))
    assert "needs the admin token" in refusal and "--admin" in refusal
    assert host.runtime.gateway.channels[CHANNEL].state.value == "online"  # nothing stopped


async def test_the_admin_token_has_no_read_only_notice(
        open_monitor: OpenMonitor, gateway: tuple[str, str]) -> None:
    url, token = gateway
    page = await open_monitor(MemoryStore(), Recorder())
    await connect_with(page, url, token)
    texts = page_texts(page)
    assert f"Monitoring {url}" in texts and read_only_notice() not in texts
    assert plain_http_notice() not in texts  # http to this device itself is not on the network


def test_plain_http_to_another_machine_is_said_in_the_bar() -> None:
    async def nothing(e: object) -> None:
        return None

    def texts(bar: ft.Control) -> list[str]:
        return [c.value for c in walk(bar) if isinstance(c, ft.Text) and c.value]

    assert plain_http_notice() in texts(gateway_bar("http://192.168.1.20:8787", nothing))
    assert plain_http_notice() not in texts(gateway_bar("https://192.168.1.20:8787", nothing))
    assert plain_http_notice() not in texts(gateway_bar("http://127.0.0.1:8787", nothing))
