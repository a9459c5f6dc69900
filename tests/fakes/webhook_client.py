"""A fake caller of the signed webhook channel: its callback receiver on 127.0.0.1, and a
client that signs and POSTs requests the way docs/webhook-channel.md tells a caller to.

Written from that document, not from the connector: a callback is accepted only when
``X-Pyclaw-Timestamp`` is within five minutes and ``X-Pyclaw-Signature`` is
``sha256=`` + hex HMAC-SHA256(secret, ``"<timestamp>." + raw body``), else 401; its
body must be a JSON object with ``chat``, ``text`` (a non-empty string) and ``part``
(else 400); the receiver answers 200 ``{"id": "cb-<n>"}``. ``{"type": "ping"}`` (the
probe) is answered 200 ``{}``. Errors are ``{"error": ...}``; a 429 carries
``Retry-After``.

A caller sends a file as an attachment with its bytes in base64 ``data``
(:func:`attachment`), never as a URL for the gateway to fetch.

Scripted faults come from :class:`FakePlatform` under the method name ``callback``
(``ping`` for the probe).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from tests.fakes.platform import FakePlatform
from tests.fakes.server import json_response

__all__ = ["Callback", "WebhookClientFake", "attachment", "sign", "verify"]

CALLBACK_PATH = "/callback"


def sign(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The two headers a request (or callback) is signed with, as the protocol defines."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Pyclaw-Timestamp": stamp, "X-Pyclaw-Signature": f"sha256={digest}",
            "Content-Type": "application/json"}


def attachment(data: bytes, name: str, mime: str, kind: str = "file") -> dict[str, Any]:
    """One entry of a request's ``attachments``, its bytes inline as the document says."""
    return {"kind": kind, "name": name, "mime": mime,
            "data": base64.b64encode(data).decode()}


def verify(secret: str, body: bytes, headers: Any, *, now: float | None = None) -> bool:
    """What a callback receiver checks (docs/webhook-channel.md, "Verifying a callback")."""
    stamp = headers.get("X-Pyclaw-Timestamp", "")
    if not stamp.isdigit() or abs((time.time() if now is None else now) - int(stamp)) > 300:
        return False
    expected = "sha256=" + hmac.new(secret.encode(), f"{stamp}.".encode() + body,
                                    hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers.get("X-Pyclaw-Signature", ""), expected)


@dataclass(frozen=True)
class Callback:
    """One reply part the receiver accepted."""

    chat: str
    text: str
    in_reply_to: str | None
    part: int
    id: str
    monotonic: float
    host: str = ""


@dataclass
class _Request:
    body: bytes
    headers: dict[str, str]
    message: dict[str, Any] = field(default_factory=dict)


class WebhookClientFake(FakePlatform):
    send_method = "callback"

    def __init__(self, *, secret: str = "fake-webhook-shared-secret") -> None:
        super().__init__()
        self.secret = secret
        self.answer_id = True
        """Answer a callback with ``{"id"}``; False: an empty 204, so the channel makes one."""
        self.received: list[Callback] = []
        self.pings = 0
        self.refused: list[tuple[int, str]] = []  # (status, why) of callbacks turned away
        self._sent: dict[str, _Request] = {}  # message id -> the request that carried it
        self._ids = itertools.count(1)

    @property
    def callback_url(self) -> str:
        return f"{self.url}{CALLBACK_PATH}"

    def routes(self, app: web.Application) -> None:
        app.router.add_post(CALLBACK_PATH, self._callback)

    # ---- the callback receiver ------------------------------------------------------------

    def error_response(self, method: str, status: int, retry_after: float | None
                       ) -> web.Response:
        headers = {"Retry-After": f"{retry_after:g}"} if status == 429 and retry_after else {}
        return json_response({"error": f"scripted {status}"}, status=status, headers=headers)

    async def _callback(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        method = "ping" if isinstance(body, dict) and body.get("type") == "ping" else "callback"
        scripted = await self.before(method)
        if scripted is not None:
            return scripted
        if not verify(self.secret, raw, request.headers):
            self.refused.append((401, "bad signature"))
            return json_response({"error": "bad or missing signature"}, status=401)
        if method == "ping":
            self.pings += 1
            self.after("ping", request)
            return json_response({})
        if not (isinstance(body, dict) and isinstance(body.get("chat"), str)
                and isinstance(body.get("text"), str) and body["text"]
                and isinstance(body.get("part"), int)):
            self.refused.append((400, "not a reply part"))
            return json_response({"error": "not a reply part"}, status=400)
        pid = f"cb-{next(self._ids)}"
        in_reply_to = body.get("in_reply_to")
        self.received.append(Callback(body["chat"], body["text"],
                                      in_reply_to if isinstance(in_reply_to, str) else None,
                                      body["part"], pid, time.monotonic(), request.host))
        if self.after("callback", request):
            return json_response({})
        if not self.answer_id:
            return web.Response(status=204)
        return json_response({"id": pid})

    # ---- the caller -----------------------------------------------------------------------

    def message(self, chat: str, text: str = "", *, mid: str | None = None, sender: int = 1,
                **fields: Any) -> dict[str, Any]:
        """A request body as a caller writes it (``fields`` add or override keys)."""
        return {"id": mid or f"m-{uuid.uuid4().hex[:12]}", "chat": chat, "text": text,
                "sender": {"id": f"user-{sender}", "name": f"User {sender}"}, **fields}

    def signed(self, message: dict[str, Any] | bytes, *, secret: str | None = None,
               timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
        """The raw body and its headers; remembered under the message id for redelivery."""
        body = message if isinstance(message, bytes) else json.dumps(
            message, ensure_ascii=False).encode()
        headers = sign(self.secret if secret is None else secret, body, timestamp)
        if isinstance(message, dict) and isinstance(message.get("id"), str):
            self._sent[message["id"]] = _Request(body, headers, message)
        return body, headers

    def request_of(self, mid: str) -> dict[str, Any]:
        """The body of a request sent before (a redelivery sends it again, signed anew)."""
        return self._sent[mid].message

    async def post(self, url: str, body: bytes, headers: dict[str, str]
                   ) -> tuple[int, Any]:
        """POST a signed request; returns the status and the decoded JSON (or text)."""
        async with aiohttp.ClientSession() as session, session.post(
                url, data=body, headers=headers) as resp:
            text = await resp.text()
        try:
            return resp.status, json.loads(text)
        except ValueError:
            return resp.status, text
