"""A fake Discord (REST API v10 + Gateway) on 127.0.0.1 for the real discord.py to talk to.

It follows the published protocol, not just what our connector sends:

* REST under ``/api/v10`` with ``Authorization: Bot <token>`` (else 401
  ``{"message": "401: Unauthorized", "code": 0}``), JSON answers with a bare
  ``application/json`` content type, ``X-RateLimit-*`` headers, Discord's error
  bodies (``Unknown Channel`` 10003, ``Invalid Form Body`` 50035, ``404: Not
  Found`` for unknown routes) and realistic 429s (``Retry-After``, ``Via``,
  ``X-RateLimit-Scope`` and the JSON body with ``retry_after``/``global``).
* The Gateway at ``/gw``: HELLO, IDENTIFY -> READY + GUILD_CREATE, heartbeats
  -> ACK, RESUME -> replay of the events after the client's ``seq`` + RESUMED,
  INVALID_SESSION for unknown sessions, Discord's close codes (4001, 4002,
  4003, 4004, 4005, 4012), and ``compress=zlib-stream`` (one zlib stream per
  connection, each frame ``Z_SYNC_FLUSH``-ed, sent binary).
* Like Discord, the bot's own messages come back to it as MESSAGE_CREATE.

Test hooks: inject user messages and raw dispatches, redeliver a message, drop
the live socket without a close frame, and read back everything the bot sent
and each message's edits. Files people attach are served as Discord's CDN serves them:
:meth:`FakeDiscord.attachment` builds the message's Attachment object, whose signed
``url`` (``/attachments/<channel>/<id>/<name>?ex=&is=&hm=``) gives the bytes without any
Authorization (an unsigned or unknown link is the CDN's 404); :attr:`cdn_requests`
records each download and the Authorization header it carried. Scripted REST failures
(429, 5xx, refusals, lost answers) are :class:`FakePlatform`'s controls; the REST methods
are named ``create_message``, ``edit_message`` and ``trigger_typing``.
Files the bot sends follow "Uploading Files" of the API reference: a multipart/form-data
Create Message with the JSON body in ``payload_json`` and each file in ``files[n]``, whose
``attachments`` entry has ``id`` n (filename and description there); a message may then
have no content. Each file is at most 10 MiB (40005 "Request entity too large" above).
The message's Attachment objects point at the fake CDN; :attr:`FakeDiscord.uploads`
keeps every file with the bytes received.
discord.py keeps its base URLs in module globals, so run one fake per process
at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import mimetypes
import re
import time
import uuid
import zlib
from collections import deque
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes import discord_payloads as p
from tests.fakes.platform import FakePlatform
from tests.fakes.server import json_response

__all__ = ["EditRecord", "FakeDiscord", "SentRecord", "UploadRecord"]

API = "/api/v10"
MESSAGE_CONTENT_INTENT = 1 << 15
MAX_CONTENT = 2000
MAX_FILE = 10 * 1024 * 1024
_FILE_FIELD = re.compile(r"^files\[(\d+)\]$")
_REPLAY_BUFFER = 1000


@dataclass(frozen=True, slots=True)
class SentRecord:
    """One message the bot created through ``POST /channels/{id}/messages``."""

    message_id: str
    channel_id: str
    chat: str  # the channel, or a thread's parent channel
    thread: str | None
    text: str
    reply_to: str | None
    ts: float  # time.monotonic() when the fake accepted it
    allowed_mentions: dict[str, Any] | None = None  # as sent; None: the app's defaults apply


@dataclass(frozen=True, slots=True)
class UploadRecord:
    """One file of a message the bot created with a multipart upload."""

    message_id: str
    channel_id: str
    field: str  # "files[0]"...
    filename: str
    content_type: str
    data: bytes
    content: str
    reply_to: str | None


@dataclass(frozen=True, slots=True)
class EditRecord:
    """One accepted ``PATCH /channels/{cid}/messages/{mid}`` that changed the content."""

    message_id: str
    channel_id: str
    text: str
    ts: float  # time.monotonic() when the fake accepted it
    allowed_mentions: dict[str, Any] | None = None  # as sent; None: the app's defaults apply


class _Conn:
    """One gateway WebSocket; all frames go through one lock so the zlib stream stays in order."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, compress: bool) -> None:
        self.ws = ws
        self.request = request
        self._zlib = zlib.compressobj() if compress else None
        self._lock = asyncio.Lock()

    @property
    def live(self) -> bool:
        return not self.ws.closed

    async def send(self, payload: dict[str, Any]) -> None:
        data = json.dumps(payload)
        async with self._lock:
            if self._zlib is None:
                await self.ws.send_str(data)
            else:
                frame = self._zlib.compress(data.encode()) + self._zlib.flush(zlib.Z_SYNC_FLUSH)
                await self.ws.send_bytes(frame)

    def abort(self) -> None:
        """Cut the TCP connection: no close frame, the client sees an abnormal closure."""
        transport = self.request.transport
        if transport is not None:
            transport.abort()


