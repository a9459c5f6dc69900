"""Every log table has an age and a row limit, pruned in batches in the background; the
conversation journal is never pruned; bad limits are config errors naming the line."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from pyclaw_app.config import RetentionConfig, load_config, save_config
from pyclaw_app.model import Address
from pyclaw_app.schedules import When
from pyclaw_app.secrets import FileSecretStore
from pyclaw_app.store import Store
from pyclaw_app.store.retention import DAY, LOG_TABLES, SCHEDULE_RUNS, Pruner
from tests.conftest import GatewayFactory, StoreFactory
from tests.stores import ON_EACH_STORE
from tests.support import eventually

NOW = 1_900_000_000.0

pytestmark = ON_EACH_STORE


@dataclass(frozen=True)
class Keep:
    days: float | None = None
    rows: int | None = None


@pytest.fixture
async def store(tmp_path: Path, open_store: StoreFactory) -> Store:
    return await open_store(tmp_path / "data")


def pruner(store: Store) -> Pruner:
    return Pruner(store.db, RetentionConfig, clock=lambda: NOW)


async def fill(store: Store, table: str, ages_in_days: list[float], *,
               now: float = NOW) -> None:
    """Rows of ``table`` written ``ages_in_days`` before ``now``, oldest first."""
    columns = {"channel_log": ("channel, level, message", ("web", "warning", "a line")),
               "llm_calls": ("provider, model", ("fake", "fake-model")),
               "dead_letters": ("channel, reason, raw", ("web", "cannot store", b"\xff"))}
    names, values = columns[table]
    rows = [(now - age * DAY, *values) for age in ages_in_days]
    marks = ", ".join("?" * (len(values) + 1))

    def op(conn: sqlite3.Connection) -> None:
        conn.executemany(f"INSERT INTO {table} (ts, {names}) VALUES ({marks})", rows)

    await store.db.write(op)


async def count(store: Store, table: str) -> int:
    row = await store.db.fetchone(f"SELECT COUNT(*) AS n FROM {table}")
    assert row is not None
    return int(row["n"])


@pytest.mark.parametrize("table", LOG_TABLES)
async def test_rows_past_the_age_limit_go_and_younger_ones_stay(store: Store,
                                                                table: str) -> None:
    await fill(store, table, [45, 31, 30.5, 29.9, 10, 0])
    removed = await pruner(store).prune_table(table, Keep(days=30), batch=2)
    assert removed == 3
    ages = [(NOW - r["ts"]) / DAY for r in await store.db.fetchall(
        f"SELECT ts FROM {table} ORDER BY id")]
    assert ages == pytest.approx([29.9, 10, 0])


@pytest.mark.parametrize("table", LOG_TABLES)
async def test_only_the_newest_rows_are_kept(store: Store, table: str) -> None:
    await fill(store, table, [1.0] * 2_500)
    newest = [r["id"] for r in await store.db.fetchall(
        f"SELECT id FROM {table} ORDER BY id DESC LIMIT 1000")]
    assert await pruner(store).prune_table(table, Keep(rows=1000), batch=300) == 1_500
    kept = [r["id"] for r in await store.db.fetchall(f"SELECT id FROM {table} ORDER BY id DESC")]
    assert kept == newest
    assert await pruner(store).prune_table(table, Keep(rows=1000), batch=300) == 0


async def test_both_limits_apply_and_either_can_be_lifted(store: Store) -> None:
    await fill(store, "channel_log", [90, 60, 5, 4, 3, 2, 1])
    assert await pruner(store).prune_table("channel_log", Keep(), batch=10) == 0
    assert await pruner(store).prune_table("channel_log", Keep(days=30, rows=3),
                                           batch=10) == 4
    assert await count(store, "channel_log") == 3


async def test_a_prune_deletes_in_batches_that_other_writes_get_between(store: Store) -> None:
    await fill(store, "channel_log", [40.0] * 20_000)
    writes_before = store.db.writes
    prune = asyncio.create_task(pruner(store).prune_table("channel_log", Keep(days=30),
                                                          batch=100))
    prune_done_when_written: list[bool] = []
    for n in range(5):
        await store.db.execute("INSERT INTO channel_log (ts, channel, level, message)"
                               " VALUES (?, 'web', 'info', ?)", (NOW, f"mid-prune {n}"))
        prune_done_when_written.append(prune.done())
    assert await prune == 20_000
    assert prune_done_when_written == [False] * 5  # none waited for the whole prune
    assert store.db.writes - writes_before >= 200 + 5  # one write per batch of 100
    assert await count(store, "channel_log") == 5


async def test_only_log_tables_are_pruned(store: Store) -> None:
    with pytest.raises(ValueError, match="'messages' is not a log table"):
        await pruner(store).prune_table("messages", Keep(days=1), batch=10)


async def test_the_gateway_prunes_every_log_table_in_the_background_but_not_the_journal(
        make_gateway: GatewayFactory, tmp_path: Path, open_store: StoreFactory) -> None:
    store = await open_store(tmp_path / "data")  # the gateway's database, filled first
    for table in LOG_TABLES:
        await fill(store, table, [800.0] * 3, now=time.time())
    await fill(store, "channel_log", [0.0] * 50, now=time.time())

    def old_message(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO messages (direction, channel, chat, conv, text, status,"
                     " created_at, updated_at) VALUES ('in', 'local', 'me', 'local:me',"
                     " 'from long ago', 'done', 1.0, 1.0)")

    await store.db.write(old_message)
    await store.close()

    gateway = await make_gateway({"retention": {"every": 0.01, "channel_log": {"rows": 10}}})

    async def pruned() -> bool:
        counts = [await count(gateway.store, table) for table in LOG_TABLES]
        return counts[0] <= 10 and counts[1:] == [0, 0]

    await eventually(pruned)
    for n in range(30):  # and it goes on: new lines are pruned on a later pass
        gateway.channel_log("local", "info", f"line {n}")
    await gateway.store.db.write(lambda conn: None)  # committed: over the limit now
    await eventually(pruned)
    # a pass counts once it has done every table, a moment after it pruned channel_log
    await eventually(lambda: gateway.retention.passes >= 2)
    assert await count(gateway.store, "messages") == 1  # the conversation record stays


# ---- scheduled jobs' runs -----------------------------------------------------------------
async def runs_of(store: Store, job_id: int, runs: list[tuple[float, str | None]]) -> None:
    """Runs of job ``job_id`` ``age`` days old, each fired with its message in ``status``
    (None: a skipped run, no message); the last one given is the job's latest."""
    def op(conn: sqlite3.Connection) -> None:
        last_fired = None
        for age, status in runs:
            at = NOW - age * DAY
            message_id = None
            if status is not None:
                cur = conn.execute(
                    "INSERT INTO messages (direction, channel, chat, conv, text, status,"
                    " created_at, updated_at) VALUES ('in', 'local', 'me', 'local:me', 'due',"
                    " ?, ?, ?)", (status, at, at))
                message_id, last_fired = cur.lastrowid, at
            conn.execute("INSERT INTO schedule_runs (job_id, scheduled_for, status, message_id,"
                         " created_at) VALUES (?, ?, ?, ?, ?)",
                         (job_id, at, "skipped" if status is None else "fired", message_id, at))
        conn.execute("UPDATE schedules SET last_run=? WHERE id=?", (last_fired, job_id))

    await store.db.write(op)


