"""A fake Slack: the Web API, Socket Mode and signed Events API posts, on 127.0.0.1.

It follows Slack's published wire protocol, not just what our connector sends:

* Web API: ``POST /api/{method}`` with JSON or form bodies, the token as
  ``Authorization: Bearer`` (or a ``token`` field). Errors are HTTP 200 with
  ``{"ok": false, "error": ...}`` (``not_authed``, ``invalid_auth``,
  ``not_allowed_token_type``, ``unknown_method``...); rate limits are HTTP 429
  with ``Retry-After`` (whole seconds) and ``{"ok": false, "error": "ratelimited"}``.
* Socket Mode: ``apps.connections.open`` (app-level ``xapp-`` token only) returns
  a one-time ``ws://`` URL; the socket greets with ``hello``, delivers
  ``events_api`` envelopes and expects ``{"envelope_id": ...}`` acks. Envelopes
  not acked when a connection ends are redelivered on the next one with
  ``retry_attempt`` + 1, as Slack does.
* Events API over HTTP: :meth:`SlackFake.post_event` signs a body with the
  signing secret (``v0`` HMAC-SHA256) and POSTs it to the app's URL.
* Scripted faults come from :class:`FakePlatform` (``fail_next``,
  ``rate_limit_next_send``, ``lose_next_answer``, ``rate_limit_log``, ``calls``),
  answered in Slack's own format by :meth:`SlackFake.error_response`.
* ``chat.update`` edits only the app's own messages (``cant_update_message``
  for a user's, ``message_not_found`` for an unknown ``ts``);
  :meth:`SlackFake.edits` reads back one message's edit history.
* Uploads follow the external flow files.getUploadURLExternal documents: that method
  (``filename``, ``length``) answers an ``upload_url`` and a ``file_id``; the bytes are
  POSTed there (raw, or multipart with a ``file`` or ``filename`` part; 200 ``OK -
  <length>``); files.completeUploadExternal (``files`` as a JSON array of ``{"id",
  "title"}``, ``channel_id``, ``thread_ts``, ``initial_comment``) shares them and answers
  their file objects. A file whose bytes never arrived, or whose length differs from the
  declared one, is not completed. :attr:`SlackFake.uploads` keeps each shared file.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import math
import mimetypes
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import web

from tests.fakes.platform import FakePlatform
from tests.fakes.server import json_response

__all__ = ["Envelope", "SentPost", "SentUpdate", "SharedFile", "SlackFake"]

TEAM_ID = "T0001"
APP_ID = "A0001"
BOT_USER_ID = "U0BOT"
BOT_ID = "B0BOT"
BOT_NAME = "pyclaw"
MAX_POST_TEXT = 40000  # chat.postMessage answers msg_too_long above this


@dataclass(frozen=True)
class SentPost:
    """One ``chat.postMessage`` the fake accepted."""

    channel: str
    text: str  # as sent on the wire (Slack-escaped)
    thread_ts: str | None
    ts: str
    monotonic: float


@dataclass(frozen=True)
class SentUpdate:
    """One ``chat.update`` the fake accepted."""

    channel: str
    ts: str
    text: str  # as sent on the wire (Slack-escaped)
    monotonic: float


@dataclass(frozen=True)
class SharedFile:
    """One file completed (shared) through the external upload flow."""

    file_id: str
    filename: str
    title: str
    data: bytes
    channel: str | None
    thread_ts: str | None
    initial_comment: str | None


@dataclass
class Envelope:
    """An ``events_api`` envelope as Slack sends it over Socket Mode."""

    payload: dict[str, Any]
    envelope_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    retry_attempt: int = 0
    retry_reason: str = ""

    def wire(self) -> dict[str, Any]:
        return {
            "envelope_id": self.envelope_id,
            "payload": self.payload,
            "type": "events_api",
            "accepts_response_payload": False,
            "retry_attempt": self.retry_attempt,
            "retry_reason": self.retry_reason,
        }

    def retried(self, reason: str = "timeout") -> Envelope:
        """Slack's redelivery: same event, a new envelope, one more attempt."""
        return Envelope(self.payload, retry_attempt=self.retry_attempt + 1, retry_reason=reason)


_SIGN_IN_PAGE = ("<!DOCTYPE html><html><head><title>Slack</title></head><body>Sign in to "
                 "your workspace</body></html>")
"""What ``url_private`` gives a request without the bot token (after Slack's redirect)."""

_REFUSALS = {400: "invalid_arguments", 401: "invalid_auth", 403: "not_in_channel",
             404: "channel_not_found"}
