"""The monitor's connect screen: a gateway URL and its API token, checked, remembered, connected.

This is what an Android monitor (and ``pyclaw monitor`` without a URL) opens on.
It imports only flet, httpx and the remote plane: the Android build carries
nothing else. The token is a secret: it goes into the platform's secure storage,
never into an error message or a log line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

import flet as ft
import flet_secure_storage as fss

from pyclaw_app.control import ControlPlane
from pyclaw_app.control.remote import (
    GatewayUnreachable,
    RemoteControlPlane,
    RemoteError,
    TokenRefused,
)
from views.i18n import t

__all__ = [
    "TOKEN_KEY",
    "URL_KEY",
    "ClosablePlane",
    "ConnectView",
    "CredentialStore",
    "FletCredentialStore",
    "Remembered",
    "connect_remote",
    "explain_failure",
    "gateway_bar",
    "normalize_url",
    "plain_http_notice",
    "read_only_notice",
]

_log = logging.getLogger(__name__)

T = TypeVar("T")


class ClosablePlane(ControlPlane, Protocol):
    """A plane the monitor opened and must close (RemoteControlPlane: its HTTP client);
    ``read_only`` when its token is the monitor token, which cannot change anything."""

    @property
    def read_only(self) -> bool: ...

    async def close(self) -> None: ...


Connector = Callable[[str, str], Awaitable[ClosablePlane]]
OnConnected = Callable[[ClosablePlane, str], Awaitable[None]]
Refresh = Callable[[], None]
Handler = Callable[[Any], Coroutine[Any, Any, None]]

# One Flet client (the desktop app) runs many Flet apps and shares their preferences:
# the keys carry the app id (Flet's client-storage advice).
URL_KEY = "dev.pyclaw.monitor.url"
TOKEN_KEY = "dev.pyclaw.monitor.token"
# Flet waits for a service call without a time-out; a client that cannot answer one (a build
# without the extension) must not hang the page's start.
STORE_TIMEOUT = 5.0
EXAMPLE_URL = "http://192.168.1.20:8787"
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _token_help() -> str:
    return t("run `pyclaw monitor-token` (read-only: watch) or `pyclaw monitor-token "
             "--admin` (full control) on the gateway's machine and paste what it prints")


def _setup_help() -> str:
    return t("On the gateway's machine: in its config set server.host to an address this "
             "device can reach (0.0.0.0 listens on all), server.control_api: true, and "
             "server.tls_cert and server.tls_key for https (or server.allow_insecure_http: "
             "true on a trusted network); start the gateway, then {token_help}.",
             token_help=_token_help())


def read_only_notice() -> str:
    """What the bar says to a monitor holding a read-only token."""
    return t("Read-only token: you can watch traffic, channels, logs and usage. "
             "Changing channels or settings, starting and stopping them, Test "
             "connection, retries, pairing approvals and chat need the admin token "
             "(`pyclaw monitor-token --admin`).")


def plain_http_notice() -> str:
    """What the bar says when the gateway is reached over plain http beyond this device."""
    return t("Not encrypted (http): the token and everything shown here cross the "
             "network readable. Use https (server.tls_cert) beyond a trusted network.")


def _nothing() -> None:
    return None


def _scrub(text: str, token: str | None) -> str:
    """``text`` with the token blanked out, for anything shown or logged."""
    return text.replace(token, "•••") if token else text


# -- what the user typed -------------------------------------------------------------------


def normalize_url(text: str) -> str:
    """The gateway's base URL from what was typed, or ValueError saying what is wrong.

    A bare ``host:port`` gets ``http://`` (what a LAN gateway speaks); a trailing
    slash goes. Checked here, before any request, so a typo gets a precise answer
    instead of a network error.
    """
    raw = text.strip()
    if not raw:
        raise ValueError(t("Enter the gateway's URL, e.g. {example}", example=EXAMPLE_URL))
    if any(ch.isspace() for ch in raw):
        raise ValueError(t("The URL must not contain spaces"))
    if "://" not in raw:
        raw = "http://" + raw
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https"):
        raise ValueError(t("The URL must start with http:// or https://, not {scheme}://",
                           scheme=parts.scheme))
    try:
        port = parts.port
    except ValueError:
        raise ValueError(t("The port after ':' must be a number from 1 to 65535")) from None
    if not parts.hostname:
        raise ValueError(t("The URL has no host name or address, e.g. {example}",
                           example=EXAMPLE_URL))
    if port == 0:
        raise ValueError(t("The port after ':' must be a number from 1 to 65535"))
    if parts.username is not None or parts.password is not None:
        raise ValueError(t("Leave the token out of the URL: it goes in the token field"))
    if parts.query or parts.fragment:
        raise ValueError(t("The URL is only the gateway's address, without ? or #, "
                           "e.g. {example}", example=EXAMPLE_URL))
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def explain_failure(exc: BaseException, url: str, token: str | None) -> str:
    """What a failed connect means for the user, with what to do about it; never the token."""
    if isinstance(exc, GatewayUnreachable):
        cause = exc.__cause__
        host = urlsplit(url).hostname or ""
        loopback = (t(" {host} is this device itself: use the gateway machine's network "
                      "address.", host=host) if host in _LOOPBACK else "")
        detail = (str(cause) or type(cause).__name__) if cause is not None else str(exc)
        return _scrub(t(
            "Could not reach {url} ({detail}). The gateway must be running with "
            "server.control_api: true and listen on an address this device can reach "
            "(server.host: 0.0.0.0 or its network address, not 127.0.0.1; "
            "server.port, 8787 by default).{loopback}", url=url, detail=detail,
            loopback=loopback), token)
    if isinstance(exc, TokenRefused):
        return t("The gateway at {url} refused this token. To get the right one, "
                 "{token_help}.", url=url, token_help=_token_help())
    if isinstance(exc, RemoteError):
        return _scrub(t("The gateway at {url} answered with an error: {error}", url=url,
                        error=exc), token)
    return _scrub(t("Could not connect to {url}: {kind}: {error}", url=url,
                    kind=type(exc).__name__, error=exc), token)


# -- remembering the last gateway ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Remembered:
    """The last gateway this device connected to; the token never shows in a repr."""

    url: str | None = None
    token: str | None = field(default=None, repr=False)


class CredentialStore(Protocol):
    async def load(self) -> Remembered: ...
    async def save(self, url: str, token: str) -> None: ...
    async def forget(self) -> None: ...


class FletCredentialStore:
    """The URL in SharedPreferences, the token in flet-secure-storage.

    Secure storage is the Android Keystore on a phone, Keychain / Credential
    Manager / libsecret on desktops, and WebCrypto-encrypted localStorage in a
    browser (which needs a secure context: https, or 127.0.0.1). Where it fails,
    the monitor still works and only asks for the token again next time: every
    storage error is logged (without the token) and swallowed.

    Build it inside a page's ``main``: Flet services register with the page of
    the current context.
    """

    def __init__(self, timeout: float = STORE_TIMEOUT) -> None:
        self._prefs = ft.SharedPreferences()
        self._secure = fss.SecureStorage()
        self._timeout = timeout

    async def _quietly(self, what: str, call: Awaitable[T], secret: str | None = None
                       ) -> T | None:
        try:
            return await asyncio.wait_for(call, self._timeout)
        except Exception as exc:  # noqa: BLE001 - remembering is a convenience, never fatal
            _log.warning("could not %s on this device (%s: %s)", what, type(exc).__name__,
                         _scrub(str(exc), secret))
            return None

    async def load(self) -> Remembered:
        url = await self._quietly("read the last gateway URL", self._prefs.get(URL_KEY))
        token = await self._quietly("read the stored token", self._secure.get(TOKEN_KEY))
        return Remembered(url if isinstance(url, str) and url else None, token or None)

    async def save(self, url: str, token: str) -> None:
        await self._quietly("remember the gateway URL", self._prefs.set(URL_KEY, url))
        await self._quietly("store the token", self._secure.set(TOKEN_KEY, token), token)

    async def forget(self) -> None:
        await self._quietly("forget the gateway URL", self._prefs.remove(URL_KEY))
        await self._quietly("forget the token", self._secure.remove(TOKEN_KEY))


async def connect_remote(url: str, token: str) -> RemoteControlPlane:
    """A connected RemoteControlPlane; on failure its HTTP client is closed, not leaked."""
    plane = RemoteControlPlane(url, token)
    try:
        return await plane.connect()
    except BaseException:
        await plane.close()
        raise


# -- the screen ----------------------------------------------------------------------------


class ConnectView:
    """URL and token fields, Connect with a progress ring, and the reason when it fails.

    ``open`` fills the fields (explicit values first, then what the store
    remembers) and connects at once when both are there; ``submit`` is the
    Connect button. On success the credentials are remembered and
    ``on_connected(plane, url)`` takes over the page.
    """

    def __init__(self, connector: Connector, store: CredentialStore,
                 on_connected: OnConnected, refresh: Refresh = _nothing) -> None:
        self._connector = connector
        self._store = store
        self._on_connected = on_connected
        self._refresh = refresh
        self._busy = False
        self.url = ft.TextField(
            label=t("Gateway URL"), hint_text=EXAMPLE_URL, prefix_icon=ft.Icons.LAN_OUTLINED,
            keyboard_type=ft.KeyboardType.URL, autofocus=True, on_submit=self._on_connect)
        self.token = ft.TextField(
            label=t("API token"), password=True, can_reveal_password=True,
            prefix_icon=ft.Icons.KEY_OUTLINED, helper=t("From `pyclaw monitor-token` on the "
            "gateway's machine (read-only; `--admin` for full control)"), helper_max_lines=2,
            on_submit=self._on_connect)
        # not selectable: selectable text is left out of the semantics tree (screen readers)
        self.error = ft.Text(color=ft.Colors.ERROR, visible=False)
        self.notice = ft.Text(color=ft.Colors.ON_SURFACE_VARIANT, visible=False)
        self.progress = ft.ProgressRing(width=20, height=20, stroke_width=2.5, visible=False,
                                        semantics_label=t("Connecting"))
        self.status = ft.Text(visible=False, color=ft.Colors.ON_SURFACE_VARIANT)
        self.connect_button = ft.FilledButton(t("Connect"), icon=ft.Icons.LINK,
                                              on_click=self._on_connect)
        self.forget_button = ft.TextButton(
            t("Forget this gateway"), icon=ft.Icons.DELETE_OUTLINE, visible=False,
            tooltip=t("Remove the stored URL and token from this device"),
            on_click=self._on_forget)
        card = ft.Container(
            padding=ft.Padding.symmetric(horizontal=24, vertical=20),
            border_radius=12,
            border=ft.Border.all(1, ft.Colors.OUTLINE_VARIANT),
            bgcolor=ft.Colors.SURFACE_CONTAINER_LOW,
            content=ft.Column(
                spacing=16,
                horizontal_alignment=ft.CrossAxisAlignment.STRETCH,
                controls=[
                    ft.Row([ft.Image(src="icon.png", width=36, height=36,
                                     semantics_label=t("pyclaw logo")),
                            ft.Text(t("Connect to a gateway"),
                                    theme_style=ft.TextThemeStyle.HEADLINE_SMALL)],
                           spacing=12),
                    ft.Text(_setup_help(), color=ft.Colors.ON_SURFACE_VARIANT),
                    self.url,
                    self.token,
                    self.error,
                    ft.Row(wrap=True, spacing=12, run_spacing=8,
                           vertical_alignment=ft.CrossAxisAlignment.CENTER,
                           controls=[self.connect_button, self.progress, self.status]),
                    ft.Row(wrap=True, spacing=12,
                           vertical_alignment=ft.CrossAxisAlignment.CENTER,
                           controls=[self.forget_button, self.notice]),
                ],
            ),
        )
        self.root = ft.Column(
            expand=True,
            scroll=ft.ScrollMode.AUTO,
            alignment=ft.MainAxisAlignment.CENTER,
            controls=[ft.Container(
                padding=ft.Padding.all(16),
                content=ft.ResponsiveRow(
                    alignment=ft.MainAxisAlignment.CENTER,
                    controls=[ft.Container(col={"xs": 12, "sm": 10, "md": 7, "lg": 5, "xl": 4},
                                           content=card)]),
            )],
        )

    @property
    def busy(self) -> bool:
        return self._busy

    async def open(self, url: str | None = None, token: str | None = None) -> bool:
        """Fill the form and, with a URL and a token, connect at once; True once connected.

        The stored token is used only for the stored URL, so ``pyclaw monitor URL``
        for another gateway does not send it this device's token for the last one.
        """
        remembered = await self._store.load()
        self.forget_button.visible = remembered.url is not None or remembered.token is not None
        if url is None:
            url, token = remembered.url, remembered.token
        elif token is None and remembered.url is not None and _same(url, remembered.url):
            token = remembered.token
        self.url.value = url or ""
        self.token.value = token or ""
        self._refresh()
        if url and token:
            return await self.submit()
        return False

    async def submit(self) -> bool:
        """Validate, connect, remember; the error line says why when it fails."""
        if self._busy:
            return False
        self.notice.visible = False
        try:
            url = normalize_url(self.url.value or "")
        except ValueError as exc:
            self._fail(str(exc))
            return False
        token = (self.token.value or "").strip()
        if not token:
            self._fail(t("Enter the API token: {token_help}.", token_help=_token_help()))
            return False
        self.url.value = url
        self._set_busy(True, url)
        try:
            plane = await self._connector(url, token)
        except Exception as exc:  # noqa: BLE001 - every failure is explained on the form
            self._set_busy(False)
            self._fail(explain_failure(exc, url, token), logged=True)
            return False
        self._set_busy(False)
        self.error.visible = False
        await self._store.save(url, token)
        self.forget_button.visible = True
        try:
            await self._on_connected(plane, url)
        except Exception as exc:  # noqa: BLE001 - e.g. the gateway went away right after
            self._fail(explain_failure(exc, url, token), logged=True)
            return False
        return True

    async def forget(self) -> None:
        """Drop the stored URL and token; the URL stays in its field for a new token."""
        await self._store.forget()
        self.token.value = ""
        self.forget_button.visible = False
        self.notice.value = t("This device no longer remembers the gateway or its token.")
        self.notice.visible = True
        self.error.visible = False
        self._refresh()

    def _set_busy(self, busy: bool, url: str = "") -> None:
        self._busy = busy
        self.progress.visible = self.status.visible = busy
        self.status.value = t("Connecting to {url}…", url=url) if busy else ""
        self.connect_button.disabled = self.url.disabled = self.token.disabled = busy
        self._refresh()

    def _fail(self, message: str, *, logged: bool = False) -> None:
        if logged:
            _log.warning("monitor connect failed: %s", message)
        self.error.value = message
        self.error.visible = True
        self._refresh()

    async def _on_connect(self, e: ft.Event[ft.Control] | None = None) -> None:
        await self.submit()

    async def _on_forget(self, e: ft.Event[ft.Control] | None = None) -> None:
        await self.forget()


def _same(a: str, b: str) -> bool:
    try:
        return normalize_url(a) == normalize_url(b)
    except ValueError:
        return False


def _notice(icon: ft.IconData, text: str) -> ft.Control:
    return ft.Row(spacing=10, vertical_alignment=ft.CrossAxisAlignment.START, controls=[
        ft.Icon(icon, size=18, color=ft.Colors.ON_SURFACE_VARIANT),
        ft.Text(text, expand=True, size=13, color=ft.Colors.ON_SURFACE_VARIANT)])


def gateway_bar(url: str, on_disconnect: Handler, *, read_only: bool = False) -> ft.Control:
    """The strip above the monitor's shell: which gateway this is, and the way back; with a
    read-only token, what it cannot do; over plain http beyond this device, that it is not
    encrypted."""
    host = urlsplit(url).hostname or ""
    notices = []
    if read_only:
        notices.append(_notice(ft.Icons.VISIBILITY_OUTLINED, read_only_notice()))
    if urlsplit(url).scheme == "http" and host not in _LOOPBACK:
        notices.append(_notice(ft.Icons.LOCK_OPEN_OUTLINED, plain_http_notice()))
    return ft.Container(
        bgcolor=ft.Colors.SURFACE_CONTAINER_HIGH,
        padding=ft.Padding.symmetric(horizontal=16, vertical=4),
        content=ft.Column(spacing=4, controls=[ft.Row(
            spacing=10,
            vertical_alignment=ft.CrossAxisAlignment.CENTER,
            controls=[
                ft.Icon(ft.Icons.LAN_OUTLINED, size=18, color=ft.Colors.PRIMARY,
                        semantics_label=t("Remote gateway")),
                ft.Text(t("Monitoring {url} (read-only)", url=url) if read_only
                        else t("Monitoring {url}", url=url),
                        expand=True, size=13, max_lines=1,
                        overflow=ft.TextOverflow.ELLIPSIS),
                ft.TextButton(t("Disconnect"), icon=ft.Icons.LOGOUT,
                              tooltip=t("Disconnect and go back to the connect screen "
                                        "(to switch gateways)"),
                              on_click=on_disconnect),
            ],
        ), *notices]),
    )
