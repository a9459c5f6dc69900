"""The LINE connector: signed webhooks in; the reply API, else the push API, out.

No SDK. line-bot-sdk v3 would give us ``SignatureValidator`` (the same base64
HMAC-SHA256 as ``verify_hmac(..., encoding="base64")``), generated models (our
parser must not raise, so it reads plain dicts anyway) and ``AsyncMessagingApi``,
which has its own HTTP layer and ``ApiException``: we would have to map its
errors back to retryable / fatal / uncertain ourselves, and a connection lost
after the request went out must stay distinguishable from one refused before.
``ChannelHttp`` already sorts every outcome that way (429 and 5xx retryable,
401/403 fatal, a lost answer to a POST DeliveryUncertain), so the REST calls
here are four ``http.call`` lines and nothing else is installed.

Sending: a reply token (single use, valid for about a minute) answers for free;
a push counts against the account's monthly message quota. So the first part of
an answer uses the reply API while the message's token is fresh and unused;
every later part, a retry after the token was spent, and a token LINE calls
invalid (400 "Invalid reply token") go by push to the user, group or room. A
429 or 5xx leaves the token unspent (LINE carried nothing out), so the retry
tries it again. LINE sends no Retry-After; its rate limits are per second, so a
429 waits at least one second. The first part quotes the message it answers
(``quoteToken``).

``X-Line-Retry-Key`` is not sent. It makes a push safe to repeat (a repeat within
24 h is answered 409 and not delivered again), but only if the repeat carries the
same key, i.e. if we kept a key per reply part across calls. The gateway never
repeats a part whose answer was lost (DeliveryUncertain: marked uncertain, never
resent), and repeats only parts that certainly did not go out (429, 5xx,
refused connection), where a fresh request is right; so the key would buy
nothing here and cost per-part state the contract says a connector does not keep.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from connectors.line._parse import Ignored, LineMessage, parse_event
from connectors.line.manifest import SPEC, LineConfig
from pyclaw_app.channels import (
    ChannelHttp,
    HttpAnswer,
    Recent,
    RestConnector,
    WebhookRejected,
    WebhookRequest,
    WebhookResponse,
    verify_hmac,
)
from pyclaw_app.errors import ConnectorError, FatalConnectorError, RetryableError
from pyclaw_app.model import Address

REPLY_TOKEN_LIFETIME = 50.0
"""Seconds a reply token is used for; LINE accepts it for about one minute after the event."""
KEPT = 1000
"""Inbound messages whose reply/quote tokens are kept, and sent ids remembered (each)."""
RATE_LIMIT_WAIT = 1.0
"""LINE's 429 has no Retry-After and its limits are per second: wait one window out."""
LOADING_SECONDS = 10
"""The loading animation's length (5-60, a multiple of 5); renewed while the answer is
written, and cleared by LINE as soon as the answer arrives."""


@dataclass(slots=True)
class _Tokens:
    reply: str | None
    quote: str | None
    at: float

    def fresh(self) -> bool:
        return self.reply is not None and time.monotonic() - self.at < REPLY_TOKEN_LIFETIME


