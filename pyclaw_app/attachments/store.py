"""The ``attachment_files`` table and the files it points at, under ``<data>/attachments``.

Each attachment that was read gets one row per (message, index): the stored file's path
relative to the root, the transcript of a voice note, or the reason it could not be read.
So a retried or resumed message is not downloaded (or transcribed, which costs money)
twice, and the Logs keep what a voice note said after its file is gone. The bytes live
only in files: 0600 in 0700 directories, named by message id and index, never by the
sender's file name.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pyclaw_app.attachments.sniff import extension
from pyclaw_app.paths import PRIVATE_FILE, private_dir
from pyclaw_app.store.db import Database

__all__ = ["AttachmentFiles", "FileRow"]

_log = logging.getLogger(__name__)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_COLUMNS = ("id, message_id, idx, channel, kind, name, mime, size, path, transcript, error, "
            "created_at, removed_at")


@dataclass(frozen=True, slots=True)
class FileRow:
    id: int
    message_id: int
    idx: int
    channel: str
    kind: str
    name: str
    mime: str
    size: int | None
    path: str | None
    transcript: str | None
    error: str | None
    created_at: float
    removed_at: float | None


class AttachmentFiles:
    def __init__(self, db: Database, root: Path, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.root = root
        self._clock = clock

    # ---- files ---------------------------------------------------------------------------
    def write(self, channel: str, message_id: int, idx: int, mime: str, data: bytes) -> str:
        """Store ``data``; returns its path relative to the root. Written to a private temp
        file and renamed, so a crash leaves no half file under the final name."""
        return self.write_named(channel, f"{message_id}-{idx}", mime, data)

    def write_named(self, channel: str, stem: str, mime: str, data: bytes) -> str:
        """``write`` under a name of the caller's (``stem``, made safe; the ending is the
        MIME type's): files the assistant sends are stored before their reply row exists."""
        private_dir(self.root)  # parents too: mkdir's mode applies to the last one only
        folder = private_dir(self.root / (_UNSAFE.sub("_", channel).strip(".") or "_"))
        final = folder / f"{_UNSAFE.sub('_', stem).strip('.') or '_'}{extension(mime)}"
        temp = final.with_name(final.name + ".part")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.chmod(temp, PRIVATE_FILE)  # whatever the umask made of it
            os.replace(temp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
        return final.relative_to(self.root).as_posix()

    def read(self, path: str) -> bytes | None:
        """The stored bytes, or None when the file is gone (retention, a cleaned disk)."""
        try:
            return (self.root / path).read_bytes()
        except OSError:
            return None

    # ---- rows ----------------------------------------------------------------------------
    async def rows(self, message_ids: Sequence[int]) -> dict[tuple[int, int], FileRow]:
        if not message_ids:
            return {}
        marks = ",".join("?" * len(message_ids))
        found = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM attachment_files WHERE message_id IN ({marks})",
            tuple(message_ids))
        return {(r["message_id"], r["idx"]): FileRow(**dict(r)) for r in found}

    async def received_in(self, conv: str, limit: int = 20) -> list[FileRow]:
        """The files people sent in conversation ``conv`` that are still stored, newest
        first: what the assistant may send back there (and nowhere else)."""
        columns = ", ".join(f"f.{c.strip()}" for c in _COLUMNS.split(","))
        found = await self.db.fetchall(
            f"SELECT {columns} FROM attachment_files f JOIN messages m ON m.id = f.message_id"
            " WHERE m.conv=? AND m.direction='in' AND f.path IS NOT NULL"
            " ORDER BY f.id DESC LIMIT ?", (conv, limit))
        return [FileRow(**dict(r)) for r in found]

    async def record(self, message_id: int, idx: int, channel: str, kind: str, name: str,
                     mime: str, size: int | None, *, path: str | None = None,
                     transcript: str | None = None, error: str | None = None) -> None:
        """What became of one attachment (a later call for the same one replaces it)."""
        params = (message_id, idx, channel, kind, name, mime, size, path, transcript, error,
                  self._clock())

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO attachment_files (message_id, idx, channel, kind, name, mime,"
                " size, path, transcript, error, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (message_id, idx) DO UPDATE SET kind=excluded.kind,"
                " name=excluded.name, mime=excluded.mime, size=excluded.size,"
                " path=excluded.path, transcript=excluded.transcript, error=excluded.error",
                params)

        await self.db.write(op)

    # ---- retention -----------------------------------------------------------------------
    async def remove_older(self, cutoff: float, batch: int = 500) -> int:
        """Delete the files stored before ``cutoff``; their rows stay (with the transcript)
        and say when the file went. Returns how many files were removed."""
        removed = 0
        while True:
            rows = await self.db.fetchall(
                "SELECT id, path FROM attachment_files WHERE path IS NOT NULL"
                " AND created_at < ? ORDER BY id LIMIT ?", (cutoff, batch))
            if not rows:
                return removed
            for row in rows:
                try:
                    (self.root / row["path"]).unlink()
                except FileNotFoundError:
                    pass
                except OSError as exc:  # forgotten, not retried forever: say where it is
                    _log.warning("could not delete the old attachment %s: %s",
                                 self.root / row["path"], exc)
            ids = [r["id"] for r in rows]
            now = self._clock()

            def op(conn: sqlite3.Connection, ids: list[int] = ids, now: float = now) -> None:
                conn.execute(f"UPDATE attachment_files SET path=NULL, removed_at=? WHERE id IN"
                             f" ({','.join('?' * len(ids))})", (now, *ids))

            await self.db.write(op)
            removed += len(rows)
