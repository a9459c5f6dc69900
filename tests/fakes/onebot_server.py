"""A OneBot v11 bridge (NapCat / go-cqhttp style) on 127.0.0.1: the forward WebSocket.

Written from ``botuniverse/onebot-11`` (commit d4456ee): ``communication/ws.md`` (the
endpoints ``/``, ``/api``, ``/event``; calls ``{action, params, echo}`` answered ``{status,
retcode, data, echo}``; 1400/1404 on the socket), ``authorization.md`` (the token as
``Authorization: Bearer`` or ``?access_token=``), ``event/message.md`` and ``event/meta.md``
(message events; the lifecycle ``connect`` event on connecting; heartbeat events with
``interval`` in ms and ``status``), ``api/public.md`` (send_private_msg, send_group_msg,
send_msg, delete_msg, get_msg, get_login_info, get_status; and ``get_image`` /
``get_record``: ``{file}`` answered with ``file``, a path on the bridge's
disk; NapCat also answers ``url``, ``file_size``, ``file_name`` and ``get_file`` for other
files, go-cqhttp ``url`` for pictures) and ``message/*.md`` (segments; the string format with
CQ codes and its escaping, written here on its own so the connector's parser is checked
against an independent encoder).

Two flavours, as the two common bridges behave (their sources were read for this):

- ``gocq`` — go-cqhttp (server/http.go ``checkAuth``): a missing token is answered 401 and a
  wrong one 403 before the WebSocket upgrade; failed actions are ``retcode 100`` with a code
  in ``msg`` (``GROUP_NOT_FOUND``, ``SEND_MSG_API_ERROR``) and words in ``wording``.
- ``napcat`` — NapCat (network/websocket-server.ts ``authorize``): the socket is upgraded,
  then ``{"status": "failed", "retcode": 1403, "message": "token验证失败"}`` is sent without an
  echo and the socket closed; an action that throws is ``retcode 1200`` with its error in
  ``message``/``wording``, a bad request ``1400``.

Like both bridges, events go only to clients connected at that moment: a message that comes
while no client is connected is lost (counted in ``dropped``); OneBot has no replay.

User side: :meth:`push_private`, :meth:`push_group`, :meth:`push_again`, :meth:`push_raw`;
what the bot sent is :attr:`outbox`. Media: :meth:`add_media` stores a file the bridge
serves at ``/files/<name>`` over HTTP on its own port (:attr:`downloads` records each
fetch); ``media_urls`` False answers the spec's bare path only. Faults: :meth:`fail_next`
(``error`` a failure the bridge reports, ``refuse`` a 1400, ``lose`` carried out and the
socket cut before the answer, ``timeout`` NapCat's Timeout after QQ took the message),
:meth:`drop` (cut every socket), :meth:`freeze` (keep sockets open but send and answer
nothing: a dead link).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import ssl
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import WSMsgType, web

from pyclaw_app.channels import utf16_len
from tests.fakes.server import FakeServer

__all__ = ["OneBotServer", "Sent", "at", "cq_string", "image", "reply", "text"]

Flavor = Literal["gocq", "napcat"]
MAX_TEXT = 4500
"""The fake's limit on one message's text (mirai's documented 4500 characters)."""
SEND_ACTIONS = ("send_private_msg", "send_group_msg", "send_msg")


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "data": {"text": value}}


def at(qq: int | str, name: str | None = None) -> dict[str, Any]:
    """An ``at`` segment. NapCat and go-cqhttp send ``qq`` alone; a bridge may add the
    member's display name as ``name`` (the connector shows it when it is there)."""
    data: dict[str, Any] = {"qq": str(qq)}
    if name is not None:
        data["name"] = name
    return {"type": "at", "data": data}


def reply(message_id: int | str) -> dict[str, Any]:
    return {"type": "reply", "data": {"id": str(message_id)}}


def image(file: str, url: str, size: int = 48213) -> dict[str, Any]:
    return {"type": "image", "data": {"file": file, "url": url, "file_size": str(size)}}


def _escape(value: str, *, param: bool) -> str:
    value = value.replace("&", "&amp;").replace("[", "&#91;").replace("]", "&#93;")
    return value.replace(",", "&#44;") if param else value


