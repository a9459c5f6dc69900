"""A fake Mattermost server: REST API v4 and the WebSocket event stream, on 127.0.0.1.

Written from Mattermost's published reference, not from what our connector sends:
``api/v4/source/introduction.yaml`` (authentication, the error body, rate limiting, the
WebSocket: authentication challenge, ``hello``, the event envelope, ``seq_reply``
answers), ``posts.yaml``, ``users.yaml``, ``channels.yaml`` of github.com/mattermost/
mattermost, and the server code they describe: ``server/public/model/websocket_message.go``
(event names, ``{event, data, broadcast{omit_users, user_id, channel_id, team_id}, seq}``),
the ``posted`` event's data (``post`` as a JSON *string*, ``channel_type``,
``channel_display_name``, ``channel_name``, ``sender_name``, ``team_id``, ``mentions`` a
JSON string array), ``server/channels/app/ratelimit.go`` (429 ``limit exceeded`` with
``X-RateLimit-*`` and ``Retry-After``), ``model.PostMessageMaxRunesV2`` (16383 runes).

* ``Authorization: Bearer <token>`` on every REST call; a missing or unknown token is 401
  ``api.context.session_expired.app_error``. Errors are ``{id, message, detailed_error,
  request_id, status_code, is_oauth}``.
* ``GET /api/v4/users/me`` -> the ``User``. ``GET /api/v4/users/{user_id}/channels`` ->
  the caller's channels (``me`` or its own id; anyone else's is 403).
* ``POST /api/v4/posts`` ``{channel_id, message, root_id?, file_ids?}`` -> 201 ``Post``;
  not a member of the channel (or no such channel) 403; a missing or malformed channel id
  400; a message over 16383 runes 400; a ``root_id`` that is not a root post of that
  channel 400. ``file_ids`` attaches files the same user uploaded to that channel and no
  post holds yet (others are left out, as the server's ``attachFilesToPost`` does); such
  a post may have an empty message. Every member's WebSocket gets ``posted``.
* ``POST /api/v4/files`` (files.yaml ``UploadFile``), multipart/form-data with
  ``channel_id``, one or more ``files`` and optional ``client_ids`` -> 201 ``{file_infos,
  client_ids}``; a member of the channel only (403), no ``channel_id`` or no file 400.
* ``PUT /api/v4/posts/{post_id}/patch`` ``{message}`` -> 200 ``Post``; only its author
  (403), an unknown post is 403 too (the permission check finds no channel); ``post_edited``.
* ``GET /api/v4/posts/{post_id}`` and ``GET /api/v4/posts/{post_id}/thread`` (a
  ``PostList``: ``order``, ``posts``, ``next_post_id``, ``prev_post_id``, ``has_next``) for a
  member; unknown 404.
* ``GET /api/v4/channels/{channel_id}/posts?since=<ms>`` -> the posts modified after that
  time (``update_at > since``), at most 1000; without ``since`` a page (``page``,
  ``per_page``) newest first.
* ``GET /api/v4/files/{file_id}`` (files.yaml ``GetFile``; server/channels/api4/file.go
  ``getFile``) -> the file's bytes with its ``Content-Type`` and ``Content-Disposition:
  attachment; filename=...``, for a member of the post's channel (else 403); a file the
  server does not know (never uploaded, or deleted with its post) is 404
  ``app.file_info.get.app_error``.
* ``POST /api/v4/users/{user_id}/typing`` ``{channel_id, parent_id}`` -> ``{"status":
  "OK"}``; ``typing`` to the channel's other members.
* ``GET /api/v4/websocket``: authenticated by the Authorization header of the handshake, or
  afterwards by ``{"seq", "action": "authentication_challenge", "data": {"token"}}``
  (answered ``{"status": "OK", "seq_reply"}`` then ``hello``; an unknown token closes the
  socket, as the server does). Before that any action is answered FAIL
  ``api.web_socket_router.not_authenticated.app_error``; after it ``user_typing`` works.
  Events carry the connection's own ``seq`` from 0 (``hello``).

Scripted faults come from :class:`FakePlatform` under the method names ``me``,
``channels``, ``create_post``, ``patch_post``, ``get_posts``, ``thread``, ``get_file``,
``upload_file`` and ``typing``;
``drop_connection`` aborts every WebSocket's TCP connection; with ``answer_pings`` off new
WebSockets leave the client's pings unanswered. The user side
(:meth:`MattermostFake.user_post`) writes as a person would, and the server broadcasts it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.platform import FakePlatform
from tests.fakes.server import json_response

__all__ = ["MAX_RUNES", "MattermostFake", "SentPost", "new_id"]

MAX_RUNES = 16383
SINCE_LIMIT = 1000
SERVER_VERSION = "10.5.0.13191977034.f3c0a7a9b1d2e4f6a8b0c2d4e6f8a0b2.true"
_ALPHABET = "ybndrfg8ejkmcpqxot1uwisza345h769"
_B32 = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _ALPHABET)
_ID = re.compile(r"^[a-z0-9]{26}$")
_MESSAGES = {
    400: ("api.context.invalid_body_param.app_error", "Invalid or missing {} in request body."),
    401: ("api.context.session_expired.app_error",
          "Invalid or expired session, please login again."),
    403: ("api.context.permissions.app_error", "You do not have the appropriate permissions."),
    404: ("app.post.get.app_error", "Unable to get the post."),
    500: ("app.post.save.app_error", "Unable to save the Post."),
    503: ("api.server.unavailable", "Service unavailable."),
}


def new_id() -> str:
    """An id as ``model.NewId`` makes them: 26 characters of base32 (its own alphabet)."""
    return base64.b32encode(uuid.uuid4().bytes).decode().rstrip("=").translate(_B32)[:26]


def app_error(status: int, error_id: str = "", message: str = "", detail: str = ""
              ) -> web.Response:
    default_id, default_message = _MESSAGES.get(status, ("api.error", "Error."))
    return json_response({"id": error_id or default_id,
                          "message": message or default_message.format("parameter"),
                          "detailed_error": detail, "request_id": new_id(),
                          "status_code": status, "is_oauth": False}, status)


@dataclass(frozen=True)
class SentPost:
    """One post the bot made, as the server accepted it."""

    id: str
    channel: str
    text: str
    root_id: str
    monotonic: float


@dataclass
class _Channel:
    id: str
    type: str  # "O" public, "P" private, "D" direct, "G" group DM
    name: str
    display_name: str
    team_id: str
    members: set[str] = field(default_factory=set)
    last_post_at: int = 0
    total_msg_count: int = 0

    def wire(self) -> dict[str, Any]:
        return {"id": self.id, "create_at": 1700000000000, "update_at": 1700000000000,
                "delete_at": 0, "team_id": self.team_id, "type": self.type,
                "display_name": self.display_name, "name": self.name, "header": "",
                "purpose": "", "last_post_at": self.last_post_at,
                "last_root_post_at": self.last_post_at,
                "total_msg_count": self.total_msg_count, "extra_update_at": 0,
                "creator_id": ""}


@dataclass
class _Conn:
    ws: web.WebSocketResponse
    request: web.Request
    user_id: str = ""
    seq: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def event(self, event: str, data: dict[str, Any], broadcast: dict[str, Any]) -> None:
        async with self.lock:
            if self.ws.closed:
                return
            body = {"event": event, "data": data, "broadcast": broadcast, "seq": self.seq}
            self.seq += 1
            try:
                await self.ws.send_str(json.dumps(body))
            except (ConnectionError, RuntimeError):
                pass

    async def reply(self, seq: object, status: str = "OK", error: tuple[str, str] | None = None
                    ) -> None:
        body: dict[str, Any] = {"status": status, "seq_reply": seq}
        if error is not None:
            body["error"] = {"id": error[0], "message": error[1]}
        async with self.lock:
            if not self.ws.closed:
                await self.ws.send_str(json.dumps(body))

    def abort(self) -> None:
        transport = self.request.transport
        if transport is not None:
            transport.abort()


class MattermostFake(FakePlatform):
    send_method = "create_post"

    def __init__(self) -> None:
        super().__init__()
        self.users: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, str] = {}
        self.channels: dict[str, _Channel] = {}
        self.posts: dict[str, dict[str, Any]] = {}
        self.sent: list[SentPost] = []
        self.patches: list[tuple[str, str]] = []
        """(post id, new message) of each accepted patch, oldest first."""
        self.typing_log: list[tuple[str, str, str]] = []
        """(user id, channel id, parent id) of each typing call."""
        self.files: dict[str, tuple[dict[str, Any], bytes]] = {}
        """File id -> (its FileInfo, its bytes): what ``GET /files/{id}`` serves."""
        self.uploads: list[dict[str, Any]] = []
        """The FileInfo of each file uploaded through ``POST /files``."""
        self.downloads: list[tuple[str, str | None]] = []
        """(file id, the Authorization header) of each file download asked for."""
        self.team_id = new_id()
        self.answer_pings = True
        """False: new WebSockets ignore the client's pings (a link that went silent)."""
        self._conns: list[_Conn] = []
        self.sockets_opened = 0
        """WebSocket connections accepted so far (a sending-only bot opens none)."""
        self._clock = 0

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/api/v4/users/me", self._me)
        app.router.add_get("/api/v4/users/{user_id}/channels", self._user_channels)
        app.router.add_post("/api/v4/users/{user_id}/typing", self._typing)
        app.router.add_post("/api/v4/posts", self._create_post)
        app.router.add_get("/api/v4/posts/{post_id}", self._get_post)
        app.router.add_put("/api/v4/posts/{post_id}/patch", self._patch_post)
        app.router.add_get("/api/v4/posts/{post_id}/thread", self._thread)
        app.router.add_get("/api/v4/channels/{channel_id}/posts", self._channel_posts)
        app.router.add_get("/api/v4/files/{file_id}", self._get_file)
        app.router.add_post("/api/v4/files", self._upload_file)
        app.router.add_get("/api/v4/websocket", self._websocket)

    # ---- the world: users, channels ---------------------------------------------------------

    def add_user(self, username: str, *, bot: bool = False) -> tuple[str, str]:
        """A user (or bot account) and an access token of it: (user id, token)."""
        user_id, token = new_id(), new_id()
        self.users[user_id] = {
            "id": user_id, "create_at": 1700000000000, "update_at": 1700000000000,
            "delete_at": 0, "username": username, "first_name": "", "last_name": "",
            "nickname": "", "email": f"{username}@example.com", "auth_service": "",
            "roles": "system_user", "locale": "en", "is_bot": bot,
            "notify_props": {"comments": "never", "mention_keys": ""}}
        self.tokens[token] = user_id
        return user_id, token

    def direct_channel(self, a: str, b: str) -> str:
        name = "__".join(sorted((a, b)))
        for channel in self.channels.values():
            if channel.name == name:
                return channel.id
        return self._channel("D", name, "", "", {a, b})

    def open_channel(self, name: str, members: set[str], *, private: bool = False) -> str:
        return self._channel("P" if private else "O", name, name.title(), self.team_id,
                             members)

    def _channel(self, kind: str, name: str, display: str, team: str, members: set[str]
                 ) -> str:
        channel_id = new_id()
        self.channels[channel_id] = _Channel(channel_id, kind, name, display, team,
                                             set(members))
        return channel_id

    def _now(self) -> int:
        """Milliseconds, strictly increasing (two posts never share a ``create_at`` here; the
        real server can give them one, which the connector allows for)."""
        self._clock = max(self._clock + 1, int(time.time() * 1000))
        return self._clock

    # ---- the user side ----------------------------------------------------------------------

    async def user_post(self, user_id: str, channel_id: str, message: str, *,
                        root_id: str = "", files: tuple[dict[str, Any], ...] = ()
                        ) -> dict[str, Any]:
        """``user_id`` posts in ``channel_id`` (in the thread ``root_id``), with file infos
        ``{name, mime_type, size}`` and optionally ``data``, the file's bytes (served by ``GET
        /files/{id}``; a file without them is one the server no longer has); broadcast to
        the channel's live sockets."""
        blobs = [f.get("data") for f in files]
        files = tuple({k: v for k, v in f.items() if k != "data"} for f in files)
        infos = [{"id": new_id(), "user_id": user_id, "post_id": "", "create_at": 0,
                  "update_at": 0, "delete_at": 0, "extension": f.get("name", "").rsplit(
                      ".", 1)[-1], "width": 0, "height": 0, "has_preview_image": False,
                  **f} for f in files]
        post = self.store_post(user_id, channel_id, message, root_id=root_id, infos=infos)
        for info, blob in zip(infos, blobs, strict=True):
            if isinstance(blob, bytes):
                self.files[info["id"]] = (info, blob)
        await self.broadcast_post(post)
        return post

    def store_post(self, user_id: str, channel_id: str, message: str, *, root_id: str = "",
                   infos: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """A post stored without its ``posted`` event (made before anyone listened)."""
        return self._store(user_id, channel_id, message, root_id, infos or [])

    async def broadcast_post(self, post: dict[str, Any]) -> None:
        """The ``posted`` event of ``post`` (again, for a redelivery)."""
        channel = self.channels[post["channel_id"]]
        author = self.users[post["user_id"]]
        data: dict[str, Any] = {
            "channel_display_name": channel.display_name or f"@{author['username']}",
            "channel_name": channel.name, "channel_type": channel.type,
            "post": json.dumps(post), "sender_name": f"@{author['username']}",
            "set_online": True, "team_id": channel.team_id}
        mentioned = [uid for uid in channel.members
                     if f"@{self.users[uid]['username']}" in post["message"]]
        if mentioned:
            data["mentions"] = json.dumps(mentioned)
        if post.get("file_ids"):
            data["otherFile"] = "true"
        await self._publish(channel, "posted", data)

    async def send_raw(self, channel_id: str, text: str) -> None:
        """A frame of any text to every live socket of the channel's members."""
        channel = self.channels[channel_id]
        for conn in self._live(channel):
            async with conn.lock:
                await conn.ws.send_str(text)

    async def drop_connection(self) -> None:
        for conn in list(self._conns):
            conn.abort()
        self._conns.clear()

    def live_sockets(self, user_id: str) -> int:
        return sum(1 for c in self._conns if c.user_id == user_id and not c.ws.closed)

    def visible(self, channel_id: str, user_id: str) -> list[str]:
        return [p["message"] for p in self.posts.values()
                if p["channel_id"] == channel_id and p["user_id"] == user_id]

    # ---- server internals -------------------------------------------------------------------

    def _store(self, user_id: str, channel_id: str, message: str, root_id: str,
               infos: list[dict[str, Any]]) -> dict[str, Any]:
        now, post_id = self._now(), new_id()
        for info in infos:
            info["post_id"], info["create_at"] = post_id, now
        user = self.users[user_id]
        post: dict[str, Any] = {
            "id": post_id, "create_at": now, "update_at": now, "edit_at": 0, "delete_at": 0,
            "is_pinned": False, "user_id": user_id, "channel_id": channel_id,
            "root_id": root_id, "original_id": "", "message": message, "type": "",
            "props": {"from_bot": "true"} if user["is_bot"] else {}, "hashtags": "",
            "file_ids": [i["id"] for i in infos], "pending_post_id": "",
            "metadata": {"files": infos} if infos else {}}
        self.posts[post_id] = post
        channel = self.channels[channel_id]
        channel.last_post_at = now
        channel.total_msg_count += 1
        return post

    def _live(self, channel: _Channel) -> list[_Conn]:
        return [c for c in self._conns
                if c.user_id in channel.members and not c.ws.closed]

    async def _publish(self, channel: _Channel, event: str, data: dict[str, Any],
                       omit: str = "") -> None:
        broadcast = {"omit_users": {omit: True} if omit else None, "user_id": "",
                     "channel_id": channel.id, "team_id": ""}
        for conn in self._live(channel):
            if conn.user_id != omit:
                await conn.event(event, data, broadcast)

    def _caller(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() not in ("bearer", "token"):
            return None
        return self.tokens.get(token.strip())

    async def _authed(self, request: web.Request, method: str
                      ) -> tuple[str, web.StreamResponse | None]:
        failure = await self.before(method)
        if failure is not None:
            return "", failure
        user_id = self._caller(request)
        if user_id is None:
            return "", app_error(401)
        return user_id, None

    def error_response(self, method: str, status: int, retry_after: float | None
                       ) -> web.StreamResponse:
        if status == 429:
            wait = str(math.ceil(retry_after or 1.0))
            return web.Response(status=429, text="limit exceeded\n", headers={
                "Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff",
                "X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": wait, "Retry-After": wait})
        if status == 400 and method == "create_post":
            return app_error(400, "model.post.is_valid.msg.app_error",
                             "Invalid Message property for post.")
        return app_error(status)

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any] | None:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            return None
        return body if isinstance(body, dict) else None

    # ---- REST -------------------------------------------------------------------------------

    async def _me(self, request: web.Request) -> web.StreamResponse:
        user_id, failure = await self._authed(request, "me")
        return failure or json_response(self.users[user_id])

    async def _user_channels(self, request: web.Request) -> web.StreamResponse:
        user_id, failure = await self._authed(request, "channels")
        if failure:
            return failure
        if request.match_info["user_id"] not in ("me", user_id):
            return app_error(403)
        return json_response([c.wire() for c in self.channels.values()
                              if user_id in c.members])

    async def _create_post(self, request: web.Request) -> web.StreamResponse:
        user_id, failure = await self._authed(request, "create_post")
        if failure:
            return failure
        body = await self._body(request)
        if body is None:
            return app_error(400, message="Invalid or missing post in request body.")
        channel_id, message = body.get("channel_id"), body.get("message", "")
        root_id = body.get("root_id") or ""
        if not isinstance(channel_id, str) or not _ID.match(channel_id):
            return app_error(400, message="Invalid or missing channel_id in request body.")
        channel = self.channels.get(channel_id)
        if channel is None or user_id not in channel.members:
            return app_error(403)
        if not isinstance(message, str) or not isinstance(root_id, str):
            return app_error(400, message="Invalid or missing post in request body.")
        if len(message) > MAX_RUNES:
            return app_error(400, "model.post.is_valid.msg.app_error",
                             "Invalid Message property for post.",
                             f"id={channel_id} message_length={len(message)}")
        root = self.posts.get(root_id) if root_id else None
        if root_id and (root is None or root["channel_id"] != channel_id or root["root_id"]):
            return app_error(400, "api.post.create_post.root_id.app_error",
                             "Invalid RootId parameter.")
        wanted = body.get("file_ids") or []
        if not isinstance(wanted, list):
            return app_error(400, message="Invalid or missing post in request body.")
        infos = [info for info, _ in (self.files.get(i, (None, b"")) for i in wanted
                                      if isinstance(i, str))
                 if info is not None and info["user_id"] == user_id
                 and info.get("channel_id") == channel_id and not info["post_id"]]
        post = self._store(user_id, channel_id, message, root_id, infos)
        self.sent.append(SentPost(post["id"], channel_id, message, root_id, time.monotonic()))
        await self.broadcast_post(post)
        if self.after("create_post", request):
            return web.Response(status=201)
        return json_response(post, 201)

    async def _upload_file(self, request: web.Request) -> web.StreamResponse:
        user_id, failure = await self._authed(request, "upload_file")
        if failure:
            return failure
        try:
            form = await request.post()
        except ValueError:
            return app_error(400, "api.file.upload_file.read_request.app_error",
                             "Unable to upload file(s). Error reading or parsing request data.")
        channel_id = form.get("channel_id")
        uploads = [f for f in form.getall("files", []) if isinstance(f, web.FileField)]
        if not isinstance(channel_id, str) or not channel_id:
            return app_error(400, message="Invalid or missing channel_id parameter in request "
                                          "URL.")
        if not uploads:
            return app_error(400, "api.file.upload_file.read_request.app_error",
                             "Unable to upload file(s). No files were found in the request.")
        channel = self.channels.get(channel_id)
        if channel is None or user_id not in channel.members:
            return app_error(403)
        infos = []
        for upload in uploads:
            data = upload.file.read()
            info = {"id": new_id(), "user_id": user_id, "post_id": "",
                    "channel_id": channel_id, "create_at": self._now(), "update_at": 0,
                    "delete_at": 0, "name": upload.filename,
                    "extension": upload.filename.rsplit(".", 1)[-1] if "." in upload.filename
                    else "", "size": len(data), "mime_type": upload.content_type,
                    "width": 0, "height": 0, "has_preview_image": False}
            self.files[info["id"]] = (info, data)
            infos.append(info)
        self.uploads.extend(infos)
        client_ids = [c for c in form.getall("client_ids", []) if isinstance(c, str)]
        if self.after("upload_file", request):
            return web.Response(status=201)
        return json_response({"file_infos": infos, "client_ids": client_ids}, 201)

    async def _get_post(self, request: web.Request) -> web.StreamResponse:
        user_id, failure = await self._authed(request, "get_post")
        if failure:
            return failure
        post = self.posts.get(request.match_info["post_id"])
        if post is None:
            return app_error(404)
        if user_id not in self.channels[post["channel_id"]].members:
            return app_error(403)
        return json_response(post)

    async def _get_file(self, request: web.Request) -> web.StreamResponse:
        self.downloads.append((request.match_info["file_id"],
                               request.headers.get("Authorization")))
        user_id, failure = await self._authed(request, "get_file")
        if failure:
            return failure
        found = self.files.get(request.match_info["file_id"])
        if found is None:
            return app_error(404, "app.file_info.get.app_error", "Unable to get the file info.")
        info, data = found
        post = self.posts.get(info["post_id"])
        if post is None or user_id not in self.channels[post["channel_id"]].members:
            return app_error(403)
        return web.Response(body=data, headers={
            "Content-Type": info.get("mime_type") or "application/octet-stream",
            "Content-Disposition": f'attachment; filename="{info.get("name", "")}"',
            "X-Content-Type-Options": "nosniff"})

    async def _patch_post(self, request: web.Request) -> web.StreamResponse:
        user_id, failure = await self._authed(request, "patch_post")
        if failure:
            return failure
        post = self.posts.get(request.match_info["post_id"])
        if post is None or post["user_id"] != user_id:
            return app_error(403)
        body = await self._body(request)
        if body is None:
            return app_error(400, message="Invalid or missing patch in request body.")
        message = body.get("message", post["message"])
        if not isinstance(message, str):
            return app_error(400, message="Invalid or missing patch in request body.")
        if len(message) > MAX_RUNES:
            return app_error(400, "model.post.is_valid.msg.app_error",
                             "Invalid Message property for post.")
        now = self._now()
        post.update(message=message, edit_at=now, update_at=now)
        self.patches.append((post["id"], message))
        await self._publish(self.channels[post["channel_id"]], "post_edited",
                            {"post": json.dumps(post)})
        self.after("patch_post", request)
        return json_response(post)

    def _post_list(self, posts: list[dict[str, Any]]) -> dict[str, Any]:
        newest_first = sorted(posts, key=lambda p: p["create_at"], reverse=True)
        return {"order": [p["id"] for p in newest_first],
                "posts": {p["id"]: p for p in newest_first}, "next_post_id": "",
                "prev_post_id": "", "has_next": False}

    async def _thread(self, request: web.Request) -> web.StreamResponse:
        user_id, failure = await self._authed(request, "thread")
        if failure:
            return failure
        post = self.posts.get(request.match_info["post_id"])
        if post is None:
            return app_error(404)
        if user_id not in self.channels[post["channel_id"]].members:
            return app_error(403)
        root = post["root_id"] or post["id"]
        return json_response(self._post_list(
            [p for p in self.posts.values() if root in (p["id"], p["root_id"])]))

    async def _channel_posts(self, request: web.Request) -> web.StreamResponse:
        user_id, failure = await self._authed(request, "get_posts")
        if failure:
            return failure
        channel = self.channels.get(request.match_info["channel_id"])
        if channel is None or user_id not in channel.members:
            return app_error(403)
        posts = [p for p in self.posts.values() if p["channel_id"] == channel.id]
        try:
            since = int(request.query.get("since", "0"))
            page = int(request.query.get("page", "0"))
            per_page = min(200, int(request.query.get("per_page", "60")))
        except ValueError:
            return app_error(400, "api.context.invalid_url_param.app_error",
                             "Invalid or missing since parameter in request URL.")
        if since > 0:
            changed = sorted((p for p in posts if p["update_at"] > since),
                             key=lambda p: p["create_at"])[:SINCE_LIMIT]
            return json_response(self._post_list(changed))
        newest = sorted(posts, key=lambda p: p["create_at"], reverse=True)
        return json_response(self._post_list(newest[page * per_page:(page + 1) * per_page]))

    async def _typing(self, request: web.Request) -> web.StreamResponse:
        user_id, failure = await self._authed(request, "typing")
        if failure:
            return failure
        if request.match_info["user_id"] not in ("me", user_id):
            return app_error(403)
        body = await self._body(request) or {}
        channel = self.channels.get(str(body.get("channel_id", "")))
        if channel is None or user_id not in channel.members:
            return app_error(403)
        parent = str(body.get("parent_id") or "")
        self.typing_log.append((user_id, channel.id, parent))
        await self._publish(channel, "typing", {"parent_id": parent, "user_id": user_id},
                            omit=user_id)
        return json_response({"status": "OK"})

    # ---- WebSocket --------------------------------------------------------------------------

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=self.answer_pings, max_msg_size=0)
        await ws.prepare(request)
        conn = _Conn(ws, request)
        self._conns.append(conn)
        self.sockets_opened += 1
        header_user = self._caller(request)
        if header_user is not None:
            await self._hello(conn, header_user)
        try:
            async for message in ws:
                if message.type is not WSMsgType.TEXT:
                    continue
                if not await self._action(conn, message.data):
                    await ws.close()
                    break
        finally:
            if conn in self._conns:
                self._conns.remove(conn)
        return ws

    async def _hello(self, conn: _Conn, user_id: str) -> None:
        conn.user_id = user_id
        await conn.event("hello", {"server_version": SERVER_VERSION,
                                   "connection_id": new_id()},
                         {"omit_users": None, "user_id": user_id, "channel_id": "",
                          "team_id": ""})

    async def _action(self, conn: _Conn, text: str) -> bool:
        """One request frame; False when the server closes the socket over it."""
        try:
            request = json.loads(text)
        except ValueError:
            return True  # the server logs and drops a frame it cannot decode
        if not isinstance(request, dict):
            return True
        seq, action, data = request.get("seq"), request.get("action"), request.get("data")
        data = data if isinstance(data, dict) else {}
        if action == "authentication_challenge":
            if conn.user_id:
                return True
            user_id = self.tokens.get(str(data.get("token", "")))
            if user_id is None:
                return False  # GetSession failed: the server closes the connection
            await conn.reply(seq)
            await self._hello(conn, user_id)
            return True
        if not conn.user_id:
            await conn.reply(seq, "FAIL", ("api.web_socket_router.not_authenticated.app_error",
                                           "You are not authenticated."))
            return True
        if action == "user_typing":
            channel = self.channels.get(str(data.get("channel_id", "")))
            if channel is not None and conn.user_id in channel.members:
                parent = str(data.get("parent_id") or "")
                self.typing_log.append((conn.user_id, channel.id, parent))
                await self._publish(channel, "typing",
                                    {"parent_id": parent, "user_id": conn.user_id},
                                    omit=conn.user_id)
            await conn.reply(seq)
            return True
        await conn.reply(seq, "FAIL", ("api.web_socket_router.bad_action.app_error",
                                       "Invalid action."))
        return True
