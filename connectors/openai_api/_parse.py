"""A chat completion request, as OpenAI's API reference defines it, read into what we keep.

The gateway keeps each conversation's history itself, so of ``messages`` only the newest
``user`` message is taken (clients that resend the whole history are served the same).
Its content is a string or a list of parts (``text``, ``image_url``, ``input_audio``,
``file``); text parts are joined, the others become attachments whose bytes come inline
(a base64 ``data:`` URL, ``input_audio.data``, ``file.file_data``) and are handed back
apart in ``files``, keyed by the attachment's ``platform_id``: they never go into the
journal, and the connector holds them while the request waits. A remote ``http(s)``
image URL, which OpenAI's reference also allows, is refused: a caller must not make the
gateway fetch arbitrary URLs (requests to its own network, to other services), and every
client library can send the bytes instead. A ``file_id`` names a file in OpenAI's Files
API, which the gateway does not have. Never raises: a request we cannot use is
:class:`Malformed`, with the parameter OpenAI's error format names.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from pyclaw_app.model import Attachment

__all__ = ["ChatRequest", "Malformed", "conversation_name", "parse_chat_request"]

_SAFE = re.compile(r"[^A-Za-z0-9_.@:-]")
_AUDIO = {"wav": "audio/wav", "mp3": "audio/mpeg"}
"""``input_audio.format`` values of OpenAI's reference and their types."""


class _Refused(Exception):
    """Internal: a content part we cannot use; turned into :class:`Malformed`."""


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    stream: bool
    user: str
    text: str
    attachments: tuple[Attachment, ...]
    files: dict[str, bytes] = field(default_factory=dict, repr=False)
    """The inline bytes of the attachments, by their ``platform_id``."""


@dataclass(frozen=True, slots=True)
class Malformed:
    reason: str
    param: str | None = None


def conversation_name(value: object) -> str:
    """A conversation name from the request's ``user`` field or header: printable, short."""
    if not isinstance(value, str):
        return ""
    return _SAFE.sub("_", value.strip())[:64]


def parse_chat_request(body: Any, *, conversation: str | None = None
                       ) -> ChatRequest | Malformed:
    if not isinstance(body, dict):
        return Malformed("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return Malformed("you must provide a model parameter", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return Malformed("messages must be a non-empty array", "messages")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        return Malformed("stream must be a boolean", "stream")
    if body.get("n") not in (None, 1):
        return Malformed("only n=1 is supported: the assistant gives one answer", "n")
    last = next((m for m in reversed(messages)
                 if isinstance(m, dict) and m.get("role") == "user"), None)
    if last is None:
        return Malformed("messages must contain a message with role 'user'", "messages")
    files: dict[str, bytes] = {}
    try:
        text, attachments = _content(last.get("content"), files)
    except _Refused as exc:
        return Malformed(str(exc), "messages")
    user = conversation_name(conversation) or conversation_name(body.get("user"))
    return ChatRequest(model, stream, user, text, attachments, files)


def _content(content: Any, files: dict[str, bytes]) -> tuple[str, tuple[Attachment, ...]]:
    if isinstance(content, str):
        return content, ()
    if not isinstance(content, list):
        raise _Refused("a user message's content must be a string or an array of parts")
    texts: list[str] = []
    attachments: list[Attachment] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url":
            mime, data = _data_url(_str(part.get("image_url"), "url"), "image_url.url")
            attachments.append(_held(files, data, "image", "", mime))
        elif kind == "input_audio":
            audio = part.get("input_audio")
            fmt = _str(audio, "format") or ""
            if fmt not in _AUDIO:
                raise _Refused("input_audio.format must be 'wav' or 'mp3'")
            data = _base64(_str(audio, "data"), "input_audio.data")
            attachments.append(_held(files, data, "audio", f"audio.{fmt}", _AUDIO[fmt]))
        elif kind == "file":
            attachments.append(_file(part.get("file"), files))
        else:
            raise _Refused(f"unsupported content part type {kind!r}")
    return "\n".join(texts), tuple(attachments)


def _file(file: Any, files: dict[str, bytes]) -> Attachment:
    name = _str(file, "filename") or ""
    encoded = _str(file, "file_data")
    if encoded is None:
        if _str(file, "file_id"):
            raise _Refused("file.file_id names a file in OpenAI's Files API, which this "
                           "gateway does not have: send the file as file.file_data")
        raise _Refused("a file part needs file.file_data (base64, or a base64 data: URL)")
    if encoded.startswith("data:"):
        mime, data = _data_url(encoded, "file.file_data")
    else:
        mime, data = "", _base64(encoded, "file.file_data")
    return _held(files, data, "file", name[:200], mime)


def _held(files: dict[str, bytes], data: bytes, kind: str, name: str, mime: str
          ) -> Attachment:
    """An attachment whose bytes wait in ``files`` under a fresh id (never in the journal)."""
    key = f"inline-{uuid.uuid4().hex}"
    files[key] = data
    return Attachment(kind, name=name, mime=mime, size=len(data), platform_id=key)


def _data_url(url: str | None, param: str) -> tuple[str, bytes]:
    """(type, bytes) of a ``data:<type>;base64,<data>`` URL; anything else is refused."""
    if isinstance(url, str) and url.startswith(("http://", "https://")):
        raise _Refused(f"{param} must be a base64 data: URL (data:image/png;base64,...): "
                       "this gateway does not fetch remote URLs")
    head, comma, encoded = (url or "").partition(",")
    if not head.startswith("data:") or not comma or not head.endswith(";base64"):
        raise _Refused(f"{param} must be a base64 data: URL (data:image/png;base64,...)")
    return head[5:].split(";", 1)[0][:100], _base64(encoded, param)


def _base64(encoded: str | None, param: str) -> bytes:
    try:
        data = base64.b64decode(encoded or "", validate=True)
    except (binascii.Error, ValueError):
        raise _Refused(f"{param} is not valid base64") from None
    if not data:
        raise _Refused(f"{param} is empty")
    return data


def _str(value: Any, key: str) -> str | None:
    item = value.get(key) if isinstance(value, dict) else None
    return item if isinstance(item, str) else None
