"""The assistant's file tools: see the files of this conversation and send one back, or send
a text file the model writes.

"Send me that picture again" becomes ``list_files`` then ``send_file`` with the id;
"put that in a file" becomes ``send_file`` with a name and the content. A file goes only
to the conversation the message came from (the gateway binds the sender to it), under the
journal's custody like a reply part. Where the channel cannot send files, or the upload
fails, the result says so in words the model can pass on; an upload that may have arrived
is never repeated, and the model is told not to try.
"""

from __future__ import annotations

import json
import mimetypes
import re
from datetime import datetime
from typing import Any

from pyclaw_app.agent.tools.registry import FileSender, Tool, ToolContext, ToolError
from pyclaw_app.attachments.sniff import family
from pyclaw_app.attachments.types import human_size
from pyclaw_app.channels.contract import FileKind, OutboundFile
from pyclaw_app.errors import ConnectorError, DeliveryUncertain

__all__ = ["MAX_WRITTEN_BYTES", "file_tools"]

MAX_WRITTEN_BYTES = 256 * 1024
"""The largest text file the model may write in one call (UTF-8 bytes)."""
MAX_CAPTION = 1000
SEND_TIMEOUT = 120.0
"""Seconds one send may take: an upload, and the delivery layer's retries of it."""
_NAME = re.compile(r"^[^/\\\x00-\x1f]{1,100}$")
_TEXT_TYPES = ("application/json", "application/xml", "application/x-yaml", "application/yaml",
               "application/javascript", "application/x-sh")


def _sender(ctx: ToolContext) -> FileSender:
    if ctx.files is None:
        raise ToolError("files cannot be sent from here: this run has no conversation to "
                        "send them to")
    if not ctx.files.can_send:
        raise ToolError(f"this {ctx.files.channel_title} channel cannot send files; tell the "
                        "user in words instead")
    return ctx.files


async def _list(args: dict[str, Any], ctx: ToolContext) -> str:
    sender = _sender(ctx)
    rows = await sender.received()
    if not rows:
        return "no files were sent in this conversation (or they are no longer stored)"
    return json.dumps([{"id": r.id, "name": r.name or f"({r.kind})", "type": r.mime,
                        "size": human_size(r.size),
                        "received": datetime.fromtimestamp(r.created_at).astimezone()
                        .isoformat(timespec="minutes")} for r in rows], ensure_ascii=False)


async def _send(args: dict[str, Any], ctx: ToolContext) -> str:
    sender = _sender(ctx)
    caption = str(args.get("caption", "")).strip()[:MAX_CAPTION]
    file_id, name, content = args.get("file_id"), args.get("name"), args.get("content")
    if (file_id is None) == (name is None and content is None):
        raise ToolError("give either file_id (from list_files) or name and content")
    if file_id is not None:
        file = await _received(sender, file_id, caption)
    else:
        file = _written(name, content, caption)
    try:
        await sender.send(file)
    except DeliveryUncertain as exc:
        raise ToolError(f"{file.name} may or may not have arrived ({exc}); do not send it "
                        "again: ask the user whether they got it") from exc
    except ConnectorError as exc:
        raise ToolError(f"{file.name} was not sent: {exc}") from exc
    return f"sent {file.name} ({human_size(_size(file))}) to this conversation"


def _size(file: OutboundFile) -> int | None:
    if file.data is not None:
        return len(file.data)
    try:
        return file.path.stat().st_size if file.path is not None else None
    except OSError:
        return None


async def _received(sender: FileSender, file_id: Any, caption: str) -> OutboundFile:
    row = next((r for r in await sender.received() if r.id == file_id), None)
    if row is None:
        raise ToolError(f"there is no file {file_id} in this conversation (list_files shows "
                        "the ones that can be sent)")
    found = family(row.mime)
    kind: FileKind = "image" if found == "image" else "audio" if found == "audio" else "file"
    default = {"image": "picture", "audio": "audio"}.get(kind, "file")
    name = row.name or f"{default}{mimetypes.guess_extension(row.mime) or ''}"
    return OutboundFile(name=name, mime=row.mime, kind=kind, path=sender.stored_path(row),
                        caption=caption)


def _written(name: Any, content: Any, caption: str) -> OutboundFile:
    if not isinstance(name, str) or not isinstance(content, str):
        raise ToolError("a written file needs both name and content")
    name = name.strip()
    if not _NAME.match(name) or name in (".", ".."):
        raise ToolError("name must be a plain file name such as notes.txt (no folders)")
    data = content.encode("utf-8", "replace")
    if not data:
        raise ToolError("the file is empty; write its content")
    if len(data) > MAX_WRITTEN_BYTES:
        raise ToolError(f"the file would be {human_size(len(data))}; a file written here may "
                        f"be at most {human_size(MAX_WRITTEN_BYTES)}")
    guessed = mimetypes.guess_type(name)[0] or ""
    mime = guessed if guessed.startswith("text/") or guessed in _TEXT_TYPES else "text/plain"
    return OutboundFile(name=name, mime=mime, kind="file", data=data, caption=caption)


def file_tools() -> list[Tool]:
    return [
        Tool("list_files", "The files people sent in this conversation that can be sent back "
             "(newest first), with the ids send_file takes.",
             {"type": "object", "properties": {}, "required": [],
              "additionalProperties": False}, _list),
        Tool("send_file", "Send a file to this conversation: one the user sent earlier "
             "(file_id from list_files), or a text file you write (name and content, e.g. "
             "notes.md, data.csv; at most 256 KB). Only where the channel can send files.",
             {"type": "object", "properties": {
                 "file_id": {"type": "integer", "description": "a file from list_files"},
                 "name": {"type": "string", "description": "file name of a file you write, "
                          "e.g. 'summary.md'"},
                 "content": {"type": "string", "description": "the text of a file you write"},
                 "caption": {"type": "string", "description": "a line shown with the file"}},
              "required": [], "additionalProperties": False},
             _send, timeout=SEND_TIMEOUT),
    ]
