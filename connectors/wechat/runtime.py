"""The WeChat Official Account connector: signed XML callbacks in, customer-service messages out.

No SDK. wechatpy, the one Python library, has been unmaintained since 2021 and is
synchronous (requests): every call would cost a thread, and its retry-on-expired-token
hides what our single retry layer must see. What it does well, the crypto, is small
and lives in ``_crypto.py`` (checked against wechatpy's published vectors); the four
REST calls go through the kit's ``ChannelHttp``.

Receiving: WeChat calls the Server URL with ``signature`` (sha1 of the sorted token,
``timestamp``, ``nonce``) in the query; the GET with ``echostr`` is the URL check and is
echoed. In safe (and compatible) mode the body is ``<xml><Encrypt>`` and ``msg_signature``
also covers ``Encrypt``; only then is the message decrypted and read. WeChat waits five
seconds for an answer and calls again up to three times; the channel answers
``success`` as soon as the message is in the journal (MsgId recognises the retries), and
the reply goes later through the customer-service API, never in the five-second window.

Sending: ``POST /cgi-bin/message/custom/send`` with an ``access_token`` from
``/cgi-bin/stable_token`` (or ``/cgi-bin/token``), cached and renewed five minutes before
``expires_in``, and renewed once when WeChat calls it invalid (40001, 40014, 42001).
WeChat answers HTTP 200 with an ``errcode``; :func:`_refusal` sorts them:

- -1 "system busy, retry later" -> RetryableError, waiting at least one second (WeChat
  gives no wait); 45011 (per-minute quota) -> RetryableError after a minute;
- 45015: the user last wrote over 48 hours ago (or unfollowed) and 45047: the five
  customer-service messages one user message allows are used up -> FatalConnectorError
  that says so: no retry helps until the user writes again (then Retry in Logs sends the
  rest);
- 48001 (no customer-service permission: unverified accounts), 45009 (daily quota),
  40164 (IP not whitelisted), a bad AppID/AppSecret -> FatalConnectorError with what to do.

Typing is the customer-service ``Typing`` command; its two expected refusals (no
exchange in the last 30 s, already typing) are not errors.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from connectors.wechat._crypto import CryptoError, Envelope, signature_matches
from connectors.wechat._parse import Followed, Ignored, Malformed, Message, parse_callback
from connectors.wechat._wire import TokenCache, XmlRefused, errcode, errmsg, read_xml
from connectors.wechat.manifest import SPEC, WeChatConfig
from pyclaw_app.channels import (
    ChannelHttp,
    HttpAnswer,
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

__all__ = ["WeChatConnector", "WeChatRefused"]

TOKEN_CODES = frozenset({40001, 40014, 42001})
"""The access_token is invalid, not the latest, or expired: renew it once and call again."""
BUSY_WAIT = 1.0
"""Seconds to wait after -1 "system busy": WeChat says "retry later" without a number."""
MINUTE_QUOTA_WAIT = 60.0
"""45011 "api minute-quota reach limit, retry next minute"."""
NOT_TYPING = frozenset({45080, 45081})
"""Typing refused because nothing was exchanged in the last 30 s, or it already shows."""
_JSON = {"Content-Type": "application/json; charset=utf-8"}
_ADVICE = {
    45015: "the user has not written to the account in the last 48 hours, or unfollowed it "
           "(WeChat lets an account answer only within 48 hours of the user's last message); "
           "the reply can go when they write again (Retry it in Logs)",
    45047: "WeChat allows only five customer-service messages per message the user sends, "
           "and this reply needed more; the rest can go when they write again (Retry it in "
           "Logs)",
    43004: "the user does not follow the account (any more)",
    40003: "the OpenID is not a follower of this account",
    45002: "the text is longer than WeChat accepts",
    48001: "this account has no customer-service message permission: WeChat grants it to "
           "verified accounts (unverified subscription accounts can only answer within five "
           "seconds); a sandbox test account has it too",
    45009: "WeChat's daily quota for this API is used up; it resets at midnight Beijing time "
           "(an admin can reset it once a month in the console)",
    40164: "this server's IP is not in the account's IP whitelist: add it in Settings and "
           "Development > Basic Configuration > IP whitelist (IP白名单)",
    40013: "the AppID is not valid: check app_id",
    40125: "the AppSecret is not valid: check app_secret (reset it in Basic Configuration "
           "if it was lost)",
    40243: "the AppSecret is frozen: unfreeze or reset it in Basic Configuration",
}
_TOKEN_ADVICE = {
    40001: "the AppSecret does not belong to this AppID: check app_secret",
    89503: "this server's IP needs an administrator's confirmation: approve it in the "
           "console, or add it to the IP whitelist",
}
"""Codes that mean something else when the token itself is asked for."""


class WeChatRefused(FatalConnectorError):
    """WeChat refused a call with ``errcode``; retrying the same call cannot help."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _refusal(code: int, message: str, what: str, advice: Mapping[int, str] = _ADVICE
             ) -> ConnectorError:
    said = f"{what}: errcode {code} ({message})"
    if code == -1:
        return RetryableError(f"WeChat is busy ({said}); retrying", retry_after=BUSY_WAIT)
    if code == 45011:
        return RetryableError(f"WeChat rate limit ({said})", retry_after=MINUTE_QUOTA_WAIT)
    hint = advice.get(code)
    return WeChatRefused(f"WeChat refused {said}{f': {hint}' if hint else ''}", code)


