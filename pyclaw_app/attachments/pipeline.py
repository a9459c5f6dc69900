"""The gateway's attachment pipeline: fetch through the channel, check, store, read.

Runs inside the message's turn (its lane), not at intake: the platform is acknowledged
as soon as the message is journaled, and a slow download delays only that conversation.
Per attachment: the channel says where the bytes are, the kit downloads them under the
size cap, the bytes (not the platform's claim) decide the type, the file is stored
under ``<data>/attachments/<channel>/`` and a row records it. Then pictures become image
input, voice notes a transcript, documents text. Whatever fails is logged for the owner
and worded for the sender; the message is answered either way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from pyclaw_app.attachments.config import AttachmentsConfig
from pyclaw_app.attachments.documents import DocumentError, estimate_tokens, pdf_text, plain_text
from pyclaw_app.attachments.download import DownloadFailed, download
from pyclaw_app.attachments.outbound import OutboundFiles
from pyclaw_app.attachments.sniff import (
    AUDIO,
    IMAGES,
    PDF,
    TEXT,
    extension,
    family,
    is_text,
    sniff,
)
from pyclaw_app.attachments.speech import SpeechEndpoint, SpeechFailed, speak
from pyclaw_app.attachments.store import AttachmentFiles, FileRow
from pyclaw_app.attachments.transcribe import Endpoint, TranscriptionFailed, transcribe
from pyclaw_app.attachments.types import ImageInput, Log, PreparedMedia, human_size
from pyclaw_app.channels.contract import AttachmentUnavailable, Connector, OutboundFile
from pyclaw_app.errors import ConnectorError
from pyclaw_app.model import Attachment, Inbound
from pyclaw_app.store.journal import HistoryTurn, Journal

if TYPE_CHECKING:
    from pyclaw_app.config import Config

__all__ = ["AttachmentPipeline", "AttachmentSweeper"]

DAY = 86_400.0
LOG_CLIP = 500
_TEXT_CLAIMS = ("text/", "application/json", "application/xml", "application/x-yaml",
                "application/yaml")
_NO_CLAIM = ("", "application/octet-stream", "binary/octet-stream")
_READ = frozenset({"image", "audio", "file"})
_WORDS = {"image/jpeg": "a JPEG picture", "image/png": "a PNG picture",
          "image/gif": "a GIF picture", "image/webp": "a WebP picture", PDF: "a PDF",
          TEXT: "text", "application/zip": "a ZIP archive", "video/mp4": "an MP4 video"}


@dataclass(frozen=True, slots=True)
class _Outcome:
    text: str | None = None
    image: ImageInput | None = None
    problem: str | None = None


class AttachmentPipeline:
    """The :class:`~pyclaw_app.attachments.types.MediaSource` the gateway gives its agent.

    ``config`` is read on every message, so saved settings apply to the next one;
    ``connector_for`` finds the running connector of a channel (None while it restarts).
    """

    def __init__(self, config: Callable[[], Config], files: AttachmentFiles,
                 connector_for: Callable[[str], Connector | None]) -> None:
        self._config = config
        self.files = files
        self.outbound = OutboundFiles(files)
        """Files the assistant sends, stored before they go (``outbound.py``)."""
        self._connector_for = connector_for
        self._journal = Journal(files.db)

    async def prepare(self, inbound: Inbound, message_id: int,
                      history: Sequence[HistoryTurn], log: Log, text_tokens: int
                      ) -> tuple[PreparedMedia, list[HistoryTurn]]:
        settings = self._config().attachments
        budget = [min(settings.document_tokens, text_tokens)]
        users = [t.id for t in history if t.role == "user"]
        burst = [t.id for t in history
                 if t.role == "user" and t.inbound_id == message_id and t.id != message_id]
        known = await self.files.rows([*users, message_id])
        images: list[ImageInput] = []
        problems: list[str] = []
        read: dict[int, tuple[str, ...]] = {}
        for earlier_id in burst:  # answered together with this one: read now, like it
            earlier = await self._journal.get(earlier_id)
            if earlier is not None and earlier.attachments:
                got = await self._message(earlier.to_inbound(), earlier_id, known, settings,
                                          log, budget)
                read[earlier_id] = got.texts
                images += got.images
                problems += got.problems
        lead = await self._message(inbound, message_id, known, settings, log, budget)
        turns = []
        for turn in history:
            if turn.id in read:
                notes: list[str] | tuple[str, ...] = read[turn.id]
            elif turn.role == "user" and turn.id not in burst:
                notes = [_remembered(row) for (mid, _), row in sorted(known.items())
                         if mid == turn.id]
            else:
                notes = ()
            if notes:
                turn = replace(turn, text="\n\n".join(p for p in (turn.text, *notes) if p))
            turns.append(turn)
        media = PreparedMedia(lead.texts, (*images, *lead.images), (*problems, *lead.problems),
                              answered_with_others=bool(burst))
        return media, turns

    async def _message(self, inbound: Inbound, message_id: int,
                       known: dict[tuple[int, int], FileRow], settings: AttachmentsConfig,
                       log: Log, budget: list[int]) -> PreparedMedia:
        """One message's attachments, each read (or recalled) in order."""
        texts: list[str] = []
        images: list[ImageInput] = []
        problems: list[str] = []
        fetched = 0
        for idx, attachment in enumerate(inbound.attachments):
            if attachment.kind in _READ and settings.enabled and fetched >= settings.max_files:
                outcome = _Outcome(problem=f"{_label(attachment)}: only the first "
                                           f"{settings.max_files} files of a message are read")
            elif attachment.kind in _READ and settings.enabled:
                fetched += 1
                outcome = await self._read(inbound, message_id, idx, attachment,
                                           known.get((message_id, idx)), settings, log, budget)
            else:
                outcome = _Outcome(text=_mention(attachment))
            if outcome.text:
                texts.append(outcome.text)
            if outcome.image is not None:
                images.append(outcome.image)
            if outcome.problem:
                problems.append(outcome.problem)
        return PreparedMedia(tuple(texts), tuple(images), tuple(problems))

    # ---- one attachment ---------------------------------------------------------------------
    async def _read(self, inbound: Inbound, message_id: int, idx: int, attachment: Attachment,
                    row: FileRow | None, settings: AttachmentsConfig, log: Log,
                    budget: list[int]) -> _Outcome:
        label = _label(attachment)
        channel = inbound.address.channel
        if row is not None and row.error:
            return _Outcome(problem=f"{label}: {row.error}")  # told once already, not refetched
        if row is not None and row.transcript is not None:  # the words outlive the file
            return _heard(inbound, label, row.transcript)
        path = row.path if row is not None else None
        data = self.files.read(path) if path else None
        mime = row.mime if row is not None and data is not None else ""
        if data is None:
            try:
                data, mime = await self._fetch(channel, attachment, settings)
            except DownloadFailed as exc:
                log("warning", f"attachment {idx + 1} ({label}) could not be read: {exc}")
                if exc.permanent:
                    await self.files.record(message_id, idx, channel, attachment.kind,
                                            attachment.name, attachment.mime, attachment.size,
                                            error=str(exc))
                return _Outcome(problem=f"{label}: {exc}")
            path = self.files.write(channel, message_id, idx, mime, data)
            await self.files.record(message_id, idx, channel, attachment.kind, attachment.name,
                                    mime, len(data), path=path)
            log("info", f"attachment {idx + 1} ({label}, {mime}, {human_size(len(data))}) "
                        f"stored as {path}")
        kind = family(mime)
        if kind == "image":
            return _Outcome(image=ImageInput(mime, data, attachment.name))
        if kind == "audio":
            return await self._transcript(inbound, message_id, idx, attachment, path, mime,
                                          data, log)
        return await self._document(kind, attachment, data, log, idx, budget)

    async def _fetch(self, channel: str, attachment: Attachment,
                     settings: AttachmentsConfig) -> tuple[bytes, str]:
        connector = self._connector_for(channel)
        if connector is None:
            raise DownloadFailed("the channel is restarting; try again in a moment",
                                 permanent=False)
        try:
            source = await connector.fetch_attachment(attachment)
        except AttachmentUnavailable as exc:
            raise DownloadFailed(str(exc), permanent=True) from exc
        except ConnectorError as exc:
            raise DownloadFailed(f"the platform did not hand the file over ({exc})",
                                 permanent=False) from exc
        data = await download(source, settings.max_bytes, settings.download_timeout)
        return data, checked_type(attachment, data)

    async def _transcript(self, inbound: Inbound, message_id: int, idx: int,
                          attachment: Attachment, path: str | None, mime: str, data: bytes,
                          log: Log) -> _Outcome:
        label = _label(attachment)
        endpoint = self._endpoint(log)
        if endpoint is None:
            return _Outcome(problem=f"{label}: voice notes are not transcribed here "
                                    "(the owner has not set up transcription)")
        try:
            transcript = await transcribe(endpoint, _upload_name(attachment, mime), mime, data)
        except TranscriptionFailed as exc:
            log("warning", f"attachment {idx + 1} ({label}) could not be transcribed: {exc}")
            return _Outcome(problem=f"{label}: it could not be transcribed ({exc})")
        await self.files.record(message_id, idx, inbound.address.channel, attachment.kind,
                                attachment.name, mime, len(data), path=path,
                                transcript=transcript)
        shown = transcript if len(transcript) <= LOG_CLIP else transcript[:LOG_CLIP] + "…"
        log("info", f"attachment {idx + 1} ({label}) transcribed by {endpoint.voice.model}: "
                    f"{shown!r}")
        return _heard(inbound, label, transcript)

    async def _document(self, kind: str, attachment: Attachment, data: bytes, log: Log,
                        idx: int, budget: list[int]) -> _Outcome:
        label = _label(attachment)
        if budget[0] < 50:
            return _Outcome(problem=f"{label}: the other documents used up the room for text")
        try:
            if kind == "pdf":
                text = await asyncio.to_thread(pdf_text, attachment.name, data, budget[0])
            else:
                text = plain_text(attachment.name, data, budget[0])
        except DocumentError as exc:
            log("warning", f"attachment {idx + 1} could not be read: {exc}")
            return _Outcome(problem=str(exc))
        budget[0] -= estimate_tokens(text)
        log("info", f"attachment {idx + 1} ({label}) read: ~{estimate_tokens(text):,} tokens "
                    "of text")
        return _Outcome(text=text)

    async def speak(self, text: str, log: Log) -> OutboundFile | None:
        """``text`` spoken by ``attachments.speech`` as a voice message, or None when it
        could not be (the channel log says why; the text reply has gone out anyway)."""
        speech = self._config().attachments.speech
        found = self._service("speech", speech.provider, speech.base_url, log,
                              "no voice reply is sent")
        if found is None:
            if not speech.enabled:
                log("warning", "no voice reply: attachments.speech names no speech service")
            return None
        try:
            data, mime = await speak(SpeechEndpoint(speech, *found), text)
        except SpeechFailed as exc:
            log("warning", f"no voice reply: {exc}")
            return None
        log("info", f"reply spoken by {speech.model} ({speech.voice}): {mime}, "
                    f"{human_size(len(data))}")
        return OutboundFile(name=f"reply{extension(mime)}", mime=mime, kind="voice", data=data)

    def _endpoint(self, log: Log) -> Endpoint | None:
        voice = self._config().attachments.voice
        found = self._service("voice", voice.provider, voice.base_url, log,
                              "voice notes are not transcribed")
        return Endpoint(voice, *found) if found is not None else None

    def _service(self, section: str, provider_name: str | None, base_url: str | None,
                 log: Log, otherwise: str) -> tuple[str | None, str | None] | None:
        """(base URL, API key) of an ``attachments`` service: the named provider's, or the
        section's own base URL (no key); None when there is none (a wrong provider name
        is an error in the log)."""
        if provider_name:
            config = self._config()
            provider = next((p for p in config.providers if p.name == provider_name), None)
            if provider is None or provider.kind != "openai":
                log("error", f"attachments.{section}.provider {provider_name!r} is not a "
                             f"configured OpenAI-compatible provider; {otherwise}")
                return None
            key = provider.api_key.get_secret_value() if provider.api_key else None
            return provider.base_url, key
        if base_url:
            return base_url, None
        return None


