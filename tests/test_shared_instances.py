"""Several active gateways on one PostgreSQL database (``storage.shared``), in one process.

Each gateway here is a whole instance: its own store connections, its own cluster
sessions, its own Telegram connector (the real python-telegram-bot against the fake).
One receives (the ingress lease), the others run Telegram send-only, and the
conversations spread over all of them. The process-level crash test with SIGKILL is
``tests/faults/test_shared_kill.py``.
"""

from __future__ import annotations

import asyncio
import re
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from pyclaw_app.bus import Bus
from pyclaw_app.config import load_config
from pyclaw_app.config_storage import StorageConfig
from pyclaw_app.control.local import LocalControlPlane
from pyclaw_app.control.metrics import GatewayMetrics
from pyclaw_app.errors import StoreError
from pyclaw_app.gateway import Gateway
from pyclaw_app.model import Address, ChannelState, EventKind, Inbound, MessageStatus
from pyclaw_app.schedules import OWNER, When
from pyclaw_app.secrets import FileSecretStore
from pyclaw_app.store import Store
from pyclaw_app.store.cluster import LEASE_CLASS, claim, lease_key
from tests.conftest import provider_section
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.telegram_api import FakeTelegram
from tests.faults.test_faults import telegram_channel
from tests.servers.postgres import PASSWORD
from tests.stores import postgres_storage
from tests.support import eventually

pytestmark = pytest.mark.timeout(180)
WAIT = 30.0

Instance = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture
async def llm() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(latency=0.01) as server:
        yield server  # type: ignore[misc]


@pytest.fixture
async def shared_db() -> StorageConfig:
    return await postgres_storage()


@pytest.fixture
async def instance(tmp_path: Path, shared_db: StorageConfig, telegram: FakeTelegram,
                   llm: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
                   ) -> AsyncIterator[Instance]:
    """Start one more instance on the shared database, each with its own config file and
    secret store; ``fenced`` collects why any was fenced (the CLI would end the process
    there). The bot token comes from the environment, as in a container, so a config file
    one instance saved (no secrets in it) serves the others too."""
    started: list[tuple[Gateway, Store]] = []
    channel = telegram_channel(telegram)
    monkeypatch.setenv("PYCLAW_TG_TOKEN", channel.pop("token"))
    monkeypatch.setenv("PYCLAW_STORAGE_PASSWORD", PASSWORD)

    async def start(*, shared: bool = True, fenced: list[str] | None = None) -> Gateway:
        n = len(started)
        path = tmp_path / f"pyclaw-{n}.yaml"
        assert shared_db.url is not None
        path.write_text(yaml.safe_dump({
            "storage": {"url": shared_db.url, "shared": shared},
            "providers": [provider_section(llm)],
            "channels": {"tg": channel}}), "utf-8")
        secrets = FileSecretStore(tmp_path / f"data-{n}" / "secrets.json")
        config = load_config(path, secrets)
        store = await Store(tmp_path / f"data-{n}", config.storage).open()
        gateway = Gateway(config, store, Bus())
        try:
            link = store.db.cluster_link(f"test instance {n}")
            await link.join()
            gateway.share(link, on_fenced=(fenced if fenced is not None else []).append,
                          reload=lambda: load_config(path, secrets))
            await gateway.start()
        except BaseException:
            await store.close()
            raise
        started.append((gateway, store))
        return gateway

    yield start
    for gateway, store in reversed(started):
        await gateway.stop()
        await store.close()


def _in_order(telegram: FakeTelegram) -> dict[int, list[int]]:
    per_chat: dict[int, list[int]] = defaultdict(list)
    for sent in telegram.sent_to():
        if match := re.fullmatch(r"Echo: m(\d+)", sent.text):
            per_chat[sent.chat_id].append(int(match.group(1)))
    return per_chat


