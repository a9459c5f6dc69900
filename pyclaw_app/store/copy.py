"""``pyclaw migrate --to postgresql://...``: a SQLite data directory copied to PostgreSQL.

The copy reads one snapshot of the SQLite file (a read transaction: a gateway still
writing would not tear it, but what it writes after the snapshot stays behind, so the
command asks for the gateway to be stopped), writes every table in the migrations'
order (a row's references are copied before it), keeps the ids (journal rows are
referred to by id everywhere), moves each identity sequence past the copied ids, and
then counts every table on both sides. The target must be empty: a copy never merges.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyclaw_app.errors import StoreError
from pyclaw_app.store.db import Database

__all__ = ["CopyMismatch", "TableCopy", "copy_sqlite_to", "sqlite_tables"]

BATCH = 2000


class CopyMismatch(StoreError):
    """The target's counts differ from the source's after the copy."""


@dataclass(frozen=True, slots=True)
class TableCopy:
    table: str
    source_rows: int
    target_rows: int

    @property
    def ok(self) -> bool:
        return self.source_rows == self.target_rows


def sqlite_tables(conn: sqlite3.Connection) -> list[str]:
    """The schema's tables in creation order (SQLite's own bookkeeping left out)."""
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type='table'"
                        " AND name NOT LIKE 'sqlite_%' ORDER BY rowid").fetchall()
    return [str(row[0]) for row in rows]


async def copy_sqlite_to(source: Path, target: Database, *,
                         progress: Callable[[str, int], None] | None = None) -> list[TableCopy]:
    """Copy the SQLite database at ``source`` into the opened (migrated, empty) ``target``;
    returns each table's counts, or raises :class:`CopyMismatch` naming the tables that
    differ."""
    snapshot = await asyncio.to_thread(_open_snapshot, source)
    try:
        tables = await asyncio.to_thread(sqlite_tables, snapshot)
        await _refuse_unless_empty(target, tables)
        copies = []
        for table in tables:
            columns = await asyncio.to_thread(_columns, snapshot, table)
            copied = 0
            for rows in _batches(snapshot, table, columns):
                await target.write(_insert(table, columns, rows))
                copied += len(rows)
                if progress is not None:
                    progress(table, copied)
            if "id" in columns:
                await target.write(_advance_identity(table))
            counted = await target.fetchone(f"SELECT COUNT(*) FROM {table}")
            source_rows = snapshot.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            copies.append(TableCopy(table, int(source_rows), int(counted[0]) if counted else 0))
    finally:
        snapshot.close()
    wrong = [c for c in copies if not c.ok]
    if wrong:
        raise CopyMismatch("counts differ after the copy: " + ", ".join(
            f"{c.table} {c.source_rows} in SQLite, {c.target_rows} in the target"
            for c in wrong))
    return copies


def _open_snapshot(source: Path) -> sqlite3.Connection:
    if not source.exists():
        raise StoreError(f"no SQLite database at {source}")
    conn = sqlite3.connect(f"file:{source}?mode=ro", uri=True, check_same_thread=False)
    conn.execute("BEGIN")  # one consistent view of every table, whatever else writes
    conn.execute("SELECT COUNT(*) FROM sqlite_master")  # the snapshot starts at a read
    return conn


async def _refuse_unless_empty(target: Database, tables: list[str]) -> None:
    for table in tables:
        row = await target.fetchone(f"SELECT COUNT(*) FROM {table}")
        if row is None:
            raise StoreError(f"the target has no table {table}: is it a pyclaw database?")
        if int(row[0]):
            raise StoreError(f"the target database already holds data ({table}: {row[0]} "
                             "rows); copy into an empty database")


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [str(row[1]) for row in conn.execute(f"PRAGMA table_info({table})").fetchall()]


def _batches(conn: sqlite3.Connection, table: str, columns: list[str]
             ) -> Iterator[list[tuple[Any, ...]]]:
    order = "id" if "id" in columns else "rowid"
    cursor = conn.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}")
    while rows := cursor.fetchmany(BATCH):
        yield [tuple(row) for row in rows]


def _insert(table: str, columns: list[str], rows: list[tuple[Any, ...]]
            ) -> Callable[[Any], None]:
    sql = (f"INSERT INTO {table} ({', '.join(columns)})"
           f" VALUES ({', '.join('?' for _ in columns)})")

    def op(conn: Any) -> None:
        conn.executemany(sql, rows)

    return op


def _advance_identity(table: str) -> Callable[[Any], None]:
    def op(conn: Any) -> None:
        conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                     f" (SELECT COALESCE(MAX(id), 0) + 1 FROM {table}), false)")

    return op