def cq_string(segments: list[dict[str, Any]]) -> str:
    """The string format of a segment array (``message/string.md``)."""
    out = []
    for seg in segments:
        data = seg.get("data") or {}
        if seg["type"] == "text":
            out.append(_escape(str(data.get("text", "")), param=False))
        else:
            params = "".join(f",{k}={_escape(str(v), param=True)}" for k, v in data.items())
            out.append(f"[CQ:{seg['type']}{params}]")
    return "".join(out)


@dataclass(frozen=True)
class Sent:
    """One message the bot sent, as the bridge carried it out."""

    chat: str  # "private:<user_id>" or "group:<group_id>"
    message_id: int
    segments: list[dict[str, Any]]
    ts: float

    @property
    def text(self) -> str:
        return "".join(str(s["data"].get("text", "")) for s in self.segments
                       if s.get("type") == "text")

    @property
    def reply_to(self) -> str | None:
        return next((str(s["data"].get("id")) for s in self.segments
                     if s.get("type") == "reply"), None)


@dataclass
class _Client:
    ws: web.WebSocketResponse
    request: web.Request
    events: bool
    api: bool
    gone: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class _Rule:
    mode: str
    skip: int = 0


@dataclass
class _Stored:
    message_type: str
    chat: str
    user_id: int
    nickname: str
    segments: list[dict[str, Any]]
    time: int
    event: dict[str, Any] | None = field(default=None)


