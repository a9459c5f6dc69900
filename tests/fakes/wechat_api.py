"""A fake WeChat Official Account platform on 127.0.0.1: the API a server calls and the
callbacks WeChat makes to the Server URL.

Written from the OA documentation (developers.weixin.qq.com/doc/offiaccount: "Get access
token", "getStableAccessToken", customer-service "send" and "typing", the customer-service
rules, "Global return codes", "Receiving messages", "Message encryption and decryption")
and wechatpy's published crypto, not from what our connector sends:

* ``GET /cgi-bin/token?grant_type=client_credential&appid=&secret=`` and ``POST
  /cgi-bin/stable_token`` ``{grant_type, appid, secret, force_refresh}`` answer
  ``{"access_token", "expires_in": 7200}``. A classic fetch issues a new token and leaves
  the previous one valid for five more minutes; the stable token stays the same while it
  is valid unless ``force_refresh`` replaces (and invalidates) it. Errors: 40002 bad
  grant_type, 40013 invalid appid, 40125 invalid appsecret, 40164 "invalid ip ..., not in
  whitelist" (``ip_allowed = False``).
* ``POST /cgi-bin/message/custom/send?access_token=`` ``{touser, msgtype: text, text:
  {content}}`` -> ``{"errcode": 0, "errmsg": "ok"}`` (no message id). A token that is
  missing is 41001, unknown 40001, expired 42001. A user who never wrote is 40003
  "invalid openid"; one whose last message is older than 48 hours (``window``) 45015
  "response out of time limit or subscription is canceled"; each user message allows
  ``reply_quota`` (5) messages, then 45047 "out of response count limit"; an empty
  content 44004, one over 2048 bytes of UTF-8 45002 "content size out of limit".
* ``POST /cgi-bin/message/custom/typing`` ``{touser, command: Typing|CancelTyping}``:
  45072 for another command, 45080 when nothing was exchanged with the user in the last
  30 s, 45081 while a Typing (15 s, ended by a sent message) still shows.
* ``GET /cgi-bin/media/get?access_token=&media_id=`` (get temporary media; WeCom's is the
  same path): the file's bytes with its ``Content-Type`` and ``Content-disposition:
  attachment; filename="..."``; a media id it does not keep (temporary media live three
  days) is HTTP 200 ``{"errcode": 40007, "errmsg": "invalid media_id"}`` as JSON, the token
  errors as for any call.
* Every answer is HTTP 200 with ``errcode``/``errmsg`` (errmsg ends in `` rid: ...``).
  WeChat has no 429: a scripted 429 or 500 is -1 "system error" (its "busy, retry
  later"), 400 is 40003, 401 is 40001, 403 48001 "api unauthorized"; a call refused that
  way carries nothing out.
* Callbacks: :meth:`WeChatFake.message` (and ``media``, ``event``) build the XML fields
  of a user's message (and record the interaction that opens the 48-hour window and the
  quota), :meth:`callback` signs them as WeChat does: the query carries ``signature`` =
  sha1(sorted token, timestamp, nonce), ``timestamp``, ``nonce``, ``openid``; in safe and
  compatible mode also ``encrypt_type=aes`` and ``msg_signature`` = sha1(sorted token,
  timestamp, nonce, Encrypt), and the body is ``<xml><ToUserName/><Encrypt/></xml>``
  (compatible mode keeps the plaintext fields beside it). Encrypt is AES-256-CBC with
  key = b64decode(EncodingAESKey + "="), IV = key[:16], over random16 + 4-byte length +
  message + AppID, PKCS#7-padded to 32 bytes (implemented here on its own, checked
  against wechatpy's vectors in tests/connectors/test_wechat.py).

Scripted faults come from :class:`FakePlatform` under the method names ``send``,
``typing``, ``token`` and ``media``.

What the fake WeCom (tests/fakes/wecom_api.py) answers and sends the same way is
:class:`TencentFake` here, which both fakes subclass: the crypto and XML helpers, scripted
statuses turned into errcodes, the token-and-fault prologue of a call, the ``msgtype:
text`` check, the message and event fields and their retries, and callbacks POSTed with
the signature in the query.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import struct
import time
import uuid
from dataclasses import dataclass
from typing import Any, ClassVar

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tests.fakes.platform import FakePlatform
from tests.fakes.server import json_response

__all__ = ["MAX_BYTES", "ORIGINAL_ID", "SentWeChat", "TencentFake", "WeChatFake",
           "json_body", "tencent_open", "tencent_seal", "tencent_signature", "to_xml"]

ORIGINAL_ID = "gh_3e8b5c1a9f27"
MAX_BYTES = 2048
WINDOW = 48 * 3600.0
REPLY_QUOTA = 5
TOKEN_LIFETIME = 7200
TYPING_SECONDS = 15.0
TYPING_NEEDS = 30.0
_OLD_TOKEN_GRACE = 300.0
_SCRIPTED = {429: (-1, "system error"), 500: (-1, "system error"),
             400: (40003, "invalid openid"),
             401: (40001, "invalid credential, access_token is invalid or not latest"),
             403: (48001, "api unauthorized")}


def tencent_signature(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def _aes(encoding_aes_key: str) -> Cipher[modes.CBC]:
    key = base64.b64decode(encoding_aes_key + "=")
    return Cipher(algorithms.AES(key), modes.CBC(key[:16]))


def tencent_seal(encoding_aes_key: str, receive_id: str, message: bytes,
                 random16: bytes | None = None) -> str:
    plain = (random16 or os.urandom(16)) + struct.pack(">I", len(message)) + message \
        + receive_id.encode()
    pad = 32 - len(plain) % 32
    encryptor = _aes(encoding_aes_key).encryptor()
    return base64.b64encode(encryptor.update(plain + bytes([pad]) * pad)
                            + encryptor.finalize()).decode()


def tencent_open(encoding_aes_key: str, encrypted: str) -> tuple[bytes, str]:
    """(message, receive id) of an envelope (the echostr of a URL check, a reply)."""
    decryptor = _aes(encoding_aes_key).decryptor()
    plain = decryptor.update(base64.b64decode(encrypted)) + decryptor.finalize()
    content = plain[16:-plain[-1]]
    (length,) = struct.unpack(">I", content[:4])
    return content[4:4 + length], content[4 + length:].decode()


def to_xml(fields: dict[str, Any]) -> bytes:
    """``<xml>`` as Tencent writes it: text in CDATA, numbers bare."""
    def value(v: Any) -> str:
        return str(v) if isinstance(v, int) else f"<![CDATA[{v}]]>"
    inner = "".join(f"<{k}>{value(v)}</{k}>" for k, v in fields.items())
    return f"<xml>{inner}</xml>".encode()


async def json_body(request: web.Request) -> dict[str, Any] | None:
    try:
        body = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def _error(code: int, message: str) -> web.Response:
    """WeChat's refusal: its errmsg ends in `` rid: ...``."""
    rid = f"{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:8]}"
    return json_response({"errcode": code, "errmsg": f"{message} rid: {rid}"})