class LineConnector(RestConnector):
    spec = SPEC
    config: LineConfig

    def __init__(self, name: str, config: LineConfig) -> None:
        super().__init__(name, config)
        self._bot_user_id = ""
        self._tokens: Recent[str, _Tokens] = Recent(KEPT)
        self._sent_ids: Recent[str, None] = Recent(KEPT)

    def check_config(self) -> None:
        self.secret("channel_secret")  # no secret, no verifiable webhook: refuse to start

    # ---- sending --------------------------------------------------------------------------

    async def send_part(self, address: Address, text: str, reply_to: str | None) -> str:
        http = self.http
        held = self._tokens.get(reply_to) if reply_to else None
        message: dict[str, Any] = {"type": "text", "text": text}
        if held is not None and held.quote:
            message["quoteToken"] = held.quote
        try:
            answer = await self._reply(http, held, message)
            if answer is None:
                answer = await http.call("POST", "/v2/bot/message/push", json_body={
                    "to": address.chat, "messages": [message]})
        except RetryableError as exc:  # nothing went out: keep the tokens for the retry
            if "monthly limit" in str(exc):
                raise FatalConnectorError(f"{exc}; the account's message quota for this "
                                          "month is used up") from None
            raise
        except ConnectorError:
            self._tokens.pop(reply_to or "", None)
            raise
        self._tokens.pop(reply_to or "", None)
        sent = answer.data.get("sentMessages") if isinstance(answer.data, dict) else None
        ids = [str(m.get("id")) for m in sent or () if isinstance(m, dict) and m.get("id")]
        for pid in ids:
            self._sent_ids.remember(pid, None)
        return ids[0] if ids else ""

    async def _reply(self, http: ChannelHttp, held: _Tokens | None,
                     message: dict[str, Any]) -> HttpAnswer | None:
        """The reply API with a fresh, unspent token; None when the part must be pushed."""
        if held is None or not held.fresh():
            return None
        try:
            return await http.call("POST", "/v2/bot/message/reply", json_body={
                "replyToken": held.reply, "messages": [message]})
        except FatalConnectorError as exc:
            if "Invalid reply token" not in str(exc):  # LINE's words for used or expired
                raise
            held.reply = None
            self.log.info("reply token refused (%s); pushing instead", exc)
            return None

    async def typing(self, address: Address) -> None:
        """The loading animation; LINE shows it in one-on-one chats (user ids start with U)."""
        if address.chat.startswith("U"):
            await self.http.call("POST", "/v2/bot/chat/loading/start", json_body={
                "chatId": address.chat, "loadingSeconds": LOADING_SECONDS}, idempotent=True)

    # ---- receiving ------------------------------------------------------------------------

    async def handle_webhook(self, request: WebhookRequest) -> WebhookResponse:
        return await self.receive(request, self._verify, self._deliver)

    def _verify(self, request: WebhookRequest) -> None:
        """``X-Line-Signature``: base64 HMAC-SHA256 of the raw body with the channel secret.
        Nothing in it is time-bound, so a replayed request passes here and is recognised
        by the journal (same message id)."""
        if request.method != "POST":
            raise WebhookRejected(405, "LINE sends webhooks with POST only")
        if not verify_hmac(self.secret("channel_secret"), request.body,
                           request.header("X-Line-Signature"), encoding="base64"):
            raise WebhookRejected(401, "bad or missing X-Line-Signature")

    async def _deliver(self, payload: Any) -> None:
        """Every event in order; 200 (by ``receive``) only after each was submitted. An empty
        ``events`` is LINE's connection check (the console's Verify button)."""
        events = payload.get("events") if isinstance(payload, dict) else None
        if not isinstance(events, list):
            raise WebhookRejected(400, "not a LINE webhook body (no events array)",
                                  level="error")
        ctx = self.ctx
        account = self._bot_user_id or str(payload.get("destination") or "")
        for index, event in enumerate(events):
            parsed = parse_event(event, channel=self.name, bot_user_id=account,
                                 ours=self._sent_ids)
            if parsed is None:
                ctx.log("error", "skipped a malformed LINE event", index=index,
                        event_id=_event_id(event))
                continue
            if isinstance(parsed, Ignored):
                self.log.debug("ignored event %s: %s", _event_id(event), parsed.reason)
                continue
            self._hold(parsed)
            result = await ctx.submit(parsed.inbound)
            if result.duplicate:
                self.log.debug("duplicate %s", parsed.inbound.platform_id)

    def _hold(self, parsed: LineMessage) -> None:
        pid = parsed.inbound.platform_id
        if pid not in self._tokens:  # a redelivery does not replace the first token
            self._tokens.remember(pid,
                      _Tokens(parsed.reply_token, parsed.quote_token, time.monotonic()))

    # ---- helpers --------------------------------------------------------------------------

    def make_http(self) -> ChannelHttp:
        token = self.secret("channel_access_token")
        return ChannelHttp(self.config.api_base, platform="LINE",
                           auth=lambda: {"Authorization": f"Bearer {token}"},
                           secrets=[token, self.secret_or_none("channel_secret") or ""],
                           describe=_describe, rate_limit=lambda _body: RATE_LIMIT_WAIT)

    async def whoami(self, http: ChannelHttp) -> str:
        answer = await http.call("GET", "/v2/bot/info")
        info = answer.data if isinstance(answer.data, dict) else {}
        self._bot_user_id = str(info.get("userId") or "")
        return str(info.get("displayName") or "a LINE bot")


def _describe(body: Any) -> str | None:
    """LINE's error body: ``{"message": ..., "details": [{"message", "property"}]}``."""
    if not isinstance(body, dict) or not isinstance(body.get("message"), str):
        return None
    details = [f"{d.get('property', '')}: {d.get('message', '')}".strip(": ")
               for d in body.get("details") or () if isinstance(d, dict)]
    return "; ".join([body["message"], *details])


def _event_id(event: object) -> str:
    value = event.get("webhookEventId") if isinstance(event, dict) else None
    return value if isinstance(value, str) else ""


CONNECTOR = LineConnector