@dataclass
class _Session:
    id: str
    intents: int
    seq: int = 0
    conn: _Conn | None = None
    buffer: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=_REPLAY_BUFFER))
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


_ERRORS = {
    400: ("Invalid Form Body", 50035),
    401: ("401: Unauthorized", 0),
    403: ("Missing Permissions", 50013),
    404: ("Unknown Channel", 10003),
}


class FakeDiscord(FakePlatform):
    send_method = "create_message"

    def __init__(self, token: str = "fake-discord-token", *,
                 heartbeat_interval_ms: int = 41250) -> None:
        super().__init__()
        self.token = token
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.bot = p.user(p.snowflake(), "pyclaw-bot", bot=True)
        self.app_id = self.bot["id"]
        self.guild_id = p.snowflake()
        self.owner = p.user(p.snowflake(), "guildowner")
        self.channels: dict[str, dict[str, Any]] = {}  # every channel, thread and DM by id
        self.messages: dict[str, dict[str, Any]] = {}  # every message by id
        self._cdn_files: dict[str, tuple[str, bytes, str]] = {}  # id -> (hm, bytes, type)
        self.cdn_requests: list[tuple[str, str | None]] = []
        """(path, Authorization header or None) of every CDN download, in order."""
        self.sent: list[SentRecord] = []
        self.edit_log: list[EditRecord] = []
        self.uploads: list[UploadRecord] = []
        self.typing: list[tuple[str, float]] = []
        self.connections: list[dict[str, str]] = []  # query of each gateway connection
        self.gateway_requests = 0
        """Every request for the Gateway WebSocket, refused ones too: a send-only bot makes
        none (a second session for its token would fight the receiving instance's)."""
        self.privileged_intents_enabled = True  # the portal's "Message Content Intent" switch
        self.gateway_available = True  # False: the websocket upgrade is refused (an outage)
        self.identifies = 0
        self.resumes = 0
        self.heartbeats = 0
        self._sessions: dict[str, _Session] = {}
        self._current: _Session | None = None
        self._identified = asyncio.Event()

    # ---- test hooks: the platform's side -------------------------------------------------

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gw"

    @property
    def api_base(self) -> str:
        return f"{self.url}{API}"

    def create_dm(self, username: str = "alice") -> tuple[str, dict[str, Any]]:
        """A DM channel with a new user; returns (channel id, user)."""
        person = p.user(p.snowflake(), username)
        cid = p.snowflake()
        self.channels[cid] = p.dm_channel(cid, person)
        return cid, person

    async def create_text_channel(self, name: str, cid: str | None = None) -> str:
        cid = cid or p.snowflake()
        data = p.text_channel(cid, self.guild_id, name)
        self.channels[cid] = data
        if self._current is not None:
            await self.dispatch("CHANNEL_CREATE", data)
        return cid

    async def create_thread(self, parent_id: str, name: str) -> str:
        tid = p.snowflake()
        data = p.thread_channel(tid, self.guild_id, parent_id, self.owner["id"], name)
        self.channels[tid] = data
        if self._current is not None:
            await self.dispatch("THREAD_CREATE", {**data, "newly_created": True})
        return tid

    def user_message(self, channel_id: str, text: str, *, author: dict[str, Any] | None = None,
                     mention_bot: bool = False, reply_to: str | None = None,
                     attachments: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Build (and remember) the MESSAGE_CREATE payload of a user's message."""
        channel = self.channels[channel_id]
        if author is None:
            recipients = channel.get("recipients") or [self.owner]
            author = recipients[0]
        guild_id = channel.get("guild_id")
        mentions = [self.bot] if mention_bot else []
        content = f"<@{self.bot['id']}> {text}" if mention_bot else text
        reference = referenced = None
        if reply_to is not None:
            referenced = self.messages[reply_to]
            reference = {"type": 0, "message_id": reply_to, "channel_id": channel_id,
                         **({"guild_id": guild_id} if guild_id else {})}
            if referenced["author"]["id"] == self.bot["id"]:
                mentions = [*mentions, self.bot]  # replies ping their author by default
        msg = p.message(p.snowflake(), channel_id, author, content, guild_id=guild_id,
                        mentions=mentions, attachments=attachments, reference=reference,
                        referenced_message=referenced)
        self.messages[msg["id"]] = msg
        return msg

    async def inject(self, msg: dict[str, Any]) -> str:
        """Deliver a message built by :meth:`user_message` as MESSAGE_CREATE; returns its id."""
        await self.dispatch("MESSAGE_CREATE", msg)
        return str(msg["id"])

    async def redeliver(self, message_id: str) -> None:
        await self.dispatch("MESSAGE_CREATE", self.messages[message_id])

    def edits(self, message_id: str) -> list[str]:
        """The content after each accepted edit of one message, oldest first."""
        return [e.text for e in self.edit_log if e.message_id == message_id]

    async def drop_connection(self) -> None:
        """Abort the live gateway socket; events dispatched meanwhile wait for RESUME."""
        session = self._current
        if session is None:
            return
        async with session.lock:
            conn, session.conn = session.conn, None
        if conn is not None:
            conn.abort()

    async def invalidate_session(self) -> None:
        """Forget the current session, as Discord does after a long outage."""
        session = self._current
        if session is not None:
            self._sessions.pop(session.id, None)

    async def wait_identified(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._identified.wait(), timeout)

    async def wait_live(self, timeout: float = 10.0) -> None:
        """Until the current session has a live connection (after READY or RESUMED)."""
        deadline = time.monotonic() + timeout
        while not (self._current and self._current.conn and self._current.conn.live):
            if time.monotonic() > deadline:
                raise TimeoutError("no live Discord gateway connection")
            await asyncio.sleep(0.01)

    async def dispatch(self, event: str, data: Any) -> int:
        """Send a DISPATCH (op 0) on the current session, buffered for RESUME; returns its seq."""
        await self.wait_identified()
        session = self._current
        assert session is not None
        async with session.lock:
            return await self._dispatch_locked(session, event, data)

    # ---- gateway --------------------------------------------------------------------------

    async def _dispatch_locked(self, session: _Session, event: str, data: Any) -> int:
        session.seq += 1
        payload = {"op": 0, "s": session.seq, "t": event, "d": self._for_intents(session, data)}
        session.buffer.append(payload)
        conn = session.conn
        if conn is not None and conn.live:
            try:
                await conn.send(payload)
            except ConnectionError:
                session.conn = None
        return session.seq

    def _for_intents(self, session: _Session, data: Any) -> Any:
        """Without MESSAGE_CONTENT, guild messages that do not mention the bot arrive empty."""
        if (session.intents & MESSAGE_CONTENT_INTENT or not isinstance(data, dict)
                or "guild_id" not in data or "content" not in data):
            return data
        if any(m.get("id") == self.bot["id"] for m in data.get("mentions") or []):
            return data
        return {**data, "content": "", "attachments": [], "embeds": []}

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        self.gateway_requests += 1
        if not self.gateway_available:
            return web.Response(status=503, text="upstream connect error")
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0)
        await ws.prepare(request)
        self.connections.append(dict(request.query))
        conn = _Conn(ws, request, request.query.get("compress") == "zlib-stream")
        if request.query.get("v", "10") not in ("9", "10"):
            await ws.close(code=4012, message=b"Invalid API version.")
            return ws
        await conn.send({"op": 10, "s": None, "t": None,
                         "d": {"heartbeat_interval": self.heartbeat_interval_ms}})
        session: _Session | None = None
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    if msg.type is WSMsgType.BINARY:
                        await ws.close(code=4002, message=b"Error while decoding payload.")
                    break
                try:
                    frame = json.loads(msg.data)
                    op, d = frame["op"], frame.get("d")
                except (ValueError, KeyError, TypeError):
                    await ws.close(code=4002, message=b"Error while decoding payload.")
                    break
                session = await self._on_frame(conn, session, op, d)
        finally:
            if session is not None and session.conn is conn:
                session.conn = None
        return ws

    async def _on_frame(self, conn: _Conn, session: _Session | None, op: Any,
                        d: Any) -> _Session | None:
        if op == 1:  # HEARTBEAT
            self.heartbeats += 1
            await conn.send({"op": 11, "s": None, "t": None, "d": None})
            return session
        if op == 2:  # IDENTIFY
            if session is not None:
                await conn.ws.close(code=4005, message=b"Already authenticated.")
                return session
            return await self._identify(conn, d)
        if op == 6:  # RESUME
            return await self._resume(conn, d)
        if op in (3, 4, 8):  # presence, voice state, request guild members: accepted, ignored
            if session is None:
                await conn.ws.close(code=4003, message=b"Not authenticated.")
            return session
        await conn.ws.close(code=4001, message=b"Unknown opcode.")
        return session

    async def _identify(self, conn: _Conn, d: Any) -> _Session | None:
        if not isinstance(d, dict) or d.get("token") != self.token:
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return None
        intents = d.get("intents") if isinstance(d.get("intents"), int) else 0
        if intents & MESSAGE_CONTENT_INTENT and not self.privileged_intents_enabled:
            await conn.ws.close(code=4014, message=b"Disallowed intent(s).")
            return None
        self.identifies += 1
        session = _Session(id=uuid.uuid4().hex, intents=intents)
        self._sessions[session.id] = session
        self._current = session
        async with session.lock:
            session.conn = conn
            await self._dispatch_locked(session, "READY", {
                "v": 10,
                "user": {**self.bot, "verified": True, "mfa_enabled": False, "flags": 0},
                "guilds": [{"id": self.guild_id, "unavailable": True}],
                "session_id": session.id,
                "session_type": "normal",
                "resume_gateway_url": self.gateway_url,
                "shard": [0, 1],
                "application": {"id": self.app_id, "flags": 1 << 19},
                "private_channels": [],
                "relationships": [],
                "user_settings": {},
                "presences": [],
                "geo_ordered_rtc_regions": [],
                "guild_join_requests": [],
            })
            await self._dispatch_locked(session, "GUILD_CREATE", self._guild_create())
        self._identified.set()
        return session

    async def _resume(self, conn: _Conn, d: Any) -> _Session | None:
        if not isinstance(d, dict) or d.get("token") != self.token:
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return None
        session = self._sessions.get(str(d.get("session_id")))
        if session is None or session is not self._current:
            await conn.send({"op": 9, "s": None, "t": None, "d": False})
            return None
        self.resumes += 1
        after = d.get("seq") if isinstance(d.get("seq"), int) else 0
        async with session.lock:
            old, session.conn = session.conn, conn
            if old is not None and old is not conn:
                old.abort()
            for payload in list(session.buffer):
                if payload["s"] > after:
                    await conn.send(payload)
            await self._dispatch_locked(session, "RESUMED", {})
        return session

    def _guild_create(self) -> dict[str, Any]:
        channels = [c for c in self.channels.values() if c["type"] == p.GUILD_TEXT]
        threads = [c for c in self.channels.values() if c["type"] == p.PUBLIC_THREAD]
        return p.guild_create(self.guild_id, "pyclaw test guild", self.owner["id"], channels,
                              threads)

    # ---- REST -----------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.middlewares.append(self._auth)
        app.router.add_get("/gw", self._gateway)
        app.router.add_get("/attachments/{cid}/{aid}/{name}", self._cdn)
        app.router.add_get(f"{API}/users/@me", self._get_me)
        app.router.add_get(f"{API}/oauth2/applications/@me", self._get_application)
        app.router.add_get(f"{API}/gateway", self._get_gateway)
        app.router.add_get(f"{API}/gateway/bot", self._get_gateway_bot)
        app.router.add_get(f"{API}/channels/{{cid}}", self._get_channel)
        app.router.add_post(f"{API}/channels/{{cid}}/messages", self._create_message)
        app.router.add_patch(f"{API}/channels/{{cid}}/messages/{{mid}}", self._edit_message)
        app.router.add_post(f"{API}/channels/{{cid}}/typing", self._trigger_typing)
        app.router.add_route("*", f"{API}/{{tail:.*}}", self._not_found)

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        public = request.path in ("/gw", f"{API}/gateway") or request.path.startswith(
            "/attachments/")
        if not public and request.headers.get("Authorization") != f"Bot {self.token}":
            return json_response({"message": "401: Unauthorized", "code": 0}, status=401)
        return await handler(request)

    def attachment(self, channel_id: str, data: bytes, filename: str,
                   content_type: str | None) -> dict[str, Any]:
        """An Attachment object for :meth:`user_message`, its bytes held by the fake CDN."""
        aid = p.snowflake()
        expires = int(time.time()) + 86_400
        signature = uuid.uuid4().hex
        url = (f"{self.url}/attachments/{channel_id}/{aid}/{filename}"
               f"?ex={expires:x}&is={expires - 86_400:x}&hm={signature}&")
        self._cdn_files[aid] = (signature, data, content_type or "application/octet-stream")
        found: dict[str, Any] = {"id": aid, "filename": filename, "size": len(data),
                                 "url": url, "proxy_url": url.replace("/attachments/",
                                                                      "/media/attachments/"),
                                 "flags": 0}
        if content_type is not None:
            found["content_type"] = content_type
        return found

    async def _cdn(self, request: web.Request) -> web.Response:
        self.cdn_requests.append((request.path, request.headers.get("Authorization")))
        found = self._cdn_files.get(request.match_info["aid"])
        if found is None or request.query.get("hm") != found[0]:
            return web.Response(status=404, text="This content is no longer available.")
        return web.Response(body=found[1], content_type=found[2])

    async def _not_found(self, request: web.Request) -> web.Response:
        return json_response({"message": "404: Not Found", "code": 0}, status=404)

    def _ratelimit_headers(self, bucket: str) -> dict[str, str]:
        return {"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "4",
                "X-RateLimit-Reset": f"{time.time() + 1:.3f}", "X-RateLimit-Reset-After": "1.000",
                "X-RateLimit-Bucket": bucket}

    async def _get_me(self, request: web.Request) -> web.Response:
        return json_response({**self.bot, "verified": True, "mfa_enabled": False, "flags": 0})

    async def _get_application(self, request: web.Request) -> web.Response:
        return json_response(p.application(self.app_id, self.bot))

    async def _get_gateway(self, request: web.Request) -> web.Response:
        return json_response({"url": self.gateway_url})

    async def _get_gateway_bot(self, request: web.Request) -> web.Response:
        return json_response({"url": self.gateway_url, "shards": 1, "session_start_limit": {
            "total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1}})

    def _unknown_channel(self) -> web.Response:
        return json_response({"message": "Unknown Channel", "code": 10003}, status=404)

    async def _get_channel(self, request: web.Request) -> web.Response:
        channel = self.channels.get(request.match_info["cid"])
        return self._unknown_channel() if channel is None else json_response(channel)

    async def _trigger_typing(self, request: web.Request) -> web.StreamResponse:
        if (error := await self.before("trigger_typing")) is not None:
            return error
        cid = request.match_info["cid"]
        if cid not in self.channels:
            return self._unknown_channel()
        self.typing.append((cid, time.monotonic()))
        return web.Response(status=204, headers=self._ratelimit_headers("typing"))

    def error_response(self, method: str, status: int, retry_after: float | None
                       ) -> web.StreamResponse:
        """Discord's error answers: JSON ``{"message", "code"}`` (5xx: ``"500: Internal
        Server Error"``, code 0), and for 429 the rate-limit body and headers."""
        if status == 429:
            return self._too_many_requests(1.0 if retry_after is None else retry_after)
        message, code = _ERRORS.get(status, (f"{status}: {_reason(status)}", 0))
        body: dict[str, Any] = {"message": message, "code": code}
        if code == 50035:
            body["errors"] = {"content": {"_errors": [
                {"code": "BASE_TYPE_BAD_LENGTH", "message": "Must be between 1 and 2000 in "
                 "length."}]}}
        return json_response(body, status=status,
                             headers=self._ratelimit_headers("messages"))

    async def _create_message(self, request: web.Request) -> web.StreamResponse:
        if (error := await self.before("create_message")) is not None:
            return error
        cid = request.match_info["cid"]
        channel = self.channels.get(cid)
        if channel is None:
            return self._unknown_channel()
        body, files = await _read_create_body(request)
        if body is None:
            return json_response({"message": "400: Bad Request", "code": 0}, status=400)
        content = body.get("content") or ""
        if not isinstance(content, str) or len(content) > MAX_CONTENT:
            return _invalid_form("content", "BASE_TYPE_MAX_LENGTH",
                                 f"Must be {MAX_CONTENT} or fewer in length.")
        if not content and not files:
            return json_response({"message": "Cannot send an empty message", "code": 50006},
                                 status=400)
        for upload in files.values():
            size = len(upload.file.read())
            upload.file.seek(0)
            if size > MAX_FILE:
                return json_response({"message": "Request entity too large", "code": 40005},
                                     status=413)
        attachments, problem = self._attachments(cid, body, files)
        if problem is not None:
            return problem
        reply_to, referenced = None, None
        ref = body.get("message_reference")
        if isinstance(ref, dict) and ref.get("message_id") is not None:
            target = self.messages.get(str(ref["message_id"]))
            if target is not None and target["channel_id"] == cid:
                reply_to, referenced = target["id"], target
            elif ref.get("fail_if_not_exists", True):
                return _invalid_form("message_reference", "MESSAGE_REFERENCE_UNKNOWN_MESSAGE",
                                     "Unknown message")
        reference = None if reply_to is None else {"type": 0, "message_id": reply_to,
                                                   "channel_id": cid}
        msg = p.message(p.snowflake(), cid, self.bot, content, guild_id=channel.get("guild_id"),
                        reference=reference, referenced_message=referenced,
                        attachments=[a for a, _ in attachments])
        self.uploads += [UploadRecord(msg["id"], cid, f, a["filename"],
                                      a.get("content_type", ""), data, content, reply_to)
                         for a, (f, data) in attachments]
        self.messages[msg["id"]] = msg
        chat, thread = (channel["parent_id"], cid) if channel["type"] == p.PUBLIC_THREAD else (
            cid, None)
        mentions = body.get("allowed_mentions")
        self.sent.append(SentRecord(msg["id"], cid, chat, thread, content, reply_to,
                                    time.monotonic(),
                                    mentions if isinstance(mentions, dict) else None))
        if self._current is not None:
            await self.dispatch("MESSAGE_CREATE", msg)
        if self.after("create_message", request):
            return web.Response(status=500)  # the connection is cut: never reaches the client
        return json_response(msg, headers=self._ratelimit_headers("messages"))

    def _attachments(self, cid: str, body: dict[str, Any], files: dict[int, web.FileField]
                     ) -> tuple[list[tuple[dict[str, Any], tuple[str, bytes]]],
                                web.Response | None]:
        """The message's Attachment objects for its ``files[n]``, named as ``payload_json``'s
        ``attachments`` entry of id n says (else by the part's own file name)."""
        declared: dict[int, dict[str, Any]] = {}
        for entry in body.get("attachments") or []:
            if not isinstance(entry, dict):
                return [], _invalid_form("attachments", "MODEL_TYPE_CONVERT",
                                         "Only dictionaries may be used in a ModelType")
            try:
                declared[int(entry.get("id"))] = entry
            except (TypeError, ValueError):
                return [], _invalid_form("attachments", "ATTACHMENT_NOT_FOUND",
                                         "Attachment data not found")
        missing = sorted(set(declared) - set(files))
        if missing:
            return [], _invalid_form(f"attachments.{missing[0]}", "ATTACHMENT_NOT_FOUND",
                                     "Attachment data not found")
        made = []
        for index, upload in sorted(files.items()):
            entry = declared.get(index, {})
            name = str(entry.get("filename") or upload.filename or f"file{index}")
            data = upload.file.read()
            guessed = mimetypes.guess_type(name)[0]
            found = self.attachment(cid, data, name, guessed)
            if entry.get("description"):
                found["description"] = str(entry["description"])
            made.append((found, (f"files[{index}]", data)))
        return made, None

    def _too_many_requests(self, retry_after: float) -> web.Response:
        headers = {
            **self._ratelimit_headers("messages"),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset-After": f"{retry_after:.3f}",
            "X-RateLimit-Scope": "user",
            "Retry-After": str(max(1, math.ceil(retry_after))),
            "Via": "1.1 google",
        }
        return json_response({"message": "You are being rate limited.",
                              "retry_after": retry_after, "global": False},
                             status=429, headers=headers)

    async def _edit_message(self, request: web.Request) -> web.StreamResponse:
        """Discord's Edit Message: only the author may change ``content``; a field left out
        keeps its value; an edit that would leave the message empty is refused."""
        if (error := await self.before("edit_message")) is not None:
            return error
        msg = self.messages.get(request.match_info["mid"])
        if request.match_info["cid"] not in self.channels:
            return self._unknown_channel()
        if msg is None or msg["channel_id"] != request.match_info["cid"]:
            return json_response({"message": "Unknown Message", "code": 10008}, status=404)
        if msg["author"]["id"] != self.bot["id"]:
            return json_response({"message": "Cannot edit a message authored by another user",
                                  "code": 50005}, status=403)
        body = await _read_body(request)
        if body is None:
            return json_response({"message": "400: Bad Request", "code": 0}, status=400)
        content = body.get("content", msg["content"])
        if content is None:
            content = ""
        if not isinstance(content, str) or len(content) > MAX_CONTENT:
            return _invalid_form("content", "BASE_TYPE_MAX_LENGTH",
                                 f"Must be {MAX_CONTENT} or fewer in length.")
        if not content and not (msg.get("attachments") or msg.get("embeds")):
            return json_response({"message": "Cannot send an empty message", "code": 50006},
                                 status=400)
        msg.update(content=content, edited_timestamp=p.iso_now())
        mentions = body.get("allowed_mentions")
        self.edit_log.append(EditRecord(msg["id"], msg["channel_id"], content, time.monotonic(),
                                        mentions if isinstance(mentions, dict) else None))
        if self._current is not None:
            await self.dispatch("MESSAGE_UPDATE", msg)
        if self.after("edit_message", request):
            return web.Response(status=500)  # the connection is cut: never reaches the client
        return json_response(msg, headers=self._ratelimit_headers("messages"))


async def _read_body(request: web.Request) -> dict[str, Any] | None:
    """JSON body, or ``payload_json`` of a multipart upload, as Discord accepts both."""
    with contextlib.suppress(ValueError, TypeError, AssertionError):
        if request.content_type == "application/json":
            body = await request.json()
            return body if isinstance(body, dict) else None
        if request.content_type == "multipart/form-data":
            form = await request.post()
            body = json.loads(str(form.get("payload_json") or "{}"))
            return body if isinstance(body, dict) else None
    return None


async def _read_create_body(request: web.Request
                            ) -> tuple[dict[str, Any] | None, dict[int, web.FileField]]:
    """Create Message's body and its ``files[n]`` parts (none for a JSON body)."""
    if request.content_type != "multipart/form-data":
        return await _read_body(request), {}
    with contextlib.suppress(ValueError, TypeError, AssertionError):
        form = await request.post()
        body = json.loads(str(form.get("payload_json") or "{}"))
        files = {int(m.group(1)): v for k, v in form.items()
                 if (m := _FILE_FIELD.match(k)) and isinstance(v, web.FileField)}
        return (body if isinstance(body, dict) else None), files
    return None, {}


def _reason(status: int) -> str:
    with contextlib.suppress(ValueError):
        return HTTPStatus(status).phrase
    return "Error"


def _invalid_form(field_name: str, code: str, message: str) -> web.Response:
    return json_response({"message": "Invalid Form Body", "code": 50035, "errors": {
        field_name: {"_errors": [{"code": code, "message": message}]}}}, status=400)