class AttachmentSweeper:
    """Removes stored files older than ``retention.attachments.days`` (the log pruner's
    pass calls it); their rows, and the transcripts in them, stay."""

    name = "attachment files"

    def __init__(self, config: Callable[[], Config], files: AttachmentFiles) -> None:
        self._config = config
        self.files = files

    async def sweep(self, now: float) -> int:
        days = self._config().retention.attachments.days
        if days is None:
            return 0
        return await self.files.remove_older(now - days * DAY)


def checked_type(attachment: Attachment, data: bytes) -> str:
    """The MIME type the bytes prove, if pyclaw reads that type and it agrees with what
    the platform (or the sender) claimed; else :class:`DownloadFailed`, worded."""
    found = sniff(data[:64])
    if found is None and data and is_text(data):
        found = TEXT
    claimed = attachment.mime.lower().split(";")[0].strip()
    what = _WORDS.get(found or "", "in no format pyclaw reads") if found else \
        "in no format pyclaw reads"
    if attachment.kind == "image" or claimed.startswith("image/"):
        if found not in IMAGES:
            raise _lying(claimed or "a picture", what)
        return found
    if attachment.kind == "audio" or claimed.startswith("audio/"):
        if found not in AUDIO:
            raise _lying(claimed or "audio", what)
        return found
    if claimed == PDF and found != PDF:
        raise _lying(claimed, what)
    if claimed.startswith(_TEXT_CLAIMS) and found != TEXT:
        raise _lying(claimed, what)
    if found in IMAGES or found in AUDIO or found in (PDF, TEXT):
        return found
    raise DownloadFailed(f"it is {what}; pyclaw reads pictures, voice notes, PDF and text "
                         "files", permanent=True)