async def test_conversations_spread_over_instances_each_in_order_none_twice(
        instance: Instance, telegram: FakeTelegram) -> None:
    gateways = [await instance() for _ in range(3)]
    receivers = [g for g in gateways if g.shared is not None and g.shared.receives("tg")]
    assert len(receivers) == 1  # one lease: one getUpdates consumer
    for g in gateways:
        await eventually(lambda g=g: g.channels["tg"].state == ChannelState.ONLINE
                         and g.shared is not None and g.shared.live_instances == 3,
                         timeout=WAIT)
    answered: Counter[int] = Counter()  # which instance sent each reply
    for n, g in enumerate(gateways):
        sub = g.bus.subscribe()

        async def count(sub: Any = sub, n: int = n) -> None:
            async for event in sub:
                if event.kind == EventKind.REPLY_SENT and "instance" not in event.data:
                    answered[n] += 1

        asyncio.get_running_loop().create_task(count())

    messages = 200
    for n in range(messages):
        telegram.inject_message(7000 + n % 40, f"m{n}")
    await eventually(lambda: len(telegram.sent_to()) >= messages, timeout=90)
    await asyncio.sleep(0.5)  # a double would arrive now

    texts = Counter(s.text for s in telegram.sent_to())
    assert texts == Counter(f"Echo: m{n}" for n in range(messages))
    assert all(ns == sorted(ns) for ns in _in_order(telegram).values())
    assert sum(answered.values()) == messages
    assert all(answered[n] > 0 for n in range(3)), answered  # every instance answered some


@pytest.mark.parametrize("taker", ["receiver", "sender"])
async def test_a_dead_instances_turn_is_answered_before_its_chats_next_message(
        instance: Instance, telegram: FakeTelegram, shared_db: StorageConfig, tmp_path: Path,
        taker: str) -> None:
    """An instance died in the middle of a turn: its message stays ``processing`` and its
    claim names a dead instance. The chat's next message is claimed for the receiver or
    for the other instance (by the conversation's hash); either way the dead turn is
    answered first, not after the new one."""
    gateways = [await instance() for _ in range(2)]
    for g in gateways:
        await eventually(lambda g=g: g.channels["tg"].state == ChannelState.ONLINE
                         and g.shared is not None and g.shared.live_instances == 2,
                         timeout=WAIT)
    ids = sorted(g.shared.me for g in gateways if g.shared is not None)
    wanted = next(g.shared.me for g in gateways if g.shared is not None
                  and g.shared.receives("tg") == (taker == "receiver"))

    def address(chat: int) -> Address:
        return Address("tg", chat=str(chat), account=str(telegram.bot_id))

    chat = next(c for c in range(9000, 9100)
                if ids[zlib.crc32(address(c).key.encode()) % len(ids)] == wanted)

    doomed = await Store(tmp_path / "doomed", shared_db).open()
    link = doomed.db.cluster_link("doomed instance")
    dead = await link.join()
    before = await doomed.journal.submit(Inbound(
        address(chat), platform_id=f"{chat}:900001", text="before the crash",
        sender_id=str(chat)))
    await doomed.journal.set_status(before.journal_id, MessageStatus.PROCESSING)
    await doomed.db.write(lambda conn: claim(conn, address(chat).key, dead))
    await link.close()  # the session ends: the instance is dead, its claim stays behind
    await doomed.close()
    telegram.inject_message(chat, "after the crash")

    await eventually(lambda: len(telegram.sent_to(chat)) >= 2, timeout=WAIT)
    assert [s.text for s in telegram.sent_to(chat)] == ["Echo: before the crash",
                                                       "Echo: after the crash"]


