"""Dashboard tiles show the platform's logo, the one the Channels view and its catalog draw."""

from __future__ import annotations

import flet as ft
import pytest

from pyclaw_app.control import ChannelStatus
from tests.ui.fake_plane import FakeControlPlane
from views.channel_icons import icon_src
from views.dashboard import DashboardView

CHANNELS = [
    ChannelStatus("tg", "telegram", "Telegram", "send", "online"),
    ChannelStatus("irc", "irc", "IRC", "tag", "stopped"),
    ChannelStatus("gone", "no_such_type", "", "no_such_icon", "offline"),
]


async def _dashboard() -> DashboardView:
    view = DashboardView(FakeControlPlane(CHANNELS))
    await view.load()
    return view


async def test_a_telegram_tile_carries_the_telegram_logo_on_its_colour() -> None:
    view = await _dashboard()
    telegram = next(k for k in view.plane.channel_types() if k.type == "telegram")
    badge = view.tiles["tg"].icon
    assert isinstance(badge.content, ft.Image)
    assert badge.content.src == icon_src("telegram") == "icons/channels/telegram.svg"
    assert badge.bgcolor == telegram.brand_color


async def test_a_type_without_a_logo_or_unknown_here_gets_its_material_icon() -> None:
    view = await _dashboard()
    irc, gone = view.tiles["irc"].icon.content, view.tiles["gone"].icon.content
    assert isinstance(irc, ft.Icon) and isinstance(gone, ft.Icon)
    assert gone.icon == ft.Icons.FORUM  # an unknown icon name falls back


async def test_the_tile_names_its_state_and_age_in_chinese(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LC_ALL", "zh_CN.UTF-8")  # no page: the system's language
    view = await _dashboard()
    tile = view.tiles["tg"]
    assert (tile.state.value, tile.last.value) == ("在线", "暂无消息")
    assert view.tiles["gone"].state.value == "离线"
