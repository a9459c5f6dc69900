"""A fake Webex REST API (messages, people/me, webhooks) and Webex's signed notifications.

Written from Webex's published reference: ``public-spec/webex-messaging.json`` of
github.com/webex/webex-openapi-specs (Create/Get/Edit a Message, Get My Own Details,
Webhooks), developer.webex.com's "Receive and verify events" page (the notification
envelope) and its blog "Using a Webhook Secret" (the signature) - not from what our
connector sends:

* ``Authorization: Bearer <access token>`` on every call; a missing or wrong token is 401.
  Errors are JSON ``{"message", "errors": [{"description"}], "trackingId"}`` with a
  ``TrackingID`` header; 429 and 423 carry ``Retry-After`` (seconds). Ids are base64url
  of ``ciscospark://us/<KIND>/<uuid>``.
* ``GET /v1/people/me`` -> ``Person`` (``id, emails, displayName, nickName, orgId, type``:
  ``bot`` or ``person``).
* ``POST /v1/messages``: one of ``roomId``, ``toPersonId``, ``toPersonEmail``; ``text``,
  ``markdown`` or ``files``; ``text`` and ``markdown`` at most 7,439 bytes; ``parentId`` a
  message of the same room that is not itself a reply (threads are one level deep); the
  sender must be a member of the room (else 404). Answers the ``Message``.
* ``GET /v1/messages/{messageId}``: the ``ListMessage`` (``text``, ``markdown``, ``html``
  with ``<spark-mention>``, ``files``, ``parentId``, ``mentionedPeople``, ``isVoiceClip``)
  for a member of its room, else 404.
* ``PUT /v1/messages/{messageId}`` ``{roomId, text | markdown}``: only its author; not a
  message with files (400); at most 10 edits (the 11th is 400).
* ``GET/POST /v1/webhooks``, ``GET/PUT/DELETE /v1/webhooks/{webhookId}``: ``POST`` needs
  ``name, targetUrl, resource, event`` (``secret`` optional); ``PUT`` updates ``name,
  targetUrl, secret`` and ``status`` (only ``active``: it revives a webhook Webex
  deactivated), other fields are ignored.
* ``GET``/``HEAD /v1/contents/{contentId}`` (a message's ``files`` entries), with the
  token: the bytes with ``Content-Type``, ``Content-Length`` and ``Content-Disposition:
  attachment; filename="..."``. Files pass an anti-malware scan first: while it runs
  423 Locked with ``Retry-After``; an unsafe file 410 Gone; one that cannot be scanned
  (encrypted) 428 Precondition Required unless ``?allow=unscannable``; an unknown id 404
  (as the Webex SDKs' contents modules handle them).
* Notifications: :meth:`WebexFake.notifications` builds, for each active ``messages``/
  ``created`` webhook that would fire, the envelope ``{id, name, targetUrl, resource,
  event, orgId, createdBy, appId, ownedBy, status, created, actorId, data: {id, roomId,
  roomType, personId, personEmail, mentionedPeople, files, created}}`` - no text - and
  signs it: ``X-Spark-Signature`` = hex HMAC-SHA1 of the raw body with the webhook's
  secret. A bot is notified of every message in a 1:1 space and, in a group space, only
  of messages that @mention it (and of its own); a person's token of every message in
  its spaces.

Scripted faults come from :class:`FakePlatform` under the method names ``me``, ``send``,
``get_message``, ``edit``, ``list_webhooks``, ``create_webhook`` and ``update_webhook``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import itertools
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tests.fakes.platform import FakePlatform
from tests.fakes.server import json_response

__all__ = ["BOT_EMAIL", "BOT_NAME", "MAX_EDITS", "MAX_TEXT", "SentWebex", "WebexFake",
           "signature", "webex_id"]

BOT_NAME = "Pyclaw"
BOT_EMAIL = "pyclaw@webex.bot"
MAX_TEXT = 7439
MAX_EDITS = 10
SIGNATURE = "X-Spark-Signature"
_NS = uuid.UUID("6b1a9a52-5d3e-4d0e-9a57-0e3e2f6b9c11")
_RESOURCES = {"attachmentActions", "memberships", "messages", "rooms", "meetings"}
_EVENTS = {"created", "updated", "deleted", "started", "ended", "joined", "left"}
_MESSAGES = {400: "The request was invalid or cannot be otherwise served.",
             401: "The request requires a valid access token set in the Authorization "
                  "request header.",
             403: "The request is understood, but it has been refused or access is not "
                  "allowed.",
             404: "The requested resource could not be found.",
             423: "The requested resource is temporarily unavailable.",
             429: "Too Many Requests",
             500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


def webex_id(kind: str, key: str) -> str:
    """A Webex-shaped id: base64url (unpadded) of ``ciscospark://us/<KIND>/<uuid>``."""
    raw = f"ciscospark://us/{kind}/{uuid.uuid5(_NS, f'{kind}:{key}')}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class SentWebex:
    """One message the account (the connector) posted."""

    id: str
    room: str
    text: str
    parent: str | None
    monotonic: float


