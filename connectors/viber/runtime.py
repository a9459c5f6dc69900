"""The Viber connector: signed callbacks in, ``send_message`` out, on the REST bot API.

No SDK. The official one (github.com/Viber/viber-bot-python, ``viberbot``) is
synchronous (``requests``) and has been inactive since 2021; calling it from the
gateway's event loop would need a thread per call, and its errors are bare
``Exception("failed with status: ...")`` strings, so a refusal, a rate limit and a
lost answer could not be told apart. The API is four JSON POSTs, so they go through
the kit's ``ChannelHttp`` (base ``https://chatapi.viber.com/pa``, the token in the
``X-Viber-Auth-Token`` header, as Viber's REST docs ask), which already sorts real
HTTP outcomes: 429 and 5xx from Viber's front end retryable, a connection lost
after a ``send_message`` went out ``DeliveryUncertain``.

Viber itself answers every call with HTTP 200 and a JSON ``status``: 0 is success,
anything else a refusal ChannelHttp cannot see. :func:`_refusal` maps those codes
(developers.viber.com/docs/api/rest-bot-api/#error-codes): 12 ``tooManyRequests`` is
retryable (Viber names no wait, so one second at least); 2 ``invalidAuthToken``,
1 ``invalidUrl``, the receiver codes (5 not registered, 6 not subscribed, 11 no
suitable device), the account codes (7 blocked, 8 not found, 9 suspended), 10
``webhookNotSet`` and the request codes (3, 4, 13, 14) are fatal with advice; an
unknown code (Viber's ``generalError``) is a failure on Viber's side with nothing
sent, so retryable.

Viber lets a bot write only to its subscribers: someone who wrote to it (the first
message subscribes them) and has not unsubscribed. Someone who only opened the
chat (``conversation_started``) may get exactly one message: the welcome message,
which goes in the body of our answer to that callback, not through
``send_message``. Bots have no groups, no message edits, no typing indicator and
no quoting, so ``reply_to`` is not used.

``open`` checks the token (``get_account_info``) and registers ``webhook_url`` with
``set_webhook``; Viber then posts a signed ``webhook`` event to that URL and answers
only once it got a 200, so the shared webhook server must be reachable there. The
webhook is not removed on stop: removing it switches the bot's chat off for users,
and while it stays set Viber keeps retrying callbacks we did not answer.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from connectors.viber._parse import Ignored, Notice, parse_callback
from connectors.viber.manifest import MAX_SENDER_NAME, SPEC, ViberConfig
from pyclaw_app.channels import (
    ChannelHttp,
    RestConnector,
    WebhookRejected,
    WebhookRequest,
    WebhookResponse,
    verify_hmac,
)
from pyclaw_app.channels.contract import AttachmentSource, AttachmentUnavailable
from pyclaw_app.errors import (
    ConnectorError,
    DeliveryUncertain,
    FatalConnectorError,
    RetryableError,
)
from pyclaw_app.model import Address, Attachment

EVENT_TYPES = ("delivered", "seen", "failed", "subscribed", "unsubscribed",
               "conversation_started")
"""The callbacks set_webhook asks for; ``message`` (and ``webhook``) always come."""
RATE_LIMIT_WAIT = 1.0
"""Seconds to wait after status 12 ``tooManyRequests`` (Viber documents no window)."""

_STATUS = {
    1: ("invalidUrl", "Viber could not use the webhook URL: it must be a public HTTPS "
        "address with a certificate from a trusted CA, and answer Viber's check there "
        "(this gateway's /webhook/<channel name>, with the webhook server reachable)"),
    2: ("invalidAuthToken", "check auth_token in this channel's settings"),
    3: ("badData", ""),
    4: ("missingData", ""),
    5: ("receiverNotRegistered", "the receiver is not a Viber user"),
    6: ("receiverNotSubscribed", "the user has not subscribed to the bot: they never wrote "
        "to it (opening the chat is not enough) or they unsubscribed, and Viber lets a bot "
        "write only to its subscribers; it can answer once they write to it"),
    7: ("publicAccountBlocked", "the bot account is blocked"),
    8: ("publicAccountNotFound", "the bot account was not found"),
    9: ("publicAccountSuspended", "the bot account is suspended"),
    10: ("webhookNotSet", "no webhook is set for the bot, and Viber lets only a bot with "
         "one send; restart the channel to set it"),
    11: ("receiverNoSuitableDevice", "the user's Viber app cannot receive bot messages"),
    12: ("tooManyRequests", ""),
    13: ("apiVersionNotSupported", ""),
    14: ("incompatibleWithVersion", ""),
}


class ViberConnector(RestConnector):
    spec = SPEC
    config: ViberConfig

    def __init__(self, name: str, config: ViberConfig) -> None:
        super().__init__(name, config)
        self._account_id = ""
        self._sender_name = config.bot_name.strip()

    def check_config(self) -> None:
        self._webhook_url()

    async def connected(self, http: ChannelHttp) -> None:
        url = self._webhook_url()
        try:
            answer = await _call(http, "set_webhook", {
                "url": url, "event_types": list(EVENT_TYPES),
                "send_name": True, "send_photo": True}, idempotent=True)
        except ConnectorError as exc:
            raise FatalConnectorError(f"could not set the Viber webhook to {url}: {exc}"
                                      ) from None
        self.log.info("webhook set to %s; events %s", url, answer.get("event_types"))

    # ---- sending --------------------------------------------------------------------------

    async def send_part(self, address: Address, text: str, reply_to: str | None) -> str:
        answer = await _call(self.http, "send_message", {
            "receiver": address.chat, "type": "text", "text": text,
            "sender": {"name": self._sender_name}})
        token = answer.get("message_token")
        return str(token) if token is not None else ""

    # ---- receiving ------------------------------------------------------------------------

    async def handle_webhook(self, request: WebhookRequest) -> WebhookResponse:
        return await self.receive(request, self._verify, self._deliver)

    def _verify(self, request: WebhookRequest) -> None:
        """``X-Viber-Content-Signature``: hex HMAC-SHA256 of the raw body, keyed with the auth
        token. It covers no timestamp, so a replayed request passes here and is recognised
        by the journal (same message token)."""
        if request.method != "POST":
            raise WebhookRejected(405, "Viber sends callbacks with POST only")
        if not verify_hmac(self.secret("auth_token"), request.body,
                           request.header("X-Viber-Content-Signature")):
            raise WebhookRejected(401, "bad or missing X-Viber-Content-Signature")

    async def _deliver(self, payload: Any) -> WebhookResponse | None:
        """One callback; 200 (by ``receive``) once a message was submitted. A broken callback
        is logged and answered 200 as well: Viber would only retry the same bytes."""
        ctx = self.ctx
        parsed = parse_callback(payload, channel=self.name, account=self._account_id)
        if parsed is None:
            if not isinstance(payload, dict) or not isinstance(payload.get("event"), str):
                raise WebhookRejected(400, "not a Viber callback (no event)", level="error")
            ctx.log("error", f"skipped a malformed Viber {payload['event']} callback",
                    message_token=str(payload.get("message_token", ""))[:40])
            return None
        if isinstance(parsed, Ignored):
            self.log.debug("ignored a callback: %s", parsed.reason)
            return None
        if isinstance(parsed, Notice):
            return self._notice(parsed)
        result = await ctx.submit(parsed)
        if result.duplicate:
            self.log.debug("duplicate %s", parsed.platform_id)
        return None

    def _notice(self, notice: Notice) -> WebhookResponse | None:
        ctx, who = self.ctx, notice.user_name or notice.user_id
        if notice.event == "webhook":
            ctx.log("info", "Viber checked the webhook URL (set_webhook callback)")
        elif notice.event == "conversation_started":
            ctx.log("info", f"{who} opened the chat"
                    f"{' (a subscriber)' if notice.subscribed else ' (not subscribed yet)'}",
                    user=notice.user_id, context=notice.detail)
            welcome = self.config.welcome_message.strip()
            if welcome:
                return WebhookResponse(200, json.dumps({
                    "sender": {"name": self._sender_name}, "type": "text", "text": welcome}),
                    content_type="application/json")
        elif notice.event == "subscribed":
            ctx.log("info", f"{who} subscribed to the bot", user=notice.user_id)
        elif notice.event == "unsubscribed":
            ctx.log("info", f"{who} unsubscribed; the bot cannot write to them until they "
                    "write to it again", user=notice.user_id)
        elif notice.event == "failed":
            ctx.log("warning", f"Viber could not deliver message {notice.message_token} to "
                    f"{who}: {notice.detail or 'no reason given'}", user=notice.user_id)
        else:  # delivered, seen
            self.log.debug("message %s %s by %s", notice.message_token, notice.event, who)
        return None

    # ---- helpers --------------------------------------------------------------------------

    async def fetch_attachment(self, attachment: Attachment) -> AttachmentSource:
        """The ``media`` link of the callback: a signed, expiring CDN URL (dl-media.viber.com,
        CloudFront's ``Expires``/``Signature``/``Key-Pair-Id``) that wants no credentials. It
        is fetched without the auth token, which never goes to a URL a payload named; a link
        whose ``Expires`` has passed is refused here, with the reason, instead of a bare 403
        from the CDN."""
        url = attachment.url or ""
        if not url.startswith(("https://", "http://")):
            raise AttachmentUnavailable(f"Viber sends no file for a {attachment.kind}")
        expires = parse_qs(urlsplit(url).query).get("Expires", [""])[0]
        if expires.isdigit() and int(expires) < time.time():
            raise AttachmentUnavailable("Viber's link to the file has expired (its media "
                                        "links are valid for a limited time)")
        return AttachmentSource(url=url, size=attachment.size)

    def make_http(self) -> ChannelHttp:
        token = self.secret("auth_token")
        return ChannelHttp(self.config.api_base, platform="Viber",
                           auth=lambda: {"X-Viber-Auth-Token": token}, secrets=[token],
                           describe=_describe, rate_limit=lambda _body: RATE_LIMIT_WAIT)

    def _webhook_url(self) -> str:
        url = self.config.webhook_url.strip()
        if not url:
            raise FatalConnectorError(
                "the Viber webhook_url is not set: Viber only pushes callbacks, to a public "
                "HTTPS address of this gateway's /webhook/<channel name>")
        return url

    async def whoami(self, http: ChannelHttp) -> str:
        info = await _call(http, "get_account_info", {}, idempotent=True)
        self._account_id = str(info.get("id") or "")
        name = str(info.get("name") or "") or "a Viber bot"
        if not self._sender_name:
            self._sender_name = name[:MAX_SENDER_NAME]
        return name


async def _call(http: ChannelHttp, endpoint: str, body: dict[str, Any], *,
                idempotent: bool = False) -> dict[str, Any]:
    """One API call; Viber's ``status`` read as :func:`_refusal` sorts it."""
    answer = await http.call("POST", f"/{endpoint}", json_body=body, idempotent=idempotent)
    data = answer.data
    status = data.get("status") if isinstance(data, dict) else None
    if not isinstance(status, int) or isinstance(status, bool):
        what = f"Viber {endpoint} answered without a status ({str(data)[:100]!r})"
        if idempotent:
            raise RetryableError(what)
        raise DeliveryUncertain(f"{what}; the message may have been sent")
    if status != 0:
        raise _refusal(endpoint, status, data.get("status_message"))
    return data  # type: ignore[no-any-return]


def _refusal(endpoint: str, status: int, message: object) -> ConnectorError:
    name, advice = _STATUS.get(status, ("generalError", ""))
    said = (f"Viber {endpoint} answered status {status} {name}"
            f"{f' ({message})' if isinstance(message, str) and message != name else ''}")
    if status == 12:
        return RetryableError(f"Viber rate limit: retry after {RATE_LIMIT_WAIT:g}s ({said})",
                              retry_after=RATE_LIMIT_WAIT)
    if status not in _STATUS:
        return RetryableError(f"{said}; nothing was sent")
    return FatalConnectorError(f"{said}{f': {advice}' if advice else ''}")


def _describe(body: Any) -> str | None:
    """Viber's error answers (rare outside HTTP 200) carry ``status_message``."""
    return body.get("status_message") if isinstance(body, dict) else None


CONNECTOR = ViberConnector
