"""The first run (issue 18): no display means the browser mode, said in words; a taken port
is one line naming the port and the flag; ``--web`` prints the URL it serves."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.test_cli import REPO, run_cli
from views.launch import LaunchError, plan_launch, run_on_fast_loop


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something else is listening on."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_desktop_with_a_display_opens_a_window() -> None:
    launch = plan_launch(web=False, host="127.0.0.1", port=8550, env={"DISPLAY": ":0"},
                         platform="linux", desktop=True)
    assert (launch.web, launch.note) == (False, "")
    assert not plan_launch(web=False, host="127.0.0.1", port=8550, env={}, platform="darwin",
                           desktop=True).web  # macOS and Windows need no DISPLAY


@pytest.mark.parametrize(("env", "desktop", "reason"), [
    ({}, True, "No display found (DISPLAY and WAYLAND_DISPLAY are unset)"),
    ({"DISPLAY": ""}, True, "No display found (DISPLAY and WAYLAND_DISPLAY are unset)"),
    ({"DISPLAY": ":0"}, False, "The desktop client (flet-desktop) is not installed"),
])
def test_without_a_window_the_panel_is_served_to_a_browser_and_says_so(
        env: dict[str, str], desktop: bool, reason: str) -> None:
    port = free_port()
    launch = plan_launch(web=False, host="127.0.0.1", port=port, env=env, platform="linux",
                         desktop=desktop)
    assert launch.web
    assert launch.note.splitlines() == [
        f"{reason}: serving the control panel to a browser instead.",
        f"pyclaw control panel: http://127.0.0.1:{port}  (Ctrl+C stops it)"]


def test_web_mode_names_an_address_a_browser_can_open() -> None:
    port = free_port()
    launch = plan_launch(web=True, host="0.0.0.0", port=port)
    assert launch.note == f"pyclaw control panel: http://127.0.0.1:{port}  (Ctrl+C stops it)"


def test_the_panel_loop_is_uvloop_where_it_is_installed() -> None:
    """The panel's process also runs the in-process gateway: on uvloop, as ``pyclaw gateway``
    does (views/app.py hands Flet's ``run_async`` to this)."""
    uvloop = pytest.importorskip("uvloop")

    async def running_loop() -> type[asyncio.AbstractEventLoop]:
        return type(asyncio.get_running_loop())

    assert issubclass(run_on_fast_loop(running_loop()), uvloop.Loop)


def test_a_taken_port_is_named_with_the_flag_that_changes_it(busy_port: int) -> None:
    with pytest.raises(LaunchError) as caught:
        plan_launch(web=True, host="127.0.0.1", port=busy_port)
    assert str(caught.value) == (
        f"port {busy_port} on 127.0.0.1 is already in use (is pyclaw already running?); "
        f"choose another with --port, e.g. --port {busy_port + 1}")


@pytest.mark.parametrize("command", [[], ["monitor"]])
async def test_the_cli_says_it_in_one_line_and_exits(busy_port: int, tmp_path: Path,
                                                     command: list[str]) -> None:
    paths = [] if command else ["--config", str(tmp_path / "c.yaml"),
                                "--data-dir", str(tmp_path / "d")]
    code, out, err = await run_cli(*command, "--web", "--port", str(busy_port), *paths)
    assert code == 2
    assert err.strip().splitlines() == [
        f"pyclaw{' monitor' if command else ''}: port {busy_port} on 127.0.0.1 is already in "
        f"use (is pyclaw already running?); choose another with --port, e.g. --port "
        f"{busy_port + 1}"]
    assert "Traceback" not in err + out


async def test_no_display_serves_the_real_panel_and_prints_where(tmp_path: Path) -> None:
    """``pyclaw`` as typed on a server: no DISPLAY, so the browser mode, at the URL printed."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", "--port", str(port), "--config", str(tmp_path / "c.yaml"),
        "--data-dir", str(tmp_path / "d"), cwd=REPO, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**env, "PYTHONPATH": str(REPO)})
    try:
        assert proc.stdout is not None
        first = await asyncio.wait_for(proc.stdout.readline(), 60)
        second = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert first.decode().startswith("No display found")
        url = f"http://127.0.0.1:{port}"
        assert second.decode().split()[:4] == ["pyclaw", "control", "panel:", url]
        async with httpx.AsyncClient() as client:
            for _ in range(100):
                try:
                    page = await client.get(url)
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.1)
            else:
                pytest.fail(f"nothing answered at {url}")
        assert page.status_code == 200 and "flutter" in page.text.lower()
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)
