"""The files a webhook request carried inline, held in memory until they are read.

A request's ``attachments[i].data`` is base64 (docs/webhook-channel.md). The gateway reads
a message's files when it answers it, which is moments after the caller got its 202. The
bytes are not put in the database (attachments never are: the pipeline stores what it
reads under the data directory), so a restart in between loses them and the reply says
the file could not be read. They are let go once the message is answered (its first
reply part) or is not taken (duplicate, ignored, quarantined). A message that is never
answered (a sender the policy refuses) cannot say so, so at most ``KEPT`` messages' files
are held: the oldest are let go first.
"""

from __future__ import annotations

import base64
import hashlib
from collections import OrderedDict

from pyclaw_app.channels.contract import AttachmentSource, AttachmentUnavailable
from pyclaw_app.model import Attachment

__all__ = ["INLINE", "KEPT", "InlineFiles", "token_of"]

INLINE = "inline:"
"""``Attachment.platform_id`` prefix of a file sent as data: ``inline:<token>/<index>``."""
KEPT = 64
"""Messages whose files are held at once (each request is at most 2 MiB)."""


def token_of(chat: str, message_id: str) -> str:
    """The key of one message's files: its chat and id, hashed to a fixed length."""
    return hashlib.sha256(f"{chat}\0{message_id}".encode()).hexdigest()[:32]


class InlineFiles:
    """One channel's held files."""

    def __init__(self) -> None:
        self._held: OrderedDict[str, dict[int, str]] = OrderedDict()

    async def hold(self, token: str, files: dict[int, str]) -> bool:
        """Keep ``files`` (index -> base64) for the message ``token``; False when they were
        already held (the same message sent again while it waits)."""
        if token in self._held:
            return False
        self._held[token] = dict(files)
        while len(self._held) > KEPT:
            self._held.popitem(last=False)
        return True

    async def drop(self, token: str) -> None:
        self._held.pop(token, None)

    async def source(self, attachment: Attachment) -> AttachmentSource:
        pid = attachment.platform_id or ""
        if not pid.startswith(INLINE):
            raise AttachmentUnavailable("the webhook channel reads files sent as base64 data "
                                        "only; a url is never fetched")
        token, _, idx = pid.removeprefix(INLINE).partition("/")
        encoded = self._held.get(token, {}).get(int(idx)) if idx.isdigit() else None
        if encoded is None:
            raise AttachmentUnavailable("the gateway no longer holds the file (it keeps the "
                                        f"files of at most {KEPT} waiting messages, and none "
                                        "across a restart)")
        return AttachmentSource(data=base64.b64decode(encoded))
