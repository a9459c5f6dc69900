"""A psycopg connection that the stores' ops can use as they use SQLite's.

Ops call ``conn.execute(sql, params)`` with SQLite's dialect, read ``cur.lastrowid`` and
``cur.rowcount``, index rows by position or column name, and catch ``sqlite3.DataError``
for a value the database refuses: this gives them all of that over psycopg 3, so the
stores keep one SQL and one error vocabulary (DB-API's names, as :mod:`sqlite3` spells
them). The psycopg error stays as ``__cause__``, where the writer looks for outages.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from pyclaw_app.store.pg_sql import translate

__all__ = ["PgConnection", "Row"]

MAX_FIELD = 1 << 30
"""PostgreSQL's largest text or bytea value (1 GB), what ``getlimit`` reports."""


class Row(tuple):  # type: ignore[type-arg]
    """A result row readable as ``row[0]`` or ``row["name"]``, like :class:`sqlite3.Row`."""

    _names: dict[str, int]

    def __new__(cls, values: Sequence[Any], names: dict[str, int]) -> Row:
        row = super().__new__(cls, values)
        row._names = names
        return row

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


class PgCursor:
    """The result of one statement: rows (already read), ``rowcount`` and ``lastrowid``."""

    def __init__(self, conn: PgConnection, rows: list[Row], rowcount: int,
                 inserted: bool) -> None:
        self._conn = conn
        self._rows = rows
        self.rowcount = rowcount
        self._inserted = inserted

    @property
    def lastrowid(self) -> int | None:
        """The id the last INSERT drew from its table's identity (``lastval()``), as SQLite
        gives; read it right after the INSERT, before the next statement."""
        if not self._inserted or self.rowcount < 1:
            return None
        row = self._conn.execute("SELECT lastval()").fetchone()
        return int(row[0]) if row else None

    def fetchone(self) -> Row | None:
        return self._rows.pop(0) if self._rows else None

    def fetchall(self) -> list[Row]:
        rows, self._rows = self._rows, []
        return rows

    def __iter__(self) -> Iterator[Row]:
        return iter(self.fetchall())


class PgConnection:
    """One psycopg connection in autocommit mode: the writer sends BEGIN and COMMIT itself."""

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw

    @classmethod
    def connect(cls, conninfo: str, **kwargs: Any) -> PgConnection:
        return cls(psycopg.connect(conninfo, autocommit=True, **kwargs))

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != TransactionStatus.IDLE

    @property
    def usable(self) -> bool:
        return not (self.raw.closed or self.raw.broken)

    def getlimit(self, category: int) -> int:
        """SQLite's per-value limit, answered for PostgreSQL (only the length is asked)."""
        return MAX_FIELD

    def execute(self, sql: str, params: Iterable[Any] = ()) -> PgCursor:
        values = [_param(value) for value in params]
        query = translate(sql, bool(values))
        with _as_dbapi_errors(), self.raw.cursor() as cur:
            cur.execute(query, values or None)
            rows: list[Row] = []
            if cur.description is not None:
                names = {column.name: i for i, column in enumerate(cur.description)}
                rows = [Row([_value(v) for v in record], names) for record in cur.fetchall()]
            return PgCursor(self, rows, cur.rowcount, query.lstrip()[:6].upper() == "INSERT")

    def executemany(self, sql: str, seq_of_params: Iterable[Iterable[Any]]) -> PgCursor:
        batches = [[_param(value) for value in params] for params in seq_of_params]
        query = translate(sql, True)
        with _as_dbapi_errors(), self.raw.cursor() as cur:
            cur.executemany(query, batches)
            return PgCursor(self, [], cur.rowcount, False)

    def close(self) -> None:
        self.raw.close()


@contextlib.contextmanager
def _as_dbapi_errors() -> Iterator[None]:
    """psycopg's errors as the DB-API classes the stores catch (see the module's doc)."""
    try:
        yield
    except psycopg.DataError as exc:
        raise sqlite3.DataError(str(exc).strip()) from exc
    except psycopg.IntegrityError as exc:
        raise sqlite3.IntegrityError(str(exc).strip()) from exc
    except psycopg.OperationalError as exc:
        raise sqlite3.OperationalError(str(exc).strip()) from exc
    except psycopg.Error as exc:
        raise sqlite3.DatabaseError(str(exc).strip()) from exc
    except ValueError as exc:  # psycopg refuses NUL in text before sending anything
        raise sqlite3.DataError(str(exc).strip()) from exc


def _param(value: Any) -> Any:
    # SQLite stores True as 1; PostgreSQL will not put a boolean into a BIGINT column.
    return int(value) if isinstance(value, bool) else value


def _value(value: Any) -> Any:
    # SUM() over BIGINT is NUMERIC in PostgreSQL; the stores add it to floats.
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, memoryview):
        return value.tobytes()
    return value
