"""Voice notes into text through an OpenAI-compatible ``POST /audio/transcriptions``.

The official SDK's multipart upload (``file`` and ``model`` fields, JSON ``{"text"}``
back), so Whisper, a local faster-whisper/whisper.cpp server or any compatible provider
work alike. SDK retries are off, as for chat: a failed transcription is reported to the
sender at once rather than holding the conversation's lane.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyclaw_app.attachments.config import VoiceConfig

__all__ = ["Endpoint", "TranscriptionFailed", "transcribe"]


class TranscriptionFailed(Exception):
    """Worded for the sender and the channel log (no URL, no key)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where ``voice`` sends audio, resolved against the configured providers."""

    voice: VoiceConfig
    base_url: str | None
    api_key: str | None = None


async def transcribe(endpoint: Endpoint, name: str, mime: str, data: bytes) -> str:
    import openai  # here, not at the top: a gateway without voice notes never loads it

    voice = endpoint.voice
    client = openai.AsyncOpenAI(base_url=endpoint.base_url,
                                api_key=endpoint.api_key or "not-needed",
                                timeout=voice.timeout, max_retries=0)
    try:
        extra = {"language": voice.language} if voice.language else {}
        result = await client.audio.transcriptions.create(
            model=voice.model, file=(name, data, mime), response_format="json", **extra)
    except openai.APIStatusError as exc:
        raise TranscriptionFailed(f"the transcription service answered HTTP "
                                  f"{exc.status_code}") from exc
    except openai.APITimeoutError as exc:
        raise TranscriptionFailed(f"the transcription took longer than {voice.timeout:g}s"
                                  ) from exc
    except openai.OpenAIError as exc:
        raise TranscriptionFailed(f"the transcription service could not be reached "
                                  f"({type(exc).__name__})") from exc
    finally:
        await client.close()
    text = getattr(result, "text", None)
    if not isinstance(text, str):
        raise TranscriptionFailed("the transcription service answered without a text")
    return text.strip()
