"""Ask the assistant through the local chat channel and wait for the whole answer.

For the terminal (``pyclaw chat``) and tests: the message goes through the
journal, lanes, agent and delivery like any other; the answer is read off the
event bus, which is where the gateway says a reply is complete (all its parts)
or why there is none (the notice the sender got instead).

The Chat view also shows the files the assistant sent there: ``sent_files`` reads them
off the replies' file parts (the journal's custody rows, not the connector's memory, so
they come back after a restart), and ``file_content`` hands one over by its reply and
part, only for that chat and only up to ``CHAT_FILE_LIMIT``.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from pathlib import Path
from typing import Any

from pyclaw_app.attachments.outbound import OutboundFiles
from pyclaw_app.control.types import CHAT_FILE_LIMIT, ChatFile, ChatFileContent
from pyclaw_app.errors import ConnectorError
from pyclaw_app.model import EventKind
from pyclaw_app.store import JournalRow
from pyclaw_app.store.journal import Journal

__all__ = ["ask", "file_content", "sent_files"]


async def ask(gateway: Any, text: str, *, channel: str = "local", chat: str = "terminal",
              sender: str = "you", timeout: float | None = None) -> str:
    """Post ``text`` on the local channel; returns the reply, or the notice sent instead."""
    rt = gateway.channels.get(channel)
    connector = rt.connector if rt is not None else None
    if connector is None or not hasattr(connector, "post"):
        raise ConnectorError(f"the local chat channel {channel!r} is not running")
    subscription = gateway.bus.subscribe()
    try:
        _, result = await connector.post(text, chat=chat, sender=sender,
                                         platform_id=f"ask-{uuid.uuid4().hex}")
        return await asyncio.wait_for(_answer(subscription, result.journal_id), timeout)
    finally:
        subscription.close()


async def _answer(subscription: Any, journal_id: int) -> str:
    async for event in subscription:
        data = event.data
        if event.kind == EventKind.REPLY_SENT and data.get("reply_to_id") == journal_id:
            return str(data.get("text", ""))
        if event.kind in (EventKind.MESSAGE_FAILED, EventKind.MESSAGE_SKIPPED) \
                and data.get("id") == journal_id:
            return str(data.get("notice") or data.get("error") or data.get("reason") or "")
    raise ConnectorError("the gateway stopped before the reply came")


async def sent_files(journal: Journal, outbound: OutboundFiles, rows: list[JournalRow]
                     ) -> list[ChatFile]:
    """The file parts of the replies among ``rows`` (a chat's journal rows), oldest first."""
    files: list[ChatFile] = []
    for row in sorted((r for r in rows if r.direction == "out"), key=lambda r: r.id):
        references = await journal.part_files(row.id)
        if not references:
            continue
        parts = await journal.parts(row.id)
        text_from = min((p.idx for p in parts if p.idx not in references), default=None)
        status = {p.idx: p.status for p in parts}
        for idx, reference in sorted(references.items()):
            try:
                file = outbound.load(reference)
            except ValueError:  # not one of ours: nothing to show, and never a path to read
                continue
            files.append(ChatFile(
                reply_id=row.id, idx=idx, reply_to_id=row.reply_to, name=file.name,
                mime=file.mime, kind=file.kind, size=_size(file.path), ts=row.created_at,
                before_text=text_from is None or idx < text_from, caption=file.caption,
                status=status.get(idx, "pending")))
    return files


async def file_content(journal: Journal, outbound: OutboundFiles, conv: str, reply_id: int,
                       idx: int) -> ChatFileContent:
    """The bytes of file part ``idx`` of reply ``reply_id``, which must belong to ``conv``;
    a ValueError says why not (another chat, no such file, gone, too large)."""
    row = await journal.get(reply_id)
    if row is None or row.direction != "out" or row.conv != conv:
        raise ValueError(f"reply {reply_id} is not a reply in this chat")
    reference = (await journal.part_files(reply_id)).get(idx)
    if reference is None:
        raise ValueError(f"reply {reply_id} has no file part {idx}")
    file = outbound.load(reference)
    size = _size(file.path)
    if size < 0:
        raise ValueError(f"{file.name} is no longer stored (the retention sweep removed it)")
    if size > CHAT_FILE_LIMIT:
        raise ValueError(f"{file.name} is {size} bytes, more than the {CHAT_FILE_LIMIT} the "
                         "chat hands over")
    assert file.path is not None
    data = await asyncio.to_thread(file.path.read_bytes)
    return ChatFileContent(file.name, file.mime, len(data),
                           base64.b64encode(data).decode("ascii"))


def _size(path: Path | None) -> int:
    try:
        return path.stat().st_size if path is not None else -1
    except OSError:
        return -1
