"""What the attachment pipeline hands the agent: pictures as bytes, everything else as text.

A leaf module (no imports from pyclaw) so the providers can carry :class:`ImageInput` in
their neutral message shape without importing the pipeline.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pyclaw_app.model import Inbound
    from pyclaw_app.store.journal import HistoryTurn

__all__ = ["ImageInput", "MediaSource", "PreparedMedia", "human_size"]

Log = Callable[[str, str], None]
"""(level, message) for the channel log of the message being answered."""


def human_size(size: int | None) -> str:
    if size is None:
        return "size unknown"
    for unit, scale in (("MB", 1024 * 1024), ("KB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}".replace(".0 ", " ")
    return f"{size} bytes"


@dataclass(frozen=True, slots=True)
class ImageInput:
    """A picture the model may look at; ``mime`` was checked against the bytes."""

    mime: str
    data: bytes = field(repr=False)
    name: str = ""

    @property
    def note(self) -> str:
        """What a model that takes no images reads instead."""
        label = f"{self.name}, " if self.name else ""
        return f"[the user sent a picture: {label}{human_size(len(self.data))}]"


@dataclass(frozen=True, slots=True)
class PreparedMedia:
    """One message's attachments, made ready for the model."""

    texts: tuple[str, ...] = ()
    """Transcripts, document texts and notes, in the order the attachments came."""
    images: tuple[ImageInput, ...] = ()
    problems: tuple[str, ...] = ()
    """What could not be read and why, worded for the sender ("big.mp4 is 30 MB, over
    the 20 MB limit")."""
    answered_with_others: bool = False
    """The message ends a burst answered together (``burst: collect``): the earlier
    messages' words are in the prompt, and their pictures in ``images``."""

    def user_text(self, text: str) -> str:
        """The message the model reads: the sender's words, then what the files said."""
        return "\n\n".join(part for part in (text.strip(), *self.texts) if part)

    def nothing_to_answer(self, text: str) -> bool:
        """Only unreadable files and no words: the notice is the whole answer."""
        return bool(self.problems) and not (text.strip() or self.texts or self.images
                                            or self.answered_with_others)

    @property
    def notice(self) -> str:
        if not self.problems:
            return ""
        if len(self.problems) == 1:
            return f"I could not read what you sent: {self.problems[0]}."
        return "I could not read everything you sent:\n" + "\n".join(
            f"- {p}" for p in self.problems)


class MediaSource(Protocol):
    """What the agent asks of the gateway's attachment pipeline."""

    async def prepare(self, inbound: Inbound, message_id: int,
                      history: Sequence[HistoryTurn], log: Log, text_tokens: int
                      ) -> tuple[PreparedMedia, list[HistoryTurn]]:
        """Download, check and read ``inbound``'s attachments, and those of the earlier
        messages of its burst (once per message: a retry reuses what the first attempt
        stored); ``history`` comes back with what older messages' attachments said
        (transcripts, notes). ``text_tokens`` bounds the documents' text."""
        ...
