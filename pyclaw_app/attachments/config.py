"""The ``attachments:`` section: how much pyclaw downloads, and who transcribes voice notes.

Kept beside the code that reads it (as ``budgets.py`` is), so the config module only
places it in the YAML; the Settings form is generated from these models.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["AttachmentsConfig", "SpeechConfig", "VoiceConfig"]

MB = 1024 * 1024


class VoiceConfig(BaseModel):
    """Where voice notes and audio files are transcribed: any OpenAI-compatible
    ``/audio/transcriptions`` endpoint (OpenAI's Whisper, a local faster-whisper or
    whisper.cpp server, Groq...)."""

    model_config = ConfigDict(extra="forbid")

    provider: str | None = Field(
        None, title="Provider", description="A configured provider whose base URL and API key "
        "are used (its kind must be openai); blank: base_url below, or no transcription")
    base_url: str | None = Field(
        None, title="Base URL", description="The endpoint when no provider is named, e.g. "
        "http://localhost:8000/v1 for a local Whisper server (no API key is sent)")
    model: str = Field("whisper-1", min_length=1, title="Model",
                       description="The transcription model the endpoint knows")
    language: str | None = Field(
        None, title="Language", description="ISO-639-1 code (en, de...) to help the model; "
        "blank: detected")
    timeout: float = Field(60.0, gt=0, title="Timeout (seconds)",
                           description="How long one transcription may take")

    @property
    def enabled(self) -> bool:
        return bool(self.provider or self.base_url)


class SpeechConfig(BaseModel):
    """Where voice replies are spoken (channels with ``voice_replies`` on): any
    OpenAI-compatible ``/audio/speech`` endpoint (OpenAI's TTS, a local Piper or Kokoro
    server with that API...)."""

    model_config = ConfigDict(extra="forbid")

    provider: str | None = Field(
        None, title="Provider", description="A configured provider whose base URL and API key "
        "are used (its kind must be openai); blank: base_url below, or no voice replies")
    base_url: str | None = Field(
        None, title="Base URL", description="The endpoint when no provider is named, e.g. "
        "http://localhost:8880/v1 for a local speech server (no API key is sent)")
    model: str = Field("tts-1", min_length=1, title="Model",
                       description="The speech model the endpoint knows")
    voice: str = Field("alloy", min_length=1, title="Voice",
                       description="The voice the endpoint speaks with (alloy, nova...)")
    format: Literal["opus", "mp3", "wav", "flac"] = Field(
        "opus", title="Audio format", description="opus (Ogg) is what Telegram and WhatsApp "
        "play as a voice message; mp3 plays everywhere")
    timeout: float = Field(60.0, gt=0, title="Timeout (seconds)",
                           description="How long speaking one reply may take")

    @property
    def enabled(self) -> bool:
        return bool(self.provider or self.base_url)


class AttachmentsConfig(BaseModel):
    """Pictures, voice notes and documents people send: downloaded through their channel,
    checked, stored under the data directory and given to the model."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, title="Read attachments",
                          description="Download pictures, voice notes and documents and give "
                          "them to the model; off: the model is only told what was sent")
    max_bytes: int = Field(20 * MB, ge=1024, title="Largest file (bytes)",
                           description="Bigger files are not downloaded (Telegram lets bots "
                           "download at most 20 MB anyway); the sender is told")
    download_timeout: float = Field(60.0, gt=0, title="Download timeout (seconds)",
                                    description="How long one download may take")
    max_files: int = Field(4, ge=1, le=20, title="Files read per message",
                           description="Slack and Discord allow ten files in one message; "
                           "only this many are downloaded, the sender is told about the rest")
    document_tokens: int = Field(
        3000, ge=100, title="Document text (tokens)",
        description="At most this much of a document's text goes into the prompt (and never "
        "more than half of the history budget); the model is told when it was cut")
    voice: VoiceConfig = Field(default_factory=VoiceConfig, title="Voice notes",
                               description="Transcription of voice notes and audio files")
    speech: SpeechConfig = Field(default_factory=SpeechConfig, title="Voice replies",
                                 description="The speech service that speaks replies to voice "
                                 "notes on channels with voice_replies on")
