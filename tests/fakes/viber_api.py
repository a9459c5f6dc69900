"""A fake Viber REST bot API and Viber's signed callbacks, on 127.0.0.1.

Written from Viber's published reference (developers.viber.com/docs/api/rest-bot-api/,
creators.viber.com/docs/bots-api/) and the official SDK (github.com/Viber/viber-bot-python),
not from what our connector sends:

* Every call is ``POST <base>/<endpoint>`` with a JSON body. The token goes in the
  ``X-Viber-Auth-Token`` header (the REST docs) or as ``auth_token`` in the body (what the
  SDK sends); both are accepted. A missing one is status 2 ``missing_auth_token``, a wrong
  one status 2 ``invalidAuthToken``.
* Viber answers HTTP 200 with ``{"status": 0, "status_message": "ok", ...}``, or a
  non-zero status: 1 invalidUrl, 2 invalidAuthToken, 3 badData, 4 missingData,
  5 receiverNotRegistered, 6 receiverNotSubscribed, 7 publicAccountBlocked,
  8 publicAccountNotFound, 9 publicAccountSuspended, 10 webhookNotSet,
  11 receiverNoSuitableDevice, 12 tooManyRequests, 13 apiVersionNotSupported,
  14 incompatibleWithVersion. A non-zero status carries nothing out.
* ``set_webhook`` ``{url, event_types?, send_name?, send_photo?}``: ``url`` must be HTTPS
  (else 1 invalidUrl; ``""`` removes the webhook); ``event_types`` a subset of delivered,
  seen, failed, subscribed, unsubscribed, conversation_started (else 3). Viber then
  posts a signed ``webhook`` event to the URL and answers 1 invalidUrl unless that got a
  200: the fake does so through :attr:`ViberFake.webhook_check` when it is set, and
  takes the URL on trust when it is not (the contract suite starts its webhook server
  after the channel). The answer lists the ``event_types`` that will come.
* ``get_account_info`` ``{}`` -> ``id`` (``pa:...``), ``name``, ``uri``, ``icon``,
  ``category``, ``country``, ``webhook``, ``event_types``, ``subscribers_count``,
  ``members``.
* ``send_message`` ``{receiver, type: "text", text, sender: {name, avatar?}}``: only a
  webhook-enabled bot may send (10); ``text`` 1-7,000 characters (3); ``sender.name``
  required (4), at most 28 characters (3). The subscriber rule: a user who wrote to the
  bot (the first message subscribes them) or pressed subscribe, and has not
  unsubscribed, can be messaged; one who only opened the chat, or unsubscribed, is
  6 receiverNotSubscribed; an id Viber never saw is 5 receiverNotRegistered. The answer
  carries ``message_token`` and ``chat_hostname``.
* Failures that are not statuses: Viber's front end answers real HTTP 5xx (an HTML error
  page) when it is down, and that is what a scripted 500/502/503 is. A scripted 429 is
  Viber's own rate limit, status 12 in an HTTP 200 with no Retry-After (Viber documents
  none); a scripted 400 is status 3 badData, 401 status 2, 403 status 7, 404 status 8.
* Media: a message callback's ``media`` (picture, video, file) is a signed, expiring link
  on Viber's CDN, ``https://dl-media.viber.com/3/media/2/short/any/sig/image/0x0/<hash>.jpg
  ?Expires=<unix s>&Signature=...&Key-Pair-Id=...`` (CloudFront signed URLs). The fake's
  :meth:`ViberFake.media_url` serves the bytes there with their Content-Type and no
  credentials; an expired link is 403 with CloudFront's XML ``AccessDenied`` / "Request has
  expired", a bad signature 403 "Invalid signature".
* Callbacks: :meth:`ViberFake.signed` serialises an event and signs it as Viber does,
  ``X-Viber-Content-Signature`` = hex HMAC-SHA256 of the raw body keyed with the auth
  token; :meth:`ViberFake.post_webhook` POSTs it.

Scripted faults come from :class:`FakePlatform` under the endpoint names ``set_webhook``,
``get_account_info`` and ``send_message``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.platform import FakePlatform
from tests.fakes.server import json_response

__all__ = ["ACCOUNT_ID", "BOT_NAME", "MAX_TEXT", "SentViber", "ViberFake", "user_id"]

ACCOUNT_ID = "pa:5730000000000000001"
BOT_NAME = "pyclaw"
MAX_TEXT = 7000
MAX_SENDER_NAME = 28
EVENT_TYPES = ("delivered", "seen", "failed", "subscribed", "unsubscribed",
               "conversation_started")
STATUS_NAMES = {0: "ok", 1: "invalidUrl", 2: "invalidAuthToken", 3: "badData",
                4: "missingData", 5: "receiverNotRegistered", 6: "receiverNotSubscribed",
                7: "publicAccountBlocked", 8: "publicAccountNotFound",
                9: "publicAccountSuspended", 10: "webhookNotSet",
                11: "receiverNoSuitableDevice", 12: "tooManyRequests",
                13: "apiVersionNotSupported", 14: "incompatibleWithVersion"}
_SCRIPTED = {400: 3, 401: 2, 403: 7, 404: 8, 429: 12}
"""HTTP-style statuses a test scripts -> the Viber status that means the same."""

WebhookCheck = Callable[[bytes, dict[str, str]], Awaitable[int]]


def user_id(i: int) -> str:
    """A Viber user id: base64 of 16 bytes, as Viber's ids look (``Kwr2...FQ==``)."""
    return base64.b64encode((0x5A << 120 | i).to_bytes(16, "big")).decode()


