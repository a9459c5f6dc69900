"""Replies into speech through an OpenAI-compatible ``POST /audio/speech``.

The official SDK's ``audio.speech.create`` (``model``, ``input``, ``voice``,
``response_format``; the audio bytes come back as the body), so OpenAI's TTS and local
servers with the same API work alike. SDK retries are off, as for transcriptions: the
text reply has already gone out, and a voice reply that waits through retries only
arrives after the conversation has moved on. What comes back is checked by its bytes
(``sniff``), so a server that answers an HTML error page with 200 sends no "voice".
"""

from __future__ import annotations

from dataclasses import dataclass

from pyclaw_app.attachments.config import SpeechConfig
from pyclaw_app.attachments.sniff import sniff

__all__ = ["MAX_INPUT", "SPEECH_MIME", "SpeechEndpoint", "SpeechFailed", "speak"]

MAX_INPUT = 4096
"""The longest ``input`` the API takes (characters); a longer reply is spoken up to here."""
SPEECH_MIME = {"opus": "audio/ogg", "mp3": "audio/mpeg", "wav": "audio/wav",
               "flac": "audio/flac"}
"""What each ``response_format`` is, as ``sniff`` names it (Opus comes in an Ogg file)."""


class SpeechFailed(Exception):
    """Worded for the channel log (no URL, no key)."""


@dataclass(frozen=True, slots=True)
class SpeechEndpoint:
    """Where ``speech`` sends text, resolved against the configured providers."""

    speech: SpeechConfig
    base_url: str | None
    api_key: str | None = None


async def speak(endpoint: SpeechEndpoint, text: str) -> tuple[bytes, str]:
    """The audio of ``text`` (its first MAX_INPUT characters) and its MIME type."""
    import openai  # here, not at the top: a gateway without voice replies never loads it

    speech = endpoint.speech
    client = openai.AsyncOpenAI(base_url=endpoint.base_url,
                                api_key=endpoint.api_key or "not-needed",
                                timeout=speech.timeout, max_retries=0)
    try:
        response = await client.audio.speech.create(
            model=speech.model, voice=speech.voice, input=text[:MAX_INPUT],
            response_format=speech.format)
        data = response.content
    except openai.APIStatusError as exc:
        raise SpeechFailed(f"the speech service answered HTTP {exc.status_code}") from exc
    except openai.APITimeoutError as exc:
        raise SpeechFailed(f"speaking took longer than {speech.timeout:g}s") from exc
    except openai.OpenAIError as exc:
        raise SpeechFailed(f"the speech service could not be reached "
                           f"({type(exc).__name__})") from exc
    finally:
        await client.close()
    expected = SPEECH_MIME[speech.format]
    found = sniff(data[:64])
    if found != expected:
        what = f"{found} data" if found else "no audio"
        raise SpeechFailed(f"the speech service was asked for {speech.format} audio and "
                           f"answered with {what} ({len(data)} bytes)")
    return data, expected
