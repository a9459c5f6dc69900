"""The Flet entry: a ``main`` per page, and ``run`` serving it on the desktop or in a browser.

Two kinds of page: the control panel on a plane the caller opens (the local
gateway, ``make_main``), and the monitor (``make_monitor_main``), which starts on
the connect screen and mounts the same shell on a RemoteControlPlane. Nothing
here imports the gateway: the Android monitor build cannot carry it.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Awaitable, Callable

import flet as ft

from pyclaw_app.control import ControlPlane
from views.connect import (
    ClosablePlane,
    Connector,
    ConnectView,
    CredentialStore,
    FletCredentialStore,
    connect_remote,
    gateway_bar,
)
from views.first_run import SETUP_ROUTE
from views.fonts import CODE_FONTS, FALLBACK_FONTS, text_theme
from views.i18n import t
from views.launch import plan_launch, run_on_fast_loop
from views.live import LiveSession
from views.settings import APP_DIR, AppSettings, load_settings
from views.settings_view import (
    THEME_MODES,
    ClientThemeStore,
    ThemeStore,
    restore_language,
    when_language_changes,
)
from views.shell import Shell
from views.style import SEED_COLOR

__all__ = ["GATEWAY_MODULES", "gateway_importable", "make_main", "make_monitor_main",
           "restore_theme", "run", "run_monitor", "wants_monitor"]

_log = logging.getLogger(__name__)

PlaneFactory = Callable[[], Awaitable[ControlPlane]]
PageMain = Callable[[ft.Page], Awaitable[None]]
StoreFactory = Callable[[], CredentialStore]

ASSETS_DIR = APP_DIR / "assets"
# What the in-process gateway needs and the Android build does not have (design.md §5).
GATEWAY_MODULES = ("pydantic", "aiosqlite")


def gateway_importable() -> bool:
    """Whether this install can run the gateway in-process; looks, does not import."""
    return all(importlib.util.find_spec(name) is not None for name in GATEWAY_MODULES)


def wants_monitor(settings: AppSettings) -> bool:
    """Monitor mode: asked for in flet.toml, or the only one possible (the Android build)."""
    return settings.mode == "monitor" or not gateway_importable()


def make_main(get_plane: PlaneFactory, *, settings: AppSettings | None = None) -> PageMain:
    """The Flet ``main`` for one page: get the plane, build the shell, start the live loop."""
    app_settings = settings or load_settings()

    async def main(page: ft.Page) -> None:
        _configure_page(page, app_settings)
        await restore_language(page)  # before any view is built: they read it as they are
        await restore_theme(page)  # in the page's first update, not after every view loaded
        try:
            plane = await get_plane()
        except Exception as exc:  # noqa: BLE001 - shown on the page and logged with traceback
            _log.exception("could not open the control plane")
            page.add(ft.Container(padding=24, content=ft.Text(
                t("pyclaw could not start its gateway: {error}", error=exc), color=ft.Colors.ERROR,
                selectable=True)))
            return
        mounted = _Mounted(page, plane)

        async def on_close(e: ft.Event[ft.Page]) -> None:
            await mounted.unmount()

        page.on_close = on_close
        await mounted.mount()

    return main


def make_monitor_main(*, settings: AppSettings | None = None, url: str | None = None,
                      token: str | None = None, connector: Connector = connect_remote,
                      store_factory: StoreFactory = FletCredentialStore) -> PageMain:
    """The monitor's ``main``: the connect screen, then the shell on the gateway it reached.

    ``url``/``token`` (from ``pyclaw monitor URL --token T``) connect at once;
    without them the last gateway this device remembers does. A failure leaves
    the connect screen up with the reason.
    """
    app_settings = settings or load_settings()

    async def main(page: ft.Page) -> None:
        _configure_page(page, app_settings)
        await restore_language(page)
        await restore_theme(page)
        monitor = _Monitor(page, connector, store_factory())
        await monitor.start(url, token)

    return main


async def restore_theme(page: ft.Page | ft.BasePage, store: ThemeStore | None = None
                        ) -> str | None:
    """The client's remembered theme on ``page`` before its first update; returns it (None:
    nothing remembered, or a store that cannot be read, and flet.toml's theme stays).

    The Settings view restores it too, but only as it loads, and the page draws that after
    every view has loaded: a reload in a new session showed the light theme for seconds
    first (over ten on a busy machine).
    """
    try:
        mode = await (store or ClientThemeStore()).get()
    except Exception as exc:  # noqa: BLE001 - the page keeps flet.toml's theme
        _log.warning("could not read the remembered theme: %s", exc)
        return None
    if mode in THEME_MODES:
        page.theme_mode = THEME_MODES[mode]
        return mode
    return None


def run(get_plane: PlaneFactory, *, web: bool = False, host: str | None = None,
        port: int | None = None, settings: AppSettings | None = None) -> None:
    """Serve the panel on ``get_plane``: a desktop window, or (``web``) a browser page."""
    app_settings = settings or load_settings()
    _serve(make_main(get_plane, settings=app_settings), app_settings, web, host, port)


def run_monitor(*, web: bool = False, host: str | None = None, port: int | None = None,
                url: str | None = None, token: str | None = None,
                settings: AppSettings | None = None) -> None:
    """Serve the monitor: the connect screen (or ``url``/``token`` at once) and the shell."""
    app_settings = settings or load_settings()
    _serve(make_monitor_main(settings=app_settings, url=url, token=token), app_settings, web,
           host, port)


def _serve(main: PageMain, settings: AppSettings, web: bool, host: str | None,
           port: int | None) -> None:
    """A desktop window, or the browser mode when asked or when no window can open here
    (views/launch.py); raises LaunchError, before anything starts, when its port is taken."""
    launch = plan_launch(web=web, host=host or settings.web_host, port=port or settings.web_port)
    if launch.web:
        print(launch.note, flush=True)
        run_on_fast_loop(ft.run_async(main, view=ft.AppView.WEB_BROWSER, host=launch.host,
                                      port=launch.port, no_cdn=True,
                                      assets_dir=str(ASSETS_DIR)))
    else:
        run_on_fast_loop(ft.run_async(main, view=ft.AppView.FLET_APP, no_cdn=True,
                                      assets_dir=str(ASSETS_DIR)))


def _configure_page(page: ft.Page, settings: AppSettings) -> None:
    page.title = "pyclaw"
    page.theme_mode = THEME_MODES[settings.theme_mode]
    page.fonts = {**FALLBACK_FONTS, **CODE_FONTS}  # every script readable offline (views/fonts.py)
    page.theme = ft.Theme(color_scheme_seed=SEED_COLOR, text_theme=text_theme(),
                          primary_text_theme=text_theme())
    page.dark_theme = ft.Theme(color_scheme_seed=SEED_COLOR,
                               text_theme=text_theme(ft.Colors.ON_SURFACE),
                               primary_text_theme=text_theme(ft.Colors.ON_SURFACE))
    page.padding = 0
    page.spacing = 0
    if not page.web:
        page.window.width = settings.window_width
        page.window.height = settings.window_height
        page.window.min_width = settings.window_min_width
        page.window.min_height = settings.window_min_height


class _Mounted:
    """The shell for one plane on a page, with its live session; ``unmount`` takes both off.

    ``header`` goes above the shell in every layout (the monitor's gateway bar).
    """

    def __init__(self, page: ft.Page, plane: ControlPlane, header: ft.Control | None = None
                 ) -> None:
        self._page = page
        self._plane = plane
        self._header = header
        self._build()

    def _build(self) -> None:
        """A new shell and its live session: its views speak the page's language of now."""
        self.shell = Shell(self._plane)
        self.live = LiveSession(self._plane, self.shell.live_panels, self._page.update,
                                name=f"ui-live:{self._page.session.id}")
        self._wide: bool | None = None  # the last layout's kind; a resize rebuilds on a flip

    async def rebuild(self) -> None:
        """The shell afresh on the same route (Settings changed the language)."""
        await self.live.stop()
        self._build()
        await self.mount()

    async def mount(self) -> None:
        page, shell = self._page, self.shell
        when_language_changes(page, self.rebuild)
        shell.rail.on_change = self._on_nav
        shell.bar.on_change = self._on_bar
        page.on_resize = self._on_resize
        page.on_route_change = self._on_route_change
        page.on_connect = self._on_connect
        page.on_disconnect = self._on_disconnect
        requested = page.route
        route = shell.show(page.route)
        self._relayout(page.width)
        page.update()
        if route != page.route:
            await page.push_route(route)
        await self.live.start()
        # known once the guide has loaded; not if the owner went elsewhere meanwhile
        if shell.route == route and shell.first_run_due(requested):
            await page.push_route(SETUP_ROUTE)

    async def unmount(self) -> None:
        page = self._page
        page.on_resize = page.on_route_change = None
        page.on_connect = page.on_disconnect = None
        await self.live.stop()

    def _relayout(self, width: float | None) -> None:
        self.shell.fit_width(width)
        wide = Shell.is_wide(width)
        if self._wide == wide:
            return
        self._wide = wide
        body, bar = self.shell.layout(width)
        if self._header is not None:
            body = ft.Column(expand=True, spacing=0, controls=[self._header, body])
        self._page.controls = [body]
        self._page.navigation_bar = bar

    def _on_resize(self, e: ft.PageResizeEvent) -> None:
        self._relayout(e.width)

    async def _on_route_change(self, e: ft.RouteChangeEvent) -> None:
        route = self.shell.show(e.route)
        if route != e.route:
            await self._page.push_route(route)
        elif await self.shell.load_route():  # a conversation the route names
            self._page.update()

    async def _on_nav(self, e: ft.Event[ft.Control]) -> None:
        await self._page.push_route(self.shell.route_at(int(e.control.selected_index or 0)))

    async def _on_bar(self, e: ft.Event[ft.Control]) -> None:
        """The phone's bar: its entries are not the rail's (past four, "More")."""
        await self._page.push_route(self.shell.bar_route_at(int(e.control.selected_index or 0)))

    async def _on_connect(self, e: ft.Event[ft.Page]) -> None:
        await self.live.start()

    async def _on_disconnect(self, e: ft.Event[ft.Page]) -> None:
        await self.live.stop()


class _Monitor:
    """One page of the monitor: the connect screen, or the shell on the plane it connected."""

    def __init__(self, page: ft.Page, connector: Connector, store: CredentialStore) -> None:
        self._page = page
        self.view = ConnectView(connector, store, self._connected, refresh=page.update)
        self._mounted: _Mounted | None = None
        self._plane: ClosablePlane | None = None

    async def start(self, url: str | None, token: str | None) -> None:
        self._page.on_close = self._on_close
        self._show_connect()
        await self.view.open(url, token)

    async def disconnect(self) -> None:
        """Stop the live session and close the plane; what is remembered stays."""
        mounted, plane = self._mounted, self._plane
        self._mounted = self._plane = None
        if mounted is not None:
            await mounted.unmount()
        if plane is not None:
            await plane.close()

    def _show_connect(self) -> None:
        self._page.controls = [self.view.root]
        self._page.navigation_bar = None
        self._page.update()

    async def _connected(self, plane: ClosablePlane, url: str) -> None:
        self._plane = plane
        bar = gateway_bar(url, self._on_disconnect, read_only=plane.read_only)
        self._mounted = _Mounted(self._page, plane, header=bar)
        try:
            await self._mounted.mount()
        except BaseException:
            await self.disconnect()
            self._show_connect()
            raise

    async def _on_disconnect(self, e: ft.Event[ft.Control] | None = None) -> None:
        await self.disconnect()
        self._show_connect()

    async def _on_close(self, e: ft.Event[ft.Page]) -> None:
        await self.disconnect()
