"""The WeCom app connector: encrypted XML callbacks in, the app message API out.

No SDK. wechatpy's ``wechatpy.work`` is unmaintained since 2021 and synchronous; Tencent's
own sample (``WXBizMsgCrypt.py``) is crypto only and needs PyCrypto. The crypto is
Tencent's shared envelope (``connectors.wechat._crypto``, the one implementation both
channels use, checked against wechatpy's vectors); the three REST calls go through the
kit's ``ChannelHttp``.

Receiving: WeCom always encrypts. The receive URL's GET carries ``msg_signature`` =
sha1(sorted token, timestamp, nonce, echostr) and an *encrypted* ``echostr``, answered
with its plaintext. A POST's body is ``<xml><ToUserName/><AgentID/><Encrypt/></xml>``
and ``msg_signature`` covers ``Encrypt``: the body is read (size-capped, declarations
refused) only to take ``Encrypt`` out, the signature checked, then the message
decrypted (its receive id must be our CorpID) and read. WeCom waits five seconds and
calls again up to three times; the channel answers an empty 200 once the message is in
the journal (MsgId recognises the retries).

Sending: ``POST /cgi-bin/message/send`` (``touser``, ``msgtype: text``, ``agentid``,
``text.content``) with an ``access_token`` from ``GET /cgi-bin/gettoken`` cached until
five minutes before ``expires_in`` and renewed once on 40014/42001. WeCom answers
HTTP 200 with an ``errcode``: -1 (busy) and 45033 (too many concurrent calls) are
retryable after a second, 45009 (a call limit) after a minute; 60020 (this server's IP
is not among the app's trusted IPs) and the rest are fatal with what to do. A
recipient WeCom could not reach is listed in ``invaliduser`` of an otherwise
successful answer: that part is refused, not silently lost.

WeCom drops, silently, app messages beyond 30 a minute to one member. The channel
keeps count and answers a part that would be the 31st with RetryableError and the
wait until a slot frees, so a long reply is slowed down instead of losing its end.
"""

from __future__ import annotations

import json
import time
from collections import deque
from typing import Any

from connectors.wechat._crypto import CryptoError, Envelope, signature_matches
from connectors.wechat._wire import TokenCache, XmlRefused, errcode, errmsg, read_xml
from connectors.wecom._parse import Followed, Ignored, Malformed, Message, parse_app_callback
from connectors.wecom.manifest import SPEC, WeComConfig
from pyclaw_app.channels import (
    ChannelHttp,
    HttpAnswer,
    Recent,
    RestConnector,
    WebhookRejected,
    WebhookRequest,
    WebhookResponse,
    fresh_timestamp,
)
from pyclaw_app.errors import (
    ConnectorError,
    DeliveryUncertain,
    FatalConnectorError,
    RetryableError,
)
from pyclaw_app.model import Address

__all__ = ["WeComConnector", "WeComRefused"]

TOKEN_CODES = frozenset({40014, 42001})
"""The access_token is invalid or expired: renew it once and call again."""
BUSY_WAIT = 1.0
"""Seconds after -1 "system busy" and 45033 "too many concurrent calls" (no wait given)."""
LIMIT_WAIT = 60.0
"""Seconds after 45009: WeCom's call limits are counted per minute and per hour."""
PER_MEMBER = 30
"""App messages to one member per minute; WeCom drops the rest without an error."""
PACE_WINDOW = 60.0
KEPT = 1000
"""Members whose recent send times are kept for the pace."""
_JSON = {"Content-Type": "application/json; charset=utf-8"}
_ADVICE = {
    60020: "this server's IP is not among the app's trusted IPs: add it in the admin "
           "console under App Management > the app > Enterprise Trusted IP (企业可信IP)",
    81013: "the member does not exist or is outside the app's visible range (可见范围)",
    60011: "the app may not reach this member: widen its visible range",
    40056: "the agent_id is not this app's: check agent_id",
    301002: "the Secret belongs to another app than agent_id: check corp_secret and "
            "agent_id",
    40013: "the CorpID is not valid: check corp_id",
    40001: "the Secret is not valid: check corp_secret",
    40091: "the Secret is not valid: check corp_secret",
    48002: "the app has no permission for this API",
}


