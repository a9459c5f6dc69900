"""How the panel is shown, decided before Flet starts, so what a new user hits on the first
run is one line that says what to do, not a silent hang or a traceback.

A desktop window needs the Flet desktop client and, on Linux, a display: without either
(a server, an SSH session, a container) Flet would wait forever for a window that cannot
open, so the panel is served to a browser instead and the user is told where. A port that
is taken is named, with the flag that changes it.
"""

from __future__ import annotations

import asyncio
import errno
import importlib.util
import os
import socket
import sys
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["Launch", "LaunchError", "plan_launch", "run_on_fast_loop"]

T = TypeVar("T")


class LaunchError(Exception):
    """The panel cannot be served as asked; the message is the whole explanation."""


@dataclass(frozen=True, slots=True)
class Launch:
    web: bool
    host: str
    port: int
    note: str
    """What to print before serving ("" for a desktop window)."""


def plan_launch(*, web: bool, host: str, port: int, env: Mapping[str, str] | None = None,
                platform: str = sys.platform, desktop: bool | None = None) -> Launch:
    """A desktop window when one can open, else the browser mode; raises LaunchError when the
    browser mode's port cannot be had."""
    env = os.environ if env is None else env
    why_not = None if web else _no_window(env, platform, desktop)
    if web or why_not is not None:
        _check_port(host, port)
        lines = [f"{why_not}: serving the control panel to a browser instead."] if why_not else []
        lines.append(f"pyclaw control panel: http://{_shown_host(host)}:{port}  (Ctrl+C stops it)")
        return Launch(True, host, port, "\n".join(lines))
    return Launch(False, host, port, "")


def _no_window(env: Mapping[str, str], platform: str, desktop: bool | None) -> str | None:
    """Why no desktop window can open here, or None when one can."""
    if desktop is None:
        desktop = importlib.util.find_spec("flet_desktop") is not None
    if not desktop:
        return "The desktop client (flet-desktop) is not installed"
    if platform.startswith("linux") and not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")):
        return "No display found (DISPLAY and WAYLAND_DISPLAY are unset)"
    return None


def _check_port(host: str, port: int) -> None:
    """Bind and let go: a port in use is found here, in words, rather than in Flet's
    traceback after it started."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise LaunchError(f"cannot listen on {host!r}: {exc.strerror}; "
                          "choose another address with --host") from exc
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise LaunchError(
                    f"port {port} on {host} is already in use (is pyclaw already running?); "
                    f"choose another with --port, e.g. --port {port + 1}") from exc
            if exc.errno == errno.EACCES:
                raise LaunchError(f"port {port} needs administrator rights; choose one above "
                                  "1023 with --port") from exc
            raise LaunchError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


def _shown_host(host: str) -> str:
    """The address a browser on this machine opens ("0.0.0.0" is not one)."""
    if host in ("0.0.0.0", "", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def run_on_fast_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run the panel's loop on uvloop where it is installed (Linux, macOS), else asyncio's.

    The panel's process also runs the in-process gateway, which spends its CPU on
    sockets and task switches, as ``pyclaw gateway`` does (cli.py runs that on uvloop
    for the same reason). Flet keeps running inside the loop (``flet.run_async``), its
    web server too (uvicorn's ``serve`` uses the running loop); it only no longer
    picks the loop itself.
    """
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