class OneBotServer(FakeServer):
    def __init__(self, *, self_id: int = 3_000_000_001, nickname: str = "Pyclaw Bot",
                 token: str = "", flavor: Flavor = "napcat",
                 message_format: Literal["array", "string"] = "array",
                 heartbeat_ms: int = 1000, groups: tuple[int, ...] = (),
                 tls: ssl.SSLContext | None = None) -> None:
        super().__init__()
        self.tls = tls
        self.self_id = self_id
        self.nickname = nickname
        self.token = token
        self.flavor: Flavor = flavor
        self.message_format = message_format
        self.heartbeat_ms = heartbeat_ms
        self.groups = set(groups)
        self.clients: list[_Client] = []
        self.outbox: list[Sent] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.refused: list[int] = []
        """HTTP status (or 1403 in-band) of each refused connection."""
        self.dropped = 0
        self.frozen = False
        self.beats = 0
        """Heartbeat events sent to at least one client."""
        self.account_online = True
        """What heartbeats say of the QQ account (NapCat reports a logged-out account)."""
        self.deleted: set[int] = set()
        self._messages: dict[int, _Stored] = {}
        self._ids = itertools.count(1_800_000_000 % 2**31)
        self._rules: dict[str, list[_Rule]] = {}
        self._beat: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._media: dict[str, bytes] = {}
        self.media_urls = True
        """False: get_image/get_record/get_file answer only ``file``, a local path (the
        spec's answer, without the url the bridges add)."""
        self.downloads: list[tuple[str, str | None]] = []
        """(file name, Authorization header) of each HTTP download from the bridge."""

    # ---- server -------------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        for path in ("/", "/api", "/api/", "/event", "/event/"):
            app.router.add_get(path, self._socket)
        app.router.add_get("/files/{name}", self._file)

    @property
    def ws_url(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://127.0.0.1:{self.port}/"

    async def start(self) -> str:
        if self.tls is None:
            url = await super().start()
        else:  # the same as FakeServer.start, on a TLS socket
            self.routes(self.app)
            self._runner = web.AppRunner(self.app, handle_signals=False, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.tls)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            url = self.ws_url
        self._beat = asyncio.create_task(self._heartbeats(), name="onebot-fake:heartbeat")
        return url

    async def stop(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
        for task in list(self._tasks):
            task.cancel()
        for client in list(self.clients):
            await client.ws.close()
        await super().stop()

    def _token_of(self, request: web.Request) -> str:
        """go-cqhttp reads the header first, NapCat the query first; both accept either."""
        header = request.headers.get("Authorization", "")
        header = header.split(" ", 1)[1] if " " in header else header
        query = request.query.get("access_token", "")
        return (header or query) if self.flavor == "gocq" else (query or header)

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        given = self._token_of(request)
        if self.token and given != self.token and self.flavor == "gocq":
            status = 401 if not given else 403
            self.refused.append(status)
            return web.Response(status=status)
        ws = web.WebSocketResponse(autoping=True, max_msg_size=64 * 1024 * 1024)
        await ws.prepare(request)
        if self.token and given != self.token:
            self.refused.append(1403)
            await ws.send_str(json.dumps({"status": "failed", "retcode": 1403, "data": None,
                                          "message": "token验证失败", "wording": "token验证失败",
                                          "echo": None}))
            await ws.close()
            return ws
        # go-cqhttp reads no calls on /event; NapCat treats every path but /api as universal
        path = request.path.rstrip("/")
        client = _Client(ws, request, events=path != "/api",
                         api=path != "/event" or self.flavor == "napcat")
        self.clients.append(client)
        if client.events:
            await ws.send_str(json.dumps(self.event_base("meta_event") | {
                "meta_event_type": "lifecycle", "sub_type": "connect"}))
            self._connected.set()
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT and client.api and not self.frozen:
                    task = asyncio.create_task(self._call(client, msg.data))
                    self._tasks.add(task)  # answered concurrently, as both bridges do
                    task.add_done_callback(self._tasks.discard)
        finally:
            if client in self.clients:
                self.clients.remove(client)
            if not any(c.events for c in self.clients):
                self._connected.clear()
            client.gone.set()
        return ws

    def _event_clients(self) -> list[_Client]:
        return [c for c in self.clients if c.events]

    async def wait_client(self, timeout: float = 20.0) -> None:
        """Until a client receives events (a user can only be heard by a connected bot)."""
        await asyncio.wait_for(self._connected.wait(), timeout)

    def event_base(self, post_type: str) -> dict[str, Any]:
        return {"time": int(time.time()), "self_id": self.self_id, "post_type": post_type}

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_ms / 1000 if self.heartbeat_ms > 0 else 3600)
            if self.heartbeat_ms > 0 and not self.frozen and await self._broadcast(
                    self.event_base("meta_event") | {
                        "meta_event_type": "heartbeat", "interval": self.heartbeat_ms,
                        "status": {"online": self.account_online, "good": True}}):
                self.beats += 1

    async def _broadcast(self, event: dict[str, Any]) -> bool:
        targets = self._event_clients()
        for client in targets:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await client.ws.send_str(json.dumps(event))
        return bool(targets)

    # ---- API ----------------------------------------------------------------------------------

    def _answer(self, data: Any = None, *, retcode: int = 0, words: str = "",
                code: str = "") -> dict[str, Any]:
        if retcode == 0:
            return {"status": "ok", "retcode": 0, "data": data, "message": "", "wording": ""}
        if self.flavor == "gocq":
            return {"status": "failed", "retcode": retcode, "data": None,
                    "msg": code, "wording": words, "message": words}
        return {"status": "failed", "retcode": retcode, "data": None, "message": words,
                "wording": words}

    def _failed(self, code: str, words: str) -> dict[str, Any]:
        """An action that failed inside the bridge: go-cqhttp 100, NapCat 1200."""
        return self._answer(retcode=100 if self.flavor == "gocq" else 1200, code=code,
                            words=words)

    def fail_next(self, kind: str, mode: str, *, skip: int = 0) -> None:
        """Script the next call of ``kind`` ("send" for any send action, else an action
        name) after ``skip`` good ones: ``error``, ``refuse``, ``lose`` or ``timeout``."""
        self._rules.setdefault(kind, []).append(_Rule(mode, skip))

    def _rule(self, kind: str) -> str | None:
        rules = self._rules.get(kind, [])
        if not rules:
            return None
        if rules[0].skip:
            rules[0].skip -= 1
            return None
        return rules.pop(0).mode

    async def _call(self, client: _Client, raw: str) -> None:
        try:
            frame = json.loads(raw)
        except ValueError:
            await self._reply(client, self._answer(retcode=1400, words="json解析失败"), None)
            return
        if not isinstance(frame, dict):
            await self._reply(client, self._answer(retcode=1400, words="bad request"), None)
            return
        action, echo = str(frame.get("action", "")), frame.get("echo")
        params = frame.get("params") if isinstance(frame.get("params"), dict) else {}
        self.calls.append((action, params))
        handler = {"get_login_info": self._login_info, "get_status": self._status,
                   "get_msg": self._get_msg, "delete_msg": self._delete_msg,
                   **dict.fromkeys(("get_image", "get_record", "get_file"), self._get_media),
                   **dict.fromkeys(SEND_ACTIONS, self._send)}.get(action)
        if handler is None:
            await self._reply(client, self._answer(retcode=1404, code="API_NOT_FOUND",
                                                   words=f"不支持的API {action}"), echo)
            return
        mode = self._rule("send" if action in SEND_ACTIONS else action)
        if mode == "error":
            await self._reply(client, self._failed("SEND_MSG_API_ERROR", "发送消息失败"), echo)
            return
        if mode == "refuse":
            await self._reply(client, self._answer(retcode=1400, code="BAD_REQUEST",
                                                   words="参数错误"), echo)
            return
        answer = handler(action, params)
        if mode == "lose":
            transport = client.request.transport
            if transport is not None:
                transport.abort()
            return
        if mode == "timeout" and answer["status"] == "ok":
            answer = self._failed("SEND_MSG_API_ERROR", "Timeout: NTEvent serviceAndMethod:"
                                  "NodeIKernelMsgService/sendMsg")
        await self._reply(client, answer, echo)

    async def _reply(self, client: _Client, answer: dict[str, Any], echo: Any) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await client.ws.send_str(json.dumps(answer | {"echo": echo}))

    def _login_info(self, _action: str, _params: dict[str, Any]) -> dict[str, Any]:
        return self._answer({"user_id": self.self_id, "nickname": self.nickname})

    def add_media(self, name: str, data: bytes) -> str:
        """A file the bridge received (its ``file`` name); returns its download URL."""
        self._media[name] = data
        return self.media_url(name)

    def media_url(self, name: str) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/files/{name}"

    def _get_media(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        name = params.get("file")
        if not isinstance(name, str) or not name:
            return self._answer(retcode=1400, code="BAD_REQUEST", words="file 不能为空")
        if action == "get_record" and not isinstance(params.get("out_format"), str):
            return self._answer(retcode=1400, code="BAD_REQUEST", words="out_format 不能为空")
        data = self._media.get(name)
        if data is None:
            return self._failed("FILE_NOT_FOUND", f"文件{name}不存在")
        answer: dict[str, Any] = {"file": f"/root/.config/QQ/NapCat/temp/{name}"}
        if self.media_urls:
            answer |= {"url": self.media_url(name), "file_size": str(len(data)),
                       "file_name": name}
        return self._answer(answer)

    async def _file(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.downloads.append((name, request.headers.get("Authorization")))
        data = self._media.get(name)
        if data is None:
            return web.Response(status=404)
        return web.Response(body=data, content_type="application/octet-stream")

    def _status(self, _action: str, _params: dict[str, Any]) -> dict[str, Any]:
        return self._answer({"online": self.account_online, "good": self.account_online})

    @staticmethod
    def _int(value: Any) -> int | None:
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.isdigit():
            return int(value)
        return None

    def _send(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        kind = {"send_private_msg": "private", "send_group_msg": "group"}.get(action) \
            or params.get("message_type") or ("group" if "group_id" in params else "private")
        target = self._int(params.get("group_id" if kind == "group" else "user_id"))
        message = params.get("message")
        if target is None or not isinstance(message, str | list | dict):
            return self._answer(retcode=1400, code="BAD_REQUEST", words="参数错误")
        if kind == "group" and target not in self.groups:
            return self._answer(retcode=100 if self.flavor == "gocq" else 1200,
                                code="GROUP_NOT_FOUND", words="群聊不存在")
        # the connector sends segment arrays; a string is kept as one text segment (this
        # fake does not read CQ codes in what it is sent)
        segments = [text(message)] if isinstance(message, str) \
            else [message] if isinstance(message, dict) else message
        body = "".join(str((s.get("data") or {}).get("text", "")) for s in segments
                       if isinstance(s, dict) and s.get("type") == "text")
        if not segments:
            return self._failed("EMPTY_MSG_ERROR", "消息为空")
        if utf16_len(body) > MAX_TEXT:
            return self._failed("SEND_MSG_API_ERROR", "消息过长")
        message_id = next(self._ids)
        chat = f"{kind}:{target}"
        self._messages[message_id] = _Stored(kind, chat, self.self_id, self.nickname,
                                             segments, int(time.time()))
        self.outbox.append(Sent(chat, message_id, segments, time.monotonic()))
        return self._answer({"message_id": message_id})

    def _get_msg(self, _action: str, params: dict[str, Any]) -> dict[str, Any]:
        message_id = self._int(params.get("message_id"))
        stored = self._messages.get(message_id) if message_id is not None else None
        if stored is None or message_id in self.deleted:
            return self._failed("MSG_NOT_FOUND", "消息不存在")
        return self._answer({"time": stored.time, "message_type": stored.message_type,
                             "message_id": message_id, "real_id": message_id,
                             "sender": {"user_id": stored.user_id,
                                        "nickname": stored.nickname},
                             "message": self._format(stored.segments)})

    def _delete_msg(self, _action: str, params: dict[str, Any]) -> dict[str, Any]:
        message_id = self._int(params.get("message_id"))
        if message_id not in self._messages:
            return self._failed("MSG_NOT_FOUND", "消息不存在")
        self.deleted.add(message_id)
        return self._answer(None)

    # ---- the user side ------------------------------------------------------------------------

    def _format(self, segments: list[dict[str, Any]]) -> Any:
        return cq_string(segments) if self.message_format == "string" else segments

    async def _push_message(self, message_type: str, chat: str, user_id: int,
                            segments: list[dict[str, Any]], extra: dict[str, Any],
                            sender: dict[str, Any]) -> int:
        message_id = next(self._ids)
        event = self.event_base("message") | {
            "message_type": message_type, "message_id": message_id, "user_id": user_id,
            "message": self._format(segments), "raw_message": cq_string(segments),
            "font": 0, "sender": {"user_id": user_id, **sender}} | extra
        self._messages[message_id] = _Stored(message_type, chat, user_id,
                                             str(sender.get("nickname", "")), segments,
                                             event["time"], event)
        await self.push_raw(event)
        return message_id

    async def push_private(self, user_id: int, segments: list[dict[str, Any]], *,
                           nickname: str = "Alice") -> int:
        """A friend's private message; returns its message_id."""
        return await self._push_message("private", f"private:{user_id}", user_id, segments,
                                        {"sub_type": "friend", "target_id": self.self_id},
                                        {"nickname": nickname, "sex": "unknown", "age": 0})

    async def push_group(self, group_id: int, user_id: int, segments: list[dict[str, Any]],
                         *, nickname: str = "Alice", card: str = "",
                         bot_is_member: bool = True) -> int:
        """A member's group message; returns its message_id. ``bot_is_member`` False: a
        group the account has left since (a send to it is refused)."""
        if bot_is_member:
            self.groups.add(group_id)
        return await self._push_message(
            "group", f"group:{group_id}", user_id, segments,
            {"sub_type": "normal", "group_id": group_id, "anonymous": None},
            {"nickname": nickname, "card": card, "role": "member"})

    async def push_again(self, message_id: int) -> None:
        """The same event once more (a bridge pushing a message twice)."""
        event = self._messages[message_id].event
        assert event is not None, "only pushed messages can be pushed again"
        await self.push_raw(event)

    async def push_raw(self, event: dict[str, Any]) -> None:
        if self.frozen or not await self._broadcast(event):
            self.dropped += 1

    def sent(self, chat: str | None = None) -> list[Sent]:
        return [s for s in self.outbox if chat is None or s.chat == chat]

    async def drop(self) -> None:
        """Cut every socket, as a network fault (or a bridge restart) would; returns once the
        bridge has noticed (from then on it drops events until a client connects again)."""
        gone = list(self.clients)
        for client in gone:
            transport = client.request.transport
            if transport is not None:
                transport.abort()
        for client in gone:
            await client.gone.wait()

    def freeze(self, frozen: bool = True) -> None:
        self.frozen = frozen

