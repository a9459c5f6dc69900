"""A fake Rocket.Chat (REST ``/api/v1`` + the realtime API on ``/websocket``) on 127.0.0.1.

Written from the published references, not from what the connector sends:

* REST, from ``RocketChat/Rocket.Chat-Open-API`` (authentication.yaml, messaging.yaml,
  rooms.yaml): every call needs ``X-Auth-Token`` and ``X-User-Id`` of one user, else 401
  ``{"status": "error", "message": "You must be logged in to do this."}``; errors are
  ``{"success": false, "error": "<reason> [<errorType>]", "errorType": ...}`` with HTTP 400
  (a Meteor.Error through ``API.v1.failure``). ``me``, ``rooms.get``, ``rooms.info``,
  ``im.history``/``dm.history``, ``channels.history``, ``groups.history`` (``oldest``,
  ``latest``, ``inclusive``, ``count``, ``offset``; newest first), ``chat.sendMessage``
  (a client-chosen ``_id`` allowed, ``tmid`` threads, the Message_MaxAllowedSize check,
  only into rooms the user is in) and ``chat.update`` (only one's own messages).
* The rate limiter as the server's ``enforceRateLimit`` answers: HTTP 429,
  ``X-RateLimit-Limit``/``-Remaining``/``-Reset`` (epoch ms) and no Retry-After, the body
  ``{"success": false, "error": "Error, too many requests. Please slow down. You must wait
  N seconds before trying this endpoint again. [error-too-many-requests]"}``.
* DDP (Meteor's protocol, as Rocket.Chat's streamer uses it): ``{"server_id": "0"}``, then
  ``connect`` -> ``connected`` (``failed`` for another version), ``ping``/``pong`` both
  ways, ``method`` ``login`` with ``{"resume": token}`` (a personal access token) ->
  ``result`` + ``updated`` (403 "You've been logged out by the server..." otherwise),
  ``sub`` ``stream-room-messages`` with ``__my_messages__`` or a room id -> ``ready`` or
  ``nosub``, and each stored or updated message as ``changed`` with ``collection:
  stream-room-messages``, ``id: "id"``, ``fields: {eventName, args}`` (``args: [message,
  {roomParticipant, roomType, roomName}]`` for ``__my_messages__``; dates as EJSON
  ``{"$date": ms}``), sent to every logged-in user who can read the room: members, and
  anyone for a public channel (``roomParticipant: false``). ``stream-notify-room`` with
  ``<rid>/user-activity`` (or the old ``<rid>/typing``) is taken only with the caller's
  own username, from a member.

* Uploads, as the server's ``FileUpload`` serves them: ``GET /file-upload/{_id}/{name}``
  with the credentials ``FileUpload.requestCanAccessFiles`` reads (``X-User-Id`` and
  ``X-Auth-Token`` headers, or the ``rc_uid``/``rc_token`` cookies) answers the bytes with
  ``Content-Type``, ``Content-Length`` and ``Content-Disposition``; without them, or for a
  room the user cannot read, 403; an upload that is not (or no longer) stored, 404. A
  message with a file (``sendFileMessage``) carries ``file``, ``files`` and one
  ``attachments`` entry whose ``title_link`` is that path (:meth:`upload`).

User side: :meth:`FakeRocketChat.post` writes a message as a user (mentions found as the
server finds them, thread parents' counters updated and re-broadcast), :meth:`touch`
re-broadcasts a message as an update does, :meth:`emit_raw` sends any event; what the bot
sent is :attr:`sent`, its edits :attr:`edit_log`, its typing :attr:`typing`. Scripted
failures are :class:`FakePlatform`'s; :meth:`drop_connection` aborts the bot's sockets;
``answer_pings``, ``realtime_available`` and ``realtime_redirect`` make the realtime
endpoint silent, refused or redirected; ``use_real_name`` is UI_Use_Real_Name;
:meth:`start_tls` serves HTTPS/WSS with a given certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import secrets
import ssl
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.platform import FakePlatform
from tests.fakes.server import json_response

__all__ = ["EditRecord", "FakeRocketChat", "SentRecord"]

API = "/api/v1"
_ID_CHARS = "23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz"
_MENTION = re.compile(r"(?<![\w@])@([\w.-]+)")
_AUTH_ERROR = {"status": "error", "message": "You must be logged in to do this."}
_HISTORY = {"im.history": "d", "dm.history": "d", "channels.history": "c",
            "groups.history": "p"}


def random_id() -> str:
    return "".join(secrets.choice(_ID_CHARS) for _ in range(17))


def _iso(ms: int) -> str:
    when = datetime.fromtimestamp(ms / 1000, UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _ms(value: str) -> int | None:
    try:
        return round(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def failure(reason: str, error_type: str, status: int = 400) -> web.Response:
    """A Meteor.Error as ``API.v1.failure`` answers it."""
    return json_response({"success": False, "error": f"{reason} [{error_type}]",
                          "errorType": error_type}, status)


_DATES = ("ts", "_updatedAt", "editedAt", "tlm")


@dataclass(frozen=True, slots=True)
class SentRecord:
    """One message the bot stored through ``chat.sendMessage``."""

    message_id: str
    rid: str
    text: str
    tmid: str | None
    ts: float  # time.monotonic() when the fake accepted it


@dataclass(frozen=True, slots=True)
class EditRecord:
    message_id: str
    rid: str
    text: str


@dataclass
class _Session:
    ws: web.WebSocketResponse
    request: web.Request
    user: dict[str, Any] | None = None
    subs: dict[str, str] = field(default_factory=dict)  # sub id -> eventName
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def send(self, frame: dict[str, Any]) -> None:
        async with self.lock:
            if not self.ws.closed:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await self.ws.send_str(json.dumps(frame))


class FakeRocketChat(FakePlatform):
    send_method = "chat.sendMessage"

    def __init__(self, *, max_allowed_size: int = 5000) -> None:
        super().__init__()
        self.max_allowed_size = max_allowed_size
        self.users: dict[str, dict[str, Any]] = {}
        self.rooms: dict[str, dict[str, Any]] = {}
        self.messages: dict[str, dict[str, Any]] = {}
        self.sent: list[SentRecord] = []
        self.edit_log: list[EditRecord] = []
        self.typing: list[tuple[str, str, list[str]]] = []  # (rid, username, activities)
        self.uploads: dict[str, tuple[str, str, str, bytes]] = {}
        """Upload id -> (room id, name, type, bytes) of each stored upload."""
        self.downloads: list[tuple[str, str | None]] = []
        """(upload id, the authenticated user's id or None) of each download asked for."""
        self.logins = 0
        self.connections = 0
        """Realtime sockets ever opened."""
        self.sessions: list[_Session] = []
        self.realtime_available = True
        self.answer_pings = True
        self.realtime_redirect: str | None = None
        self.use_real_name = False
        """The UI_Use_Real_Name setting: typing is then taken with the display name."""
        """A URL ``/websocket`` redirects to (a misconfigured proxy)."""
        """False: the realtime server stops answering DDP pings (a half-dead connection)."""
        self._last_ts = 0
        self.bot = self.add_user("pyclaw.bot", "Pyclaw Bot", bot=True)
        self._scheme = "http"

    @property
    def url(self) -> str:
        return f"{self._scheme}://127.0.0.1:{self.port}"

    async def start_tls(self, context: ssl.SSLContext) -> str:
        """Serve HTTPS and WSS with ``context``'s certificate instead of plain HTTP."""
        self.routes(self.app)
        self._runner = web.AppRunner(self.app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._scheme = "https"
        return self.url

    # ---- the workspace (the user side) ---------------------------------------------------

    def add_user(self, username: str, name: str, *, bot: bool = False) -> dict[str, Any]:
        user = {"_id": random_id(), "username": username, "name": name,
                "token": secrets.token_urlsafe(32), "roles": ["bot" if bot else "user"]}
        self.users[user["_id"]] = user
        return user

    def now_ms(self) -> int:
        """The server clock in ms, strictly increasing (each message its own ``ts``)."""
        self._last_ts = max(int(time.time() * 1000), self._last_ts + 1)
        return self._last_ts

    def create_dm(self, a: dict[str, Any], b: dict[str, Any]) -> str:
        rid = "".join(sorted((a["_id"], b["_id"])))
        self._room(rid, "d", "", [a, b])
        return rid

    def create_room(self, kind: str, name: str, members: list[dict[str, Any]]) -> str:
        rid = random_id()
        self._room(rid, kind, name, members)
        return rid

    def _room(self, rid: str, kind: str, name: str, members: list[dict[str, Any]]) -> None:
        now = self.now_ms()
        self.rooms[rid] = {"_id": rid, "t": kind, "name": name, "fname": name,
                           "members": [m["_id"] for m in members], "ts": now,
                           "_updatedAt": now, "msgs": 0, "lm": None}

    async def post(self, user: dict[str, Any], rid: str, text: str, *,
                   tmid: str | None = None, msg_id: str | None = None,
                   **extra: Any) -> str:
        """Store a message as ``user`` wrote it and broadcast it; returns its id."""
        room = self.rooms[rid]
        assert user["_id"] in room["members"], "not a member of the room"
        message = self.store(user, rid, text, tmid=tmid, msg_id=msg_id, **extra)
        await self._broadcast(message)
        if tmid is not None:
            await self._broadcast(self.messages[tmid])
        return str(message["_id"])

    async def upload(self, user: dict[str, Any], rid: str, text: str, data: bytes, name: str,
                     mime: str, *, keep: bool = True) -> str:
        """``user`` uploads a file to ``rid`` with ``text`` as its description, as
        ``rooms.media`` + ``rooms.mediaConfirm`` post it; ``keep`` False: the upload is gone
        from the store by the time anyone fetches it. Returns the message id."""
        fid = random_id()
        if keep:
            self.uploads[fid] = (rid, name, mime, data)
        link = f"/file-upload/{fid}/{name}"
        info = {"_id": fid, "name": name, "type": mime, "size": len(data),
                "format": name.rsplit(".", 1)[-1].upper()}
        preview: dict[str, Any] = {"ts": _iso(self.now_ms()), "title": name, "type": "file",
                                   "description": text, "title_link": link,
                                   "title_link_download": True}
        kind = mime.split("/", 1)[0]
        if kind in ("image", "audio", "video"):
            preview |= {f"{kind}_url": link, f"{kind}_type": mime, f"{kind}_size": len(data)}
        return await self.post(user, rid, text, file=info, files=[info], attachments=[preview])

    def store(self, user: dict[str, Any], rid: str, text: str, *, tmid: str | None = None,
              msg_id: str | None = None, **extra: Any) -> dict[str, Any]:
        """Store a message without broadcasting it (as if nobody was connected)."""
        now = self.now_ms()
        mentions = []
        for name in _MENTION.findall(text):
            found = next((u for u in self.users.values() if u["username"] == name), None)
            if found is not None:
                mentions.append({"_id": found["_id"], "username": found["username"],
                                 "name": found["name"]})
            elif name in ("all", "here"):
                mentions.append({"_id": name, "username": name})
        message = {"_id": msg_id or random_id(), "rid": rid, "msg": text, "ts": now,
                   "u": {"_id": user["_id"], "username": user["username"],
                         "name": user["name"]},
                   "_updatedAt": now, "mentions": mentions, "channels": [], "md": [],
                   **extra}
        if tmid is not None:
            message["tmid"] = tmid
            parent = self.messages[tmid]
            parent["tcount"] = parent.get("tcount", 0) + 1
            parent["tlm"] = now
            parent["replies"] = sorted({*parent.get("replies", []), user["_id"]})
            parent["_updatedAt"] = now
        self.messages[message["_id"]] = message
        room = self.rooms[rid]
        room["msgs"] += 1
        room["lm"] = now
        room["_updatedAt"] = now
        return message

    async def touch(self, message_id: str) -> None:
        """Broadcast a message again, as the server does when it is updated (a reaction)."""
        message = self.messages[message_id]
        message["_updatedAt"] = self.now_ms()
        await self._broadcast(message)

    async def emit_raw(self, rid: str, args: list[Any]) -> None:
        """Send the bot's ``__my_messages__`` subscriptions any event for room ``rid``."""
        frame = {"msg": "changed", "collection": "stream-room-messages", "id": "id",
                 "fields": {"eventName": "__my_messages__", "args": args}}
        for session in self._subscribed(self.bot["_id"], "__my_messages__"):
            await session.send(frame)

    def bot_sessions(self) -> list[_Session]:
        return [s for s in self.sessions if s.user is self.bot and not s.ws.closed]

    async def drop_connection(self) -> None:
        """Abort the bot's realtime sockets (no close frame), as a network fault does."""
        for session in self.bot_sessions():
            if session.request.transport is not None:
                session.request.transport.abort()

    async def wait_subscribed(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not self._subscribed(self.bot["_id"], "__my_messages__"):
            if time.monotonic() > deadline:
                raise TimeoutError("the bot never subscribed to __my_messages__")
            await asyncio.sleep(0.01)

    def bot_messages(self, rid: str | None = None) -> list[dict[str, Any]]:
        ids = {r.message_id for r in self.sent if rid is None or r.rid == rid}
        return [m for mid, m in self.messages.items() if mid in ids]

    # ---- wire forms ------------------------------------------------------------------------

    @staticmethod
    def rest_form(message: dict[str, Any]) -> dict[str, Any]:
        return {k: (_iso(v) if k in _DATES and isinstance(v, int) else v)
                for k, v in message.items()}

    @staticmethod
    def ddp_form(message: dict[str, Any]) -> dict[str, Any]:
        return {k: ({"$date": v} if k in _DATES and isinstance(v, int) else v)
                for k, v in message.items()}

    def room_form(self, room: dict[str, Any]) -> dict[str, Any]:
        data = {k: v for k, v in room.items() if k not in ("members", "lm")}
        data.update(ts=_iso(room["ts"]), _updatedAt=_iso(room["_updatedAt"]),
                    usersCount=len(room["members"]))
        if room["lm"] is not None:
            data["lm"] = _iso(room["lm"])
        if room["t"] == "d":
            data["uids"] = list(room["members"])
            data["usernames"] = [self.users[u]["username"] for u in room["members"]]
        return data

    # ---- realtime --------------------------------------------------------------------------

    def _can_read(self, user_id: str, room: dict[str, Any]) -> bool:
        return user_id in room["members"] or room["t"] == "c"

    def _subscribed(self, user_id: str, event: str) -> list[_Session]:
        return [s for s in self.sessions if s.user is not None and s.user["_id"] == user_id
                and not s.ws.closed and event in s.subs.values()]

    async def _broadcast(self, message: dict[str, Any]) -> None:
        room = self.rooms[message["rid"]]
        wire = self.ddp_form(message)
        for session in list(self.sessions):
            user = session.user
            if user is None or session.ws.closed or not self._can_read(user["_id"], room):
                continue
            events = set(session.subs.values())
            if "__my_messages__" in events:
                extras = {"roomParticipant": user["_id"] in room["members"],
                          "roomType": room["t"], "roomName": room["name"]}
                await session.send({"msg": "changed", "collection": "stream-room-messages",
                                    "id": "id", "fields": {"eventName": "__my_messages__",
                                                           "args": [wire, extras]}})
            if room["_id"] in events:
                await session.send({"msg": "changed", "collection": "stream-room-messages",
                                    "id": "id", "fields": {"eventName": room["_id"],
                                                           "args": [wire]}})

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if not self.realtime_available:
            return web.Response(status=503, text="Service Unavailable")
        if self.realtime_redirect is not None:
            raise web.HTTPFound(self.realtime_redirect)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        session = _Session(ws, request)
        self.sessions.append(session)
        self.connections += 1
        await session.send({"server_id": "0"})
        connected = False
        try:
            async for raw in ws:
                if raw.type is not WSMsgType.TEXT:
                    continue
                try:
                    frame = json.loads(raw.data)
                except ValueError:
                    await session.send({"msg": "error", "reason": "Bad request"})
                    continue
                if not isinstance(frame, dict):
                    continue
                kind = frame.get("msg")
                if not connected:
                    if kind == "connect" and frame.get("version") == "1":
                        connected = True
                        await session.send({"msg": "connected", "session": random_id()})
                    elif kind == "connect":
                        await session.send({"msg": "failed", "version": "1"})
                    continue
                if kind == "ping" and self.answer_pings:
                    await session.send({"msg": "pong", **({"id": frame["id"]}
                                                          if "id" in frame else {})})
                elif kind == "method":
                    await self._method(session, frame)
                elif kind == "sub":
                    await self._sub(session, frame)
                elif kind == "unsub":
                    session.subs.pop(str(frame.get("id")), None)
        finally:
            self.sessions.remove(session)
        return ws

    @staticmethod
    def _meteor_error(error: object, reason: str) -> dict[str, Any]:
        return {"isClientSafe": True, "error": error, "reason": reason,
                "message": f"{reason} [{error}]", "errorType": "Meteor.Error"}

    async def _method(self, session: _Session, frame: dict[str, Any]) -> None:
        mid, name = frame.get("id"), frame.get("method")
        params = frame.get("params") if isinstance(frame.get("params"), list) else []
        answer: dict[str, Any] = {"msg": "result", "id": mid}
        if name == "login":
            token = (params[0] or {}).get("resume") if params and isinstance(params[0],
                                                                              dict) else None
            user = next((u for u in self.users.values() if u["token"] == token), None)
            if user is None:
                answer["error"] = self._meteor_error(
                    403, "You've been logged out by the server. Please log in again.")
            else:
                session.user = user
                self.logins += 1
                answer["result"] = {"id": user["_id"], "token": token, "type": "resume",
                                    "tokenExpires": {"$date": self.now_ms() + 90 * 86400_000}}
        elif name == "stream-notify-room":
            answer.update(self._notify_room(session, params))
        else:
            answer["error"] = self._meteor_error(404, f"Method '{name}' not found")
        await session.send(answer)
        await session.send({"msg": "updated", "methods": [mid]})

    def _notify_room(self, session: _Session, params: list[Any]) -> dict[str, Any]:
        """``allowWrite`` of notify-room: ``typing``/``user-activity``, from a member, with
        the caller's username (its name with UI_Use_Real_Name, as ``canType`` checks)."""
        event = params[0] if params and isinstance(params[0], str) else ""
        rid, _, what = event.partition("/")
        user, room = session.user, self.rooms.get(rid)
        username = params[1] if len(params) > 1 else None
        shown = user and user["name" if self.use_real_name else "username"]
        if (what not in ("typing", "user-activity") or user is None or room is None
                or user["_id"] not in room["members"] or username != shown):
            return {"error": self._meteor_error("not-allowed", "Not allowed")}
        activity = params[2] if len(params) > 2 else None
        if what == "typing":
            activity = ["user-typing"] if activity else []
        self.typing.append((rid, str(username), list(activity)
                            if isinstance(activity, list) else []))
        return {}

    async def _sub(self, session: _Session, frame: dict[str, Any]) -> None:
        sid, name = str(frame.get("id")), frame.get("name")
        params = frame.get("params") if isinstance(frame.get("params"), list) else []
        event = params[0] if params and isinstance(params[0], str) else ""
        if name != "stream-room-messages":
            await session.send({"msg": "nosub", "id": sid, "error": self._meteor_error(
                404, f"Subscription '{name}' not found")})
            return
        user, room = session.user, self.rooms.get(event)
        allowed = user is not None and (event == "__my_messages__" or (
            room is not None and self._can_read(user["_id"], room)))
        if not allowed:
            await session.send({"msg": "nosub", "id": sid, "error": self._meteor_error(
                "not-allowed", "Not allowed")})
            return
        session.subs[sid] = event
        await session.send({"msg": "ready", "subs": [sid]})

    # ---- REST ------------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/websocket", self._websocket)
        app.router.add_get("/file-upload/{fid}/{name}", self._file)
        app.router.add_get(f"{API}/me", self._me)
        app.router.add_get(f"{API}/rooms.get", self._rooms_get)
        app.router.add_get(f"{API}/rooms.info", self._rooms_info)
        for name in _HISTORY:
            app.router.add_get(f"{API}/{name}", self._history)
        app.router.add_post(f"{API}/chat.sendMessage", self._send_message)
        app.router.add_post(f"{API}/chat.update", self._update)

    def error_response(self, method: str, status: int, retry_after: float | None
                       ) -> web.StreamResponse:
        if status == 429:
            wait = retry_after or 1.0
            headers = {"X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "0",
                       "X-RateLimit-Reset": str(int(time.time() * 1000 + wait * 1000))}
            return json_response({"success": False, "error": (
                "Error, too many requests. Please slow down. You must wait "
                f"{math.ceil(wait)} seconds before trying this endpoint again. "
                "[error-too-many-requests]")}, 429, headers)
        if status == 401:
            return json_response(_AUTH_ERROR, 401)
        if status == 403:
            return json_response({"success": False, "error": "unauthorized"}, 403)
        if status >= 500:
            return json_response({"success": False, "error": "Internal server error"}, status)
        return failure("Match error: Failed Match.OneOf, Match.Maybe or Match.Optional "
                       "validation", "error-invalid-params", status)

    def _caller(self, request: web.Request) -> dict[str, Any] | None:
        user = self.users.get(request.headers.get("X-User-Id", ""))
        token = request.headers.get("X-Auth-Token", "")
        return user if user is not None and secrets.compare_digest(
            user["token"].encode(), token.encode()) else None

    async def _file(self, request: web.Request) -> web.StreamResponse:
        user = self._caller(request)
        if user is None and "rc_uid" in request.cookies:
            found = self.users.get(request.cookies["rc_uid"])
            if found is not None and secrets.compare_digest(
                    found["token"].encode(), request.cookies.get("rc_token", "").encode()):
                user = found
        fid = request.match_info["fid"]
        self.downloads.append((fid, user["_id"] if user else None))
        stored = self.uploads.get(fid)
        if stored is None:
            return web.Response(status=404)
        rid, name, mime, data = stored
        if user is None or not self._can_read(user["_id"], self.rooms[rid]):
            return web.Response(status=403)
        return web.Response(body=data, headers={
            "Content-Type": mime, "Content-Length": str(len(data)),
            "Content-Disposition": f"attachment; filename*=UTF-8''{name}",
            "Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT"})

    async def _me(self, request: web.Request) -> web.StreamResponse:
        if (failed := await self.before("me")) is not None:
            return failed
        user = self._caller(request)
        if user is None:
            return json_response(_AUTH_ERROR, 401)
        return json_response({"_id": user["_id"], "username": user["username"],
                              "name": user["name"], "status": "online", "active": True,
                              "roles": user["roles"], "utcOffset": 0, "success": True})

    async def _rooms_get(self, request: web.Request) -> web.StreamResponse:
        if (failed := await self.before("rooms.get")) is not None:
            return failed
        user = self._caller(request)
        if user is None:
            return json_response(_AUTH_ERROR, 401)
        rooms = [self.room_form(r) for r in self.rooms.values() if user["_id"] in r["members"]]
        return json_response({"update": rooms, "remove": [], "success": True})

    async def _rooms_info(self, request: web.Request) -> web.StreamResponse:
        if (failed := await self.before("rooms.info")) is not None:
            return failed
        user = self._caller(request)
        if user is None:
            return json_response(_AUTH_ERROR, 401)
        rid = request.query.get("roomId")
        if not rid:
            return failure('The parameter "roomId" or "roomName" is required',
                           "error-roomid-param-not-provided")
        room = self.rooms.get(rid)
        if room is None or not self._can_read(user["_id"], room):
            return json_response({"success": False, "error": "not-allowed",
                                  "errorType": "Not Allowed"}, 400)
        return json_response({"room": self.room_form(room), "success": True})

    async def _history(self, request: web.Request) -> web.StreamResponse:
        name = request.path.rsplit("/", 1)[-1]
        if (failed := await self.before(name)) is not None:
            return failed
        user = self._caller(request)
        if user is None:
            return json_response(_AUTH_ERROR, 401)
        query = request.query
        rid = query.get("roomId")
        if not rid:
            return failure("must have required property 'roomId'", "invalid-params")
        room = self.rooms.get(rid)
        kind = _HISTORY[name]
        if room is None or room["t"] != kind or (kind != "c" and user["_id"]
                                                 not in room["members"]):
            if kind == "d":
                return json_response({"success": False, "error": "[invalid-channel]",
                                      "errorType": "invalid-channel"}, 400)
            noun = "channel" if kind == "c" else "group"
            return failure('The required "roomId" or "roomName" param provided does not '
                           f"match any {noun}", "error-room-not-found")
        oldest = _ms(query["oldest"]) if "oldest" in query else None
        latest = _ms(query["latest"]) if "latest" in query else None
        inclusive = query.get("inclusive") == "true"
        threads = query.get("showThreadMessages", "true") != "false"

        def wanted(m: dict[str, Any]) -> bool:
            ts = m["ts"]
            if oldest is not None and (ts < oldest or (ts == oldest and not inclusive)):
                return False
            if latest is not None and (ts > latest or (ts == latest and not inclusive)):
                return False
            return threads or "tmid" not in m

        found = sorted((m for m in self.messages.values() if m["rid"] == rid and wanted(m)),
                       key=lambda m: m["ts"], reverse=True)
        offset, count = int(query.get("offset", "0")), int(query.get("count", "20"))
        page = found[offset:offset + count]
        return json_response({"messages": [self.rest_form(m) for m in page],
                              "count": len(page), "offset": offset, "total": len(found),
                              "success": True})

    async def _body(self, request: web.Request) -> dict[str, Any] | None:
        try:
            body = await request.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    async def _send_message(self, request: web.Request) -> web.StreamResponse:
        if (failed := await self.before("chat.sendMessage")) is not None:
            return failed
        user = self._caller(request)
        if user is None:
            return json_response(_AUTH_ERROR, 401)
        body = await self._body(request)
        message = body.get("message") if body else None
        if not isinstance(message, dict):
            return failure('The "message" parameter must be provided', "error-invalid-params")
        rid, text = message.get("rid"), message.get("msg", "")
        if not isinstance(rid, str) or not rid:
            return json_response({"success": False, "error":
                                  "The 'rid' property on the message object is missing."}, 400)
        if not isinstance(text, str):
            return failure("Match error: Expected string", "error-invalid-params")
        if _utf16(text) > self.max_allowed_size:
            return failure("Message size exceeds Message_MaxAllowedSize",
                           "error-message-size-exceeded")
        room = self.rooms.get(rid)
        if room is None:
            return failure("Invalid room", "error-invalid-room")
        if user["_id"] not in room["members"]:
            return failure("Not allowed", "error-not-allowed")
        mid = message.get("_id")
        if mid is not None and (not isinstance(mid, str) or mid in self.messages):
            return failure("Message already exists", "error-message-already-exists")
        tmid = message.get("tmid")
        if tmid is not None and (tmid not in self.messages
                                 or self.messages[tmid]["rid"] != rid):
            return failure("Invalid thread", "error-invalid-message")
        if tmid is not None:
            tmid = self.messages[tmid].get("tmid") or tmid  # no nested threads
        stored = self.store(user, rid, text, tmid=tmid, msg_id=mid)
        self.sent.append(SentRecord(stored["_id"], rid, text, tmid, time.monotonic()))
        await self._broadcast(stored)
        if tmid is not None:
            await self._broadcast(self.messages[tmid])
        if self.after("chat.sendMessage", request):
            return web.Response(status=200)
        return json_response({"message": self.rest_form(stored), "success": True})

    async def _update(self, request: web.Request) -> web.StreamResponse:
        if (failed := await self.before("chat.update")) is not None:
            return failed
        user = self._caller(request)
        if user is None:
            return json_response(_AUTH_ERROR, 401)
        body = await self._body(request) or {}
        rid, mid, text = body.get("roomId"), body.get("msgId"), body.get("text")
        if not isinstance(mid, str) or not mid:
            return failure('The required "messageId" param is missing.',
                           "error-messageid-param-not-provided")
        message = self.messages.get(mid)
        if message is None or message["rid"] != rid:
            return failure("The room id provided does not match where the message is from.",
                           "error-invalid-message")
        if message["u"]["_id"] != user["_id"]:
            return failure("Not allowed", "error-action-not-allowed")
        if not isinstance(text, str):
            return failure("Match error: Expected string", "error-invalid-params")
        if _utf16(text) > self.max_allowed_size:
            return failure("Message size exceeds Message_MaxAllowedSize",
                           "error-message-size-exceeded")
        now = self.now_ms()
        message.update(msg=text, editedAt=now, _updatedAt=now,
                       editedBy={"_id": user["_id"], "username": user["username"]})
        self.edit_log.append(EditRecord(mid, message["rid"], text))
        await self._broadcast(message)
        if self.after("chat.update", request):
            return web.Response(status=200)
        return json_response({"message": self.rest_form(message), "success": True})
