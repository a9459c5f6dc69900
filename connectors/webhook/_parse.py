"""Signed-webhook request bodies -> :class:`Inbound`, as pure functions so they can be fuzzed.

The body is ours (docs/webhook-channel.md), so the rules are strict where a mistake
would be silent (``id`` and ``chat`` must be non-empty strings or integers, typed
fields must have their type) and lenient elsewhere: unknown fields are ignored,
optional ones default. The parser never raises: a body it refuses is
:class:`Malformed` with the reason the sender gets back (400).

An attachment's bytes come inline as base64 ``data``, handed back apart in ``files`` (by
index) for the connector to hold (``_files``); its ``platform_id`` says where. A ``url``
is kept as metadata only: the gateway never fetches a URL a caller names.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict

from connectors.webhook._files import INLINE, token_of
from pyclaw_app.model import Address, Attachment, Inbound

__all__ = ["MAX_ID", "Malformed", "Ping", "WebhookMessage", "parse_request"]

MAX_ID = 256
"""Longest ``id``, ``chat`` or sender id accepted (they are journal and lane keys)."""
MAX_ATTACHMENTS = 32
KINDS = frozenset({"image", "audio", "video", "file", "sticker", "location"})


class SenderBody(TypedDict, total=False):
    id: str
    name: str


class AttachmentBody(TypedDict, total=False):
    kind: str
    name: str
    mime: str
    url: str
    size: int
    data: str


class MessageBody(TypedDict):
    id: str | int
    chat: str | int
    text: NotRequired[str]
    sender: NotRequired[SenderBody]
    group: NotRequired[bool]
    mentioned: NotRequired[bool]
    reply_to_bot: NotRequired[bool]
    attachments: NotRequired[list[AttachmentBody]]
    callback_url: NotRequired[str]


@dataclass(frozen=True, slots=True)
class Malformed:
    reason: str


@dataclass(frozen=True, slots=True)
class Ping:
    """``{"type": "ping"}``: a signed connectivity check, answered without journaling."""


@dataclass(frozen=True, slots=True)
class WebhookMessage:
    inbound: Inbound
    callback_url: str | None
    files: dict[int, str] = field(default_factory=dict, repr=False)
    """The base64 ``data`` of the attachments that had it, by index."""


class _Bad(Exception):
    """Internal: a field is wrong; turned into :class:`Malformed` at the boundary."""


def parse_request(payload: object, *, channel: str) -> WebhookMessage | Ping | Malformed:
    """One request body (already JSON-decoded); never raises."""
    try:
        return _parse(payload, channel)
    except _Bad as exc:
        return Malformed(str(exc))
    except Exception as exc:  # noqa: BLE001 - the parser's promise: a reason, never a raise
        return Malformed(f"unreadable body ({type(exc).__name__})")


def _parse(payload: object, channel: str) -> WebhookMessage | Ping:
    if not isinstance(payload, Mapping):
        raise _Bad("body must be a JSON object")
    if payload.get("type") == "ping":
        return Ping()
    mid = _key(payload, "id")
    chat = _key(payload, "chat")
    text = _typed(payload, "text", str, "")
    sender = payload.get("sender")
    if sender is None:
        sender = {}
    if not isinstance(sender, Mapping):
        raise _Bad("sender must be an object {id, name}")
    sender_id = _key(sender, "id", "sender.id") if sender.get("id") is not None else chat
    sender_name = _typed(sender, "name", str, "", "sender.name")
    callback = payload.get("callback_url")
    if callback is not None and (not isinstance(callback, str) or not callback.strip()):
        raise _Bad("callback_url must be a non-empty string")
    attachments, files = _attachments(payload.get("attachments"), token_of(chat, mid))
    return WebhookMessage(
        inbound=Inbound(
            address=Address(channel=channel, chat=chat),
            platform_id=mid,
            text=text,
            sender_id=sender_id,
            sender_name=sender_name,
            attachments=attachments,
            is_group=_typed(payload, "group", bool, False),
            mentioned=_typed(payload, "mentioned", bool, False),
            reply_to_bot=_typed(payload, "reply_to_bot", bool, False),
        ),
        callback_url=callback.strip() if isinstance(callback, str) else None,
        files=files,
    )


def _key(body: Mapping[str, Any], field: str, label: str | None = None) -> str:
    """A required id: a non-empty string (or an integer, taken as its decimal string)."""
    label = label or field
    value = body.get(field)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise _Bad(f"{label} must be a non-empty string")
    if len(value) > MAX_ID:
        raise _Bad(f"{label} is longer than {MAX_ID} characters")
    return value


def _typed(body: Mapping[str, Any], field: str, kind: type, default: Any,
           label: str | None = None) -> Any:
    value = body.get(field)
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise _Bad(f"{label or field} must be {'true or false' if kind is bool else 'a string'}")
    return value


def _attachments(value: object, token: str) -> tuple[tuple[Attachment, ...], dict[int, str]]:
    if value is None:
        return (), {}
    if not isinstance(value, list):
        raise _Bad("attachments must be a list")
    if len(value) > MAX_ATTACHMENTS:
        raise _Bad(f"more than {MAX_ATTACHMENTS} attachments")
    found = []
    files: dict[int, str] = {}
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise _Bad(f"attachments[{i}] must be an object")
        kind = _typed(item, "kind", str, "file", f"attachments[{i}].kind")
        size = item.get("size")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool)
                                 or size < 0):
            raise _Bad(f"attachments[{i}].size must be a whole number of bytes")
        data = _typed(item, "data", str, None, f"attachments[{i}].data")
        if data is not None:
            size = _decoded_size(data, f"attachments[{i}].data")
            files[i] = data
        found.append(Attachment(
            kind=kind if kind in KINDS else "file",
            name=_typed(item, "name", str, "", f"attachments[{i}].name"),
            mime=_typed(item, "mime", str, "", f"attachments[{i}].mime"),
            url=_typed(item, "url", str, "", f"attachments[{i}].url") or None,
            size=size, platform_id=f"{INLINE}{token}/{i}" if data is not None else None))
    return tuple(found), files


def _decoded_size(data: str, label: str) -> int:
    try:
        decoded = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise _Bad(f"{label} is not valid base64") from None
    if not decoded:
        raise _Bad(f"{label} is empty")
    return len(decoded)