async def ages(store: Store, job_id: int) -> list[float]:
    return [round((NOW - r.scheduled_for) / DAY)
            for r in reversed(await store.schedules.runs(job_id))]


async def new_job(store: Store) -> int:
    job = await store.schedules.add(
        Address("local", "me"), created_by="owner", creator_name="owner", is_group=False,
        action="text", body="due", when=When(None, "0 9 * * *", "UTC"), missed="run_once",
        now=NOW - 400 * DAY)
    return job.id


async def test_finished_runs_past_the_age_go_and_open_and_latest_ones_stay(
        store: Store) -> None:
    busy, lone, skipping = await new_job(store), await new_job(store), await new_job(store)
    await runs_of(store, busy, [(300, "replied"), (200, None), (150, "scheduled"),
                                (120, "failed"), (100, "skipped"), (95, "replied"),
                                (60, "replied"), (1, "replied")])
    await runs_of(store, lone, [(300, "replied")])  # its only run: the latest, kept
    await runs_of(store, skipping, [(300, "replied"), (200, None)])  # last fired; latest
    pruner_ = Pruner(store.db, RetentionConfig, clock=lambda: NOW)
    removed = await pruner_.prune_schedule_runs(90, batch=2)
    assert removed == 4
    assert await ages(store, busy) == [150, 120, 60, 1]  # open, failed (retryable), young
    assert await ages(store, lone) == [300]
    assert await ages(store, skipping) == [300, 200]
    assert await count(store, "messages") == 9  # the journal keeps every firing's message
    assert await pruner_.prune_schedule_runs(90, batch=2) == 0