def _lying(claimed: str, what: str) -> DownloadFailed:
    return DownloadFailed(f"it was sent as {claimed} but its content is {what}",
                          permanent=True)


def _heard(inbound: Inbound, label: str, transcript: str) -> _Outcome:
    """A voice note's words as the model reads them: the message itself when it is all the
    message is, else marked as the transcript of that file."""
    if not transcript:
        return _Outcome(problem=f"{label}: no speech could be made out in it")
    if not inbound.text.strip() and len(inbound.attachments) == 1:
        return _Outcome(text=transcript)
    return _Outcome(text=f"[transcript of {label}]\n{transcript}")


def _upload_name(attachment: Attachment, mime: str) -> str:
    """A file name whose ending names the checked format: transcription services pick the
    decoder by it, and a sender's name may have none (Telegram voice notes) or a wrong one."""
    stem = attachment.name.rsplit(".", 1)[0] if attachment.name else "voice"
    return f"{stem or 'voice'}{extension(mime)}"


def _label(attachment: Attachment) -> str:
    if attachment.name:
        return attachment.name
    return {"image": "the picture", "audio": "the voice note"}.get(attachment.kind, "the file")


def _mention(attachment: Attachment) -> str:
    """What the model is told of an attachment pyclaw does not read."""
    if attachment.kind == "location":
        return f"[the user shared a location: {attachment.name}]"
    details = ", ".join(x for x in (attachment.name, human_size(attachment.size)
                                    if attachment.size is not None else "") if x)
    what = {"image": "a picture", "audio": "a voice note", "video": "a video",
            "sticker": "a sticker"}.get(attachment.kind, "a file")
    return f"[the user sent {what}{f' ({details})' if details else ''}; you cannot open it]"


def _remembered(row: FileRow) -> str:
    """An earlier attachment as later turns' history shows it."""
    name = f" {row.name}" if row.name else ""
    if row.error:
        return f"[the user sent{name or ' a file'}, which could not be read]"
    if row.transcript:
        return f"[voice note{name}] {row.transcript}"
    kind = family(row.mime)
    what = {"image": "a picture", "pdf": "a PDF", "text": "a document"}.get(kind, "a file")
    return f"[the user sent {what}{name}]"
