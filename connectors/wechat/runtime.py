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
WeChat answers HTTP 200 with an ``errcode``; the shared ``TencentConnector.refusal``
sorts them with this module's tables:

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

What WeChat shares with WeCom (the token, the call wrapper, the client, journaling a
callback) is :class:`~connectors.wechat._tencent.TencentConnector`; this module gives
what is the Official Account's own: its errcodes and advice, the two token endpoints,
the plain ``signature`` and the three message modes.
"""

from __future__ import annotations

from connectors.wechat._crypto import signature_matches
from connectors.wechat._parse import Parsed, parse_callback
from connectors.wechat._tencent import (
    TencentConnector,
    TencentRefused,
    msg_signed,
    read_or_reject,
)
from connectors.wechat._wire import TokenCache
from connectors.wechat.manifest import SPEC, WeChatConfig
from pyclaw_app.channels import (
    ChannelHttp,
    HttpAnswer,
    WebhookRejected,
    WebhookRequest,
    WebhookResponse,
)
from pyclaw_app.errors import FatalConnectorError
from pyclaw_app.model import Address

__all__ = ["WeChatConnector"]

NOT_TYPING = frozenset({45080, 45081})
"""Typing refused because nothing was exchanged in the last 30 s, or it already shows."""
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


_MEDIA_ADVICE = {40007: "WeChat keeps what users send for three days only, so it is gone (or "
                        "never was)"}
"""What the sender is told about a refused ``media/get``."""

class WeChatConnector(TencentConnector):
    spec = SPEC
    config: WeChatConfig
    platform = "WeChat"
    url_name = "Server URL"
    secret_field = "app_secret"
    receive_id_field = "app_id"
    token_codes = frozenset({40001, 40014, 42001})
    """The access_token is invalid, not the latest, or expired."""
    busy_codes = frozenset({-1})
    minute_codes = frozenset({45011})
    """45011 "api minute-quota reach limit, retry next minute"."""
    advice = _ADVICE
    token_advice = _TOKEN_ADVICE
    media_advice = _MEDIA_ADVICE
    follow_words = ("followed the account", "unfollowed the account")
    ack = "success"

    def check_config(self) -> None:
        self.secret("token")  # no token, no verifiable callback: refuse to start
        if not self.config.app_id.strip():
            raise FatalConnectorError("the WeChat app_id is not set: copy the AppID from "
                                      "Settings and Development > Basic Configuration")
        if self.config.encryption != "plaintext":
            self._make_envelope(self.config.app_id.strip(), "Server Configuration")

    # ---- sending --------------------------------------------------------------------------

    async def send_part(self, address: Address, text: str, reply_to: str | None) -> str:
        """One customer-service text. WeChat answers no message id, so there is none."""
        await self._api("POST", "message/custom/send", {
            "touser": address.chat, "msgtype": "text", "text": {"content": text}},
            what=f"the reply to {address.chat}")
        return ""

    async def typing(self, address: Address) -> None:
        try:
            await self._api("POST", "message/custom/typing", {"touser": address.chat,
                                                              "command": "Typing"},
                            what="typing", idempotent=True)
        except TencentRefused as exc:
            if exc.code not in NOT_TYPING:
                raise
            self.log.debug("typing not shown: %s", exc)

    # ---- the token ------------------------------------------------------------------------

    async def _request_token(self, http: ChannelHttp, secret: str) -> HttpAnswer:
        app_id = self.config.app_id.strip()
        if self.config.token_endpoint == "stable_token":
            return await http.call("POST", "/cgi-bin/stable_token", json_body={
                "grant_type": "client_credential", "appid": app_id, "secret": secret,
                "force_refresh": False}, idempotent=True)
        return await http.call("GET", "/cgi-bin/token", params={
            "grant_type": "client_credential", "appid": app_id, "secret": secret})

    async def _identify(self, http: ChannelHttp, tokens: TokenCache) -> str:
        """The token request is the credentials' check (AppID, AppSecret, IP whitelist)."""
        await tokens.get()
        return f"Official Account {self.config.app_id.strip()}"

    # ---- receiving ------------------------------------------------------------------------

    def _verify(self, request: WebhookRequest) -> None:
        """``signature`` over (token, timestamp, nonce), before a byte of the body is read;
        a signed timestamp older than five minutes is a replay."""
        query = request.query
        if not signature_matches(query.get("signature"), self.secret("token"),
                                 query.get("timestamp", ""), query.get("nonce", "")):
            raise WebhookRejected(401, "bad or missing signature (compare token with the "
                                  "Token in Server Configuration)")
        self._fresh(request)

    _verify_url_check = _verify  # the URL check is signed as every callback is

    async def _echo(self, echostr: str) -> WebhookResponse:
        if not echostr:
            raise WebhookRejected(400, "a signed GET without echostr")
        self.ctx.log("info", "Server URL verified by WeChat")
        return WebhookResponse(200, echostr)

    def _open(self, request: WebhookRequest) -> dict[str, str]:
        """The message's fields: the plaintext body, or the decrypted ``Encrypt`` once
        ``msg_signature`` (which covers it) is checked."""
        outer = read_or_reject(request.body, "not a WeChat callback")
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
        if not msg_signed(self.secret("token"), request.query, encrypted):
            raise WebhookRejected(401, "bad or missing msg_signature")
        return read_or_reject(self._opened(encrypted),
                              "the decrypted message is not WeChat's XML")

    def _parse(self, fields: dict[str, str]) -> Parsed:
        return parse_callback(fields, channel=self.name)

    # ---- the client -----------------------------------------------------------------------

    def make_http(self) -> ChannelHttp:
        return self._client(self.config.api_base)


CONNECTOR = WeChatConnector
