"""The Flet entry: a ``main`` per page, and ``run`` serving it on the desktop or in a browser."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import flet as ft

from pyclaw_app.control import ControlPlane
from views.live import LiveSession
from views.settings import APP_DIR, AppSettings, load_settings
from views.shell import Shell
from views.style import SEED_COLOR

__all__ = ["make_main", "run"]

_log = logging.getLogger(__name__)

PlaneFactory = Callable[[], Awaitable[ControlPlane]]
PageMain = Callable[[ft.Page], Awaitable[None]]

ASSETS_DIR = APP_DIR / "assets"
_THEME_MODES = {"system": ft.ThemeMode.SYSTEM, "light": ft.ThemeMode.LIGHT,
                "dark": ft.ThemeMode.DARK}


def make_main(get_plane: PlaneFactory, *, settings: AppSettings | None = None) -> PageMain:
    """The Flet ``main`` for one page: get the plane, build the shell, start the live loop."""
    app_settings = settings or load_settings()

    async def main(page: ft.Page) -> None:
        _configure_page(page, app_settings)
        try:
            plane = await get_plane()
        except Exception as exc:  # noqa: BLE001 - shown on the page and logged with traceback
            _log.exception("could not open the control plane")
            page.add(ft.Container(padding=24, content=ft.Text(
                f"pyclaw could not start its gateway: {exc}", color=ft.Colors.ERROR,
                selectable=True)))
            return
        await _mount(page, plane)

    return main


def run(get_plane: PlaneFactory, *, web: bool = False, host: str | None = None,
        port: int | None = None) -> None:
    """Serve the app: a desktop window, or (``web``) a browser page on host:port.

    On a Linux machine without a display, Flet itself serves the web page and
    does not try to open a browser; with a display it opens the default one.
    """
    settings = load_settings()
    main = make_main(get_plane, settings=settings)
    if web:
        ft.run(main, view=ft.AppView.WEB_BROWSER, host=host or settings.web_host,
               port=port or settings.web_port, no_cdn=True, assets_dir=str(ASSETS_DIR))
    else:
        ft.run(main, view=ft.AppView.FLET_APP, no_cdn=True, assets_dir=str(ASSETS_DIR))


def _configure_page(page: ft.Page, settings: AppSettings) -> None:
    page.title = "pyclaw"
    page.theme_mode = _THEME_MODES[settings.theme_mode]
    page.theme = ft.Theme(color_scheme_seed=SEED_COLOR)
    page.dark_theme = ft.Theme(color_scheme_seed=SEED_COLOR)
    page.padding = 0
    page.spacing = 0
    if not page.web:
        page.window.width = settings.window_width
        page.window.height = settings.window_height
        page.window.min_width = settings.window_min_width
        page.window.min_height = settings.window_min_height


async def _mount(page: ft.Page, plane: ControlPlane) -> None:
    shell = Shell(plane)
    live = LiveSession(plane, list(shell.panels.values()), page.update,
                       name=f"ui-live:{page.session.id}")

    wide: list[bool] = []  # the last layout's kind; a resize only rebuilds when it flips

    def relayout(width: float | None) -> None:
        if wide and wide[0] == Shell.is_wide(width):
            return
        wide[:] = [Shell.is_wide(width)]
        body, bar = shell.layout(width)
        page.controls = [body]
        page.navigation_bar = bar

    async def on_route_change(e: ft.RouteChangeEvent) -> None:
        route = shell.show(e.route)
        if route != e.route:
            await page.push_route(route)

    async def on_nav(e: ft.Event[ft.Control]) -> None:
        await page.push_route(shell.route_at(int(e.control.selected_index or 0)))

    async def on_connect(e: ft.Event[ft.Page]) -> None:
        await live.start()

    async def on_disconnect(e: ft.Event[ft.Page]) -> None:
        await live.stop()

    shell.rail.on_change = on_nav
    shell.bar.on_change = on_nav
    page.on_resize = lambda e: relayout(e.width)
    page.on_route_change = on_route_change
    page.on_connect = on_connect
    page.on_disconnect = on_disconnect
    page.on_close = on_disconnect

    route = shell.show(page.route)
    relayout(page.width)
    page.update()
    if route != page.route:
        await page.push_route(route)
    await live.start()
