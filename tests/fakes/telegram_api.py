"""A Telegram Bot API server on 127.0.0.1, faithful to https://core.telegram.org/bots/api.

Speaks ``POST|GET /bot<token>/<method>`` with parameters in the query string,
form-encoded (PTB JSON-encodes non-string values), multipart or JSON bodies,
and answers ``{"ok": true, "result": ...}`` or the API's error shape
``{"ok": false, "error_code": N, "description": "...", "parameters": {...}}``.
Method names are case-insensitive, as on the real server.

Tests drive it as the platform would: :meth:`FakeTelegram.inject_message`
queues an update for getUpdates (waking a pending long poll),
:meth:`~FakeTelegram.redeliver` hands a message over again,
:meth:`~FakeTelegram.drop_connection` cuts the pending long poll's TCP
connection, :attr:`~FakeTelegram.sent` records what the bot sent and
:meth:`~FakeTelegram.edits` the visible text after each edit of one message,
and :attr:`~FakeTelegram.command_sets` every command menu setMyCommands accepted.
Files people send are held as Telegram's servers hold them: :meth:`~FakeTelegram.add_file`
stores bytes and returns the fields a message carries (``file_id``, ``file_unique_id``,
``file_size``); ``getFile`` answers a File object with a ``file_path`` (refusing files over
20 MB as the real API does), and ``GET /file/bot<token>/<file_path>`` serves the bytes
(:attr:`~FakeTelegram.downloads` records each).
Files the bot sends are taken as "Sending files" describes them: ``sendPhoto``,
``sendDocument``, ``sendVoice`` and ``sendAudio`` accept the file as a multipart/form-data
upload under the method's own field (``photo``, ``document``, ``voice``, ``audio``), or
a file_id of a file the server holds; an HTTP URL is refused (the fake fetches nothing).
Captions are 0-1024 characters; photos at most 10 MB, other files 50 MB. Each accepted
upload is kept in :attr:`~FakeTelegram.uploads` with its bytes, and held like any file
(getFile serves it). The fake does not decode pictures: a PhotoSize says 1x1.
Scripted failures, 429s and lost answers are :class:`FakePlatform`'s controls,
keyed by the API's method names (``sendMessage``, ``getUpdates``...).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from tests.fakes.platform import FakePlatform
from tests.fakes.server import json_response
from tests.fakes.telegram_html import HtmlParseError, visible_text

__all__ = ["DEFAULT_TOKEN", "MAX_TEXT", "FakeTelegram", "SentRecord", "UploadRecord",
           "utf16_len"]

DEFAULT_TOKEN = "123456789:AAFakeTokenForTests_abcdefghijklmnopq"
MAX_TEXT = 4096
MAX_BOT_DOWNLOAD = 20 * 1024 * 1024
"""getFile refuses bigger files: "For the moment, bots can download files of up to 20MB"."""
MAX_CAPTION = 1024
MAX_PHOTO = 10 * 1024 * 1024
MAX_UPLOAD = 50 * 1024 * 1024
_UPLOADS = {"sendPhoto": ("photo", "photos"), "sendDocument": ("document", "documents"),
            "sendVoice": ("voice", "voice"), "sendAudio": ("audio", "music")}
"""Method -> (the field that carries the file, the server's folder for it)."""
_TOKEN_SHAPE = re.compile(r"^\d+:[A-Za-z0-9_-]+$")
_SECRET_SHAPE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_COMMAND_SHAPE = re.compile(r"^[a-z0-9_]{1,32}$")
_MAX_COMMANDS = 100
_MAX_COMMAND_DESCRIPTION = 256
_CHAT_ACTIONS = frozenset({
    "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
    "upload_document", "choose_sticker", "find_location", "record_video_note",
    "upload_video_note",
})
_ERRORS = {
    400: "Bad Request: chat not found",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request; make sure that only one bot "
         "instance is running",
    500: "Internal Server Error",
}
"""Descriptions the Bot API gives with each error code (a scripted failure uses these)."""
_BAD_GATEWAY = ("<html><head><title>{status} Bad Gateway</title></head><body><center><h1>"
                "{status} Bad Gateway</h1></center><hr><center>nginx</center></body></html>")
"""What Telegram's nginx front end serves while the Bot API behind it is down (502-504)."""


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


class ApiError(Exception):
    def __init__(self, code: int, description: str, parameters: dict[str, Any] | None = None):
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters


@dataclass(frozen=True)
class SentRecord:
    """One message the bot sent (or edited), as the fake accepted it."""

    method: str
    chat_id: int
    message_id: int
    text: str
    """Visible text: HTML tags stripped and entities decoded, as the user sees it."""
    raw_text: str
    parse_mode: str | None
    thread_id: int | None
    reply_to_message_id: int | None
    ts: float
    """time.monotonic() when accepted."""


@dataclass(frozen=True)
class UploadRecord:
    """One file the bot sent, as the fake accepted it."""

    method: str
    chat_id: int
    message_id: int
    field: str
    """The multipart field (or parameter) that carried the file: ``photo``, ``voice``..."""
    filename: str
    content_type: str
    data: bytes
    caption: str | None
    thread_id: int | None
    reply_to_message_id: int | None


@dataclass(frozen=True)
class _StoredFile:
    file_id: str
    unique_id: str
    data: bytes
    size: int
    path: str


@dataclass(eq=False)
class _Poll:
    request: web.Request
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    conflict: bool = False
    dropped: bool = False


class FakeTelegram(FakePlatform):
    send_method = "sendMessage"

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        username: str = "pyclaw_test_bot",
        first_name: str = "pyclaw",
    ) -> None:
        super().__init__()
        self.token = token
        self.bot_user: dict[str, Any] = {
            "id": int(token.split(":", 1)[0]),
            "is_bot": True,
            "first_name": first_name,
            "username": username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
        self.updates: list[dict[str, Any]] = []
        self.send_latency = 0.0
        """Seconds sendMessage takes before it answers (a slow Bot API): what lets a test
        catch two senders racing for one message."""
        """Unconfirmed updates, oldest first (getUpdates with a higher offset drops them)."""
        self.sent: list[SentRecord] = []
        self.chat_actions: list[tuple[int, str, int | None, float]] = []
        self.requests: list[tuple[str, dict[str, Any]]] = []
        """(method as called, decoded parameters) for every authorised call."""
        self.webhook: dict[str, Any] = {"url": ""}
        self.commands: list[dict[str, str]] = []
        """The command menu as getMyCommands returns it."""
        self.command_sets: list[list[dict[str, str]]] = []
        """Every menu setMyCommands accepted, in order."""
        self.allowed_updates: list[str] | None = None
        self._update_ids = itertools.count(900_000_001)
        self._chats: dict[int, dict[str, Any]] = {}
        self._topics: set[tuple[int, int]] = set()
        self._messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._polls: set[_Poll] = set()
        self.peak_open_polls = 0
        """The most getUpdates long polls open at once for this token (their clients still
        connected): above 1, two pollers shared the token, which Telegram answers with 409."""
        self._drop_next_poll = False
        self._reject_entities = 0
        self._files: dict[str, _StoredFile] = {}
        """file_id -> the file; file paths are looked up through ``_paths``."""
        self._paths: dict[str, _StoredFile] = {}
        self._file_numbers = itertools.count(1)
        self.downloads: list[str] = []
        """The file_path of every file downloaded through the file route, in order."""
        self.uploads: list[UploadRecord] = []
        """Every file the bot sent, in order, with the bytes received."""
        methods: dict[str, Callable[[dict[str, Any]], Awaitable[Any]] | None] = {
            "getUpdates": None,  # needs the request itself, to hold or cut it
            "getMe": self._get_me,
            "getFile": self._get_file,
            "sendMessage": self._send_message,
            **{method: self._send_file for method in _UPLOADS},
            "editMessageText": self._edit_message_text,
            "deleteMessage": self._delete_message,
            "sendChatAction": self._send_chat_action,
            "getChat": self._get_chat,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "close": self._true,
            "logOut": self._true,
        }
        self._methods = {name.lower(): (name, impl) for name, impl in methods.items()}
        """Lower-cased method name -> (the API's spelling, handler)."""

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/bot{token}/{method}", self._dispatch)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)

    async def stop(self) -> None:
        for poll in self._polls:  # a held long poll would make shutdown wait for its timeout
            poll.dropped = True
            poll.wake.set()
        await super().stop()

    # ---- what a test does as "the platform" -------------------------------------------------

    @property
    def username(self) -> str:
        return str(self.bot_user["username"])

    @property
    def bot_id(self) -> int:
        return int(self.bot_user["id"])

    def add_chat(self, chat_id: int, kind: str = "private", *, title: str = "",
                 is_forum: bool = False) -> dict[str, Any]:
        """Register a chat the bot is in (private chats get a user-like name)."""
        chat: dict[str, Any] = {"id": chat_id, "type": kind}
        if kind == "private":
            chat.update(first_name=f"User{chat_id}", username=f"user{chat_id}")
        else:
            chat["title"] = title or f"Group {chat_id}"
        if is_forum:
            chat["is_forum"] = True
        self._chats[chat_id] = chat
        return chat

    def add_topic(self, chat_id: int, thread_id: int) -> None:
        self._topics.add((chat_id, thread_id))

    def user(self, user_id: int) -> dict[str, Any]:
        return {"id": user_id, "is_bot": False, "first_name": f"User{user_id}",
                "username": f"user{user_id}", "language_code": "en"}

    def mention_entities(self, text: str) -> list[dict[str, Any]]:
        """``mention`` entities for every @bot_username in ``text``, in UTF-16 units."""
        handle = f"@{self.username}"
        entities = []
        start = text.find(handle)
        while start >= 0:
            entities.append({"type": "mention", "offset": utf16_len(text[:start]),
                             "length": utf16_len(handle)})
            start = text.find(handle, start + len(handle))
        return entities

    def inject_message(
        self,
        chat_id: int,
        text: str | None = None,
        *,
        sender: int = 1,
        thread: int | None = None,
        entities: list[dict[str, Any]] | None = None,
        reply_to: int | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A user message as Telegram delivers it; returns the message object.

        Chats are created on first use (negative ids are supergroups; a
        ``thread`` makes the chat a forum and the message a topic message).
        """
        chat = self._chats.get(chat_id) or self.add_chat(
            chat_id, "private" if chat_id > 0 else "supergroup", is_forum=thread is not None
        )
        message: dict[str, Any] = {
            "message_id": self._next_message_id(chat_id),
            # In a private chat the sender is the chat's user.
            "from": self.user(chat_id if chat["type"] == "private" else sender),
            "chat": chat,
            "date": int(time.time()),
        }
        if thread is not None:
            self.add_topic(chat_id, thread)
            message["message_thread_id"] = thread
            message["is_topic_message"] = True
        if text is not None:
            message["text"] = text
            if entities:
                message["entities"] = entities
        if reply_to is not None:
            replied = self._messages.get((chat_id, reply_to))
            if replied is not None:
                message["reply_to_message"] = replied
        elif thread is not None:
            # Topic messages carry the topic's creation message as reply_to_message.
            message["reply_to_message"] = {
                "message_id": thread, "date": message["date"], "chat": chat,
                "from": self.user(sender),
                "forum_topic_created": {"name": f"Topic {thread}", "icon_color": 7322096},
                "message_thread_id": thread, "is_topic_message": True,
            }
        message.update(extra or {})
        self._messages[(chat_id, message["message_id"])] = message
        self.inject_update({"message": message})
        return message

    def add_file(self, data: bytes, *, folder: str = "documents", extension: str = "",
                 size: int | None = None) -> dict[str, Any]:
        """Hold ``data`` as an uploaded file; returns the fields every file object of a
        message carries. ``folder`` is the server's (``photos``, ``voice``, ``documents``);
        ``size`` makes the file claim another size (getFile judges by it, as Telegram
        judges by the real one), so a 25 MB file needs no 25 MB in memory."""
        number = next(self._file_numbers)
        file_id = f"AgAC{folder[:3]}{number:06d}Fake-{len(data)}"
        stored = _StoredFile(file_id, f"AQAD{number:06d}", data,
                             len(data) if size is None else size,
                             f"{folder}/file_{number}{extension}")
        self._files[file_id] = stored
        self._paths[stored.path] = stored
        return {"file_id": file_id, "file_unique_id": stored.unique_id,
                "file_size": stored.size}

    def inject_update(self, update: Mapping[str, Any]) -> dict[str, Any]:
        """Queue an update exactly as given, with a fresh update_id if it has none."""
        full = dict(update)
        full.setdefault("update_id", next(self._update_ids))
        kind = next((k for k in full if k != "update_id"), "")
        if self.allowed_updates and kind not in self.allowed_updates:
            return full  # Telegram never queues update types the bot opted out of
        self.updates.append(full)
        self._wake_polls()
        return full

    def redeliver(self, chat_id: int, message_id: int) -> dict[str, Any]:
        """Deliver a message again under a new update_id (as after a lost offset)."""
        return self.inject_update({"message": self._messages[(chat_id, message_id)]})

    def reject_entities_next_send(self) -> None:
        """Refuse the next HTML send with "can't parse entities", as Telegram does for nesting
        and entity rules this fake does not model."""
        self._reject_entities += 1

    async def drop_connection(self) -> None:
        """Cut the pending long poll mid-request; if none is pending, cut the next one."""
        pending = [p for p in self._polls if not p.dropped]
        if not pending:
            self._drop_next_poll = True
        for poll in pending:
            poll.dropped = True
            poll.wake.set()
        await asyncio.sleep(0)

    def edits(self, chat_id: int, message_id: int) -> list[str]:
        """Visible text after each accepted edit of one message, oldest first."""
        return [s.text for s in self.sent if s.method == "editMessageText"
                and (s.chat_id, s.message_id) == (chat_id, message_id)]

    def text_of(self, chat_id: int, message_id: int) -> str:
        """What the message shows now (after its latest edit)."""
        return str(self._messages[(chat_id, message_id)]["text"])

    def sent_to(self, chat_id: int | None = None) -> list[SentRecord]:
        return [s for s in self.sent
                if s.method == "sendMessage" and (chat_id is None or s.chat_id == chat_id)]

    async def post_webhook(self, url: str, update: Mapping[str, Any], *,
                           secret_token: str | None = None) -> int:
        """POST an update to ``url`` the way Telegram calls a webhook, with the secret token
        setWebhook registered (or ``secret_token`` instead); returns the HTTP status."""
        full = dict(update)
        full.setdefault("update_id", next(self._update_ids))
        headers = {"Content-Type": "application/json"}
        secret = secret_token or self.webhook.get("secret_token")
        if secret:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        async with aiohttp.ClientSession() as session, session.post(
            url, data=json.dumps(full).encode(), headers=headers
        ) as resp:
            return resp.status

    def message_update(self, chat_id: int, text: str, *, sender: int = 1) -> dict[str, Any]:
        """A message update built but not queued (for webhook delivery)."""
        chat = self._chats.get(chat_id) or self.add_chat(chat_id)
        message = {"message_id": self._next_message_id(chat_id), "from": self.user(sender),
                   "chat": chat, "date": int(time.time()), "text": text}
        self._messages[(chat_id, message["message_id"])] = message
        return {"update_id": next(self._update_ids), "message": message}

    # ---- HTTP ----------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        token, method = request.match_info["token"], request.match_info["method"]
        if not _TOKEN_SHAPE.match(token):
            return _error(404, "Not Found")
        if token != self.token:
            return _error(401, "Unauthorized")
        if method.lower() not in self._methods:
            return _error(404, "Not Found")
        name, impl = self._methods[method.lower()]
        try:
            params = await _read_params(request)
            self.requests.append((method, params))
            failure = await self.before(name)
            if failure is not None:
                return failure
            if impl is None:
                response = await self._long_poll(request, params)
            else:
                result = await impl({**params, "__method__": name})
                response = json_response(
                    {"ok": True, "result": result[0], "description": result[1]}
                    if isinstance(result, tuple)  # (result, description) like setWebhook's
                    else {"ok": True, "result": result})
        except ApiError as exc:
            return _error(exc.code, exc.description, exc.parameters)
        self.after(name, request)  # a scripted lost answer cuts the connection here
        return response

    def error_response(self, method: str, status: int, retry_after: float | None
                       ) -> web.StreamResponse:
        if status == 429:  # Telegram says whole seconds
            seconds = max(1, math.ceil(retry_after or 1))
            return _error(429, f"Too Many Requests: retry after {seconds}",
                          {"retry_after": seconds})
        if status in (502, 503, 504):
            return web.Response(status=status, content_type="text/html",
                                text=_BAD_GATEWAY.format(status=status))
        return _error(status, _ERRORS.get(status, f"Error {status}"))

    # ---- methods -------------------------------------------------------------------------

    async def _true(self, params: dict[str, Any]) -> bool:
        return True

    async def _get_me(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.bot_user

    async def _get_file(self, params: dict[str, Any]) -> dict[str, Any]:
        stored = self._files.get(_str(params, "file_id") or "")
        if stored is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        if stored.size > MAX_BOT_DOWNLOAD:
            raise ApiError(400, "Bad Request: file is too big")
        return {"file_id": stored.file_id, "file_unique_id": stored.unique_id,
                "file_size": stored.size, "file_path": stored.path}

    async def _download(self, request: web.Request) -> web.StreamResponse:
        """The file link getFile's ``file_path`` names (what the real server answers for a
        wrong token or path: a JSON error with 401 or 404)."""
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        stored = self._paths.get(request.match_info["path"])
        if stored is None:
            return _error(404, "Not Found")
        self.downloads.append(stored.path)
        return web.Response(body=stored.data, content_type="application/octet-stream")

    async def _long_poll(self, request: web.Request, params: dict[str, Any]) -> web.StreamResponse:
        if self.webhook["url"]:
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active; "
                                "use deleteWebhook to delete the webhook first")
        offset = _int(params, "offset")
        limit = min(max(_int(params, "limit") or 100, 1), 100)
        timeout = max(_int(params, "timeout") or 0, 0)
        allowed = _json(params, "allowed_updates")
        if isinstance(allowed, list):
            self.allowed_updates = [str(a) for a in allowed] or None
        if offset is not None:
            self._confirm(offset)
        for older in self._polls:  # a newer getUpdates terminates the older one
            older.conflict = True
            older.wake.set()
        poll = _Poll(request)
        self._polls.add(poll)
        open_polls = sum(1 for p in self._polls if _connected(p.request))
        self.peak_open_polls = max(self.peak_open_polls, open_polls)
        try:
            if self._drop_next_poll:
                self._drop_next_poll = False
                poll.dropped = True
            deadline = time.monotonic() + timeout
            while not (self.updates or poll.dropped or poll.conflict):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                poll.wake.clear()
                try:
                    await asyncio.wait_for(poll.wake.wait(), remaining)
                except TimeoutError:
                    break
            if poll.dropped:
                return _abort(request)
            if poll.conflict:
                raise ApiError(409, "Conflict: terminated by other getUpdates request; make sure "
                                    "that only one bot instance is running")
            return json_response({"ok": True, "result": self.updates[:limit]})
        finally:
            self._polls.discard(poll)

    def _confirm(self, offset: int) -> None:
        if offset > 0:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        elif offset < 0:
            self.updates = self.updates[offset:]

    async def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.send_latency:
            await asyncio.sleep(self.send_latency)
        chat = self._chat(params)
        text = _str(params, "text")
        parse_mode = _str(params, "parse_mode")
        visible = self._visible(text, parse_mode)
        thread = self._thread(chat, params)
        reply_to = self._reply_target(chat, params)
        message: dict[str, Any] = {
            "message_id": self._next_message_id(chat["id"]),
            "from": {k: self.bot_user[k] for k in ("id", "is_bot", "first_name", "username")},
            "chat": chat,
            "date": int(time.time()),
            "text": visible,
        }
        if thread is not None:
            message["message_thread_id"] = thread
            message["is_topic_message"] = True
        if reply_to is not None:
            message["reply_to_message"] = {
                k: v for k, v in self._messages[(chat["id"], reply_to)].items()
                if k != "reply_to_message"
            }
        self._messages[(chat["id"], message["message_id"])] = message
        self.sent.append(SentRecord("sendMessage", chat["id"], message["message_id"], visible,
                                    text or "", parse_mode, thread, reply_to, time.monotonic()))
        return message

    async def _send_file(self, params: dict[str, Any]) -> dict[str, Any]:
        """sendPhoto / sendDocument / sendVoice / sendAudio: the file from the request (an
        upload under the method's field, or a file_id the server holds), a Message back."""
        method = params["__method__"]
        field_name, folder = _UPLOADS[method]
        chat = self._chat(params)
        thread = self._thread(chat, params)
        reply_to = self._reply_target(chat, params)
        caption = _str(params, "caption")
        if caption is not None and len(caption) > MAX_CAPTION:
            raise ApiError(400, "Bad Request: message caption is too long")
        value = params.get(field_name)
        if isinstance(value, web.FileField):
            data = value.file.read()
            filename, content_type = value.filename, value.content_type
        elif isinstance(value, str) and value in self._files:
            known = self._files[value]
            data, filename, content_type = known.data, known.path.rsplit("/", 1)[-1], ""
        elif isinstance(value, str) and value.startswith(("http://", "https://")):
            raise ApiError(400, "Bad Request: failed to get HTTP URL content")
        elif isinstance(value, str) and value:
            raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        else:
            raise ApiError(400, f"Bad Request: there is no {field_name} in the request")
        if not data:
            raise ApiError(400, "Bad Request: file must be non-empty")
        if len(data) > (MAX_PHOTO if method == "sendPhoto" else MAX_UPLOAD):
            raise ApiError(413, "Request Entity Too Large")
        extension = "." + filename.rsplit(".", 1)[-1] if "." in filename else ""
        held = self.add_file(data, folder=folder, extension=extension)
        media: Any
        if method == "sendPhoto":
            media = [{**held, "width": 1, "height": 1}]
        elif method == "sendDocument":
            media = {**held, "file_name": filename, "mime_type": content_type
                     or "application/octet-stream"}
        else:
            media = {**held, "duration": 1, "mime_type": content_type or "audio/ogg"}
            if method == "sendAudio":
                media["file_name"] = filename
        message: dict[str, Any] = {
            "message_id": self._next_message_id(chat["id"]),
            "from": {k: self.bot_user[k] for k in ("id", "is_bot", "first_name", "username")},
            "chat": chat,
            "date": int(time.time()),
            field_name: media,
        }
        if caption:
            message["caption"] = caption
        if thread is not None:
            message["message_thread_id"] = thread
            message["is_topic_message"] = True
        if reply_to is not None:
            message["reply_to_message"] = {
                k: v for k, v in self._messages[(chat["id"], reply_to)].items()
                if k != "reply_to_message"
            }
        self._messages[(chat["id"], message["message_id"])] = message
        self.uploads.append(UploadRecord(method, chat["id"], message["message_id"], field_name,
                                         filename, content_type, data, caption, thread,
                                         reply_to))
        return message

    async def _edit_message_text(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat(params)
        message_id = _int(params, "message_id")
        message = self._messages.get((chat["id"], message_id or 0))
        if message is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        if message["from"].get("id") != self.bot_id or "text" not in message:
            raise ApiError(400, "Bad Request: message can't be edited")
        text, parse_mode = _str(params, "text"), _str(params, "parse_mode")
        visible = self._visible(text, parse_mode)
        if visible == message.get("text"):
            raise ApiError(400, "Bad Request: message is not modified: specified new message "
                                "content and reply markup are exactly the same as a current "
                                "content and reply markup of the message")
        message.update(text=visible, edit_date=int(time.time()))
        self.sent.append(SentRecord("editMessageText", chat["id"], message["message_id"], visible,
                                    text or "", parse_mode, message.get("message_thread_id"),
                                    None, time.monotonic()))
        return message

    async def _delete_message(self, params: dict[str, Any]) -> bool:
        chat = self._chat(params)
        if self._messages.pop((chat["id"], _int(params, "message_id") or 0), None) is None:
            raise ApiError(400, "Bad Request: message to delete not found")
        return True

    async def _send_chat_action(self, params: dict[str, Any]) -> bool:
        chat = self._chat(params)
        action = _str(params, "action")
        if action not in _CHAT_ACTIONS:
            raise ApiError(400, "Bad Request: wrong parameter action in request")
        thread = self._thread(chat, params)
        self.chat_actions.append((chat["id"], action, thread, time.monotonic()))
        return True

    async def _get_chat(self, params: dict[str, Any]) -> dict[str, Any]:
        return {**self._chat(params), "accent_color_id": 0, "max_reaction_count": 11}

    async def _set_webhook(self, params: dict[str, Any]) -> tuple[bool, str]:
        url = _str(params, "url") or ""
        if url and not url.startswith("https://"):
            raise ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for "
                                "webhook")
        secret = _str(params, "secret_token")
        if secret is not None and not _SECRET_SHAPE.match(secret):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        if _bool(params, "drop_pending_updates"):
            self.updates.clear()
        allowed = _json(params, "allowed_updates")
        if isinstance(allowed, list):
            self.allowed_updates = [str(a) for a in allowed] or None
        self.webhook = {"url": url, "secret_token": secret}
        return True, "Webhook was set" if url else "Webhook was deleted"

    async def _delete_webhook(self, params: dict[str, Any]) -> tuple[bool, str]:
        if _bool(params, "drop_pending_updates"):
            self.updates.clear()
        was_set = bool(self.webhook["url"])
        self.webhook = {"url": ""}
        return True, "Webhook was deleted" if was_set else "Webhook is already deleted"

    async def _get_webhook_info(self, params: dict[str, Any]) -> dict[str, Any]:
        info: dict[str, Any] = {"url": self.webhook["url"], "has_custom_certificate": False,
                                "pending_update_count": len(self.updates)}
        if self.webhook["url"]:
            info["max_connections"] = 40
            if self.allowed_updates:
                info["allowed_updates"] = self.allowed_updates
        return info

    async def _set_my_commands(self, params: dict[str, Any]) -> bool:
        commands = _json(params, "commands")
        if not isinstance(commands, list):
            raise ApiError(400, "Bad Request: commands must be an array")
        if len(commands) > _MAX_COMMANDS:
            raise ApiError(400, "Bad Request: BOT_COMMANDS_TOO_MUCH")
        for command in commands:
            if not isinstance(command, dict):
                raise ApiError(400, "Bad Request: can't parse BotCommand: Object expected")
            for name in ("command", "description"):
                if not isinstance(command.get(name), str):
                    raise ApiError(400, f"Bad Request: can't parse BotCommand: Can't find "
                                        f"field \"{name}\"")
            if not _COMMAND_SHAPE.match(command["command"]):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not command["description"].strip():
                raise ApiError(400, "Bad Request: command description must be non-empty")
            if len(command["description"]) > _MAX_COMMAND_DESCRIPTION:
                raise ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
        self.commands = [{"command": c["command"], "description": c["description"]}
                         for c in commands]
        self.command_sets.append(list(self.commands))
        return True

    async def _get_my_commands(self, params: dict[str, Any]) -> list[dict[str, str]]:
        return self.commands

    async def _delete_my_commands(self, params: dict[str, Any]) -> bool:
        self.commands = []
        return True

    # ---- helpers -------------------------------------------------------------------------

    def _next_message_id(self, chat_id: int) -> int:
        return next(self._message_ids.setdefault(chat_id, itertools.count(1)))

    def _wake_polls(self) -> None:
        for poll in self._polls:
            poll.wake.set()

    def _chat(self, params: dict[str, Any]) -> dict[str, Any]:
        raw = params.get("chat_id")
        if raw is None or raw == "":
            raise ApiError(400, "Bad Request: chat_id is empty")
        try:
            chat_id = int(raw)
        except (TypeError, ValueError):
            raise ApiError(400, "Bad Request: chat not found") from None
        chat = self._chats.get(chat_id)
        if chat is None:
            raise ApiError(400, "Bad Request: chat not found")
        return chat

    def _thread(self, chat: dict[str, Any], params: dict[str, Any]) -> int | None:
        thread = _int(params, "message_thread_id")
        if thread is not None and (chat["id"], thread) not in self._topics:
            raise ApiError(400, "Bad Request: message thread not found")
        return thread

    def _reply_target(self, chat: dict[str, Any], params: dict[str, Any]) -> int | None:
        reply = _json(params, "reply_parameters")
        if isinstance(reply, dict):
            message_id = reply.get("message_id")
            allow = bool(reply.get("allow_sending_without_reply"))
            if reply.get("chat_id") not in (None, chat["id"]):
                raise ApiError(400, "Bad Request: cross-chat replies are not supported by the fake")
        else:
            message_id = _int(params, "reply_to_message_id")
            allow = _bool(params, "allow_sending_without_reply")
        if message_id is None:
            return None
        if (chat["id"], message_id) not in self._messages:
            if allow:
                return None
            raise ApiError(400, "Bad Request: message to be replied not found")
        return int(message_id)

    def _visible(self, text: str | None, parse_mode: str | None) -> str:
        if not text:
            raise ApiError(400, "Bad Request: message text is empty")
        mode = (parse_mode or "").lower()
        if mode == "html" and self._reject_entities:
            self._reject_entities -= 1
            raise ApiError(400, "Bad Request: can't parse entities: Can't find end of the entity "
                                "starting at byte offset 0")
        if mode == "html":
            try:
                visible = visible_text(text)
            except HtmlParseError as exc:
                raise ApiError(400, f"Bad Request: can't parse entities: {exc}") from None
        elif mode in ("", "markdown", "markdownv2"):
            visible = text  # markdown modes are passed through unchecked by this fake
        else:
            raise ApiError(400, "Bad Request: unsupported parse_mode")
        if not visible.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if utf16_len(visible) > MAX_TEXT:
            raise ApiError(400, "Bad Request: message is too long")
        return visible


def _error(code: int, description: str, parameters: dict[str, Any] | None = None
           ) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return json_response(body, status=code)


def _connected(request: web.Request) -> bool:
    """Whether the client of ``request`` still holds its connection (a cancelled poll's
    client closed it, even if our handler still waits)."""
    return request.transport is not None and not request.transport.is_closing()


def _abort(request: web.Request) -> web.Response:
    """Close the TCP connection without answering, like a network fault mid-request."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=500)


async def _read_params(request: web.Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query)
    if request.method == "GET" or not request.can_read_body:
        return params
    ctype = request.content_type
    if ctype == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, "Bad Request: can't parse JSON") from None
        if isinstance(body, dict):
            params.update(body)
    elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()  # uploaded files stay FileFields, under their field names
        params.update({k: v for k, v in form.items() if isinstance(v, str | web.FileField)})
    return params


def _json(params: dict[str, Any], name: str) -> Any:
    value = params.get(name)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise ApiError(400, f"Bad Request: can't parse {name} JSON object") from None
    return value


def _int(params: dict[str, Any], name: str) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ApiError(400, f"Bad Request: invalid {name} specified")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(400, f"Bad Request: invalid {name} specified") from None


def _str(params: dict[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value)


def _bool(params: dict[str, Any], name: str) -> bool:
    value = params.get(name)
    if isinstance(value, str):
        return value.lower() in ("true", "1")
    return bool(value)
