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
* ``GET /cgi-bin/media/get?access_token=&media_id=`` ("获取临时素材" 90254): the file with
  its ``Content-Type`` and ``Content-disposition``; a media id WeCom does not keep (three
  days) is 40007 "invalid media_id" as JSON (:meth:`TencentFake.get_media`).
* Answers are HTTP 200 with ``errcode``; errmsg ends in WeCom's ``hint: [...], from ip:
  ..., more info at https://open.work.weixin.qq.com/devtool/query?e=<code>``. There is no
  429: a scripted 429 or 500 is -1 "system busy", 400 is 81013, 401 40014, 403 60020,
  and nothing is carried out.
* Callbacks are always encrypted: :meth:`WeComFake.message` (and ``media``, ``event``)
  build a member's message fields (with ``AgentID``), :meth:`callback` makes the POST:
  query ``msg_signature`` = sha1(sorted token, timestamp, nonce, Encrypt), ``timestamp``,
  ``nonce``; body ``<xml><ToUserName/><AgentID/><Encrypt/></xml>``; the envelope's
  receive id is the CorpID.
  :meth:`url_check` is the GET with an encrypted ``echostr`` whose plaintext must come
  back.

Scripted faults come from :class:`FakePlatform` under the method names ``send``,
``agent``, ``token`` and ``media``.

What WeCom answers and sends as the Official Account does (the crypto, scripted statuses
as errcodes, the ``msgtype: text`` check, message and event fields and their retries,
callbacks signed in the query) is the fake WeChat's :class:`TencentFake`
(tests/fakes/wechat_api.py), which this fake subclasses; what is WeCom's own is here.
"""

from __future__ import annotations

import base64
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.server import json_response
from tests.fakes.wechat_api import TencentFake, json_body, stamp_and_nonce, to_xml

__all__ = ["AGENT_NAME", "MAX_BYTES", "SentWeCom", "WeComFake"]

MAX_BYTES = 2048
PER_MEMBER_PER_MINUTE = 30
TOKEN_LIFETIME = 7200
AGENT_NAME = "Pyclaw 助手"
_SCRIPTED = {429: (-1, "system busy"), 500: (-1, "system busy"),
             400: (81013, "user & party & tag all invalid"),
             401: (40014, "invalid access_token"),
             403: (60020, "not allow to access from your ip")}


def _error(code: int, message: str) -> web.Response:
    """WeCom's refusal: its errmsg ends in a hint, the caller's IP and a help link."""
    hint = f"{int(time.time() * 1000)}{uuid.uuid4().int % 10**12:012d}"
    return json_response({"errcode": code, "errmsg": f"{message}, hint: [{hint}], from ip: "
                          f"203.0.113.7, more info at https://open.work.weixin.qq.com/devtool/"
                          f"query?e={code}"})


@dataclass(frozen=True)
class SentWeCom:
    to: str
    text: str
    msgid: str
    monotonic: float


class WeComFake(TencentFake):
    scripted = _SCRIPTED
    errcode = staticmethod(_error)

    def __init__(self, *, corp_id: str = "ww1436e0e65a779aee", agent_id: int = 1000002,
                 corp_secret: str = "fake-wecom-app-secret-abcdefghijklmnop",
                 token: str = "pyclawWeComToken", encoding_aes_key: str | None = None) -> None:
        super().__init__(token=token, encoding_aes_key=encoding_aes_key,
                         seed=b"pyclaw wecom fake", first_msg_id=7_362_019_445_210_000_001)
        self.corp_id = corp_id
        self.agent_id = agent_id
        self.corp_secret = corp_secret
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

    @property
    def to_user(self) -> str:  # the CorpID is both the addressee and the receive id
        return self.corp_id

    @property
    def receive_id(self) -> str:
        return self.corp_id

    @property
    def app_fields(self) -> dict[str, Any]:
        return {"AgentID": self.agent_id}

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/cgi-bin/gettoken", self._gettoken)
        app.router.add_get("/cgi-bin/agent/get", self._agent)
        app.router.add_post("/cgi-bin/message/send", self._send)
        app.router.add_get("/cgi-bin/media/get", self.get_media)

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
        refused = await self.admitted("agent", request)
        if refused is None:
            refused = self._agent_refused(request.query.get("agentid", ""))
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
        refused = await self.admitted("send", request)
        if refused is not None:
            return refused
        body = await json_body(request)
        if body is None:
            return _error(40035, "invalid args")
        refused = self._agent_refused(body.get("agentid"))
        if refused is not None:
            return refused
        content = self.text_of(body)
        if isinstance(content, web.Response):
            return content
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

    def _received(self, user: str) -> None:
        self.members.add(user.lower())  # a member who writes to the app can be answered

    def media(self, user: str, kind: str) -> dict[str, Any]:
        media_id = base64.urlsafe_b64encode(os.urandom(30)).decode()
        fields: dict[str, dict[str, Any]] = {
            "image": {"PicUrl": f"https://wework.qpic.cn/wwpic/{uuid.uuid4().hex}/0",
                      "MediaId": media_id},
            "voice": {"MediaId": media_id, "Format": "amr"},
            "location": {"Location_X": "39.9042", "Location_Y": "116.4074", "Scale": 15,
                         "Label": "北京市"}}
        return self._message(user, kind, **fields[kind])

    def callback(self, fields: dict[str, Any] | bytes, *, token: str | None = None,
                 timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
        """The body and query of WeCom's POST for ``fields`` (or raw plaintext bytes)."""
        plain = fields if isinstance(fields, bytes) else to_xml(fields)
        stamp, nonce = stamp_and_nonce(timestamp)
        encrypted, msg_signature = self.sealed(plain, token, stamp, nonce)
        body = to_xml({"ToUserName": self.corp_id, "AgentID": self.agent_id,
                       "Encrypt": encrypted})
        return body, {"msg_signature": msg_signature, "timestamp": stamp, "nonce": nonce}

    def url_check(self, *, token: str | None = None) -> tuple[dict[str, str], str]:
        """The query of the GET sent when the receive URL is saved, and the plaintext the
        app must answer with."""
        plain = str(int.from_bytes(os.urandom(8), "big"))
        stamp, nonce = stamp_and_nonce()
        echostr, msg_signature = self.sealed(plain.encode(), token, stamp, nonce)
        return {"msg_signature": msg_signature, "timestamp": stamp, "nonce": nonce,
                "echostr": echostr}, plain
