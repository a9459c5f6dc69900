"""Stalled or crashed channels are restarted with backoff and a cap; others are undisturbed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from pyclaw_app.bus import Bus
from pyclaw_app.channels import registry
from pyclaw_app.config import load_config
from pyclaw_app.control.chat import ask
from pyclaw_app.gateway import Gateway
from pyclaw_app.model import Address, ChannelState, Inbound
from pyclaw_app.store import Store
from pyclaw_app.supervisor import Supervisor, SupervisorSettings
from tests.conftest import provider_section
from tests.fakes.openai_api import FakeOpenAI
from tests.flaky.manifest import SPEC as FLAKY
from tests.flaky.runtime import SCRIPTS, Script
from tests.support import eventually


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def script() -> Iterator[Script]:
    registry.register(FLAKY)
    SCRIPTS["s"] = Script()
    yield SCRIPTS["s"]
    SCRIPTS["s"].release.set()
    registry.unregister("flaky")


@pytest.fixture
async def gateway(tmp_path: Path, fake_llm: FakeOpenAI, script: Script):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({
        "providers": [provider_section(fake_llm)],
        "channels": {"flaky": {"type": "flaky", "script": "s"}, "local": {"type": "local"}}}))
    store = await Store(tmp_path / "d").open()
    clock = Clock()
    gw = Gateway(load_config(path), store, Bus(), clock=clock, supervise=False)
    gw.supervisor = Supervisor(gw, SupervisorSettings(stall_after=60, max_restarts_per_hour=3))
    await gw.start()  # started, but its loop is driven by hand with .check()
    await gw.supervisor.stop()
    yield gw, clock
    await gw.stop()
    await store.close()


async def restarted(gw: Gateway, script: Script, starts: int) -> None:
    await eventually(lambda: script.starts == starts
                     and gw.channels["flaky"].state == ChannelState.ONLINE)


async def test_stalled_channel_is_restarted_others_keep_working(gateway, script: Script) -> None:
    gw, clock = gateway
    assert script.starts == 1
    clock.now += 30
    gw.supervisor.check()
    assert script.stops == 0  # within the liveness window
    gw.channels["flaky"].ctx.heartbeat()  # traffic resets the window
    clock.now += 59
    gw.supervisor.check()
    assert script.stops == 0
    clock.now += 2
    gw.supervisor.check()
    assert gw.channels["flaky"].state == ChannelState.DEGRADED
    await restarted(gw, script, 2)
    assert script.stops == 1
    logs = await eventually(lambda: gw.store.logs.page(channel="flaky", search="stalled"))
    assert "no sign of life" in logs[0]["message"]
    # the local channel answered throughout
    assert await ask(gw, "ok?", timeout=10) == "Echo: ok?"


async def test_hung_stop_is_abandoned_and_the_channel_still_restarts(
        gateway, script: Script) -> None:
    gw, clock = gateway
    gw.stop_timeout = 0.2
    script.hang_in_stop = True
    clock.now += 61
    gw.supervisor.check()
    await restarted(gw, script, 2)
    logs = await eventually(lambda: gw.store.logs.page(channel="flaky", search="abandoned"))
    assert logs


async def test_failed_start_retried_with_backoff_then_capped(gateway, script: Script) -> None:
    gw, clock = gateway
    script.fail_starts = 100
    clock.now += 61
    gw.supervisor.check()  # stalled -> restart 1 (its start fails)
    await eventually(lambda: script.starts == 2 and gw.channels["flaky"].state
                     == ChannelState.OFFLINE)
    gw.supervisor.check()  # too soon: backoff
    assert script.starts == 2
    for expected in (3, 4):
        clock.now += 400  # past any backoff delay (cap 300 s)
        gw.supervisor.check()
        await eventually(lambda e=expected: script.starts == e)
        await eventually(lambda: gw.supervisor._watches["flaky"].task.done())
    clock.now += 400
    gw.supervisor.check()  # 3 restarts within the hour: give up
    assert script.starts == 4
    assert gw.channels["flaky"].state == ChannelState.OFFLINE
    assert "automatic restarts stopped" in gw.channels["flaky"].reason
    clock.now += 3600 * 2
    gw.supervisor.check()
    assert script.starts == 4  # stays given up until a person restarts it


async def test_fatal_start_is_not_restarted(gateway, script: Script) -> None:
    gw, clock = gateway
    script.fatal_start = True
    clock.now += 61
    gw.supervisor.check()
    await eventually(lambda: script.starts == 2 and gw.channels["flaky"].fatal)
    for _ in range(3):
        clock.now += 400
        gw.supervisor.check()
    assert script.starts == 2
    assert "bad token" in gw.channels["flaky"].last_error


async def test_typing_request_in_flight_is_never_cancelled(tmp_path: Path, script: Script
                                                           ) -> None:
    """Cancelling an HTTP call queued for a pooled connection leaks the slot (httpcore#1093):
    after eight, python-telegram-bot's pool is wedged. The typing loop must end, not be cut."""
    script.typing_seconds = 0.8
    async with FakeOpenAI(latency=1.4) as llm:
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump({"providers": [provider_section(llm)],
                                        "channels": {"flaky": {"type": "flaky", "script": "s"}}}))
        store = await Store(tmp_path / "d").open()
        gw = Gateway(load_config(path), store, Bus(), supervise=False)
        await gw.start()
        try:
            connector = gw.channels["flaky"].connector
            await connector.ctx.submit(Inbound(Address("flaky", "c1"), "p1", "slow question"))
            await eventually(lambda: connector.sent, timeout=10)
            await gw.lanes.join()
        finally:
            await gw.stop()
            await store.close()
    assert script.typing_done == 1 and script.typing_cancelled == 0
    assert connector.sent[0].text == "Echo: slow question"
