"""A fake LINE Messaging API and LINE's signed webhook posts, on 127.0.0.1.

Written from LINE's published reference (github.com/line/line-openapi
``messaging-api.yml`` and ``webhook.yml``, developers.line.biz/en/reference/messaging-api/),
not from what our connector sends:

* ``Authorization: Bearer <channel access token>`` on every call; a missing or wrong
  token is 401. Every answer carries ``X-Line-Request-Id``. Errors are JSON
  ``{"message": ..., "details": [{"message", "property"}]}`` (``details`` only when
  there are some).
* ``GET /v2/bot/info`` -> ``userId``, ``basicId``, ``displayName``, ``chatMode``,
  ``markAsReadMode``.
* ``POST /v2/bot/message/reply`` ``{replyToken, messages[1..5]}``: a reply token is
  single use and expires (``reply_token_ttl``, LINE says about a minute); a used,
  expired or unknown one is 400 ``Invalid reply token``.
* ``POST /v2/bot/message/push`` ``{to, messages[1..5]}``: ``to`` is a user (``U``),
  group (``C``) or room (``R``) id; ``X-Line-Retry-Key`` (a UUID) seen before is 409
  with ``X-Line-Accepted-Request-Id`` and nothing sent again.
* Both answer ``{"sentMessages": [{"id", "quoteToken"}]}``. A text message holds
  1-5,000 characters counted in UTF-16 code units; ``quoteToken`` must be one LINE
  issued (it names the quoted message, recorded as ``SentLine.quoted``).
* ``POST /v2/bot/chat/loading/start`` ``{chatId, loadingSeconds}``: a user id and 5-60
  seconds in steps of 5; 202 ``{}``.
* Content (api-data.line.me in LINE, the same server here): ``GET
  /v2/bot/message/{messageId}/content`` with the token answers the bytes with their
  Content-Type, 404 ``{"message": "Not found"}`` for a message LINE holds no content for
  (expired, or never had); ``GET .../content/transcoding`` answers ``{"status":
  "processing" | "succeeded" | "failed"}`` for video and audio (404 for others).
* 429 is ``{"message": "The API rate limit has been exceeded. Try again later."}`` with
  no ``Retry-After`` (LINE documents none); a 429 carries nothing out. With
  ``quota_used_up`` a push is 429 ``You have reached your monthly limit.``
* Webhooks: :meth:`LineFake.signed` builds a ``CallbackRequest`` body and its
  ``X-Line-Signature`` (base64 HMAC-SHA256 of the raw body with the channel secret);
  :meth:`LineFake.post_webhook` POSTs it as the LINE Platform does.

Scripted faults come from :class:`FakePlatform` under the method names ``reply``,
``push``, ``bot_info`` and ``loading``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.platform import FakePlatform
from tests.fakes.server import json_response

_REQUEST_ID = web.RequestKey("request_id", str)

__all__ = ["BOT_NAME", "BOT_USER_ID", "LineFake", "SentLine"]

BOT_USER_ID = "U" + "b0" * 16
BOT_NAME = "pyclaw"
MAX_TEXT = 5000
_ID = re.compile(r"^[UCR][0-9a-f]{32}$")
_MESSAGES = {429: "The API rate limit has been exceeded. Try again later.",
             401: "Authentication failed. Confirm that the access token in the authorization "
                  "header is valid.",
             403: "Access to this API is not available for your account",
             404: "Not found",
             500: "An internal server error occurred", 503: "Service unavailable"}


@dataclass(frozen=True)
class SentLine:
    """One text message the fake delivered."""

    to: str
    text: str
    via: str  # "reply" or "push"
    id: str
    quoted: str | None  # id of the message its quoteToken names
    monotonic: float


@dataclass
class _ReplyToken:
    chat: str
    issued: float
    used: bool = False


class LineFake(FakePlatform):
    send_method = "push"

    def __init__(self, *, access_token: str = "fake-line-channel-access-token",
                 channel_secret: str = "fake-line-channel-secret") -> None:
        super().__init__()
        self.access_token = access_token
        self.channel_secret = channel_secret
        self.reply_token_ttl = 60.0
        self.quota_used_up = False
        """The free message quota is spent: pushes answer 429 "You have reached your monthly
        limit." (replies are not counted against it)."""
        self.sent: list[SentLine] = []
        self.loading: list[tuple[str, int]] = []  # (chatId, loadingSeconds) accepted
        self._reply_tokens: dict[str, _ReplyToken] = {}
        self._quote_tokens: dict[str, str] = {}  # quote token -> message id
        self._retry_keys: dict[str, str] = {}  # X-Line-Retry-Key -> request id that took it
        self._events: dict[str, dict[str, Any]] = {}  # message id -> event, for redelivery
        self._ids = itertools.count(600_000_000_000_000_001)
        self.contents: dict[str, tuple[bytes, str]] = {}  # message id -> (bytes, type)
        self.transcoding: dict[str, str] = {}  # message id -> status (video and audio)
        self.downloads: list[tuple[str, str | None]] = []  # (message id, Authorization)

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/v2/bot/info", self._bot_info)
        app.router.add_post("/v2/bot/message/reply", self._reply)
        app.router.add_post("/v2/bot/message/push", self._push)
        app.router.add_post("/v2/bot/chat/loading/start", self._loading)
        app.router.add_get("/v2/bot/message/{mid}/content", self._content)
        app.router.add_get("/v2/bot/message/{mid}/content/transcoding", self._transcoding)

    # ---- API ---------------------------------------------------------------------------------

    def error_response(self, method: str, status: int, retry_after: float | None
                       ) -> web.Response:
        """LINE's error body; a 429 without Retry-After (LINE sends none)."""
        if status == 400:
            return _error(400, "The request body has 1 error(s)",
                          [{"message": "May not be empty", "property": "messages[0].text"}])
        return _error(status, _MESSAGES.get(status, "Error"))

    async def _bot_info(self, request: web.Request) -> web.StreamResponse:
        refused = await self._gate("bot_info", request)
        if refused is not None:
            return refused
        self.after("bot_info", request)
        return _ok({"userId": BOT_USER_ID, "basicId": "@012abcde", "displayName": BOT_NAME,
                    "chatMode": "bot", "markAsReadMode": "auto"}, request=request)

    async def _reply(self, request: web.Request) -> web.StreamResponse:
        refused = await self._gate("reply", request)
        if refused is not None:
            return refused
        body = await _json(request)
        token = body.get("replyToken")
        held = self._reply_tokens.get(token) if isinstance(token, str) else None
        if held is None or held.used or time.monotonic() - held.issued > self.reply_token_ttl:
            return _error(400, "Invalid reply token")
        checked = self._messages(body.get("messages"))
        if isinstance(checked, web.Response):
            return checked
        held.used = True
        return self._deliver("reply", held.chat, checked, request)

    async def _push(self, request: web.Request) -> web.StreamResponse:
        refused = await self._gate("push", request)
        if refused is not None:
            return refused
        if self.quota_used_up:
            return _error(429, "You have reached your monthly limit.")
        body = await _json(request)
        to = body.get("to")
        if not isinstance(to, str) or not _ID.match(to):
            return _error(400, "The property, 'to', in the request body is invalid "
                          "(line: -, column: -)")
        checked = self._messages(body.get("messages"))
        if isinstance(checked, web.Response):
            return checked
        key = request.headers.get("X-Line-Retry-Key")
        if key is not None:
            try:
                uuid.UUID(key)
            except ValueError:
                return _error(400, "The value of the X-Line-Retry-Key header is invalid")
            if key in self._retry_keys:
                return _error(409, "The retry key is already accepted",
                              headers={"X-Line-Accepted-Request-Id": self._retry_keys[key]})
            self._retry_keys[key] = request[_REQUEST_ID]
        return self._deliver("push", to, checked, request)

    async def _loading(self, request: web.Request) -> web.StreamResponse:
        refused = await self._gate("loading", request)
        if refused is not None:
            return refused
        body = await _json(request)
        chat, seconds = body.get("chatId"), body.get("loadingSeconds", 5)
        if not (isinstance(chat, str) and chat.startswith("U") and _ID.match(chat)) or not (
                isinstance(seconds, int) and 5 <= seconds <= 60 and seconds % 5 == 0):
            return _error(400, "The request body has 1 error(s)",
                          [{"message": "Invalid chatId or loadingSeconds",
                            "property": "chatId"}])
        self.loading.append((chat, seconds))
        self.after("loading", request)
        return _ok({}, status=202, request=request)

    async def _content(self, request: web.Request) -> web.StreamResponse:
        mid = request.match_info["mid"]
        self.downloads.append((mid, request.headers.get("Authorization")))
        refused = await self._gate("content", request)
        if refused is not None:
            return refused
        if mid not in self.contents or self.transcoding.get(mid, "succeeded") != "succeeded":
            return _error(404, "Not found")
        data, mime = self.contents[mid]
        return web.Response(body=data, content_type=mime,
                            headers={"X-Line-Request-Id": request[_REQUEST_ID]})

    async def _transcoding(self, request: web.Request) -> web.StreamResponse:
        refused = await self._gate("transcoding", request)
        if refused is not None:
            return refused
        status = self.transcoding.get(request.match_info["mid"])
        if status is None:
            return _error(404, "Not found")
        return _ok({"status": status}, request=request)

    async def _gate(self, method: str, request: web.Request) -> web.Response | None:
        """Scripted faults first (as FakePlatform asks), then the token."""
        request[_REQUEST_ID] = uuid.uuid4().hex
        scripted = await self.before(method)
        if scripted is not None:
            return scripted  # type: ignore[return-value]
        if request.headers.get("Authorization") != f"Bearer {self.access_token}":
            return _error(401, _MESSAGES[401])
        return None

    def _messages(self, messages: object) -> list[dict[str, Any]] | web.Response:
        if not isinstance(messages, list) or not 1 <= len(messages) <= 5:
            return _error(400, "The request body has 1 error(s)",
                          [{"message": "Size must be between 1 and 5", "property": "messages"}])
        for i, m in enumerate(messages):
            text = m.get("text") if isinstance(m, dict) and m.get("type") == "text" else None
            if not isinstance(text, str) or not 1 <= len(text.encode("utf-16-le")) // 2 \
                    <= MAX_TEXT:
                return _error(400, "The request body has 1 error(s)",
                              [{"message": f"Length must be between 1 and {MAX_TEXT}",
                                "property": f"messages[{i}].text"}])
            quote = m.get("quoteToken")
            if quote is not None and quote not in self._quote_tokens:
                return _error(400, f"The property, 'messages[{i}].quoteToken', in the request "
                              "body is invalid (line: -, column: -)")
        return messages

    def _deliver(self, via: str, to: str, messages: list[dict[str, Any]],
                 request: web.Request) -> web.Response:
        sent = []
        for m in messages:
            mid = str(next(self._ids))
            quote = self._new_quote_token(mid)
            self.sent.append(SentLine(to, m["text"], via, mid,
                                      self._quote_tokens.get(m.get("quoteToken", "")),
                                      time.monotonic()))
            sent.append({"id": mid, "quoteToken": quote})
        self.after(via, request)  # a scripted lost answer: delivered, then the line is cut
        return _ok({"sentMessages": sent}, request=request)

    # ---- webhooks ------------------------------------------------------------------------------

    def message_event(self, chat: str, text: str | None = None, *, sender: int = 1,
                      kind: str = "text", mention_bot: bool = False,
                      quoted: str | None = None, **content: Any) -> dict[str, Any]:
        """A ``message`` event from a user in ``chat`` (U..., C... group, R... room), with a
        fresh reply token and quote token, as webhook.yml describes it."""
        mid = str(next(self._ids))
        user = chat if chat.startswith("U") else "U" + f"{sender:032x}"  # a 1:1 chat is its user
        source = {"type": "user", "userId": user} if chat.startswith("U") else (
            {"type": "group", "groupId": chat, "userId": user} if chat.startswith("C")
            else {"type": "room", "roomId": chat, "userId": user})
        message: dict[str, Any] = {"id": mid, "type": kind, **content}
        if kind != "audio" and kind != "file" and kind != "location":
            message["quoteToken"] = self._new_quote_token(mid)
        if kind == "text":
            message["text"] = f"@{BOT_NAME} {text}" if mention_bot else (text or "")
            if mention_bot:
                message["mention"] = {"mentionees": [{
                    "index": 0, "length": len(BOT_NAME) + 1, "type": "user",
                    "userId": BOT_USER_ID, "isSelf": True}]}
            if quoted is not None:
                message["quotedMessageId"] = quoted
        reply_token = uuid.uuid4().hex
        self._reply_tokens[reply_token] = _ReplyToken(chat, time.monotonic())
        event = {"type": "message", "mode": "active", "timestamp": int(time.time() * 1000),
                 "source": source, "webhookEventId": _ulid(),
                 "deliveryContext": {"isRedelivery": False}, "replyToken": reply_token,
                 "message": message}
        self._events[mid] = event
        return event

    def media_event(self, chat: str, kind: str, data: bytes | None, mime: str, *,
                    transcoding: str = "succeeded", **content: Any) -> dict[str, Any]:
        """An image/video/audio/file message whose content LINE holds (``data``; None: it
        holds none, as after it expired); video and audio get a transcoding status."""
        event = self.message_event(chat, kind=kind, contentProvider={"type": "line"},
                                   **content)
        mid = event["message"]["id"]
        if data is not None:
            self.contents[mid] = (data, mime)
        if kind in ("video", "audio"):
            self.transcoding[mid] = transcoding
        return event

    def redelivery(self, message_id: str) -> dict[str, Any]:
        """The same event again, as LINE redelivers one that got no 2xx: same
        ``webhookEventId`` and message, ``deliveryContext.isRedelivery`` true."""
        return {**self._events[message_id], "deliveryContext": {"isRedelivery": True}}

    def signed(self, events: list[Any], *, secret: str | None = None
               ) -> tuple[bytes, dict[str, str]]:
        """A ``CallbackRequest`` body and the headers LINE sends with it."""
        body = json.dumps({"destination": BOT_USER_ID, "events": events},
                          ensure_ascii=False).encode()
        return body, {"Content-Type": "application/json; charset=utf-8",
                      "X-Line-Signature": self.signature(body, secret),
                      "User-Agent": "LineBotWebhook/2.0"}

    def signature(self, body: bytes, secret: str | None = None) -> str:
        key = (secret if secret is not None else self.channel_secret).encode()
        return base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()

    def _new_quote_token(self, message_id: str) -> str:
        token = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        self._quote_tokens[token] = message_id
        return token


def _ulid() -> str:
    """A ULID-shaped id (26 Crockford base32 characters), like ``webhookEventId``."""
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    n = (int(time.time() * 1000) << 80) | int.from_bytes(uuid.uuid4().bytes[:10], "big")
    return "".join(alphabet[(n >> (5 * i)) & 31] for i in reversed(range(26)))


def _ok(data: object, *, status: int = 200, request: web.Request | None = None
        ) -> web.Response:
    rid = request[_REQUEST_ID] if request is not None else uuid.uuid4().hex
    return json_response(data, status=status, headers={"X-Line-Request-Id": rid})


def _error(status: int, message: str, details: list[dict[str, str]] | None = None, *,
           headers: dict[str, str] | None = None) -> web.Response:
    body: dict[str, Any] = {"message": message}
    if details:
        body["details"] = details
    return json_response(body, status=status,
                         headers={"X-Line-Request-Id": uuid.uuid4().hex, **(headers or {})})


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
