"""Storage: the journal, channel log, LLM usage and the rest over one batching writer, on
SQLite in the data directory (the default) or on a PostgreSQL server (``storage.url``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pyclaw_app.store.access import AccessStore, PairingRequest
from pyclaw_app.store.channel_state import ChannelStates, ChannelStateStore
from pyclaw_app.store.db import Database
from pyclaw_app.store.dead_letters import DeadLetter, DeadLetters
from pyclaw_app.store.identities import IdentityStore
from pyclaw_app.store.journal import (
    HistoryTurn,
    Journal,
    JournalRow,
    ReplyPart,
    UnstorableMessage,
)
from pyclaw_app.store.logs import ChannelLog
from pyclaw_app.store.schedules import Job, ScheduleStore
from pyclaw_app.store.sqlite import SqliteDatabase
from pyclaw_app.store.usage import UsageLog

if TYPE_CHECKING:
    from pyclaw_app.config_storage import StorageConfig

__all__ = [
    "AccessStore",
    "ChannelLog",
    "ChannelStateStore",
    "ChannelStates",
    "Database",
    "DeadLetter",
    "DeadLetters",
    "HistoryTurn",
    "IdentityStore",
    "Job",
    "Journal",
    "JournalRow",
    "PairingRequest",
    "ReplyPart",
    "ScheduleStore",
    "SqliteDatabase",
    "Store",
    "UnstorableMessage",
    "UsageLog",
    "open_database",
]

DB_NAME = "pyclaw.sqlite3"


class Store:
    """The database (the data directory's SQLite file, or ``storage.url``) and the tables'
    interfaces over it."""

    def __init__(self, data_dir: Path, storage: StorageConfig | None = None) -> None:
        self.data_dir = data_dir
        """Where local files live whatever the database (attachments under ``attachments/``)."""
        self.db = open_database(data_dir, storage)
        self.journal = Journal(self.db)
        self.logs = ChannelLog(self.db)
        self.usage = UsageLog(self.db)
        self.access = AccessStore(self.db)
        self.channel_state = ChannelStates(self.db)
        self.dead_letters = DeadLetters(self.db)
        self.identities = IdentityStore(self.db)
        self.schedules = ScheduleStore(self.db)

    async def open(self) -> Store:
        await self.db.open()
        return self

    async def close(self) -> None:
        await self.db.close()


def open_database(data_dir: Path, storage: StorageConfig | None) -> Database:
    """The backend ``storage`` names; PostgreSQL's driver is imported only when used."""
    if storage is None or storage.url is None:
        return SqliteDatabase(data_dir / DB_NAME)
    from pyclaw_app.store.postgres import PostgresDatabase

    password = storage.password.get_secret_value() if storage.password else None
    return PostgresDatabase(storage.url, password=password)
