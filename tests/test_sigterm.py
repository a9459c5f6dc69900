"""SIGTERM always ends the process within a bound, even when a channel's stop() hangs
(issue 17, item 6): the headless ``pyclaw gateway`` and the panel's runtime, whose
framework (Flet, its web server) owns SIGTERM. Real subprocesses; the misbehaving
connector is ``tests/flaky`` with ``hang_in_stop`` (it ignores cancellation)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import yaml

from pyclaw_app.shutdown import SHUTDOWN_GRACE

REPO = Path(__file__).resolve().parents[1]
BOUND = SHUTDOWN_GRACE + 10.0
"""Seconds a test waits for the exit: the guard's own bound plus room for a slow machine."""

HANGING_CHANNEL = """
from pyclaw_app.channels import registry
from tests.flaky.manifest import SPEC
from tests.flaky.runtime import SCRIPTS, Script

registry.register(SPEC)
SCRIPTS["hang"] = Script(hang_in_stop=True)
"""

HEADLESS = HANGING_CHANNEL + """
import sys
import cli

sys.exit(cli.main(sys.argv[1:]))
"""

PANEL = HANGING_CHANNEL + """
import asyncio
import signal
import sys
from pathlib import Path

from pyclaw_app.runtime import GatewayRuntime, setup_logging
from views.launch import run_on_fast_loop


async def main(config: str, data: str) -> None:
    loop = asyncio.get_running_loop()

    def graceful(signum, frame):  # like uvicorn: begins a shutdown that waits for sessions
        loop.call_soon_threadsafe(lambda: print("framework: graceful shutdown begins",
                                                flush=True))

    signal.signal(signal.SIGTERM, graceful)
    setup_logging()
    await GatewayRuntime.start(Path(config), Path(data))
    print("panel running", flush=True)
    await asyncio.Event().wait()  # the open sessions never go away


run_on_fast_loop(main(sys.argv[1], sys.argv[2]))  # the panel's loop (views/app.py)
"""

PANEL_SERVER_RETURNS = """
import asyncio
import json
import signal
import sys
from pathlib import Path

from pyclaw_app.runtime import GatewayRuntime, setup_logging
from views.launch import run_on_fast_loop


async def main(config: str, data: str) -> None:
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def graceful(signum, frame):  # like uvicorn: it closes the sessions and returns
        loop.call_soon_threadsafe(loop.call_later, 0.3, done.set)

    signal.signal(signal.SIGTERM, graceful)
    setup_logging()
    local = Path(data).with_name("local.yaml")
    local.write_text(json.dumps({  # an MCP server: its stop is the slow part
        "channels": {"local": {"type": "local"}},
        "mcp_servers": [{"name": "files", "command": sys.executable,
                         "args": ["-m", "tests.fakes.mcp_server"]}]}))
    await GatewayRuntime.start(local, Path(data))
    print("panel running", flush=True)
    await done.wait()  # the loop ends now, and cancels the gateway's stop under way


run_on_fast_loop(main(sys.argv[1], sys.argv[2]))
"""

BLOCKED_LOOP = """
import asyncio
import time

from pyclaw_app.runtime import setup_logging
from pyclaw_app.shutdown import ShutdownGuard


async def main() -> None:
    setup_logging()
    ShutdownGuard(grace=0.5).install(lambda: time.sleep(3600))  # the stop blocks the loop
    print("running", flush=True)
    await asyncio.Event().wait()


asyncio.run(main())
"""


