"""A fake DingTalk on 127.0.0.1: Stream mode, access tokens, robot sends, session webhooks.

Written from DingTalk's published protocol and API pages, not from what our connector sends:

* Stream mode (open-dingtalk/developerpedia ``docs/learn/stream/protocol.md``): ``POST
  /v1.0/gateway/connections/open`` with ``{clientId, clientSecret, subscriptions, ua}``
  answers ``{endpoint, ticket}`` (401 ``authFailed`` for wrong credentials, as the real
  gateway answers); a ticket opens one WebSocket at ``endpoint?ticket=`` within 90 s.
  Frames are ``{specVersion, type, headers{appId, connectionId, contentType, messageId,
  time, topic}, data}`` with ``data`` a JSON string; acks are ``{code, headers{messageId,
  contentType}, message, data}``. SYSTEM ``ping`` frames expect their ``opaque`` back;
  :meth:`DingTalkFake.disconnect` sends SYSTEM ``disconnect`` and closes the socket after
  ``disconnect_grace`` seconds (DingTalk: 10). A CALLBACK that was not acked when its
  connection ended is pushed again on the next one (``redeliver_unacked``; DingTalk
  documents this for events and calls robot messages fire-and-forget, where a repeat
  comes only from network jitter: :meth:`redeliver` is that repeat). A push made while
  no connection is open waits for the next one (DingTalk shows the robot's off-duty
  prompt once nobody is connected for a while; not modelled).
* Robot messages ("Receive messages", receive-message): single chats (``conversationType``
  "1") and groups ("2", only messages that @mention the robot, ``isInAtList``; the
  mention is cut from ``text.content``, a leading space remains), with a session webhook
  per conversation, valid ``session_ttl`` seconds (DingTalk: about 90 minutes).
* ``POST /v1.0/oauth2/accessToken`` ``{appKey, appSecret}`` -> ``{accessToken, expireIn}``
  (400 ``invalidClientIdOrSecret``); ``POST /v1.0/robot/oToMessages/batchSend`` and
  ``/v1.0/robot/groupMessages/send`` with ``x-acs-dingtalk-access-token`` (401
  ``InvalidAuthentication``), ``robotCode``, ``msgKey`` ``sampleText``/``sampleMarkdown``
  and ``msgParam`` (a JSON string, at most 15,000 bytes), answering ``processQueryKey``;
  unknown users come back in ``invalidStaffIdList``.
* ``POST /v1.0/robot/messageFiles/download`` ``{downloadCode, robotCode}`` with the token
  ("Download the file content of the robot receiving message",
  open.dingtalk.com/document/orgapp/download-the-file-content-of-the-robot-receiving-message)
  answers ``{downloadUrl}``, a temporary link the file is fetched from with no token (the
  link ends in ``.file`` whatever the type, as DingTalk's note on it says); a code it does
  not know is the OpenAPI's 400 refusal. :meth:`DingTalkFake.add_file` makes a code.
* ``POST /robot/sendBySession?session=`` (old API: HTTP 200 with ``errcode``): 0 ok,
  300001 for an unknown or expired session, 40035 for a bad body.
* Scripted faults (:class:`FakePlatform`) apply to every send path alike ("send"), each
  answered in its API's own form: a rate limit is the OpenAPI's 403
  ``Forbidden.AccessDenied.QpsLimitForAppkeyAndApi`` or the old API's errcode 90018 (the
  per-app per-second throttle, "sleep 1 second"; DingTalk names no wait, so a scripted
  ``retry_after`` is not on the wire), a 5xx is ``ServiceUnavailable`` / errcode -1, a
  refusal ``invalidParameter.param.invalid`` / errcode 40035.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import WSMsgType, web

from tests.fakes.platform import FakePlatform
from tests.fakes.server import json_response

__all__ = ["MAX_MSG_PARAM", "DingTalkFake", "FakeUser", "Sent"]

ROBOT_TOPIC = "/v1.0/im/bot/messages/get"
MAX_MSG_PARAM = 15000
MAX_WEBHOOK_TEXT = 20000
TICKET_TTL = 90.0
_FORMAT: contextvars.ContextVar[str] = contextvars.ContextVar("dingtalk_format", default="openapi")
"""Which API generation a scripted failure must look like, set by the handler answering."""


@dataclass(frozen=True)
class FakeUser:
    staff_id: str
    sender_id: str
    nick: str
    conversation_id: str
    """Their single chat with the robot."""


@dataclass(frozen=True)
class Sent:
    """One message the robot sent, as the user reads it."""

    chat: str
    """The user's staff id for a single chat, the conversation id for a group."""
    text: str
    via: Literal["session", "oto", "group"]
    msgtype: str
    title: str
    monotonic: float