async def test_a_pass_prunes_schedule_runs_by_the_setting(store: Store) -> None:
    job = await new_job(store)
    await runs_of(store, job, [(100, "replied"), (40, "replied"), (10, "replied")])
    pruner_ = Pruner(store.db, RetentionConfig, clock=lambda: NOW)
    assert (await pruner_.prune(RetentionConfig()))[SCHEDULE_RUNS] == 1  # 90 days
    assert await ages(store, job) == [40, 10]
    assert SCHEDULE_RUNS not in await pruner_.prune(RetentionConfig(schedule_runs_days=None))
    assert (await pruner_.prune(RetentionConfig(schedule_runs_days=30)))[SCHEDULE_RUNS] == 1
    assert await ages(store, job) == [10]


# ---- settings ---------------------------------------------------------------------------


def test_every_log_table_has_limits_by_default() -> None:
    retention = RetentionConfig()
    assert set(retention.tables()) == set(LOG_TABLES)
    assert all(limits.days and limits.rows for limits in retention.tables().values())
    assert (retention.channel_log.days, retention.channel_log.rows) == (30, 200_000)
    assert retention.schedule_runs_days == 90


def test_a_table_section_keeps_the_limit_it_does_not_name_and_round_trips(
        tmp_path: Path) -> None:
    path = tmp_path / "pyclaw.yaml"
    path.write_text(yaml.safe_dump({"retention": {
        "channel_log": {"days": 7}, "llm_calls": {"rows": None}, "every": 60}}))
    cfg = load_config(path)
    assert cfg.errors == []
    assert (cfg.retention.channel_log.days, cfg.retention.channel_log.rows) == (7, 200_000)
    assert (cfg.retention.llm_calls.days, cfg.retention.llm_calls.rows) == (400, None)
    assert cfg.retention.dead_letters.rows == 1_000
    save_config(cfg, FileSecretStore(tmp_path / "secrets.json"))
    assert yaml.safe_load(path.read_text())["retention"] == {
        "channel_log": {"days": 7.0}, "llm_calls": {"rows": None}, "every": 60.0}
    assert load_config(path).retention == cfg.retention


@pytest.mark.parametrize(("section", "line", "where", "message"), [
    ({"channel_log": {"days": 0}}, 6, "retention.channel_log.days", "greater than 0"),
    ({"llm_calls": {"rows": -5}}, 6, "retention.llm_calls.rows", "greater than or equal to 1"),
    ({"dead_letters": {"weeks": 2}}, 6, "retention.dead_letters.weeks", "unknown field"),
    ({"messages": {"days": 30}}, 5, "retention.messages", "unknown field"),
    ({"every": 0}, 5, "retention.every", "greater than 0"),
    ({"batch": 0}, 5, "retention.batch", "greater than or equal to 1"),
])
def test_bad_limits_name_the_line_and_leave_the_defaults(
        tmp_path: Path, section: dict[str, Any], line: int, where: str, message: str) -> None:
    path = tmp_path / "pyclaw.yaml"
    path.write_text(yaml.safe_dump({"channels": {"local": {"type": "local"}},
                                    "retention": section}, sort_keys=False))
    cfg = load_config(path)
    [error] = cfg.errors
    assert str(error).startswith(f"{path}:{line} [{where}]: ")
    assert message in str(error)
    assert cfg.retention == RetentionConfig()  # the safe defaults, not no limits
    assert cfg.channels["local"].config is not None