class TencentFake(FakePlatform):
    """What a fake Tencent platform (WeChat, WeCom) does the same way; a subclass gives its
    ids, its errcode table and errmsg format, and its token check."""

    send_method = "send"
    scripted: ClassVar[dict[int, tuple[int, str]]]
    """The errcode a scripted HTTP status becomes: Tencent answers HTTP 200 with one."""
    to_user: str
    """``ToUserName`` of the callbacks: the account or company they are for."""
    receive_id: str
    """The envelope's receive id (the AppID, the CorpID)."""

    def __init__(self, *, token: str, encoding_aes_key: str | None, seed: bytes,
                 first_msg_id: int) -> None:
        super().__init__()
        self.token = token
        self.encoding_aes_key = encoding_aes_key or base64.b64encode(
            hashlib.sha256(seed).digest()).decode().rstrip("=")
        self._callbacks: dict[str, dict[str, Any]] = {}  # MsgId -> the fields, for retries
        self._ids = itertools.count(first_msg_id)
        self.media_files: dict[str, tuple[bytes, str]] = {}
        """media_id -> (bytes, Content-Type) of the temporary media the platform keeps."""
        self.media_fetches: list[str] = []
        """The media_id of each ``media/get`` that was let in."""

    @property
    def app_fields(self) -> dict[str, Any]:
        """Fields every callback of this platform ends with (WeCom's AgentID)."""
        return {}

    @staticmethod
    def errcode(code: int, message: str) -> web.Response:
        """The platform's answer refusing a call with ``code``."""
        raise NotImplementedError

    def _authorised(self, request: web.Request) -> web.Response | None:
        """The refusal of a call whose ``access_token`` is missing, unknown or expired."""
        raise NotImplementedError

    def _received(self, user: str) -> None:
        """What a user's message opens on the platform (a window, a visible member)."""

    # ---- the API -------------------------------------------------------------------------

    def error_response(self, method: str, status: int, retry_after: float | None
                       ) -> web.StreamResponse:
        """The platform's answer for a scripted ``status`` (see the module docstrings); it
        never carries a wait, so ``retry_after`` has nowhere to go."""
        if status in self.scripted:
            return self.errcode(*self.scripted[status])
        return web.Response(status=status, text=f"<html><body>{status}</body></html>",
                            content_type="text/html")

    async def admitted(self, method: str, request: web.Request) -> web.StreamResponse | None:
        """The scripted answer for ``method``, or the refusal of its token; None to go on."""
        scripted = await self.before(method)
        return scripted if scripted is not None else self._authorised(request)

    def keep_media(self, data: bytes, mime: str) -> str:
        """A file a user sent, kept as temporary media; its media_id."""
        media_id = base64.urlsafe_b64encode(os.urandom(30)).decode()
        self.media_files[media_id] = (data, mime)
        return media_id

    async def get_media(self, request: web.Request) -> web.StreamResponse:
        """``GET /cgi-bin/media/get``, the same on both platforms."""
        refused = await self.admitted("media", request)
        if refused is not None:
            return refused
        media_id = request.query.get("media_id", "")
        self.media_fetches.append(media_id)
        found = self.media_files.get(media_id)
        if found is None:
            return self.errcode(40007, "invalid media_id")
        data, mime = found
        self.after("media", request)
        ext = mime.rpartition("/")[2]
        return web.Response(body=data, headers={
            "Content-Type": mime, "Content-Length": str(len(data)),
            "Content-disposition": f'attachment; filename="{media_id[:12]}.{ext}"',
            "Cache-Control": "no-cache, must-revalidate"})

    def text_of(self, body: dict[str, Any]) -> str | web.Response:
        """``text.content`` of a ``msgtype: text`` body, or the errcode both platforms give
        for another type (40008) or an empty text (44004)."""
        if body.get("msgtype") != "text":
            return self.errcode(40008, "invalid message type")
        text = body.get("text")
        content = text.get("content") if isinstance(text, dict) else None
        if not isinstance(content, str) or not content:
            return self.errcode(44004, "empty content")
        return content

    # ---- callbacks -----------------------------------------------------------------------

    def message(self, user: str, text: str) -> dict[str, Any]:
        """A user's text message, received now."""
        return self._message(user, "text", Content=text)

    def _message(self, user: str, kind: str, **content: Any) -> dict[str, Any]:
        mid = next(self._ids)
        fields = {"ToUserName": self.to_user, "FromUserName": user,
                  "CreateTime": int(time.time()), "MsgType": kind, **content, "MsgId": mid,
                  **self.app_fields}
        self._callbacks[str(mid)] = fields
        self._received(user)
        return fields

    def event(self, user: str, event: str, **fields: Any) -> dict[str, Any]:
        """An event push (subscribe, unsubscribe, CLICK...): no MsgId."""
        return {"ToUserName": self.to_user, "FromUserName": user,
                "CreateTime": int(time.time()), "MsgType": "event", "Event": event,
                **self.app_fields, **fields}

    def redelivery(self, msg_id: str) -> dict[str, Any]:
        """The same message again, as the platform retries one that got no answer in 5 s."""
        return self._callbacks[msg_id]

    def sealed(self, plain: bytes, token: str | None, stamp: str, nonce: str,
               random16: bytes | None = None) -> tuple[str, str]:
        """(``Encrypt``, its ``msg_signature``) of ``plain``; ``token`` signs instead of
        ours."""
        encrypted = tencent_seal(self.encoding_aes_key, self.receive_id, plain, random16)
        return encrypted, tencent_signature(self.token if token is None else token, stamp,
                                            nonce, encrypted)

    async def post_signed(self, url: str, body: bytes, query: dict[str, str]
                          ) -> tuple[int, str]:
        """POST a callback as the platform does: Tencent signs in the query, not in headers,
        so the signed request's second half is the query."""
        async with aiohttp.ClientSession() as session, session.post(
                url, data=body, params=query, headers={"Content-Type": "text/xml"}) as resp:
            return resp.status, await resp.text()

    async def get_url_check(self, url: str, query: dict[str, str]) -> tuple[int, str]:
        async with aiohttp.ClientSession() as session, session.get(url, params=query) as resp:
            return resp.status, await resp.text()


