"""A chat completion request, as OpenAI's API reference defines it, read into what we keep.

The gateway keeps each conversation's history itself, so of ``messages`` only the newest
``user`` message is taken (clients that resend the whole history are served the same).
Its content is a string or a list of parts (``text``, ``image_url``, ``input_audio``,
``file``); text parts are joined, the others become attachments (metadata only: an
inline ``data:`` URL is never put in the journal). Never raises: a request we cannot
use is :class:`Malformed`, with the parameter OpenAI's error format names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pyclaw_app.model import Attachment

__all__ = ["ChatRequest", "Malformed", "conversation_name", "parse_chat_request"]

_SAFE = re.compile(r"[^A-Za-z0-9_.@:-]")


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    stream: bool
    user: str
    text: str
    attachments: tuple[Attachment, ...]


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
    content = _content(last.get("content"))
    if isinstance(content, Malformed):
        return content
    text, attachments = content
    user = conversation_name(conversation) or conversation_name(body.get("user"))
    return ChatRequest(model, stream, user, text, attachments)


def _content(content: Any) -> tuple[str, tuple[Attachment, ...]] | Malformed:
    if isinstance(content, str):
        return content, ()
    if not isinstance(content, list):
        return Malformed("a user message's content must be a string or an array of parts",
                         "messages")
    texts: list[str] = []
    attachments: list[Attachment] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url":
            attachments.append(_image(part.get("image_url")))
        elif kind == "input_audio":
            audio = part.get("input_audio")
            fmt = audio.get("format") if isinstance(audio, dict) else None
            attachments.append(Attachment("audio", mime=f"audio/{fmt}"
                                          if isinstance(fmt, str) else ""))
        elif kind == "file":
            file = part.get("file")
            name = file.get("filename") if isinstance(file, dict) else None
            attachments.append(Attachment("file", name=name if isinstance(name, str) else "",
                                          platform_id=_str(file, "file_id")))
        else:
            return Malformed(f"unsupported content part type {kind!r}", "messages")
    return "\n".join(texts), tuple(attachments)


def _image(value: Any) -> Attachment:
    url = value.get("url") if isinstance(value, dict) else None
    if isinstance(url, str) and url.startswith("data:"):
        mime = url[5:].split(";", 1)[0].split(",", 1)[0]
        return Attachment("image", mime=mime[:100])  # inline bytes stay out of the journal
    if isinstance(url, str) and url.startswith(("http://", "https://")):
        return Attachment("image", url=url[:2048])
    return Attachment("image")


def _str(value: Any, key: str) -> str | None:
    item = value.get(key) if isinstance(value, dict) else None
    return item if isinstance(item, str) else None
