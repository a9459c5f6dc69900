"""Files the assistant sends: stored under the data directory before they go, and referred
to from their reply part, so a Retry sends the same bytes and no upload depends on memory.

A reference is the JSON a ``reply_parts.file`` cell holds: name, MIME type, kind, caption
and the path relative to ``<data>/attachments``. Bytes pyclaw made (a text file the model
wrote, a spoken reply) are written first as ``<channel>/out-<message>-<token><ext>``, 0600
like every stored file; an attachment someone sent is referred to where it already is.
Each stored outbound file gets an ``attachment_files`` row under its reply, so the
retention sweep removes it with the rest.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import replace
from pathlib import Path
from typing import Any

from pyclaw_app.attachments.store import AttachmentFiles
from pyclaw_app.channels.contract import FileKind, OutboundFile

__all__ = ["OutboundFiles", "file_label"]

_KINDS: tuple[FileKind, ...] = ("image", "audio", "voice", "file")


def file_label(file: OutboundFile) -> str:
    """A file part's text in the journal and the Logs: which file went out."""
    what = {"image": "picture", "audio": "audio", "voice": "voice message"}.get(file.kind,
                                                                               "file")
    return f"[{what}: {file.name}]"


class OutboundFiles:
    def __init__(self, files: AttachmentFiles) -> None:
        self.files = files

    @property
    def root(self) -> Path:
        return self.files.root

    def stage(self, channel: str, message_id: int, file: OutboundFile
              ) -> tuple[OutboundFile, str, str | None]:
        """``file`` as it is sent (from its stored path), its reference, and the stored path
        when the bytes were written here (None for a file that was stored already).
        Raises ValueError for a path outside the attachments directory."""
        written: str | None = None
        if file.data is not None:
            stem = f"out-{message_id}-{secrets.token_hex(4)}"
            written = self.files.write_named(channel, stem, file.mime, file.data)
            file = replace(file, data=None, path=self.root / written)
        assert file.path is not None
        relative = file.path.resolve().relative_to(self.root.resolve()).as_posix()
        reference = json.dumps({"name": file.name, "mime": file.mime, "kind": file.kind,
                                "caption": file.caption, "path": relative},
                               ensure_ascii=False)
        return file, reference, written

    def load(self, reference: str) -> OutboundFile:
        """The file a reply part refers to (its bytes are read when it is uploaded); a
        reference that is not one of ours is a ValueError."""
        try:
            ref: Any = json.loads(reference)
            path = Path(ref["path"])
            kind = ref["kind"]
            if path.is_absolute() or ".." in path.parts or kind not in _KINDS:
                raise ValueError(f"not a stored file: {ref['path']!r}")
            return OutboundFile(name=str(ref["name"]), mime=str(ref["mime"]), kind=kind,
                                path=self.root / path, caption=str(ref.get("caption", "")))
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not a file reference ({type(exc).__name__})") from exc

    async def record(self, out_id: int, idx: int, channel: str, file: OutboundFile,
                     written: str, size: int) -> None:
        """Keep a stored outbound file on the books (retention removes it with the rest)."""
        await self.files.record(out_id, idx, channel, file.kind, file.name, file.mime, size,
                                path=written)
