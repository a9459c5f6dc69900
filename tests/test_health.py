"""Health at a glance, gateway side: state changes kept in the channel log, the per-hour
history read back from it, provider health from real calls, and the same through the
control API for the remote monitor."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from pyclaw_app.control import ChannelHealth, ProviderHealth, StateSpan
from pyclaw_app.control.health import (
    HOUR,
    advance,
    build_health,
    hour_states,
    record_log,
    record_state,
    shown_state,
    window_start,
)
from pyclaw_app.control.host import GatewayHost
from pyclaw_app.control.local import LocalControlPlane
from pyclaw_app.control.remote import RemoteControlPlane
from pyclaw_app.control.rights import MONITOR_TOKEN_KEY
from pyclaw_app.gateway import Gateway
from pyclaw_app.model import ChannelState
from pyclaw_app.secrets import FileSecretStore
from tests.conftest import GatewayFactory, provider_section
from tests.contract.harness_telegram import TelegramHarness
from tests.fakes.openai_api import FakeOpenAI, Fault
from tests.support import eventually

T0 = 1_700_000_000.0 // HOUR * HOUR  # an hour boundary
WAIT = 20.0


class Clock:
    """Wall time moved by hand, for the health windows."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# ---- the pure bucketing --------------------------------------------------------------------

def test_an_hour_is_drawn_in_its_problem_state_else_where_it_spent_most_time() -> None:
    assert shown_state({"online": 3000, "offline": 1}) == "offline"
    assert shown_state({"degraded": 5, "online": 10}) == "degraded"
    assert shown_state({"online": 3599, "offline": 0}) == "offline"  # entered just now
    assert shown_state({"online": 3000, "stopped": 600}) == "online"
    assert shown_state({}) == ""


def test_the_window_is_whole_clock_hours_ending_with_the_current_one() -> None:
    now = T0 + 1800
    assert window_start(now, 24) == T0 - 23 * HOUR
    health = build_health("tg", now, 24, [StateSpan(T0 - 100 * HOUR, now, "online")], {}, 0)
    assert len(health.hours) == 24 and health.hours[-1].start == T0
    assert health.spans[0].start == health.since  # clipped to the window
    assert health.hours[-1].states == {"online": 1800}  # the running hour: up to now only


def test_events_move_a_snapshot_forward_like_a_fresh_load() -> None:
    start = build_health("tg", T0 + 60, 24, [StateSpan(T0 - HOUR, T0 + 60, "online")], {}, 0)
    live = record_state(start, T0 + 600, "offline", "token refused")
    live = record_log(live, T0 + 601, "error")
    live = record_log(live, T0 + 602, "info")  # not counted
    live = record_state(live, T0 + 1200, "online", "polling")
    live = advance(live, T0 + HOUR + 300)  # the next hour began
    fresh = build_health("tg", T0 + HOUR + 300, 24, [
        StateSpan(T0 - HOUR, T0 + 600, "online"),
        StateSpan(T0 + 600, T0 + 1200, "offline", "token refused"),
        StateSpan(T0 + 1200, T0 + HOUR + 300, "online", "polling")],
        {T0: (1, 0)}, 2)
    assert live == fresh
    hour = next(h for h in live.hours if h.start == T0)
    assert (hour.errors, hour.states["offline"], shown_state(hour.states)) == (1, 600, "offline")
    assert live.changes == 2 and live.hours[-1].states == {"online": 300}


def test_a_repeated_state_updates_its_reason_and_is_not_a_change() -> None:
    start = build_health("tg", T0, 24, [StateSpan(T0 - 60, T0, "degraded", "slow")], {}, 1)
    again = record_state(start, T0 + 5, "degraded", "slower")
    assert again.changes == 1 and again.spans[-1].reason == "slower"
    assert len(again.spans) == 1


def test_a_log_line_older_than_the_window_is_ignored() -> None:
    start = build_health("tg", T0, 24, [], {}, 0)
    assert record_log(start, T0 - 30 * HOUR, "error") == start


@given(st.lists(st.tuples(st.floats(0, 30 * HOUR), st.sampled_from(
    ["online", "offline", "degraded", "stopped"])), max_size=30),
    st.floats(0, 30 * HOUR))
