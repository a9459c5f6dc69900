"""The log tables kept to their configured age and size, pruned in the background.

Nothing else deletes from ``channel_log``, ``llm_calls`` or ``dead_letters``, so without
this a busy (or attacked) gateway grows its database until the disk is full. Which rows
go is found on the read connection; each batch is then one short DELETE over a range of
ids through the one writer, so the journal's writes wait behind one batch at most, never
behind the whole prune. The journal (``messages``) is the conversation record, not a log:
it is never pruned here.

The scheduled jobs' run history (``schedule_runs``, one row per firing) ages out on the
same pass by ``schedule_runs_days``: only finished runs, never a firing still being
delivered and never a job's latest run (``ScheduleStore.prune_runs`` says which).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from pyclaw_app.errors import StoreError
from pyclaw_app.store.db import Database
from pyclaw_app.store.schedules import ScheduleStore

__all__ = ["LOG_TABLES", "SCHEDULE_RUNS", "Limits", "Plan", "Pruner", "Sweeper"]

_log = logging.getLogger(__name__)

SCHEDULE_RUNS = "schedule_runs"
LOG_TABLES = ("channel_log", "llm_calls", "dead_letters")
"""The tables with a ``ts`` column and an ``id`` that grows with it, and nothing pointing
at their rows, so deleting old ones loses only history."""
DAY = 86_400.0


class Limits(Protocol):
    """One table's limits (``config.TableRetention``); None lifts a limit."""

    @property
    def days(self) -> float | None: ...

    @property
    def rows(self) -> int | None: ...


class Plan(Protocol):
    """What to prune and how often (``config.RetentionConfig``), read again each pass."""

    @property
    def every(self) -> float: ...

    @property
    def batch(self) -> int: ...

    @property
    def schedule_runs_days(self) -> float | None:
        """Age after which a finished run of a scheduled job goes; None keeps them all."""
        ...

    def tables(self) -> Mapping[str, Limits]: ...


class Sweeper(Protocol):
    """Something beside the tables that ages out on the same pass (the attachment files)."""

    @property
    def name(self) -> str: ...

    async def sweep(self, now: float) -> int:
        """Remove what is past its limit at ``now``; how many went."""
        ...


class Pruner:
    """Prunes every log table each ``plan().every`` seconds as the task ``store:retention``.

    ``plan`` is called once per pass, so a changed config applies from the next one.
    """

    def __init__(self, db: Database, plan: Callable[[], Plan], *,
                 clock: Callable[[], float] = time.time,
                 sweepers: Sequence[Sweeper] = ()) -> None:
        self.db = db
        self._plan = plan
        self._clock = clock
        self._sweepers = tuple(sweepers)
        self._task: asyncio.Task[None] | None = None
        self.passes = 0
        """Passes finished (the background task's progress, for status and tests)."""

    def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("the log pruner is already running")
        self._task = asyncio.create_task(self._run(), name="store:retention")
        self._task.add_done_callback(_report_crash)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            plan = self._plan()
            try:
                removed = await self.prune(plan)
            except (StoreError, sqlite3.Error) as exc:  # the store is failing: next pass
                _log.warning("could not prune the log tables (trying again in %gs): %s",
                             plan.every, exc)
            else:
                if any(removed.values()):
                    _log.info("pruned old log rows: %s", ", ".join(
                        f"{count:,} of {table}" for table, count in removed.items() if count))
            self.passes += 1
            await asyncio.sleep(plan.every)

    async def prune(self, plan: Plan) -> dict[str, int]:
        """One pass: rows deleted per table (and items per sweeper)."""
        removed = {table: await self.prune_table(table, limits, batch=plan.batch)
                   for table, limits in plan.tables().items()}
        if plan.schedule_runs_days is not None:
            removed[SCHEDULE_RUNS] = await self.prune_schedule_runs(plan.schedule_runs_days,
                                                                    batch=plan.batch)
        for sweeper in self._sweepers:
            removed[sweeper.name] = await sweeper.sweep(self._clock())
        return removed

    async def prune_table(self, table: str, limits: Limits, *, batch: int) -> int:
        """Delete ``table``'s rows older than ``limits.days``, then all but the newest
        ``limits.rows``, ``batch`` rows per write; how many went."""
        if table not in LOG_TABLES:
            raise ValueError(f"{table!r} is not a log table ({', '.join(LOG_TABLES)})")
        if batch < 1:
            raise ValueError("batch must be at least one row")
        removed = 0
        if limits.days is not None:
            removed += await self._delete_older(table, self._clock() - limits.days * DAY,
                                                batch)
        if limits.rows is not None:
            newest_gone = await self.db.fetchone(
                f"SELECT id FROM {table} ORDER BY id DESC LIMIT 1 OFFSET ?", (limits.rows,))
            if newest_gone is not None:
                removed += await self._delete_up_to(table, newest_gone["id"], batch)
        return removed

    async def prune_schedule_runs(self, days: float, *, batch: int) -> int:
        """Delete the finished schedule runs older than ``days``; how many went."""
        if batch < 1:
            raise ValueError("batch must be at least one row")
        return await ScheduleStore(self.db).prune_runs(self._clock() - days * DAY, batch)

    async def _delete_older(self, table: str, cutoff: float, batch: int) -> int:
        removed, after = 0, 0
        while True:
            ids = await self.db.fetchall(
                f"SELECT id FROM {table} WHERE ts < ? AND id > ? ORDER BY id LIMIT ?",
                (cutoff, after, batch))
            if not ids:
                return removed
            first, after = ids[0]["id"], ids[-1]["id"]
            removed += await self._write_delete(
                f"DELETE FROM {table} WHERE id BETWEEN ? AND ? AND ts < ?",
                (first, after, cutoff))

    async def _delete_up_to(self, table: str, last_id: int, batch: int) -> int:
        removed = 0
        while True:
            count = await self._write_delete(
                f"DELETE FROM {table} WHERE id IN"
                f" (SELECT id FROM {table} WHERE id <= ? ORDER BY id LIMIT ?)",
                (last_id, batch))
            removed += count
            if count < batch:
                return removed

    async def _write_delete(self, sql: str, params: tuple[float | int, ...]) -> int:
        def op(conn: sqlite3.Connection) -> int:
            return conn.execute(sql, params).rowcount

        count: int = await self.db.write(op)
        return count


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        _log.error("log pruning stopped", exc_info=task.exception())