class WeComRefused(FatalConnectorError):
    """WeCom refused a call with ``errcode``; retrying the same call cannot help."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _refusal(code: int, message: str, what: str) -> ConnectorError:
    said = f"{what}: errcode {code} ({message})"
    if code in (-1, 45033):
        return RetryableError(f"WeCom is busy ({said}); retrying", retry_after=BUSY_WAIT)
    if code == 45009:
        return RetryableError(f"WeCom rate limit ({said})", retry_after=LIMIT_WAIT)
    hint = _ADVICE.get(code)
    return WeComRefused(f"WeCom refused {said}{f': {hint}' if hint else ''}", code)


def signed_echo(token: str, query: dict[str, str] | Any) -> str | None:
    """The encrypted ``echostr`` of a URL check whose ``msg_signature`` is good, else None."""
    echostr = query.get("echostr", "")
    good = echostr and signature_matches(query.get("msg_signature"), token,
                                         query.get("timestamp", ""), query.get("nonce", ""),
                                         echostr)
    return echostr if good else None


def signed_encrypt(token: str, query: dict[str, str] | Any, body: bytes) -> str | None:
    """``Encrypt`` of a callback body whose ``msg_signature`` covers it, else None;
    XmlRefused for a body that is not a flat ``<xml>`` we parse."""
    encrypted = read_xml(body).get("Encrypt", "")
    good = encrypted and signature_matches(query.get("msg_signature"), token,
                                           query.get("timestamp", ""),
                                           query.get("nonce", ""), encrypted)
    return encrypted if good else None


class WeComConnector(RestConnector):
    spec = SPEC
    config: WeComConfig

    def __init__(self, name: str, config: WeComConfig) -> None:
        super().__init__(name, config)
        self._tokens: TokenCache | None = None
        self._envelope: Envelope | None = None
        self._sent_at: Recent[str, deque[float]] = Recent(KEPT)

    def check_config(self) -> None:
        self.secret("token")  # no token and key, no verifiable callback: refuse to start
        corp_id = self.config.corp_id.strip()
        if not corp_id or not self.config.agent_id:
            raise FatalConnectorError("the WeCom corp_id and agent_id must be set: the "
                                      "CorpID is under My Company > Company Information, the "
                                      "AgentId on the app's page")
        try:
            self._envelope = Envelope(self.secret("encoding_aes_key"), corp_id)
        except CryptoError as exc:
            raise FatalConnectorError(f"the WeCom encoding_aes_key is not usable: {exc}; "
                                      "copy it from the app's API receive settings") from None

    # ---- sending --------------------------------------------------------------------------

    async def send_part(self, address: Address, text: str, reply_to: str | None) -> str:
        self._pace(address.chat)
        answer = await self._api("POST", "message/send", {
            "touser": address.chat, "msgtype": "text", "agentid": self.config.agent_id,
            "text": {"content": text}, "safe": 0}, what=f"the reply to {address.chat}")
        data = answer.data
        if address.chat.lower() in str(data.get("invaliduser") or "").lower().split("|"):
            raise WeComRefused(f"WeCom did not deliver the reply to {address.chat}: listed in "
                               f"invaliduser ({_ADVICE[81013]})", 81013)
        times = self._sent_at.get(address.chat) or deque()
        times.append(time.monotonic())
        self._sent_at.remember(address.chat, times)
        return str(data.get("msgid") or "")

    def _pace(self, chat: str) -> None:
        """RetryableError when a send now would be the member's 31st within a minute."""
        times = self._sent_at.get(chat)
        if times is None:
            return
        now = time.monotonic()
        while times and now - times[0] >= PACE_WINDOW:
            times.popleft()
        if len(times) >= PER_MEMBER:
            wait = PACE_WINDOW - (now - times[0])
            raise RetryableError(f"WeCom delivers at most {PER_MEMBER} app messages a minute "
                                 f"to one member and drops the rest; waiting {wait:.0f}s",
                                 retry_after=max(wait, BUSY_WAIT))

    async def _api(self, verb: str, method: str, body: dict[str, Any] | None = None, *,
                   what: str, params: dict[str, str] | None = None) -> HttpAnswer:
        """One call with the cached token, renewed once if WeCom calls it invalid (the call
        was refused, so making it again is safe)."""
        http, tokens = self.http, self._tokens
        if tokens is None:
            raise RetryableError("the WeCom channel has no access_token yet")
        return await self._call(http, tokens, verb, method, body, what=what, params=params)

    async def _call(self, http: ChannelHttp, tokens: TokenCache, verb: str, method: str,
                    body: dict[str, Any] | None, *, what: str,
                    params: dict[str, str] | None) -> HttpAnswer:
        token = await tokens.get()
        idempotent = verb == "GET"
        for renewed in (False, True):
            answer = await http.call(
                verb, f"/cgi-bin/{method}", params={**(params or {}), "access_token": token},
                data=None if body is None else _json(body),
                headers=_JSON if body is not None else None)
            code = errcode(answer.data)
            if code == 0:
                return answer
            if code is None:
                detail = f"{what}: WeCom answered something that is not its JSON"
                raise RetryableError(detail) if idempotent else DeliveryUncertain(
                    f"{detail}; it may have been carried out")
            if code in TOKEN_CODES and not renewed:
                self.log.info("access_token refused (%s); renewing it", code)
                token = await tokens.renew(token)
                continue
            raise _refusal(code, errmsg(answer.data).replace(token, "<access_token>"), what)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def _fetch_token(self, http: ChannelHttp) -> tuple[str, float]:
        secret = self.secret("corp_secret")
        answer = await http.call("GET", "/cgi-bin/gettoken", params={
            "corpid": self.config.corp_id.strip(), "corpsecret": secret})
        data, code = answer.data, errcode(answer.data)
        if code:
            raise _refusal(code, errmsg(data).replace(secret, "<secret>"),
                           "the access_token request")
        token = data.get("access_token") if isinstance(data, dict) else None
        expires = data.get("expires_in") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise RetryableError("WeCom answered the access_token request without a token")
        http.add_secret(token)
        valid = isinstance(expires, int) and not isinstance(expires, bool) and expires > 0
        return token, float(expires) if valid else 7200.0

    # ---- receiving ------------------------------------------------------------------------

    async def handle_webhook(self, request: WebhookRequest) -> WebhookResponse:
        if request.method == "GET":
            return await self.receive(request, self._verify_url_check, self._echo,
                                      parse=lambda r: r.query.get("echostr", ""))
        return await self.receive(request, self._verify, self._deliver, parse=self._open)

    def _fresh(self, request: WebhookRequest) -> None:
        stamp = request.query.get("timestamp", "")
        if not fresh_timestamp(stamp):
            raise WebhookRejected(401, f"a signed request from timestamp {stamp[:12]!r}, "
                                  "over five minutes from our clock: a replay, or this "
                                  "server's clock is wrong")

    def _verify_url_check(self, request: WebhookRequest) -> None:
        if signed_echo(self.secret("token"), request.query) is None:
            raise WebhookRejected(401, "a URL check with a bad or missing msg_signature or "
                                  "echostr (compare token with the app's API receive "
                                  "settings)")
        self._fresh(request)

    async def _echo(self, echostr: str) -> WebhookResponse:
        """The plaintext of the encrypted echostr, as it is (no quotes, no newline)."""
        plain = self._opened(echostr)
        self.ctx.log("info", "receive URL verified by WeCom")
        return WebhookResponse(200, plain)

    def _verify(self, request: WebhookRequest) -> None:
        """``msg_signature`` over ``Encrypt``: the body is read only to take it out."""
        if request.method != "POST":
            raise WebhookRejected(405, "WeCom calls the receive URL with GET and POST only")
        try:
            encrypted = signed_encrypt(self.secret("token"), request.query, request.body)
        except XmlRefused as exc:
            raise WebhookRejected(400, f"not a WeCom callback: {exc}", level="error") from None
        if encrypted is None:
            raise WebhookRejected(401, "bad or missing msg_signature (compare token with "
                                  "the app's API receive settings)")
        self._fresh(request)

    def _opened(self, encrypted: str) -> bytes:
        assert self._envelope is not None  # check_config made it before the channel ran
        try:
            return self._envelope.open(encrypted)
        except CryptoError as exc:
            raise WebhookRejected(400, f"the encrypted message does not open: {exc} (check "
                                  "encoding_aes_key and corp_id)", level="error") from None

    def _open(self, request: WebhookRequest) -> dict[str, str]:
        encrypted = read_xml(request.body)["Encrypt"]  # _verify read and checked it
        try:
            return read_xml(self._opened(encrypted))
        except XmlRefused as exc:
            raise WebhookRejected(400, f"the decrypted message is not WeCom's XML: {exc}",
                                  level="error") from None

    async def _deliver(self, fields: dict[str, str]) -> WebhookResponse:
        """Journal a message, then an empty 200; anything else is answered 200 too, so WeCom
        does not send it three more times."""
        ctx = self.ctx
        parsed = parse_app_callback(fields, channel=self.name, agent_id=self.config.agent_id)
        if isinstance(parsed, Message):
            result = await ctx.submit(parsed.inbound)
            if result.duplicate:
                self.log.debug("WeCom retried %s", parsed.inbound.platform_id)
        elif isinstance(parsed, Followed):
            ctx.log("info", f"{parsed.user} {'added' if parsed.following else 'removed'} "
                    "the app")
        elif isinstance(parsed, Malformed):
            ctx.log("error", f"skipped a malformed WeCom callback: {parsed.reason}",
                    msg_type=fields.get("MsgType", "")[:40])
        elif isinstance(parsed, Ignored):
            self.log.debug("ignored: %s", parsed.reason)
        return WebhookResponse(200, "")

    # ---- the client -----------------------------------------------------------------------

    def make_http(self) -> ChannelHttp:
        secret = self.secret("corp_secret")
        return ChannelHttp(self.config.api_base, platform="WeCom",
                           secrets=[secret, self.secret_or_none("token") or "",
                                    self.secret_or_none("encoding_aes_key") or ""],
                           describe=lambda body: errmsg(body) if isinstance(body, dict)
                           else None)

    async def whoami(self, http: ChannelHttp) -> str:
        """The token proves CorpID and Secret; ``agent/get`` the AgentId, and that this IP is
        trusted (gettoken is allowed from anywhere, every other call is not)."""
        tokens = TokenCache(lambda: self._fetch_token(http))
        answer = await self._call(http, tokens, "GET", "agent/get", None,
                                  what="the app's details",
                                  params={"agentid": str(self.config.agent_id)})
        if http is self._http:
            self._tokens = tokens
        name = answer.data.get("name") if isinstance(answer.data, dict) else None
        return f"{name or 'app'} ({self.config.agent_id})"

    async def close(self) -> None:
        self._tokens = None
        await super().close()


def _json(body: dict[str, Any]) -> bytes:
    """UTF-8 JSON, not ``\\u`` escapes (what Tencent's APIs expect)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


CONNECTOR = WeComConnector