def stamp_and_nonce(timestamp: int | None = None) -> tuple[str, str]:
    """A callback's ``timestamp`` (now unless given) and a random ``nonce``."""
    return (str(int(time.time()) if timestamp is None else timestamp),
            str(int.from_bytes(os.urandom(4), "big")))


@dataclass(frozen=True)
class SentWeChat:
    to: str
    text: str
    monotonic: float


@dataclass
class _Follower:
    last_message: float  # time.time() of the user's last message
    quota: int  # customer-service messages still allowed since it
    last_exchange: float  # time.time() of the last message either way
    typing_until: float = 0.0


class WeChatFake(TencentFake):
    scripted = _SCRIPTED
    to_user = ORIGINAL_ID
    errcode = staticmethod(_error)

    def __init__(self, *, app_id: str = "wx5823bf96d3bd56c7",
                 app_secret: str = "fake-wechat-app-secret-0123456789",
                 token: str = "pyclawFakeToken",
                 encoding_aes_key: str | None = None) -> None:
        super().__init__(token=token, encoding_aes_key=encoding_aes_key,
                         seed=b"pyclaw wechat fake", first_msg_id=24_183_402_117_000_001)
        self.app_id = app_id
        self.app_secret = app_secret
        self.window = WINDOW
        self.reply_quota = REPLY_QUOTA
        self.token_lifetime = TOKEN_LIFETIME
        self.ip_allowed = True
        self.sent: list[SentWeChat] = []
        self.typing: list[tuple[str, str]] = []  # (openid, command)
        self.token_requests: list[str] = []  # "token" or "stable_token" per fetch
        self.followers: dict[str, _Follower] = {}
        self._tokens: dict[str, float] = {}  # token -> time.time() it stops being valid
        self._stable = ""

    @property
    def receive_id(self) -> str:
        return self.app_id

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/cgi-bin/token", self._token)
        app.router.add_post("/cgi-bin/stable_token", self._stable_token)
        app.router.add_post("/cgi-bin/message/custom/send", self._send)
        app.router.add_post("/cgi-bin/message/custom/typing", self._typing)
        app.router.add_get("/cgi-bin/media/get", self.get_media)

    # ---- controls ------------------------------------------------------------------------

    def expire_tokens(self) -> None:
        """Every token issued so far is past its expires_in (42001)."""
        self._tokens = {t: time.time() - 1 for t in self._tokens}

    def revoke_tokens(self) -> None:
        """Every token issued so far is unknown (40001), as after a reset AppSecret."""
        self._tokens.clear()
        self._stable = ""

    @property
    def issued_tokens(self) -> list[str]:
        """Every access_token issued and not revoked (for checking none leaks into a log)."""
        return list(self._tokens)

    def close_window(self, openid: str) -> None:
        self.followers[openid].last_message = time.time() - self.window - 60

    # ---- the API -------------------------------------------------------------------------

    def _issue(self, *, classic: bool) -> str:
        now = time.time()
        token = f"{70 + len(self._tokens)}_{uuid.uuid4().hex}{uuid.uuid4().hex}"
        if classic:
            for old in list(self._tokens):
                if old != self._stable:
                    self._tokens[old] = min(self._tokens[old], now + _OLD_TOKEN_GRACE)
        self._tokens[token] = now + self.token_lifetime
        return token

    def _credentials(self, grant: object, appid: object, secret: object
                     ) -> web.Response | None:
        if grant != "client_credential":
            return _error(40002, "invalid grant_type")
        if appid != self.app_id:
            return _error(40013, "invalid appid")
        if secret != self.app_secret:
            return _error(40125, "invalid appsecret")
        if not self.ip_allowed:
            return _error(40164, "invalid ip 203.0.113.7 ipv6 ::ffff:203.0.113.7, not in "
                          "whitelist")
        return None

    async def _token(self, request: web.Request) -> web.StreamResponse:
        scripted = await self.before("token")
        if scripted is not None:
            return scripted
        q = request.query
        refused = self._credentials(q.get("grant_type"), q.get("appid"), q.get("secret"))
        if refused is not None:
            return refused
        self.token_requests.append("token")
        token = self._issue(classic=True)
        self.after("token", request)
        return json_response({"access_token": token, "expires_in": self.token_lifetime})

    async def _stable_token(self, request: web.Request) -> web.StreamResponse:
        scripted = await self.before("token")
        if scripted is not None:
            return scripted
        body = await json_body(request)
        if body is None:
            return _error(47001, "data format error")
        refused = self._credentials(body.get("grant_type"), body.get("appid"),
                                    body.get("secret"))
        if refused is not None:
            return refused
        self.token_requests.append("stable_token")
        now = time.time()
        if body.get("force_refresh") is True or self._tokens.get(self._stable, 0) <= now:
            self._tokens.pop(self._stable, None)
            self._stable = self._issue(classic=False)
        self.after("token", request)
        return json_response({"access_token": self._stable,
                              "expires_in": int(self._tokens[self._stable] - now)})

    def _authorised(self, request: web.Request) -> web.Response | None:
        token = request.query.get("access_token")
        if not token:
            return _error(41001, "access_token missing")
        if token not in self._tokens:
            return _error(40001, "invalid credential, access_token is invalid or not latest")
        if self._tokens[token] <= time.time():
            return _error(42001, "access_token expired")
        return None

    async def _send(self, request: web.Request) -> web.StreamResponse:
        refused = await self.admitted("send", request)
        if refused is not None:
            return refused
        body = await json_body(request)
        if body is None:
            return _error(47001, "data format error")
        follower = self.followers.get(str(body.get("touser")))
        if follower is None:
            return _error(40003, "invalid openid")
        content = self.text_of(body)
        if isinstance(content, web.Response):
            return content
        if len(content.encode()) > MAX_BYTES:
            return _error(45002, "content size out of limit")
        now = time.time()
        if now - follower.last_message > self.window:
            return _error(45015, "response out of time limit or subscription is canceled")
        if follower.quota <= 0:
            return _error(45047, "out of response count limit")
        follower.quota -= 1
        follower.last_exchange, follower.typing_until = now, 0.0
        self.sent.append(SentWeChat(str(body["touser"]), content, time.monotonic()))
        self.after("send", request)
        return json_response({"errcode": 0, "errmsg": "ok"})

    async def _typing(self, request: web.Request) -> web.StreamResponse:
        refused = await self.admitted("typing", request)
        if refused is not None:
            return refused
        body = await json_body(request) or {}
        follower = self.followers.get(str(body.get("touser")))
        command = body.get("command")
        if follower is None:
            return _error(40003, "invalid openid")
        if command not in ("Typing", "CancelTyping"):
            return _error(45072, "invalid command")
        now = time.time()
        if now - follower.last_exchange > TYPING_NEEDS:
            return _error(45080, "need sending message to user in 30 seconds")
        if command == "Typing" and follower.typing_until > now:
            return _error(45081, "already in typing status")
        follower.typing_until = now + TYPING_SECONDS if command == "Typing" else 0.0
        self.typing.append((str(body["touser"]), str(command)))
        self.after("typing", request)
        return json_response({"errcode": 0, "errmsg": "ok"})

    # ---- callbacks -----------------------------------------------------------------------

    def _received(self, openid: str) -> None:
        now = time.time()
        self.followers[openid] = _Follower(now, self.reply_quota, now)

    def media(self, openid: str, kind: str) -> dict[str, Any]:
        """An image, voice, video or location message, with what WeChat sends for each."""
        media_id = base64.urlsafe_b64encode(os.urandom(30)).decode()
        fields: dict[str, dict[str, Any]] = {
            "image": {"PicUrl": f"http://mmbiz.qpic.cn/mmbiz_jpg/{uuid.uuid4().hex}/0",
                      "MediaId": media_id},
            "voice": {"MediaId": media_id, "Format": "amr", "Recognition": ""},
            "video": {"MediaId": media_id, "ThumbMediaId": media_id[::-1]},
            "location": {"Location_X": "23.134521", "Location_Y": "113.358803",
                         "Scale": 20, "Label": "位置信息"}}
        return self._message(openid, kind, **fields[kind])

    def event(self, openid: str, event: str, **fields: Any) -> dict[str, Any]:
        """An event push; a subscribe opens the window as a message does."""
        if event == "subscribe":
            self._received(openid)
        return super().event(openid, event, **fields)

    def callback(self, fields: dict[str, Any] | bytes, *, mode: str = "safe",
                 token: str | None = None, timestamp: int | None = None,
                 random16: bytes | None = None) -> tuple[bytes, dict[str, str]]:
        """The body and query of WeChat's POST for ``fields`` (or a raw plaintext body), in
        ``mode`` (safe, compatible, plaintext); ``token`` signs instead of ours."""
        plain = fields if isinstance(fields, bytes) else to_xml(fields)
        stamp, nonce = stamp_and_nonce(timestamp)
        openid = fields.get("FromUserName", "") if isinstance(fields, dict) else ""
        query = {"signature": tencent_signature(self.token if token is None else token,
                                                stamp, nonce),
                 "timestamp": stamp, "nonce": nonce, "openid": str(openid)}
        if mode == "plaintext":
            return plain, query
        encrypted, msg_signature = self.sealed(plain, token, stamp, nonce, random16)
        outer = {"ToUserName": ORIGINAL_ID, "Encrypt": encrypted}
        if mode == "compatible" and isinstance(fields, dict):
            outer = {**fields, "Encrypt": encrypted}
        query.update(encrypt_type="aes", msg_signature=msg_signature)
        return to_xml(outer), query

    def url_check(self, echostr: str = "6302813489617712", *, token: str | None = None
                  ) -> dict[str, str]:
        """The query of the GET WeChat sends when the Server URL is saved."""
        stamp, nonce = stamp_and_nonce()
        return {"signature": tencent_signature(token or self.token, stamp, nonce),
                "timestamp": stamp, "nonce": nonce, "echostr": echostr}