class WeChatConnector(RestConnector):
    spec = SPEC
    config: WeChatConfig

    def __init__(self, name: str, config: WeChatConfig) -> None:
        super().__init__(name, config)
        self._tokens: TokenCache | None = None
        self._envelope: Envelope | None = None

    def check_config(self) -> None:
        self.secret("token")  # no token, no verifiable callback: refuse to start
        if not self.config.app_id.strip():
            raise FatalConnectorError("the WeChat app_id is not set: copy the AppID from "
                                      "Settings and Development > Basic Configuration")
        if self.config.encryption != "plaintext":
            try:
                self._envelope = Envelope(self.secret("encoding_aes_key"),
                                          self.config.app_id.strip())
            except CryptoError as exc:
                raise FatalConnectorError(f"the WeChat encoding_aes_key is not usable: {exc}"
                                          "; copy it from Server Configuration") from None

    # ---- sending --------------------------------------------------------------------------

    async def send_part(self, address: Address, text: str, reply_to: str | None) -> str:
        """One customer-service text. WeChat answers no message id, so there is none."""
        await self._api("message/custom/send", {
            "touser": address.chat, "msgtype": "text", "text": {"content": text}},
            what=f"the reply to {address.chat}")
        return ""

    async def typing(self, address: Address) -> None:
        try:
            await self._api("message/custom/typing", {"touser": address.chat,
                                                      "command": "Typing"},
                            what="typing", idempotent=True)
        except WeChatRefused as exc:
            if exc.code not in NOT_TYPING:
                raise
            self.log.debug("typing not shown: %s", exc)

    async def _api(self, method: str, body: dict[str, Any], *, what: str,
                   idempotent: bool = False) -> HttpAnswer:
        """``POST /cgi-bin/<method>`` with the cached token, renewed once if WeChat calls it
        invalid (the call was refused, so sending it again is safe)."""
        http, tokens = self.http, self._tokens
        if tokens is None:
            raise RetryableError("the WeChat channel has no access_token yet")
        token = await tokens.get()
        for renewed in (False, True):
            answer = await http.call("POST", f"/cgi-bin/{method}",
                                     params={"access_token": token}, data=_json(body),
                                     headers=_JSON, idempotent=idempotent)
            code = errcode(answer.data)
            if code == 0:
                return answer
            if code is None:
                detail = f"{what}: WeChat answered something that is not its JSON"
                raise RetryableError(detail) if idempotent else DeliveryUncertain(
                    f"{detail}; it may have been carried out")
            if code in TOKEN_CODES and not renewed:
                self.log.info("access_token refused (%s); renewing it", code)
                token = await tokens.renew(token)
                continue
            raise _refusal(code, errmsg(answer.data).replace(token, "<access_token>"), what)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    # ---- the token ------------------------------------------------------------------------

    async def _fetch_token(self, http: ChannelHttp) -> tuple[str, float]:
        app_id, secret = self.config.app_id.strip(), self.secret("app_secret")
        if self.config.token_endpoint == "stable_token":
            answer = await http.call("POST", "/cgi-bin/stable_token", json_body={
                "grant_type": "client_credential", "appid": app_id, "secret": secret,
                "force_refresh": False}, idempotent=True)
        else:
            answer = await http.call("GET", "/cgi-bin/token", params={
                "grant_type": "client_credential", "appid": app_id, "secret": secret})
        data, code = answer.data, errcode(answer.data)
        if code:
            raise _refusal(code, errmsg(data).replace(secret, "<secret>"),
                           "the access_token request", {**_ADVICE, **_TOKEN_ADVICE})
        token = data.get("access_token") if isinstance(data, dict) else None
        expires = data.get("expires_in") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise RetryableError("WeChat answered the access_token request without a token")
        http.add_secret(token)
        valid = isinstance(expires, int) and not isinstance(expires, bool) and expires > 0
        return token, float(expires) if valid else 7200.0

    # ---- receiving ------------------------------------------------------------------------

    async def handle_webhook(self, request: WebhookRequest) -> WebhookResponse:
        if request.method == "GET":
            return await self.receive(request, self._verify, self._echo,
                                      parse=lambda r: r.query.get("echostr", ""))
        return await self.receive(request, self._verify, self._deliver, parse=self._open)

    def _verify(self, request: WebhookRequest) -> None:
        """``signature`` over (token, timestamp, nonce), before a byte of the body is read;
        a signed timestamp older than five minutes is a replay."""
        if request.method not in ("GET", "POST"):
            raise WebhookRejected(405, "WeChat calls the Server URL with GET and POST only")
        query = request.query
        stamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
        if not signature_matches(query.get("signature"), self.secret("token"), stamp, nonce):
            raise WebhookRejected(401, "bad or missing signature (compare token with the "
                                  "Token in Server Configuration)")
        if not fresh_timestamp(stamp):
            raise WebhookRejected(401, f"a signed request from timestamp {stamp[:12]!r}, "
                                  "over five minutes from our clock: a replay, or this "
                                  "server's clock is wrong")

    async def _echo(self, echostr: str) -> WebhookResponse:
        if not echostr:
            raise WebhookRejected(400, "a signed GET without echostr")
        self.ctx.log("info", "Server URL verified by WeChat")
        return WebhookResponse(200, echostr)

    def _open(self, request: WebhookRequest) -> dict[str, str]:
        """The message's fields: the plaintext body, or the decrypted ``Encrypt`` once
        ``msg_signature`` (which covers it) is checked."""
        outer = _xml(request.body, "not a WeChat callback")
        encrypted = outer.get("Encrypt", "")
        if self._envelope is None:  # plaintext mode
            if encrypted and "MsgType" not in outer:
                raise WebhookRejected(400, "WeChat sent an encrypted message, but this "
                                      "channel is set to plaintext: set encryption to the "
                                      "mode chosen in Server Configuration", level="error")
            return outer
        if not encrypted:
            raise WebhookRejected(400, "a callback without Encrypt, but this channel is set "
                                  f"to {self.config.encryption} mode: set encryption to the "
                                  "mode chosen in Server Configuration", level="error")
        query = request.query
        if not signature_matches(query.get("msg_signature"), self.secret("token"),
                                 query.get("timestamp", ""), query.get("nonce", ""),
                                 encrypted):
            raise WebhookRejected(401, "bad or missing msg_signature")
        try:
            plain = self._envelope.open(encrypted)
        except CryptoError as exc:
            raise WebhookRejected(400, f"the encrypted message does not open: {exc} (check "
                                  "encoding_aes_key and app_id)", level="error") from None
        return _xml(plain, "the decrypted message is not WeChat's XML")

    async def _deliver(self, fields: dict[str, str]) -> WebhookResponse:
        """Journal a message, then ``success``; anything else is answered ``success`` too, so
        WeChat does not send it three more times."""
        ctx = self.ctx
        parsed = parse_callback(fields, channel=self.name)
        if isinstance(parsed, Message):
            result = await ctx.submit(parsed.inbound)
            if result.duplicate:
                self.log.debug("WeChat retried %s", parsed.inbound.platform_id)
        elif isinstance(parsed, Followed):
            ctx.log("info", f"{parsed.user} {'followed' if parsed.following else 'unfollowed'}"
                    " the account")
        elif isinstance(parsed, Malformed):
            ctx.log("error", f"skipped a malformed WeChat callback: {parsed.reason}",
                    msg_type=fields.get("MsgType", "")[:40])
        elif isinstance(parsed, Ignored):
            self.log.debug("ignored: %s", parsed.reason)
        return WebhookResponse(200, "success")

    # ---- the client -----------------------------------------------------------------------

    def make_http(self) -> ChannelHttp:
        secret = self.secret("app_secret")
        return ChannelHttp(self.config.api_base, platform="WeChat",
                           secrets=[secret, self.secret_or_none("token") or "",
                                    self.secret_or_none("encoding_aes_key") or ""],
                           describe=lambda body: errmsg(body) if isinstance(body, dict)
                           else None)

    async def whoami(self, http: ChannelHttp) -> str:
        """The token request is the credentials' check (AppID, AppSecret, IP whitelist); the
        running channel keeps the token it got."""
        tokens = TokenCache(lambda: self._fetch_token(http))
        await tokens.get()
        if http is self._http:
            self._tokens = tokens
        return f"Official Account {self.config.app_id.strip()}"

    async def close(self) -> None:
        self._tokens = None
        await super().close()


def _json(body: dict[str, Any]) -> bytes:
    """UTF-8 JSON, not ``\\u`` escapes: WeChat shows escaped characters literally in some
    APIs, so every client sends the text as it is."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _xml(body: bytes, what: str) -> dict[str, str]:
    try:
        return read_xml(body)
    except XmlRefused as exc:
        raise WebhookRejected(400, f"{what}: {exc}", level="error") from None


CONNECTOR = WeChatConnector
