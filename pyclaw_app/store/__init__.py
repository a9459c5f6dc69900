"""SQLite storage: the journal, channel log and LLM usage over one batching writer."""

from __future__ import annotations

from pathlib import Path

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
from pyclaw_app.store.usage import UsageLog

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
    "Store",
    "UnstorableMessage",
    "UsageLog",
]

DB_NAME = "pyclaw.sqlite3"


class Store:
    """The data directory's database and the tables' interfaces over it."""

    def __init__(self, data_dir: Path) -> None:
        self.db = Database(data_dir / DB_NAME)
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
