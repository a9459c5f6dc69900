"""One channel runs once: start, stop, restart, enable/disable, reconfiguration and the
supervisor's restarts of a channel are serialised, the old connector is fully stopped
before a new one starts, and what a stopping connector took is answered or left
unacknowledged at the platform (issue 17, item 6)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from pyclaw_app.bus import Bus
from pyclaw_app.channels import registry
from pyclaw_app.config import load_config
from pyclaw_app.control.local import LocalControlPlane
from pyclaw_app.errors import ConnectorError
from pyclaw_app.gateway import Gateway
from pyclaw_app.lanes import Lanes
from pyclaw_app.model import Address, ChannelState, Inbound, MessageStatus
from pyclaw_app.secrets import FileSecretStore
from pyclaw_app.store import JournalRow, Store
from pyclaw_app.supervisor import Supervisor, SupervisorSettings
from tests.conftest import provider_section
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.telegram_api import FakeTelegram
from tests.flaky.manifest import SPEC as FLAKY
from tests.flaky.runtime import SCRIPTS, Script
from tests.support import eventually

ROUNDS = 12
CHATS = (1001, 1002, 1003)
FINAL = (MessageStatus.REPLIED, MessageStatus.FAILED)


class Clock:
    """The gateway's monotonic clock, moved by the test: the supervisor sees a stall at once."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Setup:
    gateway: Gateway
    plane: LocalControlPlane
    clock: Clock


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        yield fake  # type: ignore[misc]


def form(telegram: FakeTelegram, **extra: object) -> dict[str, object]:
    return {"token": telegram.token, "base_url": f"{telegram.url}/bot",
            "base_file_url": f"{telegram.url}/file/bot", "poll_timeout": 1,
            "dm_policy": "open", "rate_limit_per_minute": 0, **extra}


async def open_setup(tmp_path: Path, llm: FakeOpenAI, channels: dict[str, object] | None = None,
                     *, max_concurrent_llm: int = 4) -> tuple[Setup, Store]:
    path = tmp_path / "pyclaw.yaml"
    path.write_text(yaml.safe_dump({"providers": [provider_section(llm)],
                                    "agent": {"max_concurrent_llm": max_concurrent_llm},
                                    "channels": channels or {}}))
    secrets = FileSecretStore(tmp_path / "data" / "secrets.json")
    store = await Store(tmp_path / "data").open()
    clock = Clock()
    gateway = Gateway(load_config(path, secrets), store, Bus(), clock=clock, supervise=False)
    gateway.supervisor = Supervisor(gateway, SupervisorSettings(max_restarts_per_hour=10_000))
    await gateway.start()
    await gateway.supervisor.stop()  # its checks are driven by the test
    return Setup(gateway, LocalControlPlane(gateway, secrets, path), clock), store


@pytest.fixture
async def setup(tmp_path: Path, fake_llm: FakeOpenAI, telegram: FakeTelegram
                ) -> AsyncIterator[Setup]:
    running, store = await open_setup(tmp_path, fake_llm)
    assert await running.plane.save_channel("tg", "telegram", form(telegram)) == []
    await eventually(lambda: running.gateway.channels["tg"].state == ChannelState.ONLINE)
    yield running
    await running.gateway.stop()
    await store.close()


def tasks_named(name: str) -> list[asyncio.Task[object]]:
    """Tasks by the names the kit gives them (``<type>:<channel>:<role>``), still running."""
    return [t for t in asyncio.all_tasks() if t.get_name() == name and not t.done()]


