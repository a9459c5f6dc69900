"""What a file really is, from its first bytes: the platform's MIME claim is only a claim.

A sender (or a compromised platform account) can call anything ``image/jpeg``; a model
fed a zip as a picture fails the whole turn, and a "text file" that is binary fills the
prompt with noise. Signatures are the published ones (JPEG SOI, PNG, GIF87a/89a, RIFF
WEBP/WAVE, ISO BMFF ``ftyp``, Ogg, EBML, ID3/MPEG frame sync, FLAC, AMR, ``%PDF-``).
Pure functions, no I/O: fuzzed with hypothesis in the tests.
"""

from __future__ import annotations

__all__ = ["AUDIO", "IMAGES", "TEXT", "extension", "family", "is_text", "sniff"]

IMAGES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
"""The picture formats both OpenAI and Anthropic accept as image input."""
AUDIO = frozenset({"audio/ogg", "audio/mpeg", "audio/mp4", "audio/wav", "audio/webm",
                   "audio/flac", "audio/amr"})
"""What OpenAI-compatible transcription endpoints take (Whisper: flac, m4a, mp3, mp4,
mpeg, mpga, oga, ogg, wav, webm; AMR for WhatsApp/WeChat voice)."""
TEXT = "text/plain"
PDF = "application/pdf"

_EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif",
               "image/webp": ".webp", "audio/ogg": ".ogg", "audio/mpeg": ".mp3",
               "audio/mp4": ".m4a", "audio/wav": ".wav", "audio/webm": ".webm",
               "audio/flac": ".flac", "audio/amr": ".amr", PDF: ".pdf", TEXT: ".txt",
               "video/mp4": ".mp4", "application/zip": ".zip"}
_TEXT_SAMPLE = 8192


def sniff(head: bytes) -> str | None:
    """The MIME type ``head`` (a file's first bytes, 64 are plenty) proves, or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"fLaC"):
        return "audio/flac"
    if head.startswith(b"#!AMR"):
        return "audio/amr"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "audio/webm"  # EBML: webm/mkv, which Whisper reads for the audio track
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        return "audio/mp4" if brand in (b"M4A ", b"M4B ", b"M4P ") else "video/mp4"
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF
                                   and head[1] & 0xE0 == 0xE0 and head[1] & 0x06 != 0):
        return "audio/mpeg"
    if head.startswith(b"PK\x03\x04"):
        return "application/zip"
    return None


def is_text(data: bytes) -> bool:
    """UTF-8 (or ASCII) text with no NUL and few control characters: readable as a document."""
    sample = data[:_TEXT_SAMPLE]
    if b"\x00" in sample:
        return False
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut by the sample's end is still text.
        if exc.start < len(sample) - 3:
            return False
        text = sample[:exc.start].decode("utf-8")
    controls = sum(1 for c in text if ord(c) < 32 and c not in "\t\n\r\f")
    return controls <= len(text) // 100


def family(mime: str) -> str:
    """``image``, ``audio``, ``pdf``, ``text`` or ``other``: what pyclaw can do with it."""
    if mime in IMAGES:
        return "image"
    if mime in AUDIO:
        return "audio"
    if mime == PDF:
        return "pdf"
    if mime == TEXT:
        return "text"
    return "other"


def extension(mime: str) -> str:
    """The file name ending pyclaw stores a file of ``mime`` with (never the sender's)."""
    return _EXTENSIONS.get(mime, ".bin")