@dataclass(frozen=True)
class SentViber:
    """One text message the fake delivered."""

    to: str
    text: str
    sender_name: str
    token: int
    monotonic: float


class ViberFake(FakePlatform):
    send_method = "send_message"

    def __init__(self, *, auth_token: str = "4453b6ac12345678-e02c5f12174805f9-"
                 "daec9cbb5448c51f") -> None:
        super().__init__()
        self.auth_token = auth_token
        self.webhook_url = ""
        self.event_types: list[str] = []
        self.webhook_check: WebhookCheck | None = None
        """Where set_webhook posts its signed ``webhook`` event (instead of ``url``)."""
        self.sent: list[SentViber] = []
        self.known: set[str] = set()  # users Viber has seen (opened the chat or wrote)
        self.subscribers: set[str] = set()
        self._events: dict[str, bytes] = {}  # message token -> body, for redelivery
        self._tokens = itertools.count(5_741_311_803_571_721_087)
        self.files: dict[str, tuple[bytes, str]] = {}  # CDN path -> (bytes, content type)
        self.downloads: list[tuple[str, dict[str, str]]] = []  # (CDN path, headers)

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/3/media/{path:.*}", self._media)
        app.router.add_post("/pa/set_webhook", self._set_webhook)
        app.router.add_post("/pa/get_account_info", self._account_info)
        app.router.add_post("/pa/send_message", self._send_message)

    @property
    def api_base(self) -> str:
        return f"{self.url}/pa"

    # ---- API ---------------------------------------------------------------------------------

    def error_response(self, method: str, status: int, retry_after: float | None
                       ) -> web.Response:
        if status >= 500:
            return web.Response(status=status, content_type="text/html",
                                text=f"<html><body><h1>{status}</h1>Service unavailable"
                                "</body></html>")
        return _status(_SCRIPTED.get(status, 3))

    async def _set_webhook(self, request: web.Request) -> web.StreamResponse:
        body, refused = await self._gate("set_webhook", request)
        if refused is not None:
            return refused
        url, types = body.get("url"), body.get("event_types", list(EVENT_TYPES))
        if not isinstance(url, str):
            return _status(4)
        if url == "":
            self.webhook_url, self.event_types = "", []
            self.after("set_webhook", request)
            return _ok()
        if not url.startswith("https://"):
            return _status(1)
        if not isinstance(types, list) or not all(t in EVENT_TYPES for t in types):
            return _status(3)
        if self.webhook_check is not None:
            check = {"event": "webhook", "timestamp": _now_ms(),
                     "chat_hostname": "SN-CHAT-05_", "message_token": next(self._tokens)}
            answered = await self.webhook_check(*self.signed(check))
            if answered != 200:
                return _status(1)
        self.webhook_url, self.event_types = url, list(types)
        self.after("set_webhook", request)
        return _ok(event_types=self.event_types)

    async def _account_info(self, request: web.Request) -> web.StreamResponse:
        _, refused = await self._gate("get_account_info", request)
        if refused is not None:
            return refused
        self.after("get_account_info", request)
        return _ok(id=ACCOUNT_ID, name=BOT_NAME, uri="pyclawbot",
                   icon="https://media-direct.cdn.viber.com/pg_download?id=1",
                   background="https://media-direct.cdn.viber.com/pg_download?id=2",
                   category="Utilities", subcategory="Assistant",
                   location={"lat": 52.52, "lon": 13.405}, country="DE",
                   webhook=self.webhook_url, event_types=self.event_types,
                   subscribers_count=len(self.subscribers),
                   members=[{"id": user_id(0), "name": "owner", "role": "admin"}])

    async def _send_message(self, request: web.Request) -> web.StreamResponse:
        body, refused = await self._gate("send_message", request)
        if refused is not None:
            return refused
        if not self.webhook_url:
            return _status(10)
        receiver, text, sender = body.get("receiver"), body.get("text"), body.get("sender")
        name = sender.get("name") if isinstance(sender, dict) else None
        if not isinstance(receiver, str) or not receiver or body.get("type") is None \
                or not isinstance(name, str) or not name:
            return _status(4)
        if body.get("type") != "text" or not isinstance(text, str) \
                or not 1 <= len(text) <= MAX_TEXT or len(name) > MAX_SENDER_NAME:
            return _status(3)
        if receiver not in self.known:
            return _status(5)
        if receiver not in self.subscribers:
            return _status(6)
        token = next(self._tokens)
        self.sent.append(SentViber(receiver, text, name, token, time.monotonic()))
        self.after("send_message", request)
        return _ok(message_token=token, chat_hostname="SN-CHAT-05_")

    async def _media(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.downloads.append((path, dict(request.headers)))
        expires = request.query.get("Expires", "")
        if request.query.get("Signature") != self._sign(path, expires) or \
                not request.query.get("Key-Pair-Id"):
            return _denied("Invalid signature")
        if not expires.isdigit() or int(expires) < time.time():
            return _denied("Request has expired")
        data, mime = self.files[path]
        return web.Response(body=data, content_type=mime)

    def media_url(self, data: bytes, mime: str, *, ttl: float = 3600.0) -> str:
        """A signed CDN link to ``data`` as Viber puts it in ``media``; a negative ``ttl``
        makes one that has already expired."""
        digest = hashlib.sha256(data).hexdigest()
        ext = {"image/png": "png", "image/jpeg": "jpg", "audio/ogg": "ogg"}.get(mime, "bin")
        path = f"/3/media/2/short/any/sig/image/0x0/{digest[-4:]}/{digest}.{ext}"
        self.files[path] = (data, mime)
        expires = str(int(time.time() + ttl))
        return (f"{self.url}{path}?Expires={expires}&Signature={self._sign(path, expires)}"
                "&Key-Pair-Id=APKAJ62UNSBCMEIPV4HA")

    def _sign(self, path: str, expires: str) -> str:
        return hmac.new(b"fake-cloudfront-key", f"{path}{expires}".encode(),
                        hashlib.sha256).hexdigest()

    async def _gate(self, method: str, request: web.Request
                    ) -> tuple[dict[str, Any], web.Response | None]:
        """Scripted faults first (as FakePlatform asks), then the body and the token."""
        scripted = await self.before(method)
        if scripted is not None:
            return {}, scripted  # type: ignore[return-value]
        try:
            body = json.loads(await request.read())
        except ValueError:
            return {}, _status(3)
        if not isinstance(body, dict):
            return {}, _status(3)
        token = request.headers.get("X-Viber-Auth-Token") or body.get("auth_token")
        if not token:
            return body, _status(2, "missing_auth_token")
        if token != self.auth_token:
            return body, _status(2)
        return body, None

    # ---- callbacks (what Viber posts to the webhook) -----------------------------------------

    def message_event(self, user: str, text: str = "", *, kind: str = "text",
                      name: str = "Viber User", **fields: Any) -> dict[str, Any]:
        """A ``message`` callback from ``user``; writing to the bot subscribes them."""
        self.known.add(user)
        self.subscribers.add(user)
        message: dict[str, Any] = {"type": kind, **fields}
        if kind == "text" or text:
            message["text"] = text
        event = {"event": "message", "timestamp": _now_ms(), "chat_hostname": "SN-CHAT-05_",
                 "message_token": next(self._tokens),
                 "sender": {"id": user, "name": name,
                            "avatar": "https://media-direct.cdn.viber.com/download_photo?id=9",
                            "language": "en", "country": "DE", "api_version": 10},
                 "message": message, "silent": False}
        self._events[str(event["message_token"])] = json.dumps(event).encode()
        return event

    def conversation_started_event(self, user: str, *, name: str = "Viber User",
                                   context: str | None = None) -> dict[str, Any]:
        """Someone opened the chat: known to Viber, not subscribed by that alone."""
        self.known.add(user)
        event: dict[str, Any] = {
            "event": "conversation_started", "timestamp": _now_ms(),
            "chat_hostname": "SN-CHAT-05_", "message_token": next(self._tokens),
            "type": "open", "user": {"id": user, "name": name, "language": "en",
                                     "country": "DE", "api_version": 10},
            "subscribed": user in self.subscribers}
        if context is not None:
            event["context"] = context
        return event

    def subscribed_event(self, user: str, *, name: str = "Viber User") -> dict[str, Any]:
        self.known.add(user)
        self.subscribers.add(user)
        return {"event": "subscribed", "timestamp": _now_ms(), "chat_hostname": "SN-CHAT-05_",
                "message_token": next(self._tokens),
                "user": {"id": user, "name": name, "api_version": 10}}

    def unsubscribed_event(self, user: str) -> dict[str, Any]:
        self.subscribers.discard(user)
        return {"event": "unsubscribed", "timestamp": _now_ms(),
                "chat_hostname": "SN-CHAT-05_", "user_id": user,
                "message_token": next(self._tokens)}

    def receipt_event(self, kind: str, user: str, token: int, desc: str = ""
                      ) -> dict[str, Any]:
        """``delivered``, ``seen`` or ``failed`` (with ``desc``) for a message the bot sent."""
        event: dict[str, Any] = {"event": kind, "timestamp": _now_ms(),
                                 "chat_hostname": "SN-CHAT-05_", "message_token": token,
                                 "user_id": user}
        if kind == "failed":
            event["desc"] = desc
        return event

    def redelivery(self, message_token: str) -> bytes:
        """The body of a message callback exactly as first posted (Viber retries a callback
        that was not answered 200 with the same body)."""
        return self._events[message_token]

    def signed(self, event: dict[str, Any] | bytes, token: str | None = None
               ) -> tuple[bytes, dict[str, str]]:
        body = event if isinstance(event, bytes) else json.dumps(event).encode()
        return body, {"Content-Type": "application/json",
                      "X-Viber-Content-Signature": self.signature(body, token)}

    def signature(self, body: bytes, token: str | None = None) -> str:
        key = (token if token is not None else self.auth_token).encode()
        return hmac.new(key, body, hashlib.sha256).hexdigest()


def _now_ms() -> int:
    return int(time.time() * 1000)


def _denied(message: str) -> web.Response:
    """CloudFront's refusal of a signed URL."""
    return web.Response(status=403, content_type="text/xml", text=(
        '<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
        f"<Message>{message}</Message></Error>"))


def _ok(**data: Any) -> web.Response:
    return json_response({"status": 0, "status_message": "ok", **data})


def _status(status: int, message: str | None = None) -> web.Response:
    """A refusal as Viber gives it: HTTP 200, the code in the body."""
    return json_response({"status": status,
                          "status_message": message or STATUS_NAMES.get(status, "generalError"),
                          "chat_hostname": "SN-CHAT-05_"})
