"""The phone's bottom bar: seven labels wrapped in 390 px ("Dashboar/d"), so it holds the
first four destinations and "More", a page listing the rest; the rail keeps all seven.

Control-level (no browser): which entry a route selects, where each entry leads, what the
More page lists and opens, that failures under More are counted on it, and both languages.
tests/ui/test_browser_screenshot_matrix.py walks every destination at phone width in Chromium.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import flet as ft
import pytest

from tests.ui.fake_plane import FakeControlPlane
from views import i18n
from views.i18n import set_language
from views.shell import DESTINATIONS, MORE_ROUTE, PHONE_BAR_MAX, Shell

ROUTES = [d.route for d in DESTINATIONS]


class FakePage:
    """What a More row uses of a page: the routes it pushes (and a language to speak)."""

    def __init__(self) -> None:
        self.routes: list[str] = []

    async def push_route(self, route: str) -> None:
        self.routes.append(route)


@pytest.fixture
def shell() -> Shell:
    return Shell(FakeControlPlane())


@pytest.fixture
def chinese_page(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePage]:
    """A page in Simplified Chinese that ``t`` answers for (as inside its handlers)."""
    page = FakePage()
    set_language(page, "zh-CN")
    monkeypatch.setattr(i18n, "_current_page", lambda: page)
    yield page


def _bar_badge(entry: ft.NavigationBarDestination) -> str | None:
    counts = set()
    for icon in (entry.icon, entry.selected_icon):
        assert isinstance(icon, ft.Icon)
        badge = icon.badge
        counts.add(badge.label.value if isinstance(badge, ft.Badge)
                   and isinstance(badge.label, ft.Text) else None)
    (count,) = counts  # selected or not, the same count
    return count


def _row_titles(shell: Shell) -> list[str]:
    titles = [row.title for row in shell.more.rows]
    assert all(isinstance(title, ft.Text) for title in titles)
    return [str(title.value) for title in titles if isinstance(title, ft.Text)]


def test_the_bar_holds_four_destinations_and_more_and_the_rail_all_seven(shell: Shell) -> None:
    assert len(DESTINATIONS) > PHONE_BAR_MAX  # else there is nothing to put under More
    assert [d.label for d in shell.bar.destinations] == [
        "Dashboard", "Channels", "Chat", "Logs", "More"]
    assert len(shell.bar.destinations) == PHONE_BAR_MAX
    assert [d.label for d in shell.rail.destinations] == [d.label for d in DESTINATIONS]
    assert [shell.bar_route_at(i) for i in range(PHONE_BAR_MAX)] == [*ROUTES[:4], MORE_ROUTE]
    assert _row_titles(shell) == ["Schedules", "Usage", "Settings"]


@pytest.mark.parametrize(("route", "rail", "bar"), [
    ("/dashboard", 0, 0),
    ("/logs", 3, 3),
    ("/schedules", 4, 4),
    ("/usage", 5, 4),
    ("/settings", 6, 4),
    (MORE_ROUTE, None, 4),
    ("/conversation/message/1", 3, 3),  # opened from Logs, which stays selected
])
def test_a_route_selects_its_entry_or_more(shell: Shell, route: str, rail: int | None,
                                           bar: int) -> None:
    assert shell.show(route) == route
    assert (shell.rail.selected_index, shell.bar.selected_index) == (rail, bar)
    assert shell.more.root.visible is (route == MORE_ROUTE)
    assert (shell.current is shell.more) is (route == MORE_ROUTE)
    assert [p.root.visible for p in shell.panels.values()].count(True) == (route in ROUTES)


@pytest.mark.parametrize("row", range(3))
async def test_a_more_row_opens_its_destination(shell: Shell, row: int) -> None:
    page = FakePage()
    tile = shell.more.rows[row]
    assert tile.on_click is not None
    await tile.on_click(SimpleNamespace(page=page))  # type: ignore[arg-type]
    assert page.routes == [ROUTES[4 + row]]


def test_failures_under_more_are_counted_on_more(shell: Shell) -> None:
    more = shell.bar.destinations[-1]
    shell.show_badges({"/channels": 1, "/settings": 2})
    assert _bar_badge(shell.bar.destinations[1]) == "1" and _bar_badge(more) == "2"
    assert shell.badge("/settings") == "2"  # on the rail
    settings_icon = shell.more.rows[2].leading
    assert isinstance(settings_icon, ft.Icon) and isinstance(settings_icon.badge, ft.Badge)
    shell.show_badges({"/channels": 1})
    assert _bar_badge(more) is None and settings_icon.badge is None


def test_a_shell_of_five_destinations_needs_no_more() -> None:
    shell = Shell(FakeControlPlane(), DESTINATIONS[:PHONE_BAR_MAX])
    assert [d.label for d in shell.bar.destinations] == [
        d.label for d in DESTINATIONS[:PHONE_BAR_MAX]]
    assert shell.more.rows == []
    assert shell.show(MORE_ROUTE) == "/dashboard"  # nothing to list: the first destination


def test_the_bar_and_the_more_page_in_chinese(chinese_page: FakePage) -> None:
    shell = Shell(FakeControlPlane())
    assert [d.label for d in shell.bar.destinations] == ["仪表盘", "渠道", "聊天", "日志", "更多"]
    assert _row_titles(shell) == ["定时任务", "用量", "设置"]
