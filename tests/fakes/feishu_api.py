"""A fake Feishu / Lark open platform (tenant token, bot info, IM messages) and its event pushes.

Written from the open platform's published reference, not from what our connector sends:
"Get tenant_access_token (custom app)", "Send message", "Reply message", "Edit message"
(im/v1), "Receive message" (im.message.receive_v1), "Receive events" (encryption and
signature) and "Rate limits", with the shapes of lark-oapi's generated models; the tests
run the official SDK's client and event dispatcher against this fake.

* ``POST /open-apis/auth/v3/tenant_access_token/internal`` ``{app_id, app_secret}`` ->
  ``{"code": 0, "msg": "ok", "tenant_access_token": "t-...", "expire": 7200}``. While more
  than 30 minutes are left the same token is returned (with what is left); after that a
  new one, the old one still valid until it expires. A wrong app id is 10003, a wrong
  secret 10014 (HTTP 400).
* Every other call needs ``Authorization: Bearer <tenant_access_token>``: none is 99991661,
  an unknown, expired or revoked one 99991663 (HTTP 400).
* Errors are ``{"code", "msg"}``. A rate limit is HTTP 429 ``{"code": 99991400, "msg":
  "request trigger frequency limit"}`` with ``x-ogw-ratelimit-limit`` and
  ``x-ogw-ratelimit-reset`` (seconds); a 429 carries nothing out.
* ``GET /open-apis/bot/v3/info`` -> ``{"code": 0, "msg": "ok", "bot": {"activate_status",
  "app_name", "avatar_url", "ip_white_list", "open_id"}}`` (``bot`` beside ``code``, no
  ``data``).
* ``POST /open-apis/im/v1/messages?receive_id_type=chat_id`` ``{receive_id, msg_type,
  content}``: ``content`` is a JSON string (``{"text": ...}`` for text); a chat the bot is
  not in is 230002; a body over 150 KB is 230025.
* ``POST /open-apis/im/v1/messages/{message_id}/reply`` ``{msg_type, content,
  reply_in_thread}``: quotes that message (``parent_id``; ``root_id`` its root); in a
  thread, or with ``reply_in_thread``, the reply goes into the thread; a recalled message
  is 230011.
* ``PUT /open-apis/im/v1/messages/{message_id}`` ``{msg_type, content}``: text and post
  only (230054), the bot's own messages only (230071), at most 20 edits (230072).
* All three answer ``{"code": 0, "msg": "success", "data": <message>}`` (``message_id``,
  ``root_id``, ``parent_id``, ``thread_id``, ``msg_type``, ``create_time``, ``chat_id``,
  ``sender``, ``body.content``...).
* ``GET /open-apis/im/v1/messages/{message_id}/resources/{file_key}?type=image|file``
  ("Get resources in messages"): the bytes of an image, file, audio or video the message
  carries, with their ``Content-Type`` and ``Content-Disposition``; ``type`` is ``image`` for
  images and ``file`` for the rest. A key the message does not carry is HTTP 400 ``{"code":
  234003, "msg": "File not in msg."}``, a type that does not match it 234001 (invalid
  request parameter). Stickers cannot be fetched this way, and files over 100 MB not at all.
* Events: :meth:`FeishuFake.message_event` builds a v2 ``im.message.receive_v1`` event;
  :meth:`FeishuFake.signed` makes the request Feishu posts. With an Encrypt Key the body is
  ``{"encrypt": base64(iv + AES-256-CBC(key = SHA-256(encrypt key), PKCS#7))}`` and
  ``X-Lark-Signature`` = hex SHA-256(timestamp + nonce + encrypt key + body); the
  ``url_verification`` request is the one Feishu does not sign.

Server errors (HTTP 5xx) answer ``{"code": 55001, ...}``: the code is this fake's, Feishu
documents none for them. Scripted faults come from :class:`FakePlatform` under the method
names ``token``, ``bot_info``, ``send``, ``reply``, ``edit`` and ``resource``.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import math
import os
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tests.fakes.platform import FakePlatform
from tests.fakes.server import json_response

__all__ = ["BOT_NAME", "BOT_OPEN_ID", "MAX_BODY", "FeishuFake", "SentFeishu"]

BOT_OPEN_ID = "ou_" + "b0" * 16
BOT_NAME = "pyclaw"
TENANT_KEY = "736588c9260f175d"
MAX_BODY = 150 * 1024
"""A text message's request body may be up to 150 KB (error 230025 beyond)."""
EDIT_LIMIT = 20
FRESH_TOKEN_BELOW = 30 * 60
_ERRORS = {
    99991661: "Missing access token for authorization. Please make a request with token "
              "attached.",
    99991663: "Invalid access token for authorization. Please make a request with token "
              "attached.",
    99991400: "request trigger frequency limit",
    230001: "Your request contains an invalid request parameter.",
    234001: "Invalid request param.",
    234003: "File not in msg.",
    230002: "The bot can not be outside the group.",
    230011: "The message is recalled.",
    230025: "The length of the message content reaches its limit.",
    230054: "This operation is not supported for this message type.",
    230071: "The operator is not the sender of the message.",
    230072: "The message has reached the number of times it can be edited.",
    10003: "invalid param",
    10014: "app secret invalid",
    55001: "internal error",
}