@dataclass
class _Push:
    frame: dict[str, Any]
    raw: str

    @property
    def message_id(self) -> str:
        return str(self.frame["headers"]["messageId"])


@dataclass
class _Conn:
    ws: web.WebSocketResponse
    request: web.Request
    id: str
    inflight: dict[str, _Push] = field(default_factory=dict)
    draining: bool = False


def _error(status: int, code: str, message: str) -> web.Response:
    return json_response({"code": code, "message": message,
                          "requestid": uuid.uuid4().hex.upper()}, status=status)


def _old_error(errcode: int, errmsg: str) -> web.Response:
    return json_response({"errcode": errcode, "errmsg": errmsg})


class DingTalkFake(FakePlatform):
    send_method = "send"

    def __init__(self, *, client_id: str = "dingfakeclientid0001",
                 client_secret: str = "fake-client-secret-0001", session_ttl: float = 5400.0,
                 disconnect_grace: float = 0.2, redeliver_unacked: bool = True) -> None:
        super().__init__()
        self.client_id = client_id
        self.client_secret = client_secret
        self.robot_code = client_id
        self.corp_id = "dingfakecorp"
        self.app_id = str(uuid.uuid4())
        self.session_ttl = session_ttl
        self.disconnect_grace = disconnect_grace
        self.redeliver_unacked = redeliver_unacked
        self.sent: list[Sent] = []
        self.acks: list[dict[str, Any]] = []
        self.bad_acks: list[str] = []
        self.pongs: list[str] = []
        self.connections = 0
        self.subscriptions: list[Any] = []
        self.tokens_issued = 0
        self._users: dict[str, FakeUser] = {}
        self._groups: dict[str, set[str]] = {}
        self._sessions: dict[str, tuple[str, bool, float]] = {}
        """session -> (chat as the robot addresses it, group, expiry as unix seconds)."""
        self._session_of: dict[str, str] = {}
        self._tickets: dict[str, float] = {}
        self._tokens: set[str] = set()
        self._live: list[_Conn] = []
        self._waiting: list[_Push] = []
        self._by_msg: dict[str, _Push] = {}
        self._pings: dict[str, str] = {}
        self._ids = itertools.count(1)
        self._files: dict[str, tuple[bytes, str]] = {}
        """download code -> (bytes, the link's secret path part)."""
        self.file_requests: list[tuple[str, str]] = []
        """(downloadCode, robotCode) of each messageFiles/download call."""
        self.downloads: list[tuple[str, str | None]] = []
        """(link path, the token header it came with) of each file fetched."""
        self._connected = asyncio.Event()
        self._closers: set[asyncio.Task[None]] = set()

    # ---- routes ----------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1.0/gateway/connections/open", self._connections_open)
        app.router.add_get("/connect", self._stream)
        app.router.add_post("/v1.0/oauth2/accessToken", self._access_token)
        app.router.add_post("/v1.0/robot/oToMessages/batchSend", self._batch_send)
        app.router.add_post("/v1.0/robot/groupMessages/send", self._group_send)
        app.router.add_post("/robot/sendBySession", self._send_by_session)
        app.router.add_post("/v1.0/robot/messageFiles/download", self._file_download)
        app.router.add_get("/media/{link}", self._media)

    def error_response(self, method: str, status: int, retry_after: float | None
                       ) -> web.Response:
        if _FORMAT.get() == "oapi":
            if status == 429:
                return _old_error(90018, "每个企业的每个appkey调用单个接口的频率超过限制")
            if status >= 500:
                return _old_error(-1, "系统繁忙")
            if status == 404:
                return _old_error(300001, "session不存在或已过期")
            return _old_error(40035, "不合法的参数")
        if status == 429:
            return _error(403, "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi",
                          "调用该接口触发限流")
        if status >= 500:
            return _error(status, "ServiceUnavailable", "服务暂不可用")
        if status == 401:
            return _error(401, "InvalidAuthentication", "不合法的access_token")
        if status == 403:
            return _error(403, "Forbidden.AccessDenied.AccessTokenPermissionDenied",
                          "没有调用该接口的权限")
        return _error(400, "invalidParameter.param.invalid", "参数不合法")

    async def _json(self, request: web.Request) -> dict[str, Any] | None:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            return None
        return body if isinstance(body, dict) else None

    # ---- Stream ----------------------------------------------------------------------------

    async def _connections_open(self, request: web.Request) -> web.Response:
        _FORMAT.set("openapi")
        scripted = await self.before("connections.open")
        if scripted is not None:
            return scripted  # type: ignore[return-value]
        body = await self._json(request)
        if body is None:
            return _error(400, "invalidParameter", "请求体不是合法的JSON")
        if body.get("clientId") != self.client_id \
                or body.get("clientSecret") != self.client_secret:
            return _error(401, "authFailed", "鉴权失败")
        subscriptions = body.get("subscriptions")
        if not isinstance(subscriptions, list) or not subscriptions or not all(
                isinstance(s, dict) and s.get("type") in ("EVENT", "CALLBACK")
                and isinstance(s.get("topic"), str) for s in subscriptions):
            return _error(400, "invalidParameter.subscriptions", "订阅信息不合法")
        self.subscriptions = subscriptions
        ticket = str(uuid.uuid4())
        self._tickets[ticket] = time.monotonic() + TICKET_TTL
        return json_response({"endpoint": f"ws://127.0.0.1:{self.port}/connect",
                              "ticket": ticket})

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        until = self._tickets.pop(ticket, None)
        if until is None or until < time.monotonic():
            return web.Response(status=401, text="invalid or expired ticket")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = _Conn(ws, request, id=f"conn-{next(self._ids)}")
        self.connections += 1
        self._live.append(conn)
        self._connected.set()
        waiting, self._waiting = self._waiting, []
        for push in waiting:
            await self._send(conn, push)
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self._on_ack(conn, message.data)
        finally:
            self._ended(conn)
        return ws

    def _on_ack(self, conn: _Conn, raw: str) -> None:
        try:
            ack = json.loads(raw)
            headers = ack["headers"]
            message_id = headers["messageId"]
            valid = (isinstance(ack.get("code"), int) and isinstance(ack.get("data"), str)
                     and headers.get("contentType") == "application/json")
            data = json.loads(ack["data"])
        except (ValueError, KeyError, TypeError):
            self.bad_acks.append(raw)
            return
        if not valid:
            self.bad_acks.append(raw)
            return
        if message_id in self._pings:
            if isinstance(data, dict) and data.get("opaque") == self._pings.pop(message_id):
                self.pongs.append(message_id)
            else:
                self.bad_acks.append(raw)
            return
        if message_id not in conn.inflight:
            self.bad_acks.append(raw)
            return
        self.acks.append(ack)
        if ack["code"] == 200:
            del conn.inflight[message_id]

    def _ended(self, conn: _Conn) -> None:
        """A connection is over: what it did not ack is pushed again on the next one."""
        if conn in self._live:
            self._live.remove(conn)
        if not self._live:
            self._connected.clear()
        if self.redeliver_unacked:
            self._waiting.extend(conn.inflight.values())
        conn.inflight.clear()

    async def _send(self, conn: _Conn, push: _Push) -> None:
        conn.inflight[push.message_id] = push
        try:
            await conn.ws.send_str(push.raw)
        except (ConnectionError, RuntimeError):
            pass  # the connection is ending: _ended() queues it for the next one

    async def _push(self, push: _Push) -> None:
        targets = [c for c in self._live if not c.draining]
        if not targets:
            self._waiting.append(push)
            return
        await self._send(targets[-1], push)

    async def wait_connected(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    @property
    def live_connections(self) -> int:
        return len(self._live)

    async def drop_connection(self) -> None:
        """Cut every Stream socket server-side, with no close frame (a network fault)."""
        for conn in list(self._live):
            self._ended(conn)
            if conn.request.transport is not None:
                conn.request.transport.abort()

    async def disconnect(self, reason: str = "connection is expired") -> None:
        """DingTalk's graceful rebalancing: SYSTEM disconnect, then the socket is closed."""
        for conn in list(self._live):
            conn.draining = True
            await conn.ws.send_str(json.dumps({
                "specVersion": "1.0", "type": "SYSTEM",
                "headers": {"topic": "disconnect", "contentType": "application/json",
                            "messageId": str(uuid.uuid4())},
                "data": json.dumps({"reason": reason})}))
            task = asyncio.create_task(self._close_later(conn))
            self._closers.add(task)
            task.add_done_callback(self._closers.discard)

    async def _close_later(self, conn: _Conn) -> None:
        await asyncio.sleep(self.disconnect_grace)
        await conn.ws.close()

    async def ping(self) -> str:
        """A SYSTEM ping on the newest connection; its ack must carry the opaque back."""
        conn = self._live[-1]
        message_id, opaque = str(uuid.uuid4()), uuid.uuid4().hex
        self._pings[message_id] = opaque
        await conn.ws.send_str(json.dumps({
            "specVersion": "1.0", "type": "SYSTEM",
            "headers": {"topic": "ping", "contentType": "application/json",
                        "messageId": message_id},
            "data": json.dumps({"opaque": opaque})}))
        return message_id

    async def push_frame(self, frame: dict[str, Any]) -> None:
        """Any frame, as given (for malformed traffic)."""
        await self._push(_Push(frame, json.dumps(frame, ensure_ascii=False)))

    async def push_raw(self, raw: str) -> None:
        for conn in self._live:
            await conn.ws.send_str(raw)

    @property
    def unacked(self) -> int:
        return sum(len(c.inflight) for c in self._live) + len(self._waiting)

    async def stop(self) -> None:
        for task in list(self._closers):
            task.cancel()
        for conn in list(self._live):
            await conn.ws.close()
        await super().stop()

    # ---- users, groups and what they say ---------------------------------------------------

    def user(self, i: int) -> FakeUser:
        staff = f"staff{i:04d}"
        if staff not in self._users:
            self._users[staff] = FakeUser(staff, f"$:LWCP_v1:$user{i:04d}==", f"User {i}",
                                          f"cidDM{i:04d}robot==")
        return self._users[staff]

    def group(self, name: str, members: tuple[int, ...] = (1, 2)) -> str:
        conversation = f"cid{name}GRP=="
        self._groups[conversation] = {self.user(i).staff_id for i in members}
        return conversation

    def _session(self, chat: str, conversation: str, group: bool) -> tuple[str, int]:
        session = self._session_of.setdefault(conversation, uuid.uuid4().hex)
        expires = time.time() + self.session_ttl
        self._sessions[session] = (chat, group, expires)
        return f"{self.url}/robot/sendBySession?session={session}", int(expires * 1000)

    def message(self, user: FakeUser, *, group: str | None = None, mention: bool = True,
                msgtype: str = "text", text: str = "", content: dict[str, Any] | None = None
                ) -> dict[str, Any]:
        """A robot message as DingTalk builds it (the callback's decoded ``data``)."""
        conversation = group or user.conversation_id
        hook, expires = self._session(group or user.staff_id, conversation, group is not None)
        data: dict[str, Any] = {
            "conversationId": conversation, "chatbotCorpId": self.corp_id,
            "chatbotUserId": "$:LWCP_v1:$robot==", "msgId": f"msg{uuid.uuid4().hex[:20]}==",
            "senderNick": user.nick, "isAdmin": False, "senderStaffId": user.staff_id,
            "sessionWebhookExpiredTime": expires, "createAt": int(time.time() * 1000),
            "senderCorpId": self.corp_id, "conversationType": "2" if group else "1",
            "senderId": user.sender_id, "sessionWebhook": hook,
            "robotCode": self.robot_code, "msgtype": msgtype,
        }
        if group is not None:
            data["conversationTitle"] = "Fake group"
            data["isInAtList"] = mention
            data["atUsers"] = [{"dingtalkId": "$:LWCP_v1:$robot=="}] if mention else []
        if msgtype == "text":
            data["text"] = {"content": f" {text}" if group is not None else text}
        else:
            data["content"] = content or {}
        return data

    def callback(self, data: Any) -> dict[str, Any]:
        return {"specVersion": "1.0", "type": "CALLBACK",
                "headers": {"appId": self.app_id, "connectionId": "", "contentType":
                            "application/json", "messageId": str(uuid.uuid4()),
                            "time": str(int(time.time() * 1000)), "topic": ROBOT_TOPIC},
                "data": data if isinstance(data, str) else json.dumps(data,
                                                                      ensure_ascii=False)}

    async def deliver(self, data: dict[str, Any]) -> str:
        """Push one robot message; returns its ``msgId``. The wire is UTF-8 text, so a lone
        surrogate cannot travel (UnicodeEncodeError, as for the real gateway)."""
        frame = self.callback(data)
        raw = json.dumps(frame, ensure_ascii=False)
        raw.encode("utf-8")
        push = _Push(frame, raw)
        self._by_msg[str(data["msgId"])] = push
        await self._push(push)
        return str(data["msgId"])

    async def redeliver(self, msg_id: str) -> None:
        """The same callback pushed again (same frame), as network jitter can cause."""
        old = self._by_msg[msg_id]
        await self._push(_Push(old.frame, old.raw))

    def expire_sessions(self) -> None:
        """Every session webhook past its time (as ~90 minutes later)."""
        for session, (chat, group, _) in list(self._sessions.items()):
            self._sessions[session] = (chat, group, time.time() - 1)

    def revoke_tokens(self) -> None:
        self._tokens.clear()

    # ---- OpenAPI ---------------------------------------------------------------------------

    async def _access_token(self, request: web.Request) -> web.Response:
        _FORMAT.set("openapi")
        scripted = await self.before("accessToken")
        if scripted is not None:
            return scripted  # type: ignore[return-value]
        body = await self._json(request)
        if body is None or body.get("appKey") != self.client_id \
                or body.get("appSecret") != self.client_secret:
            return _error(400, "invalidClientIdOrSecret", "无效的clientId或者clientSecret")
        token = uuid.uuid4().hex
        self._tokens.add(token)
        self.tokens_issued += 1
        return json_response({"accessToken": token, "expireIn": 7200})

    def add_file(self, data: bytes) -> str:
        """A file a user sent the robot; returns its ``downloadCode``."""
        code = f"mIof{uuid.uuid4().hex}"
        self._files[code] = (data, f"{uuid.uuid4().hex}.file")
        return code

    async def _file_download(self, request: web.Request) -> web.Response:
        _FORMAT.set("openapi")
        if request.headers.get("x-acs-dingtalk-access-token") not in self._tokens:
            return _error(401, "InvalidAuthentication", "不合法的access_token")
        body = await self._json(request)
        if body is None or not isinstance(body.get("downloadCode"), str):
            return _error(400, "MissingdownloadCode", "downloadCode is mandatory for this "
                          "action.")
        self.file_requests.append((body["downloadCode"], str(body.get("robotCode"))))
        if body.get("robotCode") != self.robot_code:
            return _error(400, "invalidParameter.robotCode.notExsit", "机器人不存在")
        found = self._files.get(body["downloadCode"])
        if found is None:
            return _error(400, "invalidParameter.downloadCode.invalid", "下载码无效或已过期")
        return json_response({"downloadUrl": f"{self.url}/media/{found[1]}"})

    async def _media(self, request: web.Request) -> web.Response:
        link = request.match_info["link"]
        self.downloads.append((link, request.headers.get("x-acs-dingtalk-access-token")))
        for data, path in self._files.values():
            if path == link:
                return web.Response(body=data, content_type="application/octet-stream")
        return web.Response(status=404)

    async def _robot_body(self, request: web.Request) -> tuple[dict[str, Any], str, str] \
            | web.Response:
        """Checks shared by both robot sends: token, robotCode, msgKey, msgParam."""
        if request.headers.get("x-acs-dingtalk-access-token") not in self._tokens:
            return _error(401, "InvalidAuthentication", "不合法的access_token")
        body = await self._json(request)
        if body is None:
            return _error(400, "invalidParameter.param.invalid", "参数不合法")
        if body.get("robotCode") != self.robot_code:
            return _error(400, "invalidParameter.robotCode.notExsit", "机器人不存在")
        key, raw = body.get("msgKey"), body.get("msgParam")
        if key not in ("sampleText", "sampleMarkdown"):
            return _error(400, "invalidParameter.msgKey.invalid", "msgKey不合法")
        try:
            param = json.loads(raw) if isinstance(raw, str) else None
        except ValueError:
            param = None
        if not isinstance(param, dict) or len(raw.encode("utf-8", "surrogatepass")) \
                > MAX_MSG_PARAM:
            return _error(400, "invalidParameter.msgParam.invalid",
                          "msgParam必须是不超过15000字节的JSON")
        if key == "sampleText":
            text, title = param.get("content"), ""
        else:
            text, title = param.get("text"), param.get("title")
            if not isinstance(title, str) or not title:
                return _error(400, "invalidParameter.msgParam.invalid", "缺少title")
        if not isinstance(text, str) or not text:
            return _error(400, "invalidParameter.msgParam.invalid", "消息内容为空")
        return body, text, title or ""

    async def _batch_send(self, request: web.Request) -> web.Response:
        _FORMAT.set("openapi")
        scripted = await self.before("send")
        if scripted is not None:
            return scripted  # type: ignore[return-value]
        checked = await self._robot_body(request)
        if isinstance(checked, web.Response):
            return checked
        body, text, title = checked
        users = body.get("userIds")
        if not isinstance(users, list) or not users:
            return _error(400, "invalidParameter.userIds.empty", "userIds为空")
        if len(users) > 20:
            return _error(400, "invalidParameter.userIds.overMax", "userIds超过上限")
        known = [u for u in users if u in self._users]
        msgtype = "text" if body["msgKey"] == "sampleText" else "markdown"
        for user in known:
            self.sent.append(Sent(user, text, "oto", msgtype, title, time.monotonic()))
        self.after("send", request)
        return json_response({"processQueryKey": uuid.uuid4().hex,
                              "invalidStaffIdList": [u for u in users if u not in known],
                              "flowControlledStaffIdList": []})

    async def _group_send(self, request: web.Request) -> web.Response:
        _FORMAT.set("openapi")
        scripted = await self.before("send")
        if scripted is not None:
            return scripted  # type: ignore[return-value]
        checked = await self._robot_body(request)
        if isinstance(checked, web.Response):
            return checked
        body, text, title = checked
        conversation = body.get("openConversationId")
        if conversation not in self._groups:
            return _error(400, "invalid.openConversationId", "无效的openConversationId")
        msgtype = "text" if body["msgKey"] == "sampleText" else "markdown"
        self.sent.append(Sent(conversation, text, "group", msgtype, title, time.monotonic()))
        self.after("send", request)
        return json_response({"processQueryKey": uuid.uuid4().hex})

    # ---- session webhooks (old API) --------------------------------------------------------

    async def _send_by_session(self, request: web.Request) -> web.Response:
        _FORMAT.set("oapi")
        scripted = await self.before("send")
        if scripted is not None:
            return scripted  # type: ignore[return-value]
        session = self._sessions.get(request.query.get("session", ""))
        if session is None or session[2] < time.time():
            return _old_error(300001, "session不存在或已过期")
        chat = session[0]
        body = await self._json(request) or {}
        msgtype = body.get("msgtype")
        part = body.get(msgtype) if isinstance(msgtype, str) else None
        part = part if isinstance(part, dict) else {}
        if msgtype == "text":
            text, title = part.get("content"), ""
        elif msgtype == "markdown":
            text, title = part.get("text"), part.get("title")
            if not isinstance(title, str) or not title:
                return _old_error(40035, "缺少参数 title")
        else:
            return _old_error(40035, "不合法的参数 msgtype")
        if not isinstance(text, str) or not text:
            return _old_error(40035, "缺少参数 content")
        if len(text.encode("utf-8", "surrogatepass")) > MAX_WEBHOOK_TEXT:
            return _old_error(40035, "消息内容超过长度限制")
        self.sent.append(Sent(chat, text, "session", msgtype, title or "", time.monotonic()))
        self.after("send", request)
        return _old_error(0, "ok")
