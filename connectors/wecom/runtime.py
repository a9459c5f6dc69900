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

What WeCom shares with the Official Account (the token, the call wrapper, the client,
journaling a callback) is :class:`~connectors.wechat._tencent.TencentConnector`; this
module gives what is WeCom's own: its errcodes and advice, gettoken and agent/get, the
encrypted URL check, AgentID, ``invaliduser`` and the per-member pace.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping

from connectors.wechat._parse import Parsed
from connectors.wechat._tencent import (
    BUSY_WAIT,
    TencentConnector,
    TencentRefused,
    msg_signed,
    read_or_reject,
)
from connectors.wechat._wire import TokenCache, XmlRefused, read_xml
from connectors.wecom._parse import parse_app_callback
from connectors.wecom.manifest import SPEC, WeComConfig
from pyclaw_app.channels import (
    ChannelHttp,
    HttpAnswer,
    Recent,
    WebhookRejected,
    WebhookRequest,
    WebhookResponse,
)
from pyclaw_app.errors import FatalConnectorError, RetryableError
from pyclaw_app.model import Address

__all__ = ["WeComConnector"]

PER_MEMBER = 30
"""App messages to one member per minute; WeCom drops the rest without an error."""
PACE_WINDOW = 60.0
KEPT = 1000
"""Members whose recent send times are kept for the pace."""
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


def signed_echo(token: str, query: Mapping[str, str]) -> str | None:
    """The encrypted ``echostr`` of a URL check whose ``msg_signature`` is good, else None."""
    echostr = query.get("echostr", "")
    return echostr if echostr and msg_signed(token, query, echostr) else None


def signed_encrypt(token: str, query: Mapping[str, str], body: bytes) -> str | None:
    """``Encrypt`` of a callback body whose ``msg_signature`` covers it, else None;
    XmlRefused for a body that is not a flat ``<xml>`` we parse."""
    encrypted = read_xml(body).get("Encrypt", "")
    return encrypted if encrypted and msg_signed(token, query, encrypted) else None


_MEDIA_ADVICE = {40007: "WeCom keeps what users send for three days only, so it is gone (or "
                        "never was)"}
"""What the sender is told about a refused ``media/get``."""

class WeComConnector(TencentConnector):
    spec = SPEC
    config: WeComConfig
    platform = "WeCom"
    url_name = "receive URL"
    secret_field = "corp_secret"
    receive_id_field = "corp_id"
    token_codes = frozenset({40014, 42001})
    """The access_token is invalid or expired."""
    busy_codes = frozenset({-1, 45033})
    """-1 "system busy" and 45033 "too many concurrent calls" (no wait given)."""
    minute_codes = frozenset({45009})
    """45009: WeCom's call limits are counted per minute and per hour."""
    advice = _ADVICE
    media_advice = _MEDIA_ADVICE
    follow_words = ("added the app", "removed the app")
    ack = ""

    def __init__(self, name: str, config: WeComConfig) -> None:
        super().__init__(name, config)
        self._sent_at: Recent[str, deque[float]] = Recent(KEPT)

    def check_config(self) -> None:
        self.secret("token")  # no token and key, no verifiable callback: refuse to start
        corp_id = self.config.corp_id.strip()
        if not corp_id or not self.config.agent_id:
            raise FatalConnectorError("the WeCom corp_id and agent_id must be set: the "
                                      "CorpID is under My Company > Company Information, the "
                                      "AgentId on the app's page")
        self._make_envelope(corp_id, "the app's API receive settings")

    # ---- sending --------------------------------------------------------------------------

    async def send_part(self, address: Address, text: str, reply_to: str | None) -> str:
        self._pace(address.chat)
        answer = await self._api("POST", "message/send", {
            "touser": address.chat, "msgtype": "text", "agentid": self.config.agent_id,
            "text": {"content": text}, "safe": 0}, what=f"the reply to {address.chat}")
        data = answer.data
        if address.chat.lower() in str(data.get("invaliduser") or "").lower().split("|"):
            raise TencentRefused(f"WeCom did not deliver the reply to {address.chat}: listed "
                                 f"in invaliduser ({_ADVICE[81013]})", 81013)
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

    # ---- the token and the app ------------------------------------------------------------

    async def _request_token(self, http: ChannelHttp, secret: str) -> HttpAnswer:
        return await http.call("GET", "/cgi-bin/gettoken", params={
            "corpid": self.config.corp_id.strip(), "corpsecret": secret})

    async def _identify(self, http: ChannelHttp, tokens: TokenCache) -> str:
        """The token proves CorpID and Secret; ``agent/get`` the AgentId, and that this IP is
        trusted (gettoken is allowed from anywhere, every other call is not)."""
        answer = await self._call(http, tokens, "GET", "agent/get", None,
                                  what="the app's details",
                                  params={"agentid": str(self.config.agent_id)})
        name = answer.data.get("name") if isinstance(answer.data, dict) else None
        return f"{name or 'app'} ({self.config.agent_id})"

    # ---- receiving ------------------------------------------------------------------------

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
        try:
            encrypted = signed_encrypt(self.secret("token"), request.query, request.body)
        except XmlRefused as exc:
            raise WebhookRejected(400, f"not a WeCom callback: {exc}", level="error") from None
        if encrypted is None:
            raise WebhookRejected(401, "bad or missing msg_signature (compare token with "
                                  "the app's API receive settings)")
        self._fresh(request)

    def _open(self, request: WebhookRequest) -> dict[str, str]:
        encrypted = read_xml(request.body)["Encrypt"]  # _verify read and checked it
        return read_or_reject(self._opened(encrypted),
                              "the decrypted message is not WeCom's XML")

    def _parse(self, fields: dict[str, str]) -> Parsed:
        return parse_app_callback(fields, channel=self.name, agent_id=self.config.agent_id)

    # ---- the client -----------------------------------------------------------------------

    def make_http(self) -> ChannelHttp:
        return self._client(self.config.api_base)


CONNECTOR = WeComConnector