class Process:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.output: list[str] = []

    async def line(self, until: Callable[[str], bool]) -> str:
        """Read stdout+stderr until a line satisfies ``until``."""
        assert self.proc.stdout is not None
        while True:
            raw = await asyncio.wait_for(self.proc.stdout.readline(), 60)
            if not raw:
                raise AssertionError("the process ended; it said:\n" + "".join(self.output))
            text = raw.decode(errors="replace")
            self.output.append(text)
            if until(text):
                return text

    def signal(self, sig: signal.Signals = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    async def exit_status(self) -> int:
        """The exit status, waiting at most ``BOUND`` seconds (the test fails after that)."""
        assert self.proc.stdout is not None
        rest = await asyncio.wait_for(self.proc.stdout.read(), BOUND)
        self.output.append(rest.decode(errors="replace"))
        return await asyncio.wait_for(self.proc.wait(), BOUND)

    @property
    def said(self) -> str:
        return "".join(self.output)


@pytest.fixture
async def spawn(tmp_path: Path) -> AsyncIterator[Callable[..., object]]:
    config = tmp_path / "pyclaw.yaml"
    config.write_text(yaml.safe_dump({"channels": {"flaky": {"type": "flaky",
                                                             "script": "hang"}}}))
    data = tmp_path / "data"
    started: list[Process] = []

    async def run(code: str, *args: str) -> Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code,
            *(a.format(config=config, data=data) for a in args), cwd=REPO,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO)})
        started.append(Process(proc))
        return started[-1]

    yield run
    for process in started:
        if process.proc.returncode is None:
            process.proc.kill()
            await process.proc.wait()


def _received(line: str) -> bool:
    return "SIGTERM received: stopping" in line


GATEWAY_ARGS = ("gateway", "--config", "{config}", "--data-dir", "{data}")


async def test_gateway_exits_after_sigterm_although_a_channel_stop_hangs(spawn) -> None:
    gateway = await spawn(HEADLESS, *GATEWAY_ARGS)
    await gateway.line(lambda s: "pyclaw gateway running" in s)
    gateway.signal()
    status = await gateway.exit_status()
    assert "the connector was abandoned" in gateway.said
    assert "the gateway stopped, but the process did not end" in gateway.said
    assert status == 0, gateway.said  # stopped cleanly; only the abandoned task was left


async def test_a_second_sigterm_ends_the_gateway_at_once(spawn) -> None:
    gateway = await spawn(HEADLESS, *GATEWAY_ARGS)
    await gateway.line(lambda s: "pyclaw gateway running" in s)
    gateway.signal()
    await gateway.line(_received)
    gateway.signal()
    status = await gateway.exit_status()
    assert status == 128 + signal.SIGTERM, gateway.said
    assert "second SIGTERM: exiting without waiting" in gateway.said
    assert "abandoned" not in gateway.said  # it did not wait for the stop timeout


async def test_panel_runtime_stops_the_gateway_and_exits_on_sigterm(spawn) -> None:
    """The framework's own handler still runs, and its endless shutdown does not keep the
    process: the guard stops the gateway and ends the process."""
    panel = await spawn(PANEL, "{config}", "{data}")
    await panel.line(lambda s: "panel running" in s)
    panel.signal()
    status = await panel.exit_status()
    assert "framework: graceful shutdown begins" in panel.said
    assert "the connector was abandoned" in panel.said
    assert status == 0, panel.said


async def test_a_panel_whose_server_returns_first_still_closes_the_store_and_exits(
        spawn) -> None:
    """The web server's shutdown ends the loop while the gateway is stopping, and the
    loop's end cancels that stop: the store is closed all the same, or its worker thread
    would hold the interpreter's exit until the watchdog ended it as a failed stop."""
    panel = await spawn(PANEL_SERVER_RETURNS, "{config}", "{data}")
    await panel.line(lambda s: "panel running" in s)
    panel.signal()
    status = await panel.exit_status()
    assert "did not stop within" not in panel.said
    assert status == 0, panel.said


async def test_a_second_sigterm_ends_the_panel_at_once(spawn) -> None:
    panel = await spawn(PANEL, "{config}", "{data}")
    await panel.line(lambda s: "panel running" in s)
    panel.signal()
    await panel.line(_received)
    panel.signal()
    assert await panel.exit_status() == 128 + signal.SIGTERM, panel.said


async def test_a_stop_that_blocks_the_event_loop_is_ended_by_the_watchdog(spawn) -> None:
    process = await spawn(BLOCKED_LOOP)
    await process.line(lambda s: "running" in s)
    process.signal()
    assert await process.exit_status() == 1, process.said
    assert "did not stop within 0.5s" in process.said