@dataclass
class _Room:
    id: str
    type: str  # "direct" | "group"
    members: set[str] = field(default_factory=set)


class WebexFake(FakePlatform):
    send_method = "send"

    def __init__(self, *, access_token: str = "fake-webex-bot-token",
                 webhook_secret: str = "fake-webex-webhook-secret",
                 account_type: str = "bot") -> None:
        super().__init__()
        self.access_token = access_token
        self.webhook_secret = webhook_secret
        """The secret the harness configures; webhooks are registered with it."""
        self.org_id = webex_id("ORGANIZATION", "org")
        self.app_id = webex_id("APPLICATION", "app")
        self.me: dict[str, Any] = {
            "id": webex_id("PEOPLE", "account"), "emails": [BOT_EMAIL],
            "displayName": BOT_NAME, "nickName": BOT_NAME, "orgId": self.org_id,
            "created": "2026-01-01T00:00:00.000Z", "type": account_type}
        self.rooms: dict[str, _Room] = {}
        self.messages: dict[str, dict[str, Any]] = {}
        self.edit_counts: dict[str, int] = {}
        self.webhooks: dict[str, dict[str, Any]] = {}
        self.sent: list[SentWebex] = []
        self._signed: dict[str, list[tuple[bytes, dict[str, str]]]] = {}
        self._direct: dict[str, dict[str, Any]] = {}  # 1:1 room -> the person in it
        self._seq = itertools.count(1)
        self.contents: dict[str, tuple[bytes, str, str, str]] = {}
        """content id -> (bytes, type, file name, scan: clean|scanning|unsafe|unscannable)"""
        self.downloads: list[tuple[str, str, str | None]] = []  # (verb, id, Authorization)

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/contents/{contentId}", self._content)
        app.router.add_get("/v1/people/me", self._people_me)
        app.router.add_post("/v1/messages", self._create_message)
        app.router.add_get("/v1/messages/{messageId}", self._get_message)
        app.router.add_put("/v1/messages/{messageId}", self._edit_message)
        app.router.add_get("/v1/webhooks", self._list_webhooks)
        app.router.add_post("/v1/webhooks", self._create_webhook)
        app.router.add_put("/v1/webhooks/{webhookId}", self._update_webhook)
        app.router.add_delete("/v1/webhooks/{webhookId}", self._delete_webhook)

    @property
    def api_base(self) -> str:
        return f"{self.url}/v1"

    # ---- the world around the account: people, spaces, their messages -------------------

    def person(self, i: int) -> dict[str, Any]:
        return {"id": webex_id("PEOPLE", f"user{i}"), "emails": [f"user{i}@example.com"],
                "displayName": f"User {i}"}

    def direct_room(self, i: int) -> str:
        """The 1:1 space of user ``i`` and the account."""
        person = self.person(i)
        rid = self._room(f"direct{i}", "direct", {person["id"]})
        self._direct[rid] = person
        return rid

    def group_room(self, name: str = "team", people: tuple[int, ...] = (1, 2, 3)) -> str:
        return self._room(f"group:{name}", "group", {self.person(i)["id"] for i in people})

    def _room(self, key: str, kind: str, people: set[str]) -> str:
        rid = webex_id("ROOM", key)
        if rid not in self.rooms:
            self.rooms[rid] = _Room(rid, kind, {*people, self.me["id"]})
        return rid

    def post(self, room: str, text: str = "", *, sender: int = 1, mention: bool = False,
             parent: str | None = None, files: tuple[str, ...] = (), voice: bool = False
             ) -> dict[str, Any]:
        """User ``sender`` writes in ``room`` (in the thread of ``parent``); ``mention``
        @mentions the account at the start, as a Webex client puts it in text and html."""
        author = self.person(sender)
        mid = self._new_id()
        body = f"{BOT_NAME} {text}" if mention else text
        markup = html.escape(text)
        if mention:
            markup = (f'<spark-mention data-object-type="person" data-object-id="'
                      f'{self.me["id"]}">{BOT_NAME}</spark-mention> {markup}')
        message: dict[str, Any] = {
            "id": mid, "roomId": room, "roomType": self.rooms[room].type,
            "personId": author["id"], "personEmail": author["emails"][0],
            "created": _now_iso()}
        if body:
            message.update(text=body, html=f"<p>{markup}</p>")
        if parent is not None:
            message["parentId"] = parent
        if mention:
            message["mentionedPeople"] = [self.me["id"]]
        if files:
            message["files"] = list(files)
        if voice:
            message["isVoiceClip"] = True
        self.messages[mid] = message
        return message

    def content_url(self, name: str, data: bytes | None = None, mime: str = "image/png", *,
                    scan: str = "clean") -> str:
        """Where a file ``name`` is; with ``data`` the fake holds it, in ``scan`` state."""
        cid = webex_id("CONTENT", name)
        if data is not None:
            self.contents[cid] = (data, mime, name, scan)
        return f"{self.api_base}/contents/{cid}"

    async def _content(self, request: web.Request) -> web.StreamResponse:
        cid = request.match_info["contentId"]
        self.downloads.append((request.method, cid, request.headers.get("Authorization")))
        refused = await self._gate("content", request)
        if refused is not None:
            return refused
        if cid not in self.contents:
            return _error(404, "The requested resource could not be found.")
        data, mime, name, scan = self.contents[cid]
        if scan == "scanning":
            return _error(423, "File is being scanned for malware.",
                          headers={"Retry-After": "5"})
        if scan == "unsafe":
            return _error(410, "File is infected.")
        if scan == "unscannable" and request.query.get("allow") != "unscannable":
            return _error(428, "File is unscannable.")
        return web.Response(body=data, headers={
            "Content-Type": mime, "Content-Disposition": f'attachment; filename="{name}"'})

    # ---- notifications ----------------------------------------------------------------------

    def add_webhook(self, target_url: str, *, secret: str | None = None,
                    name: str = "created by hand") -> str:
        """A webhook made outside the connector (say in the developer portal)."""
        return self._store_webhook({"name": name, "targetUrl": target_url,
                                    "resource": "messages", "event": "created",
                                    "secret": self.webhook_secret if secret is None
                                    else secret})["id"]

    def deactivate(self, webhook_id: str) -> None:
        """As Webex does to a webhook whose deliveries kept failing."""
        self.webhooks[webhook_id]["status"] = "inactive"

    def notifications(self, message: dict[str, Any], *, secret: str | None = None
                      ) -> list[tuple[bytes, dict[str, str]]]:
        """The signed POSTs Webex makes for ``message`` (one per webhook that fires); kept
        for :meth:`redelivery`. ``secret`` signs with another key (a forgery)."""
        if not self._sees(message):
            return []
        signed = [self.signed(self.envelope(message, hook),
                              hook.get("secret", "") if secret is None else secret)
                  for hook in self.webhooks.values()
                  if hook["status"] == "active" and hook["resource"] == "messages"
                  and hook["event"] == "created"]
        if secret is None:
            self._signed[message["id"]] = signed
        return signed

    def redelivery(self, message_id: str) -> list[tuple[bytes, dict[str, str]]]:
        """The same requests again, byte for byte."""
        return list(self._signed.get(message_id, []))

    def envelope(self, message: dict[str, Any], hook: dict[str, Any]) -> dict[str, Any]:
        data = {k: message[k] for k in ("id", "roomId", "roomType", "personId",
                                        "personEmail", "created")}
        for key in ("mentionedPeople", "files"):
            if key in message:
                data[key] = message[key]
        return {"id": hook["id"], "name": hook["name"], "targetUrl": hook["targetUrl"],
                "resource": "messages", "event": "created", "orgId": self.org_id,
                "createdBy": self.me["id"], "appId": self.app_id, "ownedBy": "creator",
                "status": "active", "created": hook["created"], "actorId":
                message["personId"], "data": data}

    def signed(self, envelope: dict[str, Any], secret: str) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(envelope, separators=(",", ":")).encode()
        return body, {"Content-Type": "application/json", SIGNATURE: signature(body, secret),
                      "User-Agent": "Webex-Webhooks/1.0"}

    def _sees(self, message: dict[str, Any]) -> bool:
        room = self.rooms.get(message["roomId"])
        if room is None or self.me["id"] not in room.members:
            return False
        return (room.type == "direct" or self.me["type"] != "bot"
                or self.me["id"] in message.get("mentionedPeople", ())
                or message["personId"] == self.me["id"])

    # ---- what the account did ---------------------------------------------------------------

    def visible(self, room: str) -> list[str]:
        """The account's messages in ``room`` as a reader sees them now."""
        return [_shown(self.messages[m.id]) for m in self.sent if m.room == room]

    def edits(self, room: str) -> int:
        return sum(self.edit_counts.get(m.id, 0) for m in self.sent if m.room == room)

    # ---- API ----------------------------------------------------------------------------------

    def error_response(self, method: str, status: int, retry_after: float | None
                       ) -> web.Response:
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
        return _error(status, _MESSAGES.get(status, "Error"), headers=headers)

    async def _gate(self, method: str, request: web.Request) -> web.Response | None:
        scripted = await self.before(method)
        if scripted is not None:
            return scripted  # type: ignore[return-value]
        if request.headers.get("Authorization") != f"Bearer {self.access_token}":
            return _error(401, _MESSAGES[401])
        return None

    async def _people_me(self, request: web.Request) -> web.StreamResponse:
        refused = await self._gate("me", request)
        if refused is not None:
            return refused
        self.after("me", request)
        return json_response(self.me)

    async def _create_message(self, request: web.Request) -> web.StreamResponse:
        refused = await self._gate("send", request)
        if refused is not None:
            return refused
        body = await _json(request)
        targets = [k for k in ("roomId", "toPersonId", "toPersonEmail") if k in body]
        if len(targets) != 1:
            return _error(400, "Exactly one of roomId, toPersonId or toPersonEmail is "
                          "required.")
        room = self._target(body)
        if room is None:
            return _error(404, "Could not find a room with provided ID.")
        problem = _content_problem(body) or self._parent_problem(body.get("parentId"), room)
        if problem:
            return _error(400, problem)
        mid = self._new_id()
        message: dict[str, Any] = {
            "id": mid, "roomId": room.id, "roomType": room.type, "personId": self.me["id"],
            "personEmail": self.me["emails"][0], "created": _now_iso()}
        for key in ("text", "markdown", "files", "parentId"):
            if key in body:
                message[key] = body[key]
        if "markdown" in body:
            message.setdefault("text", body["markdown"])
            message["html"] = f"<p>{html.escape(body['markdown'])}</p>"
        self.messages[mid] = message
        self.sent.append(SentWebex(mid, room.id, _shown(message), body.get("parentId"),
                                   time.monotonic()))
        if self.after("send", request):
            return json_response({})
        return json_response({k: v for k, v in message.items() if k != "html"})

    async def _get_message(self, request: web.Request) -> web.StreamResponse:
        refused = await self._gate("get_message", request)
        if refused is not None:
            return refused
        message = self.messages.get(request.match_info["messageId"])
        room = self.rooms.get(message["roomId"]) if message is not None else None
        if message is None or room is None or self.me["id"] not in room.members:
            return _error(404, "The requested resource could not be found.")
        self.after("get_message", request)
        return json_response(message)

    async def _edit_message(self, request: web.Request) -> web.StreamResponse:
        refused = await self._gate("edit", request)
        if refused is not None:
            return refused
        mid = request.match_info["messageId"]
        message = self.messages.get(mid)
        if message is None:
            return _error(404, "The requested resource could not be found.")
        if message["personId"] != self.me["id"]:
            return _error(403, "You can only edit your own messages.")
        body = await _json(request)
        if body.get("roomId") != message["roomId"]:
            return _error(400, "roomId is required and must be the message's room.")
        if message.get("files"):
            return _error(400, "Editing a message with files or attachments is currently "
                          "unsupported.")
        if self.edit_counts.get(mid, 0) >= MAX_EDITS:
            return _error(400, f"The edit limit of {MAX_EDITS} edits per message has been "
                          "reached.")
        problem = _content_problem({k: body[k] for k in ("text", "markdown") if k in body})
        if problem:
            return _error(400, problem)
        for key in ("text", "markdown"):
            message.pop(key, None)
            if key in body:
                message[key] = body[key]
        if "markdown" in body:
            message.setdefault("text", body["markdown"])
        message["updated"] = _now_iso()
        self.edit_counts[mid] = self.edit_counts.get(mid, 0) + 1
        self.after("edit", request)
        return json_response({k: v for k, v in message.items() if k != "html"})

    async def _list_webhooks(self, request: web.Request) -> web.StreamResponse:
        refused = await self._gate("list_webhooks", request)
        if refused is not None:
            return refused
        limit = request.query.get("max", "100")
        items = list(self.webhooks.values())[:int(limit) if limit.isdigit() else 100]
        self.after("list_webhooks", request)
        return json_response({"items": items})

    async def _create_webhook(self, request: web.Request) -> web.StreamResponse:
        refused = await self._gate("create_webhook", request)
        if refused is not None:
            return refused
        body = await _json(request)
        missing = [k for k in ("name", "targetUrl", "resource", "event")
                   if not isinstance(body.get(k), str) or not body[k]]
        if missing:
            return _error(400, f"Missing required field(s): {', '.join(missing)}.")
        if body["resource"] not in _RESOURCES or body["event"] not in _EVENTS:
            return _error(400, "Unsupported resource or event.")
        hook = self._store_webhook(body)
        self.after("create_webhook", request)
        return json_response(hook)

    async def _update_webhook(self, request: web.Request) -> web.StreamResponse:
        refused = await self._gate("update_webhook", request)
        if refused is not None:
            return refused
        hook = self.webhooks.get(request.match_info["webhookId"])
        if hook is None:
            return _error(404, "The requested resource could not be found.")
        body = await _json(request)
        if not all(isinstance(body.get(k), str) and body[k] for k in ("name", "targetUrl")):
            return _error(400, "name and targetUrl are required.")
        if body.get("status", "active") != "active":
            return _error(400, "A webhook cannot be deactivated with this call.")
        hook.update(name=body["name"], targetUrl=body["targetUrl"], status="active")
        if isinstance(body.get("secret"), str):
            hook["secret"] = body["secret"]
        self.after("update_webhook", request)
        return json_response(hook)

    async def _delete_webhook(self, request: web.Request) -> web.StreamResponse:
        refused = await self._gate("delete_webhook", request)
        if refused is not None:
            return refused
        if self.webhooks.pop(request.match_info["webhookId"], None) is None:
            return _error(404, "The requested resource could not be found.")
        return web.Response(status=204)

    # ---- helpers --------------------------------------------------------------------------

    def _target(self, body: dict[str, Any]) -> _Room | None:
        if "roomId" in body:
            room = self.rooms.get(body["roomId"]) if isinstance(body["roomId"], str) else None
            return room if room is not None and self.me["id"] in room.members else None
        wanted = body.get("toPersonId") or body.get("toPersonEmail")
        for rid, person in self._direct.items():
            if wanted in (person["id"], person["emails"][0]):
                return self.rooms[rid]
        return None

    def _parent_problem(self, parent: object, room: _Room) -> str:
        if parent is None:
            return ""
        message = self.messages.get(parent) if isinstance(parent, str) else None
        if message is None or message["roomId"] != room.id:
            return "parentId must be a message in the same room."
        if "parentId" in message:
            return "Cannot reply to a reply: parentId must be the thread's first message."
        return ""

    def _store_webhook(self, body: dict[str, Any]) -> dict[str, Any]:
        hook_id = webex_id("WEBHOOK", str(next(self._seq)))
        hook: dict[str, Any] = {
            "id": hook_id, "name": body["name"], "targetUrl": body["targetUrl"],
            "resource": body["resource"], "event": body["event"], "orgId": self.org_id,
            "createdBy": self.me["id"], "appId": self.app_id, "ownedBy": "creator",
            "status": "active", "created": _now_iso()}
        for key in ("filter", "secret"):
            if isinstance(body.get(key), str):
                hook[key] = body[key]
        self.webhooks[hook_id] = hook
        return hook

    def _new_id(self) -> str:
        return webex_id("MESSAGE", str(next(self._seq)))


def signature(body: bytes, secret: str) -> str:
    """``X-Spark-Signature``: hex HMAC-SHA1 of the raw body, keyed with the webhook secret."""
    return hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def _content_problem(body: dict[str, Any]) -> str:
    texts = {k: body[k] for k in ("text", "markdown") if k in body}
    if not texts and not body.get("files"):
        return "text, markdown or files is required."
    for key, value in texts.items():
        if not isinstance(value, str):
            return f"{key} must be a string."
        if len(value.encode("utf-8")) > MAX_TEXT:
            return f"{key} is longer than the maximum message length of {MAX_TEXT} bytes."
    return ""


def _shown(message: dict[str, Any]) -> str:
    return str(message.get("markdown", message.get("text", "")))


def _error(status: int, message: str, *, headers: dict[str, str] | None = None
           ) -> web.Response:
    tracking = f"ROUTER_{uuid.uuid4().hex.upper()}"
    return json_response({"message": message, "errors": [{"description": message}],
                          "trackingId": tracking}, status=status,
                         headers={"TrackingID": tracking, **(headers or {})})


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