"""What a scripted 4xx looks like: Slack answers refusals with HTTP 200 and an error code."""


class SlackFake(FakePlatform):
    send_method = "chat.postMessage"

    def __init__(self, *, bot_token: str = "xoxb-fake-bot-token",
                 app_token: str = "xapp-fake-app-token",
                 signing_secret: str = "fake-signing-secret") -> None:
        super().__init__()
        self.bot_token = bot_token
        self.app_token = app_token
        self.signing_secret = signing_secret
        self.posts: list[SentPost] = []
        self.updates: list[SentUpdate] = []
        self.acks: list[str] = []  # envelope ids acked, in order
        self.acked_at: dict[str, float] = {}  # envelope id -> monotonic time of its (first) ack
        self.connections = 0  # Socket Mode connections accepted so far
        self.users: dict[str, dict[str, Any]] = {
            BOT_USER_ID: _user(BOT_USER_ID, BOT_NAME, is_bot=True),
        }
        self._pending: dict[str, Envelope] = {}  # sent or queued, not yet acked
        self._outbox: list[Envelope] = []  # waiting for a live connection
        self._by_platform_id: dict[str, dict[str, Any]] = {}
        self._tickets: set[str] = set()
        self._sockets: dict[web.WebSocketResponse, asyncio.BaseTransport | None] = {}
        self._texts: dict[tuple[str, str], str] = {}  # (channel, ts) -> current text of a post
        self._ts = itertools.count(1)
        self._events = itertools.count(1)
        self._lock = asyncio.Lock()
        self._connected = asyncio.Event()
        self._files: dict[str, tuple[dict[str, Any], bytes]] = {}  # id -> (file object, bytes)
        self.downloads: list[str] = []
        """The id of every file downloaded from ``url_private`` with the bot token."""
        self._upload_tickets: dict[str, dict[str, Any]] = {}
        """Upload URL ticket -> the pending external upload (file id, name, length, bytes)."""
        self.uploads: list[SharedFile] = []

    # ---- routes -----------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/{method}", self._web_api)
        app.router.add_get("/api/{method}", self._web_api)
        app.router.add_get("/link/", self._socket)
        app.router.add_get("/files-pri/{team_file}/{name}", self._file_download)
        app.router.add_post("/upload/v1/{ticket}", self._upload)

    @property
    def api_url(self) -> str:
        """What ``AsyncWebClient(base_url=...)`` takes."""
        return f"{self.url}/api/"

    async def _web_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await _params(request)
        if method not in self._METHODS:
            return json_response({"ok": False, "error": "unknown_method", "req_method": method})
        scripted = await self.before(method)
        if scripted is not None:
            return scripted  # type: ignore[return-value]
        token = _token(request, params)
        if not token:
            return json_response({"ok": False, "error": "not_authed"})
        if method == "apps.connections.open":
            if token.startswith("xoxb-") or token.startswith("xoxp-"):
                return json_response({"ok": False, "error": "not_allowed_token_type"})
            if token != self.app_token:
                return json_response({"ok": False, "error": "invalid_auth"})
        elif token != self.bot_token:
            if token.startswith("xapp-"):
                return json_response({"ok": False, "error": "not_allowed_token_type"})
            return json_response({"ok": False, "error": "invalid_auth"})
        handler = getattr(self, self._METHODS[method])
        result: web.Response = await handler(params)
        self.after(method, request)  # a scripted lost answer: the connection is already cut
        return result

    def error_response(self, method: str, status: int, retry_after: float | None
                       ) -> web.Response:
        """Slack's answers: 429 with whole-second ``Retry-After``; a 5xx with an error body;
        a refusal as HTTP 200 ``{"ok": false, "error": ...}``."""
        if status == 429:
            seconds = max(1, math.ceil(retry_after or 1))
            return json_response({"ok": False, "error": "ratelimited"}, status=429,
                                 headers={"Retry-After": str(seconds)})
        if status >= 500:
            error = "service_unavailable" if status == 503 else "internal_error"
            return json_response({"ok": False, "error": error}, status=status)
        return json_response({"ok": False, "error": _REFUSALS.get(status, "invalid_arguments")})

    _METHODS: ClassVar[dict[str, str]] = {
        "auth.test": "_auth_test",
        "apps.connections.open": "_connections_open",
        "chat.postMessage": "_post_message",
        "chat.update": "_chat_update",
        "conversations.info": "_conversations_info",
        "users.info": "_users_info",
        "files.info": "_files_info",
        "files.getUploadURLExternal": "_get_upload_url",
        "files.completeUploadExternal": "_complete_upload",
    }

    async def _auth_test(self, params: dict[str, Any]) -> web.Response:
        return json_response({
            "ok": True, "url": "https://fake-team.slack.com/", "team": "Fake Team",
            "user": BOT_NAME, "team_id": TEAM_ID, "user_id": BOT_USER_ID, "bot_id": BOT_ID,
            "is_enterprise_install": False,
        })

    async def _connections_open(self, params: dict[str, Any]) -> web.Response:
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        url = f"ws://127.0.0.1:{self.port}/link/?ticket={ticket}&app_id={APP_ID}"
        return json_response({"ok": True, "url": url})

    async def _post_message(self, params: dict[str, Any]) -> web.Response:
        channel = params.get("channel")
        text = params.get("text")
        if not isinstance(channel, str) or not channel:
            return json_response({"ok": False, "error": "channel_not_found"})
        if not isinstance(text, str) or not text:
            if not params.get("blocks") and not params.get("attachments"):
                return json_response({"ok": False, "error": "no_text"})
            text = text if isinstance(text, str) else ""
        if len(text) > MAX_POST_TEXT:
            return json_response({"ok": False, "error": "msg_too_long"})
        thread_ts = params.get("thread_ts") or None
        ts = self.next_ts()
        self.posts.append(SentPost(channel, text, thread_ts, ts, time.monotonic()))
        self._texts[(channel, ts)] = text
        message = {"type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID, "text": text,
                   "ts": ts, "team": TEAM_ID}
        if thread_ts:
            message["thread_ts"] = thread_ts
        return json_response({"ok": True, "channel": channel, "ts": ts, "message": message})

    async def _chat_update(self, params: dict[str, Any]) -> web.Response:
        channel, ts, text = params.get("channel"), params.get("ts"), params.get("text")
        if not isinstance(channel, str) or not channel:
            return json_response({"ok": False, "error": "channel_not_found"})
        if not isinstance(ts, str) or not ts:
            return json_response({"ok": False, "error": "message_not_found"})
        if (channel, ts) not in self._texts:
            user_message = f"{channel}:{ts}" in self._by_platform_id
            return json_response({"ok": False, "error": "cant_update_message" if user_message
                                  else "message_not_found"})
        if not isinstance(text, str) or not text:
            if not params.get("blocks") and not params.get("attachments"):
                return json_response({"ok": False, "error": "no_text"})
            text = text if isinstance(text, str) else ""
        if len(text) > MAX_POST_TEXT:
            return json_response({"ok": False, "error": "msg_too_long"})
        self._texts[(channel, ts)] = text
        self.updates.append(SentUpdate(channel, ts, text, time.monotonic()))
        message = {"type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID, "text": text,
                   "team": TEAM_ID, "edited": {"user": BOT_USER_ID, "ts": self.next_ts()}}
        return json_response({"ok": True, "channel": channel, "ts": ts, "text": text,
                              "message": message})

    async def _conversations_info(self, params: dict[str, Any]) -> web.Response:
        channel = params.get("channel")
        if not isinstance(channel, str) or channel[:1] not in ("C", "D", "G"):
            return json_response({"ok": False, "error": "channel_not_found"})
        is_im = channel.startswith("D")
        info: dict[str, Any] = {"id": channel, "created": 1700000000, "is_im": is_im,
                                "is_channel": channel.startswith("C"),
                                "is_private": not channel.startswith("C"), "is_archived": False}
        if is_im:
            info["user"] = "U0001"
        else:
            info["name"] = f"chan-{channel.lower()}"
        return json_response({"ok": True, "channel": info})

    async def _users_info(self, params: dict[str, Any]) -> web.Response:
        user_id = params.get("user")
        if not isinstance(user_id, str) or not user_id:
            return json_response({"ok": False, "error": "user_not_found"})
        user = self.users.get(user_id)
        if user is None:
            if not user_id.startswith(("U", "W")):
                return json_response({"ok": False, "error": "user_not_found"})
            user = self.users.setdefault(user_id, _user(user_id, f"user-{user_id.lower()}"))
        return json_response({"ok": True, "user": user})

    # ---- Socket Mode ---------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            return web.Response(status=401, text="invalid ticket")
        self._tickets.discard(ticket)  # Slack's URLs are single use
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        async with self._lock:
            self.connections += 1
            self._sockets[ws] = request.transport
            await ws.send_json({
                "type": "hello", "num_connections": len(self._sockets),
                "debug_info": {"host": "applink-fake", "build_number": 1,
                               "approximate_connection_time": 18060},
                "connection_info": {"app_id": APP_ID},
            })
            # What the last connection left unacked comes again, one attempt later.
            for envelope_id, env in list(self._pending.items()):
                if env not in self._outbox:
                    del self._pending[envelope_id]
                    again = env.retried()
                    self._pending[again.envelope_id] = again
                    self._outbox.append(again)
            outbox, self._outbox = self._outbox, []
            for env in outbox:
                await ws.send_json(env.wire())
        self._connected.set()
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                with contextlib.suppress(ValueError):
                    data = json.loads(msg.data)
                    if isinstance(data, dict) and isinstance(data.get("envelope_id"), str):
                        self.acks.append(data["envelope_id"])
                        self.acked_at.setdefault(data["envelope_id"], time.monotonic())
                        self._pending.pop(data["envelope_id"], None)
        finally:
            self._sockets.pop(ws, None)
            if not self._sockets:
                self._connected.clear()
        return ws

    async def wait_connected(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def deliver(self, payload: dict[str, Any]) -> Envelope:
        """Send an event_callback body in a fresh envelope (queued while nobody is connected)."""
        return await self._send(Envelope(payload))

    async def _send(self, env: Envelope) -> Envelope:
        async with self._lock:
            self._pending[env.envelope_id] = env
            live = [ws for ws in self._sockets if not ws.closed]
            if live:
                await live[-1].send_json(env.wire())
            else:
                self._outbox.append(env)
        return env

    async def deliver_raw(self, message: dict[str, Any]) -> None:
        """Send any frame as-is on the live connection (malformed envelopes, disconnects)."""
        async with self._lock:
            for ws in [ws for ws in self._sockets if not ws.closed][-1:]:
                await ws.send_json(message)

    async def redeliver(self, platform_id: str, reason: str = "timeout") -> Envelope:
        """Deliver an already-delivered message again, in a new envelope with retry_attempt + 1."""
        payload = self._by_platform_id[platform_id]
        attempts = [e.retry_attempt for e in self._pending.values() if e.payload is payload]
        env = Envelope(payload, retry_attempt=max(attempts, default=0) + 1, retry_reason=reason)
        return await self._send(env)

    async def request_refresh(self, reason: str = "refresh_requested") -> None:
        """Slack's polite reconnect request (also sent as ``warning`` ~10 s before)."""
        await self.deliver_raw({"type": "disconnect", "reason": reason,
                                "debug_info": {"host": "applink-fake"}})

    async def drop_connection(self) -> None:
        """Cut every live socket without a close frame, as a network fault would."""
        sockets, self._sockets = self._sockets, {}
        for transport in sockets.values():
            if isinstance(transport, asyncio.Transport):
                transport.abort()
        self._connected.clear()

    @property
    def unacked(self) -> int:
        return len(self._pending)

    def edits(self, channel: str, ts: str) -> list[str]:
        """The text after each accepted chat.update of one message (Slack-escaped), in order."""
        return [u.text for u in self.updates if (u.channel, u.ts) == (channel, ts)]

    def text_of(self, channel: str, ts: str) -> str:
        """What a message the app posted shows now."""
        return self._texts[(channel, ts)]

    # ---- building events as Slack sends them -------------------------------------

    def next_ts(self) -> str:
        """A Slack ``ts``: epoch seconds and a 6-digit sequence, unique and increasing."""
        return f"{int(time.time())}.{next(self._ts):06d}"

    def event_callback(self, event: dict[str, Any]) -> dict[str, Any]:
        payload = {
            "token": "fake-verification-token",
            "team_id": TEAM_ID,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{next(self._events):08d}",
            "event_time": int(time.time()),
            "authorizations": [{"enterprise_id": None, "team_id": TEAM_ID, "user_id": BOT_USER_ID,
                                "is_bot": True, "is_enterprise_install": False}],
            "is_ext_shared_channel": False,
            "event_context": f"4-{uuid.uuid4().hex}",
        }
        channel, ts = event.get("channel"), event.get("ts")
        if isinstance(channel, str) and isinstance(ts, str):
            self._by_platform_id[f"{channel}:{ts}"] = payload
        return payload

    def message_event(self, channel: str, text: str, *, user: str = "U0001",
                      thread_ts: str | None = None, files: list[dict[str, Any]] | None = None,
                      ) -> dict[str, Any]:
        """A ``message`` event (message.im / message.channels), as a user posted it."""
        ts = self.next_ts()
        event: dict[str, Any] = {
            "type": "message", "channel": channel, "user": user, "text": text, "ts": ts,
            "event_ts": ts, "team": TEAM_ID, "client_msg_id": str(uuid.uuid4()),
            "channel_type": _channel_type(channel),
        }
        if thread_ts:
            event["thread_ts"] = thread_ts
            event["parent_user_id"] = self._author(channel, thread_ts)
        if files:
            event["subtype"] = "file_share"
            event["files"] = files
            event["upload"] = False
        return self.event_callback(event)

    def app_mention_event(self, channel: str, text: str, *, user: str = "U0001",
                          thread_ts: str | None = None) -> dict[str, Any]:
        """An ``app_mention``: the text starts with ``<@BOT>`` as Slack renders it."""
        ts = self.next_ts()
        event: dict[str, Any] = {
            "type": "app_mention", "channel": channel, "user": user,
            "text": f"<@{BOT_USER_ID}> {text}", "ts": ts, "event_ts": ts, "team": TEAM_ID,
            "client_msg_id": str(uuid.uuid4()),
        }
        if thread_ts:
            event["thread_ts"] = thread_ts
        return self.event_callback(event)

    @staticmethod
    def file(name: str = "photo.png", mimetype: str = "image/png") -> dict[str, Any]:
        fid = f"F{uuid.uuid4().hex[:8].upper()}"
        return {"id": fid, "name": name, "title": name, "mimetype": mimetype,
                "filetype": name.rpartition(".")[2], "size": 1234, "user": "U0001",
                "url_private": f"https://files.slack.com/files-pri/{TEAM_ID}-{fid}/{name}"}

    def add_file(self, data: bytes, name: str, mimetype: str, *, file_id: str | None = None,
                 title: str | None = None) -> dict[str, Any]:
        """An uploaded file, served as Slack serves it: files.info answers its file object,
        and its ``url_private`` / ``url_private_download`` give the bytes only with the bot
        token in ``Authorization: Bearer`` (without it, Slack answers its sign-in page).
        Returns the file object a message event's ``files`` carries."""
        fid = file_id or f"F{uuid.uuid4().hex[:8].upper()}"
        url = f"{self.url}/files-pri/{TEAM_ID}-{fid}/{name}"
        info = {"id": fid, "created": int(time.time()), "name": name, "title": title or name,
                "mimetype": mimetype, "filetype": name.rpartition(".")[2], "size": len(data),
                "user": "U0001", "mode": "hosted", "is_external": False,
                "url_private": url, "url_private_download": f"{url}?download=1"}
        self._files[fid] = (info, data)
        return dict(info)

    async def _files_info(self, params: dict[str, Any]) -> web.Response:
        found = self._files.get(str(params.get("file", "")))
        if found is None:
            return json_response({"ok": False, "error": "file_not_found"})
        return json_response({"ok": True, "file": found[0], "comments": [],
                              "response_metadata": {"next_cursor": ""}})

    async def _get_upload_url(self, params: dict[str, Any]) -> web.Response:
        filename, length = params.get("filename"), params.get("length")
        try:
            size = int(length) if length not in (None, "") else -1
        except (TypeError, ValueError):
            size = -1
        if not isinstance(filename, str) or not filename or size < 0:
            return json_response({"ok": False, "error": "invalid_arguments"})
        ticket = uuid.uuid4().hex
        fid = f"F{uuid.uuid4().hex[:10].upper()}"
        self._upload_tickets[ticket] = {"file_id": fid, "filename": filename, "length": size,
                                        "data": None}
        return json_response({"ok": True, "upload_url": f"{self.url}/upload/v1/{ticket}",
                              "file_id": fid})

    async def _upload(self, request: web.Request) -> web.Response:
        """The upload URL: the bytes as the body, or a multipart form's file part."""
        pending = self._upload_tickets.get(request.match_info["ticket"])
        if pending is None:
            return web.Response(status=404, text="not found")
        if request.content_type == "multipart/form-data":
            form = await request.post()
            part = form.get("file") or form.get("filename")
            data = part.file.read() if isinstance(part, web.FileField) else None
            if data is None:
                return web.Response(status=400, text="no file in the form")
        else:
            data = await request.read()
        pending["data"] = data
        return web.Response(text=f"OK - {len(data)}")

    async def _complete_upload(self, params: dict[str, Any]) -> web.Response:
        try:
            files = json.loads(params.get("files") or "")
        except (TypeError, ValueError):
            return json_response({"ok": False, "error": "invalid_arguments"})
        if not isinstance(files, list) or not files:
            return json_response({"ok": False, "error": "invalid_arguments"})
        channel = params.get("channel_id") or params.get("channels") or None
        if channel is not None and (not isinstance(channel, str) or channel[:1] not in "CDG"):
            return json_response({"ok": False, "error": "channel_not_found"})
        by_id = {p["file_id"]: (t, p) for t, p in self._upload_tickets.items()}
        done = []
        for item in files:
            found = by_id.get(item.get("id")) if isinstance(item, dict) else None
            if found is None or found[1]["data"] is None \
                    or len(found[1]["data"]) != found[1]["length"]:
                return json_response({"ok": False, "error": "file_not_found"})
            done.append((item, *found))
        shared = []
        for item, ticket, pending in done:
            del self._upload_tickets[ticket]
            title = str(item.get("title") or pending["filename"])
            info = self.add_file(pending["data"], pending["filename"],
                                 _mimetype(pending["filename"]), file_id=pending["file_id"],
                                 title=title)
            self.uploads.append(SharedFile(pending["file_id"], pending["filename"], title,
                                           pending["data"], channel,
                                           params.get("thread_ts") or None,
                                           params.get("initial_comment") or None))
            shared.append(info)
        return json_response({"ok": True, "files": shared})

    async def _file_download(self, request: web.Request) -> web.Response:
        fid = request.match_info["team_file"].removeprefix(f"{TEAM_ID}-")
        found = self._files.get(fid)
        if found is None:
            return web.Response(status=404, text="file not found")
        if request.headers.get("Authorization") != f"Bearer {self.bot_token}":
            return web.Response(text=_SIGN_IN_PAGE, content_type="text/html")
        self.downloads.append(fid)
        info, data = found
        return web.Response(body=data, content_type=info["mimetype"])

    def _author(self, channel: str, ts: str) -> str:
        if any(p.channel == channel and p.ts == ts for p in self.posts):
            return BOT_USER_ID
        payload = self._by_platform_id.get(f"{channel}:{ts}")
        user = payload["event"].get("user") if payload else None
        return user if isinstance(user, str) else "U0001"

    # ---- Events API over HTTP ---------------------------------------------------------

    def sign(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        """Slack's request headers: ``v0=`` HMAC-SHA256 of ``v0:{timestamp}:{body}``."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        base = f"v0:{ts}:".encode() + body
        digest = hmac.new(self.signing_secret.encode(), base, hashlib.sha256).hexdigest()
        return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}",
                "Content-Type": "application/json"}

    async def post_event(self, url: str, payload: dict[str, Any], *, retry_num: int | None = None,
                         timestamp: int | None = None, secret: str | None = None,
                         ) -> tuple[int, str]:
        """POST a signed body to the app like Slack's Events API; returns (status, text)."""
        body = json.dumps(payload).encode()
        headers = self.sign(body, timestamp)
        if secret is not None:
            headers = SlackFake(signing_secret=secret).sign(body, timestamp)
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = "http_timeout"
        async with aiohttp.ClientSession() as session, session.post(
                url, data=body, headers=headers) as resp:
            return resp.status, await resp.text()


def _mimetype(filename: str) -> str:
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def _user(user_id: str, name: str, *, is_bot: bool = False) -> dict[str, Any]:
    return {"id": user_id, "team_id": TEAM_ID, "name": name, "real_name": name.title(),
            "is_bot": is_bot, "deleted": False,
            "profile": {"display_name": name, "real_name": name.title()}}


def _channel_type(channel: str) -> str:
    return {"D": "im", "G": "group", "C": "channel"}.get(channel[:1], "channel")


def _token(request: web.Request, params: dict[str, Any]) -> str:
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        return auth[len("Bearer "):].strip()
    token = params.get("token")
    return token if isinstance(token, str) else ""


async def _params(request: web.Request) -> dict[str, Any]:
    """Arguments from the query, a JSON body or a form body (Slack accepts all three)."""
    params: dict[str, Any] = dict(request.query)
    if request.method != "POST" or not request.can_read_body:
        return params
    if request.content_type == "application/json":
        with contextlib.suppress(ValueError):
            body = await request.json()
            if isinstance(body, dict):
                params.update(body)
        return params
    raw = (await request.read()).decode("utf-8", "replace")
    params.update(dict(parse_qsl(raw, keep_blank_values=True)))
    return params