async def test_an_orphan_taken_by_the_sweep_is_answered_before_the_message_that_raced_it(
        instance: Instance, telegram: FakeTelegram, shared_db: StorageConfig, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweep takes a conversation nobody alive holds and reads its open rows; the
    chat's next message is journaled in that moment. It must wait for the rows the sweep
    is queueing, not jump ahead of them because the conversation already counts as ours."""
    gateway = await instance()
    await eventually(lambda: gateway.channels["tg"].state == ChannelState.ONLINE,
                     timeout=WAIT)
    chat = 9200
    address = Address("tg", chat=str(chat), account=str(telegram.bot_id))
    conv = address.key
    journal = gateway.store.journal
    read_open_rows = journal.unfinished
    raced: list[str] = []

    async def next_message_arrives_meanwhile(**kwargs: Any) -> list[Any]:
        """The sweep's first read of the orphan's rows lets the next message be journaled
        (MESSAGE_RECEIVED is emitted just before intake offers it) before going on."""
        if kwargs.get("conv") == conv and not raced:
            raced.append(conv)
            sub = gateway.bus.subscribe()
            telegram.inject_message(chat, "after the orphan")
            async for event in sub:
                if event.kind == EventKind.MESSAGE_RECEIVED \
                        and event.data.get("text") == "after the orphan":
                    break
            sub.close()
        return await read_open_rows(**kwargs)

    monkeypatch.setattr(journal, "unfinished", next_message_arrives_meanwhile)
    doomed = await Store(tmp_path / "doomed", shared_db).open()
    link = doomed.db.cluster_link("doomed instance")
    dead = await link.join()
    await doomed.journal.submit(Inbound(address, platform_id=f"{chat}:900002",
                                        text="the orphan", sender_id=str(chat)))
    await doomed.db.write(lambda conn: claim(conn, conv, dead))
    await link.close()
    await doomed.close()

    await eventually(lambda: len(telegram.sent_to(chat)) >= 2, timeout=WAIT)
    await asyncio.sleep(0.5)  # a double would arrive now
    assert raced
    assert [s.text for s in telegram.sent_to(chat)] == ["Echo: the orphan",
                                                       "Echo: after the orphan"]


async def test_a_dead_turn_taken_while_its_channel_restarts_is_answered_first(
        instance: Instance, telegram: FakeTelegram, shared_db: StorageConfig, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweep takes a dead instance's conversation just as the channel restarts (this
    instance has become its receiver): the dead turn finds the channel stopped, so no lane
    has it. The restart's own sweep must queue it again before the chat's next message,
    though it is ``processing`` in a conversation this instance holds."""
    gateway = await instance()
    await eventually(lambda: gateway.channels["tg"].state == ChannelState.ONLINE,
                     timeout=WAIT)
    chat = 9300
    address = Address("tg", chat=str(chat), account=str(telegram.bot_id))
    resume = gateway.intake.resume_row
    restarts: list[asyncio.Task[None]] = []
    resumed = asyncio.Event()
    stopping = gateway.channels["tg"].connector
    assert stopping is not None
    stop = stopping.stop

    async def channel_restarts_meanwhile(row: Any, why: str | None) -> None:
        if row.conv == address.key and not restarts:
            restarts.append(asyncio.create_task(
                gateway.restart_channel("tg", "this instance now receives for it")))
            await eventually(lambda: gateway.channels["tg"].connector is None, timeout=WAIT)
            await resume(row, why)
            resumed.set()
        else:
            await resume(row, why)

    async def stop_once_the_row_was_resumed() -> None:
        await resumed.wait()
        await stop()

    monkeypatch.setattr(gateway.intake, "resume_row", channel_restarts_meanwhile)
    monkeypatch.setattr(stopping, "stop", stop_once_the_row_was_resumed)
    doomed = await Store(tmp_path / "doomed", shared_db).open()
    link = doomed.db.cluster_link("doomed instance")
    dead = await link.join()
    before = await doomed.journal.submit(Inbound(
        address, platform_id=f"{chat}:900003", text="before the restart",
        sender_id=str(chat)))
    await doomed.journal.set_status(before.journal_id, MessageStatus.PROCESSING)
    await doomed.db.write(lambda conn: claim(conn, address.key, dead))
    await link.close()
    await doomed.close()

    await eventually(lambda: bool(restarts) and restarts[0].done(), timeout=WAIT)
    await eventually(lambda: gateway.channels["tg"].state == ChannelState.ONLINE,
                     timeout=WAIT)
    telegram.inject_message(chat, "after the restart")
    await eventually(lambda: len(telegram.sent_to(chat)) >= 2, timeout=WAIT)
    await asyncio.sleep(0.5)  # a double would arrive now
    assert [s.text for s in telegram.sent_to(chat)] == ["Echo: before the restart",
                                                       "Echo: after the restart"]


async def test_the_others_see_every_instances_traffic(instance: Instance,
                                                      telegram: FakeTelegram) -> None:
    first = await instance()
    second = await instance()
    await eventually(lambda: all(g.channels["tg"].state == ChannelState.ONLINE
                                 for g in (first, second)), timeout=WAIT)
    subs = {id(g): g.bus.subscribe() for g in (first, second)}
    telegram.inject_message(8100, "hello there")
    await eventually(lambda: len(telegram.sent_to()) >= 1, timeout=WAIT)

    async def sent_seen(g: Gateway) -> set[str]:
        """Where each REPLY_SENT came from, as this gateway's bus saw it."""
        seen: set[str] = set()
        sub = subs[id(g)]
        while True:
            try:
                event = await asyncio.wait_for(sub.get(), 5)
            except TimeoutError:
                return seen
            if event.kind == EventKind.REPLY_SENT:
                seen.add(event.data.get("instance", "here"))
                if len(seen) == 1:
                    return seen

    seen = [await sent_seen(g) for g in (first, second)]
    # The instance that answered saw its own; the other saw it tagged with that instance.
    assert sorted(len(s) for s in seen) == [1, 1]
    assert {"here"} in seen
    assert any(s != {"here"} and next(iter(s)).startswith("test instance") for s in seen)


async def test_the_lease_moves_when_its_holder_stops(instance: Instance,
                                                     telegram: FakeTelegram) -> None:
    first = await instance()
    second = await instance()
    assert first.shared is not None and second.shared is not None
    assert first.shared.receives("tg") and not second.shared.receives("tg")
    await first.stop()
    await eventually(lambda: second.shared is not None and second.shared.receives("tg"),
                     timeout=WAIT)
    await eventually(lambda: second.channels["tg"].state == ChannelState.ONLINE, timeout=WAIT)
    telegram.inject_message(8200, "after the move")
    await eventually(lambda: [s.text for s in telegram.sent_to()] == ["Echo: after the move"],
                     timeout=WAIT)


async def test_a_gateway_that_runs_alone_and_shared_ones_refuse_each_other(
        instance: Instance, shared_db: StorageConfig, tmp_path: Path) -> None:
    await instance()
    alone = await Store(tmp_path / "alone", shared_db).open()
    try:
        with pytest.raises(StoreError, match=r"storage\.shared: true on every gateway"):
            await alone.db.hold_instance_lock("alone")
    finally:
        await alone.close()


async def test_an_instance_that_loses_its_session_is_fenced(
        instance: Instance, shared_db: StorageConfig) -> None:
    fenced: list[str] = []
    gateway = await instance(fenced=fenced)
    assert gateway.shared is not None
    assert shared_db.url is not None
    with psycopg.connect(shared_db.url, password=PASSWORD, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(l.pid) FROM pg_locks l"
                     " WHERE l.locktype = 'advisory' AND l.classid = %s AND l.objid = %s",
                     (LEASE_CLASS, lease_key("tg")))
    await eventually(lambda: fenced, timeout=WAIT)
    assert "lost its session" in fenced[0]


async def test_a_change_saved_on_one_instance_reaches_the_others(
        instance: Instance, tmp_path: Path) -> None:
    first = await instance()
    second = await instance()
    plane = LocalControlPlane(first, FileSecretStore(tmp_path / "data-0" / "secrets.json"),
                              tmp_path / "pyclaw-0.yaml")
    form = plane.channel_form("tg")
    assert not await plane.save_channel("tg", "telegram",
                                        {**form.values, "rate_limit_per_minute": 7})
    assert not await plane.save_channel("desk", "local", {})

    def adopted() -> bool:
        entry = second.channels.get("desk")
        tg = second.channels["tg"].entry.config
        return entry is not None and entry.state == ChannelState.ONLINE \
            and tg is not None and tg.rate_limit_per_minute == 7
    await eventually(adopted, timeout=WAIT)
    assert "rate_limit_per_minute: 7" in (tmp_path / "pyclaw-1.yaml").read_text()
    assert (tmp_path / "pyclaw-1.yaml.bak").exists()
    await eventually(lambda: second.channels["tg"].state == ChannelState.ONLINE
                     or second.channels["tg"].reason.startswith("standby"), timeout=WAIT)


async def test_metrics_count_only_their_own_instances_messages(
        instance: Instance, telegram: FakeTelegram) -> None:
    gateways = [await instance() for _ in range(2)]
    for g in gateways:
        await eventually(lambda g=g: g.channels["tg"].state == ChannelState.ONLINE
                         and g.shared is not None and g.shared.live_instances == 2,
                         timeout=WAIT)
    metrics = [GatewayMetrics(g) for g in gateways]
    for m in metrics:
        m.start()
    try:
        for n in range(20):
            telegram.inject_message(8300 + n, f"m{n}")
        await eventually(lambda: len(telegram.sent_to()) >= 20, timeout=WAIT)
        await asyncio.sleep(0.5)  # the fanned-out events reach the other bus too

        samples = []
        for m in metrics:
            families = {f.name: f for f in text_string_to_metric_families(
                (await m.render()).decode())}
            samples.append({(s.name, s.labels.get("channel")): s.value
                            for f in families.values() for s in f.samples})
    finally:
        for m in metrics:
            await m.stop()
    sent = [s.get(("pyclaw_messages_out_total", "tg"), 0.0) for s in samples]
    assert sum(sent) == 20 and all(n > 0 for n in sent), sent  # each its own, none twice
    assert [s[("pyclaw_instances_live", None)] for s in samples] == [2.0, 2.0]
    assert sorted(s[("pyclaw_channel_receiving", "tg")] for s in samples) == [0.0, 1.0]


async def test_a_scheduled_message_goes_out_once_whichever_instances_run(
        instance: Instance, telegram: FakeTelegram) -> None:
    """Every instance's scheduler sees the job fall due; the firing is one journal row,
    delivered only by the instance holding its conversation."""
    gateways = [await instance() for _ in range(3)]
    for g in gateways:
        await eventually(lambda g=g: g.channels["tg"].state == ChannelState.ONLINE
                         and g.shared is not None and g.shared.live_instances == 3,
                         timeout=WAIT)
    telegram.inject_message(8400, "hello")
    await eventually(lambda: len(telegram.sent_to()) == 1, timeout=WAIT)
    asked = next(r for r in await gateways[0].store.journal.recent() if r.direction == "in")
    await gateways[0].store.schedules.add(
        asked.address, created_by=OWNER, creator_name="owner", is_group=False,
        action="text", body="Time to stretch!", when=When(time.time() + 0.5, None, "UTC"),
        missed="run_once", now=time.time())
    telegram.send_latency = 1.0  # the send is under way while every scheduler looks again
    await asyncio.sleep(0.6)
    for _ in range(8):
        for g in gateways:
            g.scheduler.wake()
        await asyncio.sleep(0.2)
    await eventually(lambda: "Time to stretch!" in [s.text for s in telegram.sent_to()],
                     timeout=WAIT)
    await asyncio.sleep(1.5)
    assert [s.text for s in telegram.sent_to()].count("Time to stretch!") == 1
    fired = [r for r in await gateways[0].store.journal.recent()
             if r.direction == "in" and r.id != asked.id]
    assert [r.status for r in fired] == ["replied"]  # not failed as "uncertain" elsewhere
    lines = await gateways[0].store.logs.page(channel="tg", search="interrupted", limit=50)
    assert lines == []  # no other instance took the send under way for a crashed one
