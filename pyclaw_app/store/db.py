"""The one writer every store shares: a queue of write ops run in batches, one transaction each.

Every write goes through :meth:`Database.write`, which queues an *op*; the
writer task takes whatever is queued and runs it as one transaction, resolving
each caller only after COMMIT. Many concurrent ``submit()`` calls thus share
one commit, which is what keeps the journal both durable and fast.

Ops are plain functions of a DB-API connection (``conn.execute(sql, params)``
with ``?`` placeholders, rows readable by index and by column name), and the
writer runs BEGIN, every op of the batch and COMMIT in a single call into its
own thread: a thread hop per statement was about a quarter of the gateway's
CPU under load. Coroutine ops (``async def op(conn)`` using
``await conn.execute(...)``, the aiosqlite style) still work: a batch holding
one is run statement by statement through :class:`_AsyncWriter`, slower but
with the same guarantees.

Two backends share this: SQLite (``store/sqlite.py``, the embedded default) and
PostgreSQL (``store/postgres.py``, several instances on one database). The stores
above them write one SQL; the PostgreSQL connection translates the few
SQLite-isms it uses.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar, Union

from pyclaw_app.backoff import Backoff
from pyclaw_app.errors import StoreError

if TYPE_CHECKING:
    from pyclaw_app.store.cluster_link import ClusterLink

__all__ = ["AsyncWriteOp", "Database", "SyncWriteOp", "WriteOp"]

_log = logging.getLogger(__name__)

T = TypeVar("T")
SyncWriteOp = Callable[[Any], Any]
"""Runs in the writer thread, inside the batch's transaction: the fast kind."""
AsyncWriteOp = Callable[[Any], Awaitable[Any]]
"""``async def op(conn)`` with aiosqlite-style ``await conn.execute(sql, params)``."""
WriteOp = Union[SyncWriteOp, AsyncWriteOp]  # noqa: UP007 - a runtime alias, not an annotation
MAX_BATCH = 512

_Item = tuple[WriteOp, "asyncio.Future[Any] | None"]


