"""A fake Zulip server (its REST API) on 127.0.0.1, with a small client that plays its users.

Written from Zulip's OpenAPI description (github.com/zulip/zulip,
``zerver/openapi/zulip.yaml``: ``/register``, ``/events`` GET and DELETE, ``/messages`` GET
and POST, ``/messages/{message_id}`` PATCH, ``/typing``, ``/users/me``, the shared error
schemas ``CodedError``, ``BadEventQueueIdError``, ``InvalidApiKeyError``,
``RateLimitedError``, ``MissingArgumentError``, ``NonExistingChannelNameError``) and from
its ``api_docs`` (``rest-error-handling.md``: 200 requests a minute per user, the
``X-RateLimit-*`` headers):

* Auth is HTTP Basic ``email:api_key`` on every call: none is 401 ``UNAUTHORIZED``, a wrong
  key 401 ``INVALID_API_KEY`` (the server's status; the spec lists the body under its
  shared 400s), a deactivated bot 401 ``USER_DEACTIVATED``, each with
  ``WWW-Authenticate: Basic realm="zulip"``. Errors are ``{"result": "error", "msg",
  "code"}``; a missing parameter is 400 ``REQUEST_VARIABLE_MISSING`` with ``var_name``.
* Parameters come form-encoded (or in the query), lists and booleans JSON-encoded.
* ``POST /register`` makes an event queue for the user (``event_types``,
  ``apply_markdown``, default false, ``narrow``); its answer has ``queue_id``,
  ``last_event_id`` -1, ``zulip_feature_level``, and with ``realm`` in
  ``fetch_event_types`` ``max_message_length``, ``max_topic_length`` and
  ``event_queue_longpoll_timeout_seconds``; with ``message``, ``max_message_id``.
* ``GET /events?queue_id&last_event_id`` acknowledges the events up to
  ``last_event_id`` (the queue keeps the rest: an answer lost on the way is served again),
  then answers at once when events wait, or blocks until one comes or
  ``heartbeat_interval`` passed, then answers a ``heartbeat`` event. A queue the server
  forgot (``expire_queues``, or ``queue_timeout`` seconds without a poll) is 400
  ``BAD_EVENT_QUEUE_ID`` with the ``queue_id``; ``drop_connection`` cuts every poll in
  flight.
* ``POST /messages`` ``type`` (``direct``/``private``/``stream``/``channel``), ``to``,
  ``topic``, ``content``: as the server does, the content loses trailing whitespace and
  leading newlines, an empty one is 400 "Message must not be empty", a null byte 400, one
  over ``max_message_length`` is truncated with ``\\n[message truncated]`` (Zulip
  truncates, it does not refuse); a topic is truncated to ``max_topic_length``; an unknown
  stream is 400 ``STREAM_DOES_NOT_EXIST``, an unknown user 400 "Invalid user ID", a
  private stream the sender is not in 400 "Not authorized to send to channel". Each
  recipient's queues get a ``message`` event with that user's ``flags`` (``mentioned`` for
  ``@**Full Name**`` or ``@**Name|id**``, ``wildcard_mentioned`` and
  ``stream_wildcard_mentioned`` / ``topic_wildcard_mentioned`` for ``@**all**`` and
  ``@**topic**``; silent ``@_**...**`` mentions flag nothing), the sender's included.
* ``GET /messages`` ``anchor`` (an id, ``newest``, ``oldest``), ``num_before``,
  ``num_after`` (together at most 5000), ``include_anchor``, ``narrow``: the user's own
  history (what it received), with ``found_anchor``/``found_newest``/``found_oldest``.
* ``PATCH /messages/{id}`` ``content``: only the sender may (400 otherwise), within
  ``message_content_edit_limit_seconds``; empty content becomes "(deleted)".
* ``POST /typing`` ``op`` start/stop, ``type`` direct with ``to`` (user ids) or stream with
  ``stream_id`` and ``topic``.
* Uploads (zerver/views/upload.py ``serve_file``; the spec's ``get-file-temporary-url``):
  ``GET /api/v1/user_uploads/{realm_id_str}/{filename}`` with Basic auth answers ``{"url":
  "/user_uploads/temporary/<token>/<name>"}``, an address that needs no credentials and
  lives 60 seconds; a file the server has no record of is 404 ``<p>File not found.</p>``,
  one the user may not see (neither its owner nor a receiver of a message linking it) 403
  ``<p>You are not authorized to view this file.</p>`` (HTML, not the JSON errors).
  ``GET /user_uploads/temporary/<token>/<name>`` serves the bytes with their
  ``Content-Type`` (404 once the token expired, :meth:`expire_upload_links`).
* A 429 is ``RATE_LIMIT_HIT`` with ``retry-after`` in the body and the ``Retry-After``
  header, as the server's rate limiter answers.

Scripted faults come from :class:`FakePlatform` and apply to bot users' calls only (the
people's clients are never refused), under the method names ``users_me``,
``register``, ``get_events``, ``delete_queue``, ``send_message``, ``get_messages``,
``update_message``, ``typing`` and ``file_url``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import html
import itertools
import json
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from tests.fakes.platform import FakePlatform
from tests.fakes.server import json_response

__all__ = ["FakeZulip", "Message", "Stream", "User", "ZulipUser"]

FEATURE_LEVEL = 360
VERSION = "10.0"
MAX_MESSAGE_LENGTH = 10_000
MAX_TOPIC_LENGTH = 60
LARGER_THAN_MAX_MESSAGE_ID = 10_000_000_000_000_000
_TRUNCATED = "\n[message truncated]"
_STREAM_WILDCARDS = ("all", "everyone", "stream", "channel")
_OPERATORS = frozenset({"channel", "stream", "topic", "is"})
"""The narrow operators the fake understands (Zulip has many more; a bot needs none)."""
_AUTH_HEADERS = {"WWW-Authenticate": 'Basic realm="zulip"'}


class ApiError(Exception):
    """An error answer: ``{"result": "error", "msg", "code", **extra}`` with ``status``."""

    def __init__(self, status: int, msg: str, code: str = "BAD_REQUEST", *,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(msg)
        self.status, self.msg, self.code, self.headers, self.extra = \
            status, msg, code, headers or {}, extra

    def response(self) -> web.Response:
        return json_response({"result": "error", "msg": self.msg, "code": self.code,
                              **self.extra}, self.status, self.headers)


def _missing(name: str) -> ApiError:
    return ApiError(400, f"Missing '{name}' argument", "REQUEST_VARIABLE_MISSING",
                    var_name=name)


@dataclass
class User:
    user_id: int
    email: str
    full_name: str
    api_key: str
    is_bot: bool = False
    is_active: bool = True


@dataclass
class Stream:
    stream_id: int
    name: str
    subscribers: set[int]
    invite_only: bool = False


@dataclass
class Message:
    id: int
    sender_id: int
    type: str  # "stream" or "private"
    content: str
    raw_content: str
    """The content exactly as the client sent it (before the server's normalization)."""
    timestamp: int
    receivers: frozenset[int]
    """Who has it in their history (a stream's subscribers then, or a DM's members)."""
    stream_id: int | None = None
    topic: str = ""
    flags: dict[int, list[str]] = field(default_factory=dict)
    edits: int = 0
    sent_at: float = field(default_factory=time.monotonic)


@dataclass
class Queue:
    queue_id: str
    user_id: int
    event_types: list[str] | None
    apply_markdown: bool
    narrow: list[list[str]]
    events: list[dict[str, Any]] = field(default_factory=list)
    next_id: int = 0
    last_poll: float = field(default_factory=time.monotonic)
    alive: bool = True
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def push(self, event: dict[str, Any]) -> None:
        self.events.append({**event, "id": self.next_id})
        self.next_id += 1
        self.wake.set()


@dataclass(frozen=True)
class Typing:
    user_id: int
    type: str
    to: tuple[int, ...]
    stream_id: int | None
    topic: str | None
    op: str


def _json(values: dict[str, str], name: str, default: Any = None) -> Any:
    raw = values.get(name)
    if raw is None:
        return default
    try:
        return json.loads(raw)
    except ValueError:
        raise ApiError(400, f'Argument "{name}" is not valid JSON.') from None


def _truncate(text: str, limit: int, suffix: str) -> str:
    return text if len(text) <= limit else text[:limit - len(suffix)] + suffix


class FakeZulip(FakePlatform):
    send_method = "send_message"

    def __init__(self) -> None:
        super().__init__()
        self.max_message_length = MAX_MESSAGE_LENGTH
        self.max_topic_length = MAX_TOPIC_LENGTH
        self.heartbeat_interval = 1.0
        """Seconds a poll waits before answering a heartbeat (Zulip: about a minute)."""
        self.longpoll_timeout = 10
        """``event_queue_longpoll_timeout_seconds`` told to clients (Zulip: 90)."""
        self.queue_timeout = 600.0
        """Seconds without a poll after which a queue is garbage-collected."""
        self.edit_limit = 600.0
        self.users: dict[int, User] = {}
        self.streams: dict[int, Stream] = {}
        self.messages: list[Message] = []
        self.queues: dict[str, Queue] = {}
        self.typing: list[Typing] = []
        self._polls: dict[int, web.Request] = {}
        self._register_gate: asyncio.Event | None = None
        self._user_ids = itertools.count(8)
        self._stream_ids = itertools.count(1)
        self._message_ids = itertools.count(1001)
        self.realm_id = 2
        self.uploads: dict[str, tuple[int, bytes, str]] = {}
        """path_id (``<realm>/<xx>/<random>/<name>``) -> (owner's id, bytes, type)."""
        self.upload_links: dict[str, str] = {}
        """Temporary token -> the path_id it opens."""
        self.downloads: list[tuple[str, str | None]] = []
        """(the path asked for, its Authorization header) of each file request."""

    def routes(self, app: web.Application) -> None:
        api = "/api/v1"
        app.router.add_get(f"{api}/users/me", self._api("users_me", self._me))
        app.router.add_post(f"{api}/register", self._api("register", self._register))
        app.router.add_get(f"{api}/events", self._api("get_events", self._events))
        app.router.add_delete(f"{api}/events", self._api("delete_queue", self._delete_queue))
        app.router.add_post(f"{api}/messages", self._api("send_message", self._send))
        app.router.add_get(f"{api}/messages", self._api("get_messages", self._history))
        app.router.add_patch(f"{api}/messages/{{message_id}}",
                             self._api("update_message", self._update))
        app.router.add_post(f"{api}/typing", self._api("typing", self._typing))
        app.router.add_get(f"{api}/user_uploads/{{realm_id_str}}/{{filename:.+}}",
                           self._file_url)
        app.router.add_get("/user_uploads/temporary/{token}/{filename}", self._temporary)

    # ---- the organization -------------------------------------------------------------------

    def add_user(self, full_name: str, *, is_bot: bool = False) -> User:
        user_id = next(self._user_ids)
        slug = re.sub(r"[^a-z0-9]+", "-", full_name.lower()).strip("-") or "user"
        email = f"{slug}-bot@zulip.example" if is_bot else f"{slug}{user_id}@zulip.example"
        user = User(user_id, email, full_name, uuid.uuid4().hex, is_bot)
        self.users[user_id] = user
        return user

    def add_stream(self, name: str, subscribers: Iterable[User], *,
                   invite_only: bool = False) -> Stream:
        stream = Stream(next(self._stream_ids), name, {u.user_id for u in subscribers},
                        invite_only)
        self.streams[stream.stream_id] = stream
        return stream

    def client(self, user: User) -> ZulipUser:
        return ZulipUser(self.url, user.email, user.api_key)

    def upload(self, user: User, data: bytes, name: str, mime: str) -> str:
        """``user`` uploads a file (``POST /user_uploads``); returns its ``/user_uploads/``
        link, which a message shares as ``[name](link)``."""
        path_id = f"{self.realm_id}/{secrets.token_hex(1)}/{secrets.token_urlsafe(18)}/{name}"
        self.uploads[path_id] = (user.user_id, data, mime)
        return f"/user_uploads/{path_id}"

    def expire_upload_links(self) -> None:
        """The temporary links given so far pass their 60 seconds."""
        self.upload_links.clear()

    def expire_queues(self, user: User | None = None) -> None:
        """Garbage-collect queues now, as the server does after ten idle minutes."""
        for queue in list(self.queues.values()):
            if user is None or queue.user_id == user.user_id:
                queue.alive = False
                queue.wake.set()
                del self.queues[queue.queue_id]

    def live_queues(self, user: User) -> list[Queue]:
        return [q for q in self.queues.values() if q.user_id == user.user_id and q.alive]

    def hold_registers(self) -> None:
        """Keep every ``/register`` waiting until :meth:`release_registers` (a slow server),
        so a test can post messages while a client has no queue."""
        self._register_gate = asyncio.Event()

    def release_registers(self) -> None:
        if self._register_gate is not None:
            self._register_gate.set()
            self._register_gate = None

    async def drop_connection(self) -> None:
        for request in list(self._polls.values()):
            if request.transport is not None:
                request.transport.abort()

    def push_event(self, user: User, event: dict[str, Any]) -> None:
        """An event as the server queues it, to every live queue of ``user``."""
        for queue in self.live_queues(user):
            queue.push(event)

    def redeliver(self, message_id: int) -> None:
        """Queue the message's event again for everyone who received it."""
        message = self.message(message_id)
        for user_id in message.receivers:
            self._deliver(message, self.users[user_id])

    def next_message_id(self) -> int:
        """An id the server has not given yet (for an event made by hand)."""
        return next(self._message_ids)

    def message(self, message_id: int) -> Message:
        return next(m for m in self.messages if m.id == message_id)

    # ---- the wire ---------------------------------------------------------------------------

    def error_response(self, method: str, status: int, retry_after: float | None
                       ) -> web.Response:
        if status == 429:
            wait = retry_after if retry_after is not None else 28.706807374954224
            return ApiError(429, "API usage exceeded rate limit", "RATE_LIMIT_HIT", headers={
                "Retry-After": f"{wait:g}", "X-RateLimit-Limit": "200",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": f"{time.time() + wait:.0f}"},
                **{"retry-after": wait}).response()
        if status == 401:
            return ApiError(401, "Invalid API key", "INVALID_API_KEY",
                            headers=_AUTH_HEADERS).response()
        if status >= 500:
            return json_response({"result": "error", "msg": "Internal server error"}, status)
        return ApiError(status, "You do not have permission to post in this channel.",
                        ).response()

    def _api(self, method: str,
             handler: Callable[[web.Request, User, dict[str, str]],
                               Awaitable[dict[str, Any]]]
             ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def serve(request: web.Request) -> web.StreamResponse:
            try:
                user = self._authenticate(request)
                scripted = await self.before(method) if user.is_bot else None
                if scripted is not None:
                    return scripted
                values: dict[str, str] = dict(request.query)
                if request.method != "GET" and request.can_read_body:
                    form = await request.post()
                    values.update({k: v for k, v in form.items() if isinstance(v, str)})
                data = await handler(request, user, values)
            except ApiError as error:
                return error.response()
            if user.is_bot:
                self.after(method, request)
            return json_response({"result": "success", "msg": "", **data})
        return serve

    async def _file_url(self, request: web.Request) -> web.StreamResponse:
        path_id = f"{request.match_info['realm_id_str']}/{request.match_info['filename']}"
        self.downloads.append((request.path, request.headers.get("Authorization")))
        try:
            user = self._authenticate(request)
        except ApiError as error:
            return error.response()
        if user.is_bot and (scripted := await self.before("file_url")) is not None:
            return scripted
        stored = self.uploads.get(path_id)
        if stored is None:
            return web.Response(status=404, text="<p>File not found.</p>",
                                content_type="text/html")
        link = f"/user_uploads/{path_id}"
        if stored[0] != user.user_id and not any(
                user.user_id in m.receivers and link in m.raw_content for m in self.messages):
            return web.Response(status=403, content_type="text/html",
                                text="<p>You are not authorized to view this file.</p>")
        token = secrets.token_urlsafe(24)
        self.upload_links[token] = path_id
        return json_response({"result": "success", "msg": "",
                              "url": f"/user_uploads/temporary/{token}/"
                                     f"{path_id.rsplit('/', 1)[-1]}"})

    async def _temporary(self, request: web.Request) -> web.StreamResponse:
        self.downloads.append((request.path, request.headers.get("Authorization")))
        path_id = self.upload_links.get(request.match_info["token"])
        if path_id is None or path_id not in self.uploads:
            return web.Response(status=404, text="<p>File not found.</p>",
                                content_type="text/html")
        _, data, mime = self.uploads[path_id]
        return web.Response(body=data, headers={
            "Content-Type": mime, "Cache-Control": "private, immutable",
            "Content-Disposition": f"inline; filename*=UTF-8''{path_id.rsplit('/', 1)[-1]}"})

    def _authenticate(self, request: web.Request) -> User:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            raise ApiError(401, "Not logged in: API authentication or user session required",
                           "UNAUTHORIZED", headers=_AUTH_HEADERS)
        try:
            email, _, key = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise ApiError(401, "Invalid authorization header for basic auth", "UNAUTHORIZED",
                           headers=_AUTH_HEADERS) from None
        user = next((u for u in self.users.values() if u.email.lower() == email.lower()), None)
        if user is None or user.api_key != key:
            raise ApiError(401, "Invalid API key", "INVALID_API_KEY", headers=_AUTH_HEADERS)
        if not user.is_active:
            raise ApiError(401, "Account is deactivated", "USER_DEACTIVATED",
                           headers=_AUTH_HEADERS)
        return user

    # ---- endpoints --------------------------------------------------------------------------

    async def _me(self, request: web.Request, user: User, values: dict[str, str]
                  ) -> dict[str, Any]:
        return {"user_id": user.user_id, "email": user.email, "delivery_email": user.email,
                "full_name": user.full_name, "is_bot": user.is_bot, "is_active": True,
                "is_admin": False, "is_owner": False, "is_guest": False, "role": 400,
                "bot_type": 1 if user.is_bot else None, "timezone": "", "avatar_url": None,
                "avatar_version": 1, "date_joined": "2024-05-01T10:00:00+00:00",
                "profile_data": {}, "max_message_id": self._max_id(user)}

    def _max_id(self, user: User) -> int:
        return max((m.id for m in self.messages if user.user_id in m.receivers), default=-1)

    async def _register(self, request: web.Request, user: User, values: dict[str, str]
                        ) -> dict[str, Any]:
        if self._register_gate is not None:
            await self._register_gate.wait()
        event_types = _json(values, "event_types")
        fetch = _json(values, "fetch_event_types", event_types)
        narrow = _json(values, "narrow", [])
        if not isinstance(narrow, list) or not all(
                isinstance(t, list) and len(t) == 2 for t in narrow):
            raise ApiError(400, "Invalid narrow")
        for operator, _ in narrow:
            if operator not in _OPERATORS:
                raise ApiError(400, f"Invalid narrow operator: unknown operator {operator}")
        queue = Queue(str(uuid.uuid4()), user.user_id, event_types,
                      _json(values, "apply_markdown", False) is True, narrow)
        self.queues[queue.queue_id] = queue
        answer: dict[str, Any] = {"queue_id": queue.queue_id, "last_event_id": -1,
                                  "zulip_feature_level": FEATURE_LEVEL,
                                  "zulip_version": VERSION, "zulip_merge_base": VERSION}
        if fetch is None or "realm" in fetch:
            answer.update(max_message_length=self.max_message_length,
                          max_topic_length=self.max_topic_length, max_stream_name_length=60,
                          max_stream_description_length=1024, realm_name="Fake org",
                          realm_empty_topic_display_name="general chat",
                          event_queue_longpoll_timeout_seconds=self.longpoll_timeout)
        if fetch is None or "message" in fetch:
            answer["max_message_id"] = self._max_id(user)
        return answer

    def _queue(self, user: User, values: dict[str, str]) -> Queue:
        queue_id = values.get("queue_id")
        if queue_id is None:
            raise _missing("queue_id")
        queue = self.queues.get(queue_id)
        if queue is not None and time.monotonic() - queue.last_poll > self.queue_timeout:
            self.expire_queues_by_id(queue_id)
            queue = None
        if queue is None or queue.user_id != user.user_id or not queue.alive:
            raise ApiError(400, f"Bad event queue ID: {queue_id}", "BAD_EVENT_QUEUE_ID",
                           queue_id=queue_id)
        return queue

    def expire_queues_by_id(self, queue_id: str) -> None:
        queue = self.queues.pop(queue_id, None)
        if queue is not None:
            queue.alive = False
            queue.wake.set()

    async def _events(self, request: web.Request, user: User, values: dict[str, str]
                      ) -> dict[str, Any]:
        queue = self._queue(user, values)
        last = _json(values, "last_event_id", -1)
        if isinstance(last, int):
            queue.events = [e for e in queue.events if e["id"] > last]
        queue.last_poll = time.monotonic()
        if not queue.events and _json(values, "dont_block", False) is not True:
            queue.wake.clear()
            self._polls[id(request)] = request
            try:
                await asyncio.wait_for(queue.wake.wait(), self.heartbeat_interval)
            except TimeoutError:
                queue.push({"type": "heartbeat"})
            finally:
                self._polls.pop(id(request), None)
            if not queue.alive:
                raise ApiError(400, f"Bad event queue ID: {queue.queue_id}",
                               "BAD_EVENT_QUEUE_ID", queue_id=queue.queue_id)
            queue.last_poll = time.monotonic()
        return {"events": list(queue.events), "queue_id": queue.queue_id}

    async def _delete_queue(self, request: web.Request, user: User, values: dict[str, str]
                            ) -> dict[str, Any]:
        queue = self._queue(user, values)
        self.expire_queues_by_id(queue.queue_id)
        return {}

    def _stream(self, to: Any) -> Stream:
        if isinstance(to, int) and not isinstance(to, bool):
            stream = self.streams.get(to)
            if stream is None:
                raise ApiError(400, f"Channel with ID '{to}' does not exist",
                               "STREAM_DOES_NOT_EXIST", stream_id=to)
            return stream
        name = to[0] if isinstance(to, list) and len(to) == 1 else to
        stream = next((s for s in self.streams.values() if s.name == name), None)
        if stream is None:
            raise ApiError(400, f"Channel '{name}' does not exist", "STREAM_DOES_NOT_EXIST",
                           stream=str(name))
        return stream

    def _user_list(self, to: Any) -> set[int]:
        items = to if isinstance(to, list) else [to]
        ids: set[int] = set()
        for item in items:
            if isinstance(item, int) and not isinstance(item, bool):
                if item not in self.users:
                    raise ApiError(400, f"Invalid user ID {item}")
                ids.add(item)
                continue
            user = next((u for u in self.users.values() if u.email == item), None)
            if user is None:
                raise ApiError(400, f"Invalid email '{item}'")
            ids.add(user.user_id)
        if not ids:
            raise ApiError(400, "Message must have recipients")
        return ids

    def _content(self, values: dict[str, str]) -> tuple[str, str]:
        raw = values.get("content")
        if raw is None:
            raise _missing("content")
        body = raw.rstrip().lstrip("\n")
        if not body:
            raise ApiError(400, "Message must not be empty")
        if "\x00" in body:
            raise ApiError(400, "Message must not contain null bytes")
        return raw, _truncate(body, self.max_message_length, _TRUNCATED)

    async def _send(self, request: web.Request, user: User, values: dict[str, str]
                    ) -> dict[str, Any]:
        kind = values.get("type")
        if kind is None:
            raise _missing("type")
        if "to" not in values:
            raise _missing("to")
        raw_to = values["to"]
        try:
            to = json.loads(raw_to)
        except ValueError:
            to = raw_to
        if kind in ("stream", "channel"):
            stream = self._stream(to)
            topic = values.get("topic", values.get("subject"))
            if topic is None:
                raise ApiError(400, "Missing topic")
            if stream.invite_only and user.user_id not in stream.subscribers:
                raise ApiError(400, f"Not authorized to send to channel '{stream.name}'")
            raw, content = self._content(values)
            topic = topic.strip()
            topic = "" if topic == "(no topic)" else _truncate(topic, self.max_topic_length,
                                                                "...")
            message = Message(next(self._message_ids), user.user_id, "stream", content, raw,
                              int(time.time()), frozenset(stream.subscribers | {user.user_id}),
                              stream.stream_id, topic)
        elif kind in ("direct", "private"):
            if isinstance(to, str) and not to.startswith("["):
                to = [e.strip() for e in to.split(",") if e.strip()]
            members = self._user_list(to) | {user.user_id}
            raw, content = self._content(values)
            message = Message(next(self._message_ids), user.user_id, "private", content, raw,
                              int(time.time()), frozenset(members))
        else:
            raise ApiError(400, "Invalid message type")
        self.messages.append(message)
        for user_id in sorted(message.receivers):
            message.flags[user_id] = self._flags(message, self.users[user_id])
            self._deliver(message, self.users[user_id])
        return {"id": message.id}

    def _flags(self, message: Message, user: User) -> list[str]:
        if user.user_id == message.sender_id:
            return ["read"]
        flags: list[str] = []
        content = message.content
        name = re.escape(user.full_name)
        if re.search(rf"@\*\*(?:{name}(?:\|{user.user_id})?|[^*|\n]*\|{user.user_id})\*\*",
                     content, re.IGNORECASE):
            flags.append("mentioned")
        if message.type == "stream":
            wildcards = "|".join(_STREAM_WILDCARDS)
            if re.search(rf"@\*\*(?:{wildcards})\*\*", content):
                flags += ["wildcard_mentioned", "stream_wildcard_mentioned"]
            elif "@**topic**" in content:
                flags += ["wildcard_mentioned", "topic_wildcard_mentioned"]
        return flags

    def _matches(self, message: Message, narrow: Iterable[tuple[str, Any, bool]]) -> bool:
        for operator, operand, negated in narrow:
            if operator in ("channel", "stream"):
                stream = self.streams.get(message.stream_id or -1)
                hit = stream is not None and operand in (stream.name, stream.stream_id)
            elif operator == "topic":
                hit = message.type == "stream" and message.topic == operand
            elif operator == "is" and operand in ("dm", "private"):
                hit = message.type == "private"
            else:
                raise ApiError(400, f"Invalid narrow operator: unknown operator {operator}")
            if hit == negated:
                return False
        return True

    def _render(self, message: Message, user: User, *, markdown: bool,
                with_flags: bool) -> dict[str, Any]:
        sender = self.users[message.sender_id]
        data: dict[str, Any] = {
            "id": message.id, "sender_id": sender.user_id, "sender_email": sender.email,
            "sender_full_name": sender.full_name, "sender_realm_str": "zulip",
            "type": message.type, "timestamp": message.timestamp, "client": "website",
            "content": f"<p>{html.escape(message.content)}</p>" if markdown
            else message.content,
            "content_type": "text/html" if markdown else "text/x-markdown",
            "recipient_id": (message.stream_id or 0) + 100, "is_me_message": False,
            "reactions": [], "submessages": [], "topic_links": [], "avatar_url": None,
            "subject": message.topic}
        if message.type == "stream" and message.stream_id is not None:
            data["stream_id"] = message.stream_id
            data["display_recipient"] = self.streams[message.stream_id].name
        else:
            data["display_recipient"] = [
                {"id": u, "email": self.users[u].email, "full_name": self.users[u].full_name,
                 "is_mirror_dummy": False} for u in sorted(message.receivers)]
        if with_flags:
            data["flags"] = list(message.flags.get(user.user_id, []))
        return data

    def _deliver(self, message: Message, user: User) -> None:
        for queue in self.live_queues(user):
            if queue.event_types is not None and "message" not in queue.event_types:
                continue
            if not self._matches(message, [(op, arg, False) for op, arg in queue.narrow]):
                continue
            queue.push({"type": "message", "flags": list(message.flags.get(user.user_id, [])),
                        "message": self._render(message, user, markdown=queue.apply_markdown,
                                                with_flags=False)})

    async def _history(self, request: web.Request, user: User, values: dict[str, str]
                       ) -> dict[str, Any]:
        for name in ("anchor", "num_before", "num_after"):
            if name not in values:
                raise _missing(name)
        anchor_raw = values["anchor"]
        anchor = {"newest": LARGER_THAN_MAX_MESSAGE_ID, "first_unread":
                  LARGER_THAN_MAX_MESSAGE_ID, "oldest": 0}.get(anchor_raw)
        if anchor is None:
            if not anchor_raw.isdigit():
                raise ApiError(400, "Invalid anchor")
            anchor = int(anchor_raw)
        before, after = _json(values, "num_before"), _json(values, "num_after")
        if not isinstance(before, int) or not isinstance(after, int) or before < 0 \
                or after < 0:
            raise ApiError(400, "Invalid num_before or num_after")
        if before + after > 5000:
            raise ApiError(400, "Too many messages requested (maximum 5000).")
        terms = []
        for term in _json(values, "narrow", []):
            if isinstance(term, dict):
                terms.append((term.get("operator"), term.get("operand"),
                              term.get("negated") is True))
            elif isinstance(term, list) and len(term) == 2:
                terms.append((term[0], term[1], False))
            else:
                raise ApiError(400, "Invalid narrow")
        mine = [m for m in self.messages
                if user.user_id in m.receivers and self._matches(m, terms)]
        older = [m for m in mine if m.id < anchor]
        newer = [m for m in mine if m.id > anchor]
        at = [m for m in mine if m.id == anchor and _json(values, "include_anchor", True)]
        window = (older[len(older) - before:] if before else []) + at + newer[:after]
        markdown = _json(values, "apply_markdown", True) is not False
        return {"messages": [self._render(m, user, markdown=markdown, with_flags=True)
                             for m in window],
                "anchor": anchor, "found_anchor": bool(at),
                "found_newest": len(newer) <= after, "found_oldest": len(older) <= before,
                "history_limited": False}

    async def _update(self, request: web.Request, user: User, values: dict[str, str]
                      ) -> dict[str, Any]:
        ident = request.match_info["message_id"]
        message = next((m for m in self.messages if str(m.id) == ident
                        and user.user_id in m.receivers), None)
        if message is None:
            raise ApiError(400, "Invalid message(s)")
        content = values.get("content")
        if content is None:
            raise ApiError(400, "Nothing to change")
        if message.sender_id != user.user_id:
            raise ApiError(400, "You don't have permission to edit this message")
        if time.monotonic() - message.sent_at > self.edit_limit:
            raise ApiError(400, "The time limit for editing this message has past")
        if "\x00" in content:
            raise ApiError(400, "Message must not contain null bytes")
        body = content.rstrip().lstrip("\n") or "(deleted)"
        message.content = _truncate(body, self.max_message_length, _TRUNCATED)
        message.edits += 1
        return {"detached_uploads": []}

    async def _typing(self, request: web.Request, user: User, values: dict[str, str]
                      ) -> dict[str, Any]:
        op = values.get("op")
        if op is None:
            raise _missing("op")
        if op not in ("start", "stop"):
            raise ApiError(400, "Invalid op")
        kind = values.get("type", "direct")
        if kind in ("direct", "private"):
            if "to" not in values:
                raise _missing("to")
            to = tuple(sorted(self._user_list(_json(values, "to"))))
            self.typing.append(Typing(user.user_id, "direct", to, None, None, op))
        elif kind in ("stream", "channel"):
            stream_id = _json(values, "stream_id")
            if stream_id is None:
                raise _missing("stream_id")
            if stream_id not in self.streams:
                raise ApiError(400, "Invalid channel ID")
            topic = values.get("topic")
            if topic is None:
                raise ApiError(400, "Missing topic")
            self.typing.append(Typing(user.user_id, "stream", (), stream_id, topic, op))
        else:
            raise ApiError(400, "Invalid type")
        return {}


class ZulipUser:
    """A person using Zulip: the same REST API, with that user's key."""

    def __init__(self, url: str, email: str, api_key: str) -> None:
        self._url = f"{url}/api/v1"
        token = base64.b64encode(f"{email}:{api_key}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}"}
        self._session: aiohttp.ClientSession | None = None

    async def call(self, method: str, path: str, **fields: Any) -> dict[str, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession(trust_env=False)
        data = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
        async with self._session.request(method, f"{self._url}{path}", data=data,
                                         headers=self._headers) as response:
            answer: dict[str, Any] = await response.json()
        if answer.get("result") != "success":
            raise AssertionError(f"Zulip refused {method} {path}: {answer}")
        return answer

    async def direct(self, to: Iterable[int], content: str) -> int:
        answer = await self.call("POST", "/messages", type="direct", to=list(to),
                                 content=content)
        return int(answer["id"])

    async def stream(self, stream: int | str, topic: str, content: str) -> int:
        answer = await self.call("POST", "/messages", type="stream", to=stream, topic=topic,
                                 content=content)
        return int(answer["id"])

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
