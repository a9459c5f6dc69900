"""The language choice in Settings: remembered like the theme, restored before the shell
is built, applied to the page at once (its shell rebuilt), and harmless when nothing can
be remembered."""

from __future__ import annotations

import flet as ft
import pytest

from tests.ui.test_usage_settings import MemoryThemeStore, SettingsPlane
from views import i18n
from views.i18n import language, set_language, t
from views.settings_view import (
    SYSTEM_LANGUAGE,
    SettingsView,
    restore_language,
    when_language_changes,
)
from views.shell import Shell


class FakePage:
    """Enough of a page for the choice: updates are counted (and it can be weakly referenced,
    as views.i18n keeps a page's language only as long as the page)."""

    def __init__(self) -> None:
        self.updates = 0

    def update(self) -> None:
        self.updates += 1


class BrokenStore:
    """A store with no page context behind it."""

    async def get(self) -> str | None:
        raise RuntimeError("no page")

    async def set(self, mode: str) -> None:
        raise RuntimeError("no page")


def _view(store: object) -> SettingsView:
    return SettingsView(SettingsPlane(), theme_store=MemoryThemeStore(),
                        language_store=store)  # type: ignore[arg-type]


async def test_choosing_chinese_remembers_it_and_rebuilds_the_page(
        monkeypatch: pytest.MonkeyPatch) -> None:
    store, page, rebuilt = MemoryThemeStore(), FakePage(), []
    monkeypatch.setattr(i18n, "_current_page", lambda: page)  # handlers run in its context

    async def rebuild() -> None:
        rebuilt.append(t("Settings"))

    when_language_changes(page, rebuild)  # type: ignore[arg-type]
    view = _view(store)
    await view.load()
    assert view.language_picker.value == SYSTEM_LANGUAGE
    await view.set_language_choice("zh-CN", page)  # type: ignore[arg-type]
    assert store.value == "zh-CN" and view.language_picker.value == "zh-CN"
    assert language(page) == "zh-CN" and rebuilt == ["设置"]


async def test_a_remembered_language_is_restored_before_the_shell_is_built() -> None:
    page = FakePage()
    remembered = MemoryThemeStore("zh-CN")
    assert await restore_language(page, remembered) == "zh-CN"  # type: ignore[arg-type]
    assert language(page) == "zh-CN"
    set_language(page, "zh-CN")
    again = _view(MemoryThemeStore("zh-CN"))
    await again.restore_language_choice()
    assert again.language_picker.value == "zh-CN"


async def test_system_or_nothing_remembered_keeps_the_system_language() -> None:
    for remembered in (None, SYSTEM_LANGUAGE):
        page = FakePage()
        store = MemoryThemeStore(remembered)
        assert await restore_language(page, store) == SYSTEM_LANGUAGE  # type: ignore[arg-type]
        assert language(page) == "en"  # the tests run with LANG=C.UTF-8


async def test_a_store_that_fails_does_not_break_settings() -> None:
    page = FakePage()
    assert await restore_language(page, BrokenStore()) == SYSTEM_LANGUAGE  # type: ignore[arg-type]
    view = _view(BrokenStore())
    await view.load()
    await view.set_language_choice("en", page)  # type: ignore[arg-type]
    assert language(page) == "en" and page.updates == 1  # no rebuild registered: updated


def test_a_shell_built_in_chinese_names_its_destinations_in_chinese(
        monkeypatch: pytest.MonkeyPatch) -> None:
    page = ft.Page.__new__(ft.Page)
    set_language(page, "zh-CN")
    monkeypatch.setattr(i18n, "_current_page", lambda: page)  # built in the page's context
    shell = Shell(SettingsPlane())
    labels = [d.label for d in shell.rail.destinations]
    assert "设置" in labels and "渠道" in labels
