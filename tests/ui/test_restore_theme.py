"""The remembered theme goes on the page before its first update (views.app.restore_theme):
the Settings view restores it too, but only once every view has loaded, and a reload in a
new session showed the light theme for seconds (tests/ui/test_browser_usage_settings.py
sees it drawn in a new tab). A theme chosen while that view still loads stands."""

from __future__ import annotations

import asyncio

import flet as ft
import pytest

from tests.ui.test_language_choice import BrokenStore
from tests.ui.test_usage_settings import MemoryThemeStore, SettingsPlane
from views.app import restore_theme
from views.settings_view import SettingsView


class ThemedPage:
    """What restore_theme touches of a page: its theme mode (flet.toml's to start with)."""

    def __init__(self, theme_mode: ft.ThemeMode = ft.ThemeMode.SYSTEM) -> None:
        self.theme_mode = theme_mode
        self.updates = 0

    def update(self) -> None:
        self.updates += 1


class SlowStore(MemoryThemeStore):
    """A client that answers a read only when told (a busy browser, a reconnect)."""

    def __init__(self, value: str | None) -> None:
        super().__init__(value)
        self.reading = asyncio.Event()
        self.answer = asyncio.Event()

    async def get(self) -> str | None:
        value = self.value  # what the client held when asked
        self.reading.set()
        await self.answer.wait()
        return value


@pytest.mark.parametrize(("remembered", "drawn"), [
    ("dark", ft.ThemeMode.DARK),
    ("light", ft.ThemeMode.LIGHT),
    ("system", ft.ThemeMode.SYSTEM),
])
async def test_a_remembered_theme_is_on_the_page_before_it_is_drawn(
        remembered: str, drawn: ft.ThemeMode) -> None:
    page = ThemedPage(ft.ThemeMode.LIGHT if drawn is ft.ThemeMode.DARK else ft.ThemeMode.DARK)
    assert await restore_theme(page, MemoryThemeStore(remembered)) == remembered  # type: ignore[arg-type]
    assert page.theme_mode is drawn


@pytest.mark.parametrize("store", [MemoryThemeStore(None), MemoryThemeStore("sepia"),
                                   BrokenStore()], ids=["nothing", "unknown", "unreadable"])
async def test_nothing_usable_remembered_keeps_the_configured_theme(store: object) -> None:
    page = ThemedPage(ft.ThemeMode.LIGHT)
    assert await restore_theme(page, store) is None  # type: ignore[arg-type]
    assert page.theme_mode is ft.ThemeMode.LIGHT


async def test_a_theme_chosen_while_settings_loads_is_not_undone_by_the_load() -> None:
    store, page = SlowStore("dark"), ThemedPage(ft.ThemeMode.DARK)
    view = SettingsView(SettingsPlane(), theme_store=store)
    restoring = asyncio.create_task(view.restore_theme(page))  # type: ignore[arg-type]
    await store.reading.wait()
    await view.set_theme("light", page)  # type: ignore[arg-type]
    store.answer.set()
    await restoring
    assert page.theme_mode is ft.ThemeMode.LIGHT and view.theme_picker.selected == ["light"]
    assert store.value == "light"
