"""A fake WeCom (企业微信) on 127.0.0.1: the server API a self-built app calls, and the encrypted
callbacks WeCom makes to the app's receive URL.

Written from WeCom's developer documentation (developer.work.weixin.qq.com: "获取
access_token" 91039, "获取指定的应用详情" 90227, "发送应用消息" 90236, "接收消息与事件" /
"回调配置" 90238 and 90930, the global error codes 90313) and Tencent's sample
``WXBizMsgCrypt.py``, not from what our connector sends:

* ``GET /cgi-bin/gettoken?corpid=&corpsecret=`` -> ``{"errcode": 0, "errmsg": "ok",
  "access_token", "expires_in": 7200}``; within its validity the same token is returned.
  40013 invalid corpid, 40001 a secret that is not the app's. gettoken is allowed from
  any IP.
* Every other call needs ``access_token`` (41001 missing, 40014 invalid, 42001 expired)
  and a trusted IP (``ip_allowed``; else 60020 "not allow to access from your ip").
* ``GET /cgi-bin/agent/get?agentid=`` -> the app's ``agentid``, ``name``, ``description``
  and visible range; 40056 for an unknown agentid, 301002 for another app's.
* ``POST /cgi-bin/message/send`` ``{touser, msgtype: text, agentid, text: {content}}``
  -> ``{"errcode": 0, "errmsg": "ok", "invaliduser": "", "msgid"}``. Recipients outside
  the app's visible range (``members``) are listed in ``invaliduser`` (lower-cased); when
  none is valid the answer is 81013 (``invalid_as_ok``: errcode 0 with them all listed,
  as older servers answered). An empty content is 44004; content over 2,048 bytes is cut
  at 2,048 bytes and delivered (WeCom truncates, it does not refuse). Beyond 30 messages
  a minute to one member, WeCom drops the message silently (``dropped``).
* Answers are HTTP 200 with ``errcode``; errmsg ends in WeCom's ``hint: [...], from ip:
  ..., more info at https://open.work.weixin.qq.com/devtool/query?e=<code>``. There is no
  429: a scripted 429 or 500 is -1 "system busy", 400 is 81013, 401 40014, 403 60020,
  and nothing is carried out.
* Callbacks are always encrypted: :meth:`WeComFake.message` (and ``media``, ``event``)
  build a member's message fields (with ``AgentID``), :meth:`callback` makes the POST:
  query ``msg_signature`` = sha1(sorted token, timestamp, nonce, Encrypt), ``timestamp``,
  ``nonce``; body ``<xml><ToUserName/><AgentID/><Encrypt/></xml>``; the envelope's
  receive id is the CorpID (the crypto is the fake WeChat's, tests/fakes/wechat_api.py).
  :meth:`url_check` is the GET with an encrypted ``echostr`` whose plaintext must come
  back.

Scripted faults come from :class:`FakePlatform` under the method names ``send``,
``agent`` and ``token``.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from tests.fakes.platform import FakePlatform
from tests.fakes.server import json_response
from tests.fakes.wechat_api import json_body, tencent_seal, tencent_signature, to_xml

__all__ = ["AGENT_NAME", "MAX_BYTES", "SentWeCom", "WeComFake"]

MAX_BYTES = 2048
PER_MEMBER_PER_MINUTE = 30
TOKEN_LIFETIME = 7200
AGENT_NAME = "Pyclaw 助手"
_SCRIPTED = {429: (-1, "system busy"), 500: (-1, "system busy"),
             400: (81013, "user & party & tag all invalid"),
             401: (40014, "invalid access_token"),
             403: (60020, "not allow to access from your ip")}


@dataclass(frozen=True)
class SentWeCom:
    to: str
    text: str
    msgid: str
    monotonic: float


class WeComFake(FakePlatform):
    send_method = "send"

    def __init__(self, *, corp_id: str = "ww1436e0e65a779aee", agent_id: int = 1000002,
                 corp_secret: str = "fake-wecom-app-secret-abcdefghijklmnop",
                 token: str = "pyclawWeComToken", encoding_aes_key: str | None = None) -> None:
        super().__init__()
        self.corp_id = corp_id
        self.agent_id = agent_id
        self.corp_secret = corp_secret
        self.token = token
        self.encoding_aes_key = encoding_aes_key or base64.b64encode(
            hashlib.sha256(b"pyclaw wecom fake").digest()).decode().rstrip("=")
        self.ip_allowed = True
        self.invalid_as_ok = False
        """Answer a send to no valid member as the older API did: errcode 0 with everyone in
        ``invaliduser`` (the current one answers 81013)."""
        self.members: set[str] = {"zhangsan", "lisi"}
        """UserIDs in the app's visible range (lower case; WeCom ignores case)."""
        self.sent: list[SentWeCom] = []
        self.dropped: list[SentWeCom] = []
        self.token_requests = 0
        self._token = ""
        self._token_until = 0.0
        self._revoked: set[str] = set()
        self._deliveries: dict[str, list[float]] = {}  # member -> time.time() of each
        self._callbacks: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(7_362_019_445_210_000_001)

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/cgi-bin/gettoken", self._gettoken)
        app.router.add_get("/cgi-bin/agent/get", self._agent)
        app.router.add_post("/cgi-bin/message/send", self._send)

    # ---- controls ------------------------------------------------------------------------

    def expire_token(self) -> None:
        """The current token is past its expires_in (42001); gettoken issues a new one."""
        self._token_until = time.time() - 1

    def revoke_token(self) -> None:
        """The current token is invalid (40014), as after the Secret was reset."""
        self._revoked.add(self._token)
        self._token_until = 0.0

    @property
    def issued_token(self) -> str:
        return self._token

    # ---- the API -------------------------------------------------------------------------

    def error_response(self, method: str, status: int, retry_after: float | None
                       ) -> web.StreamResponse:
        """WeCom's answer for a scripted ``status`` (see the module docstring); it carries no
        wait, so ``retry_after`` has nowhere to go."""
        if status in _SCRIPTED:
            return _error(*_SCRIPTED[status])
        return web.Response(status=status, text=f"<html><body>{status}</body></html>",
                            content_type="text/html")

    async def _gettoken(self, request: web.Request) -> web.StreamResponse:
        scripted = await self.before("token")
        if scripted is not None:
            return scripted
        if request.query.get("corpid") != self.corp_id:
            return _error(40013, "invalid corpid")
        if request.query.get("corpsecret") != self.corp_secret:
            return _error(40001, "invalid credential")
        self.token_requests += 1
        now = time.time()
        if not self._token or self._token_until <= now:
            self._token = base64.urlsafe_b64encode(os.urandom(48)).decode()
            self._token_until = now + TOKEN_LIFETIME
        self.after("token", request)
        return json_response({"errcode": 0, "errmsg": "ok", "access_token": self._token,
                              "expires_in": int(self._token_until - now)})

    def _authorised(self, request: web.Request) -> web.Response | None:
        token = request.query.get("access_token")
        if not token:
            return _error(41001, "access_token missing")
        if token != self._token or token in self._revoked:
            return _error(40014, "invalid access_token")
        if self._token_until <= time.time():
            return _error(42001, "access_token expired")
        if not self.ip_allowed:
            return _error(60020, "not allow to access from your ip")
        return None

    def _agent_refused(self, agentid: object) -> web.Response | None:
        if str(agentid) == str(self.agent_id):
            return None
        if isinstance(agentid, int) or str(agentid).isdigit():
            return _error(301002, "not allow operate another agent with this accesstoken.")
        return _error(40056, "invalid agentid")

    async def _agent(self, request: web.Request) -> web.StreamResponse:
        scripted = await self.before("agent")
        if scripted is not None:
            return scripted
        refused = self._authorised(request) or self._agent_refused(
            request.query.get("agentid", ""))
        if refused is not None:
            return refused
        self.after("agent", request)
        return json_response({
            "errcode": 0, "errmsg": "ok", "agentid": self.agent_id, "name": AGENT_NAME,
            "square_logo_url": "https://p.qlogo.cn/bizmail/fake/0", "description": "",
            "allow_userinfos": {"user": [{"userid": m} for m in sorted(self.members)]},
            "allow_partys": {"partyid": []}, "allow_tags": {"tagid": []}, "close": 0,
            "redirect_domain": "", "report_location_flag": 0, "isreportenter": 0,
            "home_url": "", "customized_publish_status": 1})

    async def _send(self, request: web.Request) -> web.StreamResponse:
        scripted = await self.before("send")
        if scripted is not None:
            return scripted
        refused = self._authorised(request)
        if refused is not None:
            return refused
        body = await json_body(request)
        if body is None:
            return _error(40035, "invalid args")
        refused = self._agent_refused(body.get("agentid"))
        if refused is not None:
            return refused
        if body.get("msgtype") != "text":
            return _error(40008, "invalid message type")
        text = body.get("text")
        content = text.get("content") if isinstance(text, dict) else None
        if not isinstance(content, str) or not content:
            return _error(44004, "empty content")
        recipients = [u for u in str(body.get("touser") or "").split("|") if u]
        valid = [u for u in recipients if u.lower() in self.members]
        invalid = [u.lower() for u in recipients if u.lower() not in self.members]
        if not valid and not self.invalid_as_ok:
            return _error(81013, "user & party & tag all invalid")
        delivered = content.encode()[:MAX_BYTES].decode("utf-8", "ignore")
        msgid = base64.urlsafe_b64encode(uuid.uuid4().bytes * 2).decode().rstrip("=")
        now = time.time()
        for user in valid:
            recent = [t for t in self._deliveries.get(user.lower(), []) if now - t < 60]
            message = SentWeCom(user, delivered, msgid, time.monotonic())
            if len(recent) >= PER_MEMBER_PER_MINUTE:
                self.dropped.append(message)  # WeCom: "超过部分会被丢弃不下发"
            else:
                self.sent.append(message)
                recent.append(now)
            self._deliveries[user.lower()] = recent
        self.after("send", request)
        return json_response({"errcode": 0, "errmsg": "ok", "invaliduser": "|".join(invalid),
                              "invalidparty": "", "invalidtag": "", "unlicenseduser": "",
                              "msgid": msgid})

    # ---- callbacks -----------------------------------------------------------------------

    def message(self, user: str, text: str) -> dict[str, Any]:
        """A member's text message to the app, received now (the member is visible to it)."""
        return self._message(user, "text", Content=text)

    def media(self, user: str, kind: str) -> dict[str, Any]:
        media_id = base64.urlsafe_b64encode(os.urandom(30)).decode()
        fields: dict[str, dict[str, Any]] = {
            "image": {"PicUrl": f"https://wework.qpic.cn/wwpic/{uuid.uuid4().hex}/0",
                      "MediaId": media_id},
            "voice": {"MediaId": media_id, "Format": "amr"},
            "location": {"Location_X": "39.9042", "Location_Y": "116.4074", "Scale": 15,
                         "Label": "北京市"}}
        return self._message(user, kind, **fields[kind])

    def _message(self, user: str, kind: str, **content: Any) -> dict[str, Any]:
        self.members.add(user.lower())
        mid = str(next(self._ids))
        fields = {"ToUserName": self.corp_id, "FromUserName": user,
                  "CreateTime": int(time.time()), "MsgType": kind, **content,
                  "MsgId": int(mid), "AgentID": self.agent_id}
        self._callbacks[mid] = fields
        return fields

    def event(self, user: str, event: str, **fields: Any) -> dict[str, Any]:
        return {"ToUserName": self.corp_id, "FromUserName": user,
                "CreateTime": int(time.time()), "MsgType": "event", "Event": event,
                "AgentID": self.agent_id, **fields}

    def redelivery(self, msg_id: str) -> dict[str, Any]:
        return self._callbacks[msg_id]

    def callback(self, fields: dict[str, Any] | bytes, *, token: str | None = None,
                 timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
        """The body and query of WeCom's POST for ``fields`` (or raw plaintext bytes)."""
        plain = fields if isinstance(fields, bytes) else to_xml(fields)
        encrypted = tencent_seal(self.encoding_aes_key, self.corp_id, plain)
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        nonce = str(int.from_bytes(os.urandom(4), "big"))
        body = to_xml({"ToUserName": self.corp_id, "AgentID": self.agent_id,
                       "Encrypt": encrypted})
        return body, {"msg_signature": tencent_signature(
            self.token if token is None else token, stamp, nonce, encrypted),
            "timestamp": stamp, "nonce": nonce}

    def url_check(self, *, token: str | None = None) -> tuple[dict[str, str], str]:
        """The query of the GET sent when the receive URL is saved, and the plaintext the
        app must answer with."""
        plain = str(int.from_bytes(os.urandom(8), "big"))
        echostr = tencent_seal(self.encoding_aes_key, self.corp_id, plain.encode())
        stamp, nonce = str(int(time.time())), str(int.from_bytes(os.urandom(4), "big"))
        return {"msg_signature": tencent_signature(self.token if token is None else token,
                                                   stamp, nonce, echostr),
                "timestamp": stamp, "nonce": nonce, "echostr": echostr}, plain

    async def post_callback(self, url: str, body: bytes, query: dict[str, str]
                            ) -> tuple[int, str]:
        async with aiohttp.ClientSession() as session, session.post(
                url, data=body, params=query, headers={"Content-Type": "text/xml"}) as resp:
            return resp.status, await resp.text()

    async def get_url_check(self, url: str, query: dict[str, str]) -> tuple[int, str]:
        async with aiohttp.ClientSession() as session, session.get(url, params=query) as resp:
            return resp.status, await resp.text()


def _error(code: int, message: str) -> web.Response:
    hint = f"{int(time.time() * 1000)}{uuid.uuid4().int % 10**12:012d}"
    return json_response({"errcode": code, "errmsg": f"{message}, hint: [{hint}], from ip: "
                          f"203.0.113.7, more info at https://open.work.weixin.qq.com/devtool/"
                          f"query?e={code}"})