async def test_concurrent_lifecycle_calls_leave_one_poller_and_answer_everything(
        setup: Setup, telegram: FakeTelegram) -> None:
    gw, plane, clock = setup.gateway, setup.plane, setup.clock
    rng = random.Random(17)
    sent_texts: list[str] = []

    async def inject() -> None:
        text = f"message {len(sent_texts)}"
        sent_texts.append(text)
        telegram.inject_message(rng.choice(CHATS), text)

    async def supervisor_restart() -> None:
        clock.now += 400  # past the liveness window: the channel looks stalled
        gw.supervisor.check()

    def calls() -> list[Callable[[], Awaitable[object]]]:
        return [
            lambda: plane.start_channel("tg"),
            lambda: plane.stop_channel("tg"),
            lambda: plane.restart_channel("tg"),
            lambda: plane.set_channel_enabled("tg", False),
            lambda: plane.set_channel_enabled("tg", True),
            lambda: plane.save_channel("tg", "telegram",
                                       form(telegram, poll_timeout=rng.choice((1, 2)))),
            supervisor_restart, inject, inject,
        ]

    for _ in range(ROUNDS):
        batch = calls() * 2
        rng.shuffle(batch)
        results = await asyncio.gather(*(call() for call in batch))
        assert all(r in (None, []) for r in results), results
        await eventually(lambda: not tasks_named("supervisor:restart:tg"))
        assert len(tasks_named("telegram:tg:poller")) <= 1
        assert telegram.peak_open_polls <= 1

    assert await plane.set_channel_enabled("tg", True) == []
    await plane.start_channel("tg")
    await eventually(lambda: gw.channels["tg"].state == ChannelState.ONLINE)
    await inject()

    async def settled() -> list[JournalRow]:
        rows = [r for r in await gw.store.journal.recent(1000, channel="tg")
                if r.direction == "in"]
        done = len(rows) == len(sent_texts) and all(r.status in FINAL for r in rows)
        return rows if done else []

    # Every message was journaled once and ended answered or visibly failed: a reply ready
    # while the channel stayed down longer than delivery's retries (a slow machine: the
    # rounds keep it stopped or disabled for a while) fails, and Retry sends it. A send cut
    # by a stop while its request was out is "uncertain" and never resent: the count of
    # answers below then shows whether it really arrived.
    for row in await eventually(settled, timeout=30):
        if row.status == MessageStatus.FAILED and "uncertain" not in (row.error or ""):
            assert "restarting" in (row.error or ""), row
            assert await plane.retry_message(row.id)
    expected = Counter(f"Echo: {text}" for text in sent_texts)

    def answered() -> bool:
        return Counter(r.text for r in telegram.sent) == expected

    with contextlib.suppress(AssertionError):  # the comparison below shows what differs
        await eventually(answered, timeout=20)
    assert Counter(r.text for r in telegram.sent) == expected
    assert telegram.peak_open_polls <= 1
    assert len(tasks_named("telegram:tg:poller")) == 1
    await eventually(lambda: gw.lanes.pending() == 0)
    assert await gw.store.journal.unfinished() == []


async def test_an_update_held_by_a_stopping_poller_is_not_confirmed_and_answered_once(
        tmp_path: Path, fake_llm: FakeOpenAI, telegram: FakeTelegram) -> None:
    """The poller is stopped while it waits inside ``ctx.submit`` (journaled, the backlog
    full): Telegram still holds the update, and the next run answers it exactly once."""
    running, store = await open_setup(tmp_path, fake_llm, max_concurrent_llm=1)
    gw, plane = running.gateway, running.plane
    try:
        assert await plane.save_channel("tg", "telegram", form(telegram)) == []
        await eventually(lambda: gw.channels["tg"].state == ChannelState.ONLINE)
        await gw.lanes.llm_slots.acquire()  # every turn waits for the model
        gw.lanes.max_backlog = 2
        telegram.inject_message(1001, "first")
        await eventually(lambda: gw.lanes.pending() == 1)
        held = telegram.inject_update(telegram.message_update(1001, "second", sender=1001))
        # "second" waits behind "first" in the chat's lane: the backlog is full
        await eventually(lambda: gw.lanes.pending() == 2)
        await plane.stop_channel("tg")
        assert gw.channels["tg"].state == ChannelState.STOPPED
        assert held["update_id"] in [u["update_id"] for u in telegram.updates]  # unconfirmed

        await plane.start_channel("tg")
        gw.lanes.llm_slots.release()
        await eventually(lambda: len(telegram.sent) == 2)
        await gw.lanes.join()
        assert sorted(r.text for r in telegram.sent) == ["Echo: first", "Echo: second"]
        await eventually(lambda: held["update_id"] not in
                         [u["update_id"] for u in telegram.updates])  # confirmed now
        rows = await gw.store.journal.recent(10, channel="tg")
        inbound = [r for r in rows if r.direction == "in"]
        assert sorted(r.text for r in inbound) == ["first", "second"]
        assert {r.status for r in inbound} == {MessageStatus.REPLIED}
    finally:
        await gw.stop()
        await store.close()