def test_the_seconds_of_an_hour_never_exceed_the_hour(changes: list[tuple[float, str]],
                                                      offset: float) -> None:
    health = build_health("tg", T0, 24, [], {}, 0)
    for at, state in sorted(changes):
        health = record_state(health, T0 + at, state)
    health = advance(health, T0 + 30 * HOUR + offset)
    for hour in health.hours:
        assert sum(hour.states.values()) <= HOUR + 1e-6
        assert all(v >= 0 for v in hour.states.values())
    spans = health.spans
    assert all(a.end <= b.start + 1e-6 for a, b in itertools.pairwise(spans))


def test_hour_states_adds_the_overlaps() -> None:
    spans = [StateSpan(0, 100, "online"), StateSpan(100, 250, "offline"),
             StateSpan(250, 400, "online")]
    assert hour_states(spans, 50, 300) == {"online": 100, "offline": 150}


# ---- the real gateway ----------------------------------------------------------------------

async def _state_lines(gateway: Gateway, channel: str) -> list[dict[str, object]]:
    rows = await gateway.store.logs.page(channel=channel)
    return [r["data"] for r in reversed(rows) if r["data"].get("kind") == "state"]


async def test_state_changes_are_kept_in_the_channel_log(
        telegram: TelegramHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    config = {"providers": [provider_section(fake_llm)],
              "channels": {"tg": {"type": "telegram", **telegram.channel_config()}}}
    gateway = await make_gateway(config)
    await eventually(lambda: gateway.channels["tg"].state == ChannelState.ONLINE, timeout=WAIT)
    await gateway.stop_channel("tg")

    async def states() -> list[object]:
        lines = await _state_lines(gateway, "tg")
        return [line["state"] for line in lines] if len(lines) >= 3 else []

    assert await eventually(states) == ["connecting", "online", "stopped"]
    rows = await gateway.store.logs.page(channel="tg", search="state online")
    assert rows and rows[0]["level"] == "info"  # a state line is no error of its own


async def test_a_refused_token_shows_as_an_offline_error_hour_and_recovers(
        telegram: TelegramHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory,
        tmp_path: Path) -> None:
    good = telegram.fake.token
    telegram.fake.token = "999:refused"  # the fake answers 401 to the configured token
    config = {"providers": [provider_section(fake_llm)],
              "channels": {"tg": {"type": "telegram", **telegram.channel_config(),
                                  "token": good}}}
    gateway = await make_gateway(config)
    clock = Clock(time.time())
    plane = LocalControlPlane(gateway, FileSecretStore(tmp_path / "s.json"), clock=clock)
    await eventually(lambda: gateway.channels["tg"].state == ChannelState.OFFLINE, timeout=WAIT)

    async def offline_hour() -> ChannelHealth | None:
        clock.now = time.time()
        (health,) = await plane.channel_health("tg")
        return health if health.hours[-1].errors and health.spans else None

    health = await eventually(offline_hour)
    last = health.hours[-1]
    assert shown_state(last.states) == "offline" and health.spans[-1].state == "offline"
    assert "rejected the bot token" in health.spans[-1].reason
    assert len(health.hours) == 24 and health.changes >= 2

    telegram.fake.token = good
    await plane.start_channel("tg")
    await eventually(lambda: gateway.channels["tg"].state == ChannelState.ONLINE, timeout=WAIT)

    async def back_online() -> ChannelHealth | None:
        clock.now = time.time()
        (health,) = await plane.channel_health("tg")
        return health if health.spans[-1].state == "online" else None

    health = await eventually(back_online)
    assert shown_state(health.hours[-1].states) == "offline"  # the hour still says it failed
    assert [s.state for s in health.spans][-3:] == ["offline", "connecting", "online"]


async def test_the_window_comes_from_the_plane_clock(make_gateway: GatewayFactory,
                                                     tmp_path: Path) -> None:
    gateway = await make_gateway({"channels": {"local": {"type": "local"}}})
    now = time.time()
    gateway.store.logs.append("local", "error", "an old failure", ts=now - 3 * HOUR)
    gateway.store.logs.append("local", "warning", "a newer warning", ts=now - HOUR)
    gateway.store.logs.append("local", "info", "state offline",
                              {"kind": "state", "state": "offline", "reason": "x"},
                              ts=now - 30 * HOUR)
    clock = Clock(now)
    plane = LocalControlPlane(gateway, FileSecretStore(tmp_path / "s.json"), clock=clock)

    async def loaded() -> ChannelHealth | None:
        (health,) = await plane.channel_health("local", hours=6)
        return health if sum(h.errors for h in health.hours) else None

    health = await eventually(loaded)
    assert len(health.hours) == 6
    assert [h.errors for h in health.hours].count(1) == 1
    assert [h.warnings for h in health.hours].count(1) == 1
    # the state recorded before the window is where the window starts
    assert health.spans[0].state == "offline" and health.spans[0].start == health.since
    clock.now = now + 10 * HOUR  # later, the same lines have left a 6-hour window
    (later,) = await plane.channel_health("local", hours=6)
    assert sum(h.errors + h.warnings for h in later.hours) == 0
    assert (await plane.channel_health("local", hours=10**6))[0].hours.__len__() == 24 * 7


async def test_provider_health_follows_the_latest_call(make_gateway: GatewayFactory,
                                                       fake_llm: FakeOpenAI,
                                                       tmp_path: Path) -> None:
    gateway = await make_gateway({
        "providers": [provider_section(fake_llm)],
        "agent": {"breaker_failures": 2, "breaker_cooldown": 3600},
        "channels": {"local": {"type": "local"}}})
    plane = LocalControlPlane(gateway, FileSecretStore(tmp_path / "s.json"))
    assert [(p.name, p.state) for p in await plane.provider_health()] == [("fake", "idle")]

    fake_llm.faults.append(Fault(status=500))
    await plane.chat_send("first")

    async def state() -> str:
        (fake,) = await plane.provider_health()
        return fake.state

    await eventually(lambda: _is(state, "failing"))
    (fake,) = await plane.provider_health()
    assert fake.errors == 1 and "500" in fake.reason

    await plane.chat_send("second")
    await eventually(lambda: _is(state, "ok"))
    (fake,) = await plane.provider_health()
    assert (fake.calls, fake.errors) == (2, 1) and fake.reason == ""

    fake_llm.faults.extend([Fault(status=500), Fault(status=500)])
    await plane.chat_send("third")
    await plane.chat_send("fourth")
    await eventually(lambda: _is(state, "failing"))
    (fake,) = await eventually(lambda: _resting(plane))
    assert "rests" in fake.reason and "fake/fake-model" in fake.reason


async def _is(read: Callable[[], Awaitable[str]], wanted: str) -> bool:
    return await read() == wanted


async def _resting(plane: LocalControlPlane) -> list[ProviderHealth]:
    rows = await plane.provider_health()
    return rows if "rests" in rows[0].reason else []


# ---- the remote monitor gets the same ------------------------------------------------------

@pytest.fixture
async def host(tmp_path: Path, fake_llm: FakeOpenAI) -> AsyncIterator[GatewayHost]:
    config = tmp_path / "pyclaw.yaml"
    config.write_text(yaml.safe_dump({"server": {"port": 0, "control_api": True},
                                      "providers": [provider_section(fake_llm)]}))
    running = await GatewayHost.start(config, tmp_path / "data")
    yield running
    await running.stop()


async def test_the_monitor_token_reads_the_same_health(host: GatewayHost,
                                                       fake_llm: FakeOpenAI) -> None:
    assert host.server is not None
    token = host.runtime.secrets.get(MONITOR_TOKEN_KEY)
    assert token
    local = host.plane
    gateway = host.runtime.gateway
    gateway.channel_log("local", "error", "something broke")
    fake_llm.faults.append(Fault(status=500))
    await local.chat_send("hello")

    async def failing() -> bool:
        return (await local.provider_health())[0].state == "failing"

    await eventually(failing)
    await eventually(lambda: _errors(local))
    remote = await RemoteControlPlane(host.server.url, token).connect()
    try:
        assert remote.read_only
        mine = await local.channel_health()
        theirs = await remote.channel_health()
        assert [h.channel for h in theirs] == [h.channel for h in mine] == ["local"]
        # the same rows: only the clock between the two calls may differ
        assert theirs[0].hours[:-1] == mine[0].hours[:-1]
        assert theirs[0].hours[-1].errors == mine[0].hours[-1].errors >= 1
        assert [(s.state, s.reason) for s in theirs[0].spans] == \
            [(s.state, s.reason) for s in mine[0].spans]
        assert await remote.provider_health() == await local.provider_health()
        assert json.dumps([h.channel for h in await remote.channel_health("local", 3)])
        assert len((await remote.channel_health("local", 3))[0].hours) == 3
    finally:
        await remote.close()


async def _errors(plane: LocalControlPlane) -> bool:
    return any(h.errors for h in (await plane.channel_health())[0].hours)