class Database:
    """The batching writer and the read path; a backend supplies connections and errors."""

    backend = ""
    """"SQLite" or "PostgreSQL": how errors and outages name the store."""
    begin = "BEGIN"

    def __init__(self) -> None:
        self._thread: ThreadPoolExecutor | None = None
        self._writer: Any = None
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.writes = 0
        self.outage: str | None = None
        """The error writes are waiting out right now (disk full, locked, no server), if any."""
        self.on_outage: Callable[[str | None], None] | None = None
        self.holds_instance = False
        """Whether this process holds the store as its one gateway (:meth:`hold_instance_lock`):
        false in a standby still waiting, and in CLI commands beside a gateway."""
        self._closing = False

    # -- what a backend provides ------------------------------------------------------------

    async def _open_backend(self) -> None:
        """Connect (``self._writer`` in the writer thread) and migrate."""
        raise NotImplementedError

    async def _close_backend(self) -> None:
        raise NotImplementedError

    async def fetchall(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        raise NotImplementedError

    def _transient(self, exc: BaseException) -> bool:
        """Whether ``exc`` is an outage to wait out (the batch is retried) or the op's fault."""
        raise NotImplementedError

    def _recover(self) -> None:
        """In the writer thread, after a transient failure: reconnect if the link is gone."""

    async def hold_instance_lock(self, who: str, *, wait: bool = False,
                                 on_wait: Callable[[str], None] | None = None) -> None:
        """Be the only gateway on this store until :meth:`close`, or raise
        :class:`~pyclaw_app.errors.StoreError` naming the one that is (``who`` names us to
        it). Two gateways resuming each other's open journal rows would answer twice.
        ``wait`` (PostgreSQL): stand by until the holder is gone instead, telling
        ``on_wait`` who it is once."""
        raise NotImplementedError

    def cluster_link(self, who: str) -> ClusterLink:
        """Sessions of their own for an instance that shares the work (``storage.shared``):
        PostgreSQL only."""
        raise StoreError(f"{self.backend} cannot be shared by several gateways: "
                         "storage.shared needs a PostgreSQL url")

    # -- the shared part ---------------------------------------------------------------------

    async def open(self) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")
        try:
            await self._open_backend()
        except BaseException:
            self._thread.shutdown(wait=False)
            self._thread = None
            raise
        self._task = asyncio.create_task(self._write_loop(), name="store:writer")

    @property
    def is_open(self) -> bool:
        return self._task is not None

    async def close(self) -> None:
        """Write what is queued, then close. The loop's end cancels every task, the writer
        and a stop that is closing the store alike: the connections are closed all the
        same, since a backend's worker thread left open keeps the process from exiting."""
        self._closing = True
        try:
            if self._task is not None:
                if not self._task.done():
                    self._queue.put_nowait(None)
                await asyncio.wait({self._task})  # its end, cancelled or not, is not ours
        finally:  # even when this close is what the loop's end cancels
            self._task = None
            await self._close_backend()
            self.holds_instance = False
            if self._thread is not None:
                self._thread.shutdown(wait=True)
            self._writer = None
            self._thread = None

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in the writer thread (the only thread that touches the writer)."""
        assert self._thread is not None
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def write(self, op: WriteOp) -> Any:
        """Run ``op`` in the next batch; returns its result once the batch is committed."""
        if self._task is None:
            raise StoreError("database is not open")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((op, fut))
        return await fut

    def write_nowait(self, op: WriteOp) -> None:
        """Queue ``op`` without waiting for the commit (log lines, counters)."""
        if self._task is not None:
            self._queue.put_nowait((op, None))

    async def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        def op(conn: Any) -> None:
            conn.execute(sql, params)

        await self.write(op)

    async def fetchone(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def _write_loop(self) -> None:
        stopping = False
        while not stopping:
            item = await self._queue.get()
            if item is None:
                break
            batch = [item]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                nxt = self._queue.get_nowait()
                if nxt is None:
                    stopping = True
                    break
                batch.append(nxt)
            await self._run_batch(batch)

    async def _run_batch(self, batch: list[_Item]) -> None:
        try:
            results = await self._transaction_riding_out_outages([op for op, _ in batch])
        except Exception as exc:  # noqa: BLE001 - failed to its callers, the writer stays up
            if len(batch) == 1:
                self._fail(batch[0][1], exc)
                return
            # One bad op must not fail its neighbours: retry each on its own.
            for op, fut in batch:
                try:
                    (result,) = await self._transaction([op])
                except Exception as single_exc:  # noqa: BLE001 - as above
                    self._fail(fut, single_exc)
                else:
                    if fut is not None and not fut.done():
                        fut.set_result(result)
            return
        self.batches += 1
        self.writes += len(batch)
        for (_, fut), result in zip(batch, results, strict=True):
            if fut is not None and not fut.done():
                fut.set_result(result)

    async def _transaction_riding_out_outages(self, ops: list[WriteOp]) -> list[Any]:
        """Retry a batch while the store is full, locked, failing I/O or unreachable; report
        it once.

        Callers of ``write()`` simply wait: nothing is acknowledged to a platform that
        is not committed, and nothing is lost while the disk is full.
        """
        backoff = Backoff(base=0.05, cap=5.0)
        while True:
            try:
                results = await self._transaction(ops)
            except Exception as exc:
                if self._closing or not self._transient(exc):
                    raise
                if self.outage is None:
                    self.outage = str(exc).strip()
                    _log.error("%s write failed (%s); holding writes and retrying",
                               self.backend, self.outage)
                    if self.on_outage is not None:
                        self.on_outage(self.outage)
                await asyncio.sleep(backoff.next_delay())
                await self._in_thread(self._recover)
                continue
            if self.outage is not None:
                _log.warning("%s writes work again after: %s", self.backend, self.outage)
                self.outage = None
                if self.on_outage is not None:
                    self.on_outage(None)
            return results

    async def _transaction(self, ops: list[WriteOp]) -> list[Any]:
        conn = self._writer
        if conn is None:
            raise StoreError(f"{self.backend} is not connected")
        if not any(inspect.iscoroutinefunction(op) for op in ops):
            return await self._in_thread(_run_transaction, conn, self.begin, ops)
        # A coroutine op needs the event loop between its statements: hop per statement.
        shim = _AsyncWriter(conn, self._in_thread)
        await self._in_thread(conn.execute, self.begin)
        try:
            results = []
            for op in ops:
                if inspect.iscoroutinefunction(op):
                    results.append(await op(shim))
                else:
                    results.append(await self._in_thread(op, conn))
            await self._in_thread(conn.execute, "COMMIT")
        except BaseException:
            await asyncio.shield(self._in_thread(_rollback, conn))
            raise
        return results

    def _fail(self, fut: asyncio.Future[Any] | None, exc: Exception) -> None:
        error = exc if isinstance(exc, StoreError) else StoreError(
            f"{self.backend} write failed: {exc}")
        if fut is None:
            _log.error("background write failed: %s", exc)
        elif not fut.done():
            fut.set_exception(error)


class _AsyncWriter:
    """What a coroutine op gets as ``conn``: aiosqlite's ``execute`` over the writer thread."""

    def __init__(self, conn: Any, in_thread: Callable[..., Awaitable[Any]]) -> None:
        self._conn = conn
        self._in_thread = in_thread

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> Any:
        return await self._in_thread(self._conn.execute, sql, params)

    async def execute_fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        rows: list[Any] = await self._in_thread(partial(_fetchall, self._conn, sql, params))
        return rows


def _run_transaction(conn: Any, begin: str, ops: list[SyncWriteOp]) -> list[Any]:
    """One batch, in the writer thread: BEGIN, every op, COMMIT (or ROLLBACK)."""
    conn.execute(begin)
    try:
        results = [op(conn) for op in ops]
        conn.execute("COMMIT")
    except StopIteration as exc:
        # An asyncio future cannot carry StopIteration: the caller would wait forever.
        _rollback(conn)
        raise RuntimeError(f"write op raised StopIteration: {exc!r}") from exc
    except BaseException:
        _rollback(conn)
        raise
    return results


def _rollback(conn: Any) -> None:
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except Exception:  # noqa: BLE001 - the connection is already broken: nothing to undo
            _log.debug("rollback failed", exc_info=True)


def _fetchall(conn: Any, sql: str, params: Iterable[Any]) -> list[Any]:
    return list(conn.execute(sql, params).fetchall())
