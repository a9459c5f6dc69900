"""ConnectorBase: explicit phases, supervised tasks, the one reconnect loop, the secret rule."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import pytest
from pydantic import SecretStr

from pyclaw_app.channels import (
    ChannelConfig,
    ConnectorBase,
    ConnectorSpec,
    Phase,
    ProbeResult,
    Recent,
    registry,
    secret_field,
)
from pyclaw_app.errors import ConnectorError, FatalConnectorError, RetryableError
from pyclaw_app.model import Address, ChannelState
from tests.support import RecordingContext, eventually


class DemoConfig(ChannelConfig):
    token: SecretStr | None = secret_field("The demo token, from the demo console.")


class Demo(ConnectorBase):
    """Scripted: ``plan`` says what each connect/serve call does."""

    spec = ConnectorSpec("demo", "Demo", DemoConfig, runtime=f"{__name__}:Demo")
    plan: ClassVar[list[str]] = []

    def __init__(self, name: str, config: DemoConfig) -> None:
        super().__init__(name, config)
        self.closed = 0
        self.sent: list[str] = []

    async def open(self) -> None:
        step = self.plan.pop(0) if self.plan else "loop"
        if step == "fatal":
            raise FatalConnectorError("refused at open")
        if step == "crash":
            self.spawn("worker", self._crash())
        elif step == "loop":
            self.spawn("connection", self.run_connected(self._connect, self._serve))

    async def _crash(self) -> None:
        await asyncio.sleep(0)
        raise ValueError("bug in the worker")

    async def _connect(self) -> None:
        step = self.plan.pop(0) if self.plan else "ok"
        if step == "retry":
            raise RetryableError("not yet", retry_after=0.01)
        if step == "fatal":
            raise FatalConnectorError("token revoked")

    async def _serve(self) -> None:
        step = self.plan.pop(0) if self.plan else "hold"
        if step == "lost":
            raise RetryableError("socket closed", retry_after=0.01)
        if step == "fatal":
            raise FatalConnectorError("token revoked")
        await asyncio.Event().wait()

    async def close(self) -> None:
        self.closed += 1

    async def send_part(self, address: Address, text: str, reply_to: str | None) -> str:
        self.ctx  # noqa: B018 - the not-running guard
        self.sent.append(text)
        return str(len(self.sent))

    async def probe(self) -> ProbeResult:
        return ProbeResult(True, f"token {self.secret('token')[:2]}...")


@pytest.fixture
async def demo() -> AsyncIterator[tuple[Demo, RecordingContext]]:
    connector = Demo("d", DemoConfig(token=SecretStr("abcdef")))
    ctx = RecordingContext(channel="d")
    yield connector, ctx
    await connector.stop()


def states(ctx: RecordingContext) -> list[ChannelState]:
    return [s for s, _ in ctx.states]


async def test_reconnects_with_backoff_and_logs_each_outage_once(demo: Any) -> None:
    connector, ctx = demo
    Demo.plan = ["loop", "retry", "retry", "ok", "lost", "retry", "ok", "hold"]
    await connector.start(ctx)
    await eventually(lambda: states(ctx).count(ChannelState.ONLINE) == 2)
    assert states(ctx)[0] == ChannelState.CONNECTING
    messages = [m for _, m, _ in ctx.logs]
    assert messages.count("connected") == 1 and messages.count("reconnected") == 1
    assert sum(m.startswith("lost connection: socket closed") for m in messages) == 1
    assert ctx.heartbeats >= 2


async def test_a_fatal_error_in_the_loop_leaves_the_channel_offline(demo: Any) -> None:
    connector, ctx = demo
    Demo.plan = ["loop", "ok", "fatal"]
    await connector.start(ctx)
    await eventually(lambda: ChannelState.OFFLINE in states(ctx))
    assert any(level == "error" and "token revoked" in m for level, m, _ in ctx.logs)
    assert not ctx.crashes  # a clean, reported stop: nothing for the supervisor to restart


async def test_a_crashed_task_is_reported_to_the_supervisor(demo: Any) -> None:
    connector, ctx = demo
    Demo.plan = ["crash"]
    await connector.start(ctx)
    await eventually(lambda: ctx.crashes)
    reason, fatal = ctx.crashes[0]
    assert "demo:d:worker" in reason and "bug in the worker" in reason and not fatal


async def test_fatal_open_raises_closes_and_reports_offline(demo: Any) -> None:
    connector, ctx = demo
    Demo.plan = ["fatal"]
    with pytest.raises(FatalConnectorError):
        await connector.start(ctx)
    assert connector.closed == 1 and connector.phase is Phase.STOPPED
    assert states(ctx)[-1] == ChannelState.OFFLINE


async def test_stop_is_safe_twice_and_a_connector_runs_once(demo: Any) -> None:
    connector, ctx = demo
    Demo.plan = ["loop"]
    await connector.start(ctx)
    with pytest.raises(RuntimeError):
        await connector.start(ctx)
    await connector.stop()
    await connector.stop()
    assert connector.closed == 1 and states(ctx)[-1] == ChannelState.STOPPED
    with pytest.raises(ConnectorError, match="not running"):
        await connector.send_part(Address("d", "c"), "late", None)


async def test_stop_returns_even_when_tasks_ignore_their_cancellation(
        demo: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Waiting for each task in turn hung for good on one that swallowed its cancel (and took
    4 s per stuck task otherwise); one bounded wait for all of them returns."""
    from pyclaw_app.channels import lifecycle

    monkeypatch.setattr(lifecycle, "TASK_STOP_TIMEOUT", 0.2)
    connector, ctx = demo
    Demo.plan = ["idle"]  # open spawns nothing: the only tasks are the stubborn ones below
    await connector.start(ctx)
    released = asyncio.Event()

    async def stubborn() -> None:
        while not released.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue  # a badly written SDK callback that will not stop

    tasks = [connector.spawn(f"stubborn-{i}", stubborn()) for i in range(3)]
    try:
        await asyncio.wait_for(connector.stop(), 5)  # a guard against hanging the suite
        assert connector.phase == Phase.STOPPED
    finally:
        released.set()
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks, timeout=1)


async def test_a_missing_secret_names_the_field_and_its_help() -> None:
    connector = Demo("d", DemoConfig())
    with pytest.raises(FatalConnectorError) as caught:
        await connector.probe()
    assert "Demo token is not set" in str(caught.value) and "demo console" in str(caught.value)
    assert connector.secret_or_none("token") is None


async def test_the_gateway_restarts_a_channel_whose_task_crashed(make_gateway) -> None:
    registry.register(Demo.spec)
    Demo.plan = ["crash", "loop", "ok", "hold"]
    try:
        gw = await make_gateway({"channels": {"d": {"type": "demo", "token": "abcdef"}}})
        rt = gw.channels["d"]
        await eventually(lambda: rt.crashed)
        assert rt.state == ChannelState.OFFLINE
        assert gw.supervisor is not None
        gw.supervisor.check()  # the supervisor's next pass restarts it
        await eventually(lambda: rt.state == ChannelState.ONLINE and rt.crashed is None)
        logs = await gw.store.logs.page(channel="d")
        assert any("crashed" in r["message"] for r in logs)
    finally:
        registry.unregister("demo")


def test_recent_keeps_the_most_recently_set_keys() -> None:
    kept: Recent[str, int] = Recent(2)
    kept.remember("a", 1)
    kept.remember("b", 2)
    kept.remember("a", 3)  # set again: now the newest
    kept.remember("c", 4)
    assert dict(kept) == {"a": 3, "c": 4}