@pytest.fixture
def script() -> Iterator[Script]:
    registry.register(FLAKY)
    SCRIPTS["lock"] = Script()
    yield SCRIPTS["lock"]
    SCRIPTS["lock"].release.set()
    registry.unregister("flaky")


async def test_a_message_journaled_while_the_connector_stops_is_answered_by_the_next_run(
        tmp_path: Path, fake_llm: FakeOpenAI, script: Script) -> None:
    running, store = await open_setup(tmp_path, fake_llm,
                                      {"flaky": {"type": "flaky", "script": "lock"}})
    gw = running.gateway
    try:
        first = script.instances[0]
        script.submit_in_stop = Inbound(Address("flaky", "c1"), "p-late", "late question")
        await gw.stop_channel("flaky")
        assert script.submitted_in_stop == 1
        await eventually(lambda: gw.store.logs.page(channel="flaky", search="waits"))
        await gw.start_channel("flaky")
        second = script.instances[-1]
        assert second is not first
        await eventually(lambda: second.sent)
        assert [o.text for o in second.sent] == ["Echo: late question"]
        assert first.sent == []
    finally:
        await gw.stop()
        await store.close()


async def test_an_abandoned_connector_can_no_longer_submit(
        tmp_path: Path, fake_llm: FakeOpenAI, script: Script) -> None:
    """A connector whose stop() hung was abandoned; if its poller still runs, what it takes
    must stay unacknowledged at the platform, so submitting fails instead of journaling."""
    running, store = await open_setup(tmp_path, fake_llm,
                                      {"flaky": {"type": "flaky", "script": "lock"}})
    gw = running.gateway
    gw.stop_timeout = 0.2
    try:
        zombie = script.instances[0]
        assert zombie.ctx is not None
        script.hang_in_stop = True
        await gw.stop_channel("flaky")
        await eventually(lambda: gw.store.logs.page(channel="flaky", search="abandoned"))
        with pytest.raises(ConnectorError, match="stopped"):
            await zombie.ctx.submit(Inbound(Address("flaky", "c1"), "p-zombie", "taken"))
        assert [r for r in await gw.store.journal.recent(10, channel="flaky")] == []
        script.hang_in_stop = False
        script.release.set()
        await gw.start_channel("flaky")
        assert gw.channels["flaky"].state == ChannelState.ONLINE
    finally:
        await gw.stop()
        await store.close()


async def test_a_journal_row_gets_one_job_even_when_queued_twice() -> None:
    """A resume can read a row after it was journaled and before its own job is queued
    (a new connector submits while its start resumes): the second job is dropped."""
    lanes = Lanes()
    gate = asyncio.Event()
    runs: list[str] = []

    async def job(who: str) -> None:
        await gate.wait()
        runs.append(who)

    lanes.submit("c1", lambda: job("resume"), job_id=7)
    lanes.submit("c1", lambda: job("intake"), job_id=7)
    assert lanes.pending() == 1
    gate.set()
    await lanes.join()
    assert runs == ["resume"]
    lanes.submit("c1", lambda: job("retry"), job_id=7)  # done: a later retry is queued
    await lanes.join()
    assert runs == ["resume", "retry"]


async def test_a_supervisor_restart_queued_behind_a_stop_leaves_the_channel_stopped(
        tmp_path: Path, fake_llm: FakeOpenAI, script: Script) -> None:
    """The supervisor saw a stall and queued a restart; the user's Stop got the lock first.
    Once the restart holds the lock its reason is gone, and the channel stays stopped."""
    running, store = await open_setup(tmp_path, fake_llm,
                                      {"flaky": {"type": "flaky", "script": "lock"}})
    gw, clock = running.gateway, running.clock
    try:
        clock.now += 400  # no sign of life for longer than the liveness window
        gw.supervisor.check()
        assert tasks_named("supervisor:restart:flaky")
        await gw.stop_channel("flaky")
        await eventually(lambda: not tasks_named("supervisor:restart:flaky"))
        assert script.starts == 1 and script.stops == 1
        assert gw.channels["flaky"].state == ChannelState.STOPPED
        assert not await gw.store.logs.page(channel="flaky", search="restarting")
    finally:
        await gw.stop()
        await store.close()