@dataclass
class _Message:
    id: str
    chat: str
    msg_type: str
    content: str
    sender: str  # an open_id, or "app" for the bot
    parent: str = ""
    root: str = ""
    thread: str = ""
    created: int = field(default_factory=lambda: int(time.time() * 1000))
    edits: int = 0
    recalled: bool = False


@dataclass(frozen=True)
class SentFeishu:
    """One message the bot posted (``text`` as it reads now, after edits)."""

    id: str
    chat: str
    via: str  # "send" or "reply"
    parent: str
    thread: str
    monotonic: float
    text: str


class FeishuFake(FakePlatform):
    send_method = "send"

    def __init__(self, *, app_id: str = "cli_a1b2c3d4e5f60001",
                 app_secret: str = "fake-feishu-app-secret",
                 verification_token: str = "fake-feishu-verification-token",
                 encrypt_key: str | None = "fake-feishu-encrypt-key",
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.app_id = app_id
        self.app_secret = app_secret
        self.verification_token = verification_token
        self.encrypt_key = encrypt_key
        self.clock = clock
        self.token_ttl = 7200
        self.activate_status = 2
        self.messages: dict[str, _Message] = {}
        self.posted: list[str] = []  # ids of the bot's messages, in order
        self.sent_at: dict[str, tuple[str, float]] = {}  # bot message id -> (via, monotonic)
        self.edit_log: list[tuple[str, str]] = []  # (message id, new text)
        self.chats: dict[str, str] = {}  # chat id -> chat_type the bot is in
        self.token_calls = 0
        self._tokens: dict[str, float] = {}  # token -> expiry on ``clock``
        self._current = ""
        self._events: dict[str, dict[str, Any]] = {}  # message id -> its event
        self._ids = itertools.count(1)
        self.resources: dict[tuple[str, str], tuple[bytes, str, str]] = {}
        """(message id, key) -> (bytes, Content-Type, resource type) a message carries."""
        self.downloads: list[tuple[str, str, str]] = []
        """(message id, key, the type asked for) of each resource call that was let in."""

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/open-apis/auth/v3/tenant_access_token/internal", self._token)
        app.router.add_get("/open-apis/bot/v3/info", self._bot_info)
        app.router.add_post("/open-apis/im/v1/messages", self._send)
        app.router.add_post("/open-apis/im/v1/messages/{message_id}/reply", self._reply)
        app.router.add_put("/open-apis/im/v1/messages/{message_id}", self._edit)
        app.router.add_get("/open-apis/im/v1/messages/{message_id}/resources/{file_key}",
                           self._resource)

    # ---- controls -------------------------------------------------------------------------

    def revoke_tokens(self) -> None:
        """Every tenant token issued so far stops working (a reset app secret does this)."""
        self._tokens.clear()
        self._current = ""

    def recall(self, message_id: str) -> None:
        self.messages[message_id].recalled = True

    def remove_bot_from(self, chat: str) -> None:
        self.chats.pop(chat, None)

    @property
    def sent(self) -> list[SentFeishu]:
        out = []
        for mid in self.posted:
            m = self.messages[mid]
            via, at = self.sent_at[mid]
            out.append(SentFeishu(mid, m.chat, via, m.parent, m.thread, at, _text_of(m)))
        return out

    def thread_root(self, thread: str) -> str:
        """The first message of thread ``omt_...``."""
        return next(m.id for m in self.messages.values() if m.thread == thread and not m.root)

    # ---- API ------------------------------------------------------------------------------

    def error_response(self, method: str, status: int, retry_after: float | None
                       ) -> web.Response:
        if status == 429:
            wait = math.ceil(retry_after) if retry_after is not None else 1
            return _error(99991400, 429, headers={"x-ogw-ratelimit-limit": "50",
                                                  "x-ogw-ratelimit-reset": str(wait)})
        if status >= 500:
            return _error(55001, status)
        if status in (401, 403):
            return _error(99991663, status)
        return _error(230001, status)

    async def _token(self, request: web.Request) -> web.StreamResponse:
        scripted = await self.before("token")
        if scripted is not None:
            return scripted
        body = await _json(request)
        if body.get("app_id") != self.app_id:
            return _error(10003, 400)
        if body.get("app_secret") != self.app_secret:
            return _error(10014, 400)
        self.token_calls += 1
        now = self.clock()
        left = self._tokens.get(self._current, now) - now
        if left < FRESH_TOKEN_BELOW:
            self._current = "t-" + secrets.token_hex(20)
            self._tokens[self._current] = now + self.token_ttl
            left = self.token_ttl
        self.after("token", request)
        return json_response({"code": 0, "msg": "ok", "tenant_access_token": self._current,
                              "expire": int(left)})

    async def _gate(self, method: str, request: web.Request) -> web.StreamResponse | None:
        scripted = await self.before(method)
        if scripted is not None:
            return scripted
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return _error(99991661, 400)
        expiry = self._tokens.get(auth[7:].strip())
        if expiry is None or expiry <= self.clock():
            return _error(99991663, 400)
        return None

    async def _resource(self, request: web.Request) -> web.StreamResponse:
        refused = await self._gate("resource", request)
        if refused is not None:
            return refused
        mid, key = request.match_info["message_id"], request.match_info["file_key"]
        wanted = request.query.get("type", "")
        self.downloads.append((mid, key, wanted))
        found = self.resources.get((mid, key))
        if found is None:
            return _error(234003, 400)
        data, mime, kind = found
        if wanted != kind:
            return _error(234001, 400)
        self.after("resource", request)
        return web.Response(body=data, headers={
            "Content-Type": mime, "Content-Length": str(len(data)),
            "Content-Disposition": f'attachment; filename="{key}"'})

    async def _bot_info(self, request: web.Request) -> web.StreamResponse:
        refused = await self._gate("bot_info", request)
        if refused is not None:
            return refused
        self.after("bot_info", request)
        return json_response({"code": 0, "msg": "ok", "bot": {
            "activate_status": self.activate_status, "app_name": BOT_NAME,
            "avatar_url": "https://s1-imfile.feishucdn.com/avatar.png", "ip_white_list": [],
            "open_id": BOT_OPEN_ID}})

    async def _send(self, request: web.Request) -> web.StreamResponse:
        refused = await self._gate("send", request)
        if refused is not None:
            return refused
        if request.query.get("receive_id_type") not in ("open_id", "union_id", "user_id",
                                                        "email", "chat_id"):
            return _error(230001, 400)
        raw = await request.read()
        body = _loads(raw)
        checked = _content(body, raw)
        if isinstance(checked, web.Response):
            return checked
        chat = body.get("receive_id")
        if request.query["receive_id_type"] != "chat_id" or chat not in self.chats:
            return _error(230002, 400)
        message = self._post(str(chat), body, via="send")
        self.after("send", request)
        return self._ok(message)

    async def _reply(self, request: web.Request) -> web.StreamResponse:
        refused = await self._gate("reply", request)
        if refused is not None:
            return refused
        raw = await request.read()
        body = _loads(raw)
        checked = _content(body, raw)
        if isinstance(checked, web.Response):
            return checked
        target = self.messages.get(request.match_info["message_id"])
        if target is None:
            return _error(230001, 400)
        if target.recalled:
            return _error(230011, 400)
        if target.chat not in self.chats:
            return _error(230002, 400)
        thread = target.thread or (f"omt_{uuid.uuid4().hex[:12]}"
                                   if body.get("reply_in_thread") is True else "")
        message = self._post(target.chat, body, via="reply", parent=target.id,
                             root=target.root or target.id, thread=thread)
        if thread and not target.thread:
            target.thread = thread  # the quoted message became the thread's root
        self.after("reply", request)
        return self._ok(message)

    async def _edit(self, request: web.Request) -> web.StreamResponse:
        refused = await self._gate("edit", request)
        if refused is not None:
            return refused
        raw = await request.read()
        body = _loads(raw)
        message = self.messages.get(request.match_info["message_id"])
        if message is None:
            return _error(230001, 400)
        if message.recalled:
            return _error(230011, 400)
        if message.sender != "app":
            return _error(230071, 400)
        if body.get("msg_type") not in ("text", "post") or message.msg_type not in ("text",
                                                                                   "post"):
            return _error(230054, 400)
        checked = _content(body, raw)
        if isinstance(checked, web.Response):
            return checked
        if message.edits >= EDIT_LIMIT:
            return _error(230072, 400)
        message.content, message.msg_type = body["content"], body["msg_type"]
        message.edits += 1
        self.edit_log.append((message.id, _text_of(message)))
        self.after("edit", request)
        return self._ok(message, updated=True)

    def _post(self, chat: str, body: dict[str, Any], *, via: str, parent: str = "",
              root: str = "", thread: str = "") -> _Message:
        message = _Message(self._new_id(), chat, body["msg_type"], body["content"], "app",
                           parent, root, thread)
        self.messages[message.id] = message
        self.posted.append(message.id)
        self.sent_at[message.id] = (via, time.monotonic())
        return message

    def _ok(self, message: _Message, *, updated: bool = False) -> web.Response:
        data: dict[str, Any] = {
            "message_id": message.id, "root_id": message.root, "parent_id": message.parent,
            "msg_type": message.msg_type, "create_time": str(message.created),
            "update_time": str(int(time.time() * 1000)), "deleted": False,
            "updated": updated, "chat_id": message.chat,
            "sender": {"id": self.app_id, "id_type": "app_id", "sender_type": "app",
                       "tenant_key": TENANT_KEY},
            "body": {"content": message.content}}
        if message.thread:
            data["thread_id"] = message.thread
        return json_response({"code": 0, "msg": "success", "data": data})

    def _new_id(self) -> str:
        return f"om_{next(self._ids):04d}{uuid.uuid4().hex[:28]}"

    # ---- events ---------------------------------------------------------------------------

    def message_event(self, chat: str, text: str | None = None, *, sender: int = 1,
                      group: bool = False, kind: str = "text", mention_bot: bool = False,
                      thread_root: str | None = None, quoting: str | None = None,
                      content: dict[str, Any] | None = None) -> dict[str, Any]:
        """A v2 ``im.message.receive_v1`` event from user ``sender`` in ``chat`` (a group
        with ``group``), in the thread of message ``thread_root`` or quoting ``quoting``."""
        self.chats.setdefault(chat, "group" if group else "p2p")
        user = _open_id(sender)
        mentions: list[dict[str, Any]] = []
        if content is None:
            content = {"text": f"@_user_1 {text}" if mention_bot else (text or "")}
        if mention_bot:
            mentions.append({"key": "@_user_1", "id": {
                "union_id": "on_" + "b1" * 16, "user_id": "", "open_id": BOT_OPEN_ID},
                "name": BOT_NAME, "tenant_key": TENANT_KEY, "mentioned_type": "bot"})
        parent = quoting or thread_root or ""
        root = ""
        thread = ""
        if parent:
            quoted = self.messages[parent]
            root = quoted.root or quoted.id
            thread = quoted.thread
        message = _Message(self._new_id(), chat, kind, json.dumps(content, ensure_ascii=False),
                           user, parent, root, thread)
        self.messages[message.id] = message
        body: dict[str, Any] = {
            "message_id": message.id, "root_id": root, "parent_id": parent,
            "create_time": str(message.created), "update_time": str(message.created),
            "chat_id": chat, "chat_type": self.chats[chat], "message_type": kind,
            "content": message.content, "mentions": mentions,
            "user_agent": "Mozilla/5.0 (Macintosh) Lark/7.20.5"}
        if thread:
            body["thread_id"] = thread
        event = {"schema": "2.0", "header": {
            "event_id": uuid.uuid4().hex, "token": self.verification_token,
            "create_time": str(int(time.time() * 1000)), "event_type": "im.message.receive_v1",
            "tenant_key": TENANT_KEY, "app_id": self.app_id},
            "event": {"sender": {"sender_id": {"union_id": "on_" + user[3:], "user_id": "",
                                               "open_id": user},
                                 "sender_type": "user", "tenant_key": TENANT_KEY},
                      "message": body}}
        self._events[message.id] = event
        return event

    def media_event(self, chat: str, kind: str, data: bytes, mime: str, *,
                    name: str = "") -> dict[str, Any]:
        """A user sends an ``image`` (or ``file``, ``audio``, ``media``) message in
        ``chat``; the platform keeps its bytes under the key the content names."""
        key = f"{'img_v3' if kind == 'image' else 'file_v3'}_{uuid.uuid4().hex[:20]}"
        content: dict[str, Any] = {"image_key": key} if kind == "image" else {
            "file_key": key, "file_name": name}
        event = self.message_event(chat, kind=kind, content=content)
        mid = event["event"]["message"]["message_id"]
        self.resources[(mid, key)] = (data, mime, "image" if kind == "image" else "file")
        return event

    def thread(self, chat: str, text: str = "a topic") -> str:
        """A user's message in group ``chat`` that a thread was opened under; its id."""
        root = self.message_event(chat, text, group=True)["event"]["message"]["message_id"]
        self.messages[root].thread = f"omt_{uuid.uuid4().hex[:12]}"
        return root

    def redelivery(self, message_id: str) -> dict[str, Any]:
        """The same event again (same ``event_id``), as Feishu redelivers one not answered
        200 in time."""
        return self._events[message_id]

    def url_verification(self, challenge: str, *, token: str | None = None) -> dict[str, Any]:
        return {"challenge": challenge, "token": self.verification_token if token is None
                else token, "type": "url_verification"}

    def signed(self, payload: dict[str, Any], *, encrypt_key: str | None = None,
               sign: bool = True, timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
        """The request Feishu posts: encrypted and signed with the Encrypt Key (``encrypt_key``
        overrides it, for a forgery), plain JSON without one."""
        key = self.encrypt_key if encrypt_key is None else encrypt_key
        plain = json.dumps(payload, ensure_ascii=False).encode()
        body = json.dumps({"encrypt": _encrypt(key, plain)}).encode() if key else plain
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        nonce = secrets.token_hex(8)
        headers = {"Content-Type": "application/json; charset=utf-8",
                   "X-Lark-Request-Timestamp": stamp, "X-Lark-Request-Nonce": nonce,
                   "X-Request-Id": uuid.uuid4().hex, "User-Agent": "Go-http-client/1.1"}
        if key and sign:
            headers["X-Lark-Signature"] = hashlib.sha256(
                (stamp + nonce + key).encode() + body).hexdigest()
        return body, headers


def _open_id(sender: int) -> str:
    return "ou_" + f"{sender:032x}"


def _encrypt(key: str, plain: bytes) -> str:
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plain) + padder.finalize()
    iv = os.urandom(16)
    encryptor = Cipher(algorithms.AES(hashlib.sha256(key.encode()).digest()),
                       modes.CBC(iv)).encryptor()
    return base64.b64encode(iv + encryptor.update(padded) + encryptor.finalize()).decode()


def _text_of(message: _Message) -> str:
    try:
        content = json.loads(message.content)
    except ValueError:
        return ""
    return str(content.get("text", "")) if isinstance(content, dict) else ""


def _content(body: dict[str, Any], raw: bytes) -> web.Response | None:
    """``msg_type`` text with ``content`` a JSON string holding a non-empty ``text``, and a
    request body within 150 KB."""
    if len(raw) > MAX_BODY:
        return _error(230025, 400)
    content = body.get("content")
    if body.get("msg_type") != "text" or not isinstance(content, str):
        return _error(230001, 400)
    try:
        parsed = json.loads(content)
    except ValueError:
        return _error(230001, 400)
    if not isinstance(parsed, dict) or not isinstance(parsed.get("text"), str) or \
            not parsed["text"].strip():
        return _error(230001, 400)
    return None


def _error(code: int, status: int, *, headers: dict[str, str] | None = None) -> web.Response:
    return json_response({"code": code, "msg": _ERRORS.get(code, "error"),
                          "error": {"log_id": uuid.uuid4().hex}}, status=status,
                         headers=headers)


def _loads(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


async def _json(request: web.Request) -> dict[str, Any]:
    return _loads(await request.read())
