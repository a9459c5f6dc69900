"""The LINE connector: signed webhooks in; the reply API, else the push API, out.

On line-bot-sdk v3, LINE's official SDK: ``SignatureValidator`` checks
``X-Line-Signature`` and ``AsyncMessagingApi`` makes the REST calls, wrapped by
``_api.LineApi``, which turns every outcome into pyclaw's retryable / fatal /
uncertain in one place (a connection refused before the request went out stays
apart from one lost after it). The SDK's webhook models are not used: they raise
on shapes they do not know, and our parser (``_parse``) must not, so it reads the
verified body as plain dicts.

Sending: a reply token (single use, valid for about a minute) answers for free;
a push counts against the account's monthly message quota. So the first part of
an answer uses the reply API while the message's token is fresh and unused;
every later part, a retry after the token was spent, and a token LINE calls
invalid (400 "Invalid reply token") go by push to the user, group or room. A
429 or 5xx leaves the token unspent (LINE carried nothing out), so the retry
tries it again. The first part quotes the message it answers (``quoteToken``).

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

from linebot.v3 import SignatureValidator
from linebot.v3.messaging import TextMessage

from connectors.line._api import LineApi, LineRefused
from connectors.line._parse import Ignored, LineMessage, parse_event
from connectors.line.manifest import SPEC, LineConfig
from pyclaw_app.channels import (
    ChannelHttp,
    ConnectorBase,
    ProbeResult,
    Recent,
    WebhookRejected,
    WebhookRequest,
    WebhookResponse,
)
from pyclaw_app.channels.contract import AttachmentSource, AttachmentUnavailable
from pyclaw_app.errors import ConnectorError, FatalConnectorError, RetryableError
from pyclaw_app.model import Address, Attachment

LINE_API = "https://api.line.me"
CONTENT_API = "https://api-data.line.me"
"""Where LINE serves what users send (the Messaging API reference's "Get content" host)."""
REPLY_TOKEN_LIFETIME = 50.0
"""Seconds a reply token is used for; LINE accepts it for about one minute after the event."""
KEPT = 1000
"""Inbound messages whose reply/quote tokens are kept, and sent ids remembered (each)."""
LOADING_SECONDS = 10
"""The loading animation's length (5-60, a multiple of 5); renewed while the answer is
written, and cleared by LINE as soon as the answer arrives."""


@dataclass(slots=True)
class _Tokens:
    reply: str | None
    quote: str | None
    at: float

    def usable(self) -> str | None:
        """The reply token while it is unspent and young enough for LINE to take it."""
        young = time.monotonic() - self.at < REPLY_TOKEN_LIFETIME
        return self.reply if young else None


class LineConnector(ConnectorBase):
    spec = SPEC
    config: LineConfig

    def __init__(self, name: str, config: LineConfig) -> None:
        super().__init__(name, config)
        self._api: LineApi | None = None
        self._bot_user_id = ""
        self._tokens: Recent[str, _Tokens] = Recent(KEPT)
        self._sent_ids: Recent[str, None] = Recent(KEPT)

    # ---- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        self.check_config()
        self._api = self._make_api()
        name = await self._whoami(self._api)
        self.went_online(f"connected as {name}")

    async def close(self) -> None:
        api, self._api = self._api, None
        if api is not None:
            await api.close()

    async def probe(self) -> ProbeResult:
        try:
            api = self._make_api()
            try:
                name = await self._whoami(api)
            finally:
                await api.close()
            self.check_config()
        except ConnectorError as exc:
            return ProbeResult(False, str(exc))
        return ProbeResult(True, f"connected as {name}")

    def check_config(self) -> None:
        self.secret("channel_secret")  # no secret, no verifiable webhook: refuse to start

    @property
    def api(self) -> LineApi:
        """The running channel's client; RetryableError while it is not running."""
        if self._api is None or not self.running:
            raise RetryableError(f"LINE channel {self.name!r} is not running")
        return self._api

    # ---- sending --------------------------------------------------------------------------

    async def send_part(self, address: Address, text: str, reply_to: str | None) -> str:
        api = self.api
        held = self._tokens.get(reply_to) if reply_to else None
        message = TextMessage(text=text, quote_token=held.quote if held else None)
        try:
            ids = await self._reply(api, held, message)
            if ids is None:
                ids = await api.push(address.chat, message)
        except RetryableError:  # nothing went out: keep the tokens for the retry
            raise
        except ConnectorError:
            self._tokens.pop(reply_to or "", None)
            raise
        self._tokens.pop(reply_to or "", None)
        for pid in ids:
            self._sent_ids.remember(pid, None)
        return ids[0] if ids else ""

    async def _reply(self, api: LineApi, held: _Tokens | None,
                     message: TextMessage) -> list[str] | None:
        """The reply API with a fresh, unspent token; None when the part must be pushed."""
        if held is None or (token := held.usable()) is None:
            return None
        try:
            return await api.reply(token, message)
        except LineRefused as exc:
            if "Invalid reply token" not in exc.line_message:  # LINE's words: used or expired
                raise
            held.reply = None
            self.log.info("reply token refused (%s); pushing instead", exc)
            return None

    async def typing(self, address: Address) -> None:
        """The loading animation; LINE shows it in one-on-one chats (user ids start with U)."""
        if address.chat.startswith("U"):
            await self.api.show_loading(address.chat, LOADING_SECONDS)

    # ---- receiving ------------------------------------------------------------------------

    async def handle_webhook(self, request: WebhookRequest) -> WebhookResponse:
        return await self.receive(request, self._verify, self._deliver)

    def _verify(self, request: WebhookRequest) -> None:
        """``X-Line-Signature``: base64 HMAC-SHA256 of the raw body with the channel secret.
        Nothing in it is time-bound, so a replayed request passes here and is recognised
        by the journal (same message id)."""
        if request.method != "POST":
            raise WebhookRejected(405, "LINE sends webhooks with POST only")
        try:
            body = request.body.decode("utf-8")  # the SDK signs text, LINE sends UTF-8 JSON
        except UnicodeDecodeError:
            raise WebhookRejected(400, "body is not UTF-8, so not LINE's") from None
        validator = SignatureValidator(self.secret("channel_secret"))
        if not validator.validate(body, request.header("X-Line-Signature") or ""):
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

    # ---- attachments ----------------------------------------------------------------------

    async def fetch_attachment(self, attachment: Attachment) -> AttachmentSource:
        """``GET /v2/bot/message/{id}/content`` on LINE's content host, with the channel
        access token; the gateway downloads it under its cap (the SDK's blob client would
        read it whole into memory). The host is api-data.line.me for LINE's own API, else
        ``api_base`` itself: a LINE-compatible server or proxy serves both.

        Video and audio are transcoded by LINE first, so their preparation status is asked
        once ("processing" is worth a retry, "failed" is not). Content the sender's side
        hosts itself (``contentProvider`` "external") is fetched from its own URL without
        the token: that URL came in the webhook, and a token never goes to a host the
        payload chose."""
        if attachment.url and attachment.url.startswith(("https://", "http://")):
            return AttachmentSource(url=attachment.url, size=attachment.size)
        if not attachment.platform_id or attachment.kind in ("sticker", "location"):
            raise AttachmentUnavailable(f"LINE keeps no file for a {attachment.kind}")
        token = self.secret("channel_access_token")
        path = f"/v2/bot/message/{attachment.platform_id}/content"
        if attachment.kind in ("audio", "video"):
            await self._prepared(path, token)
        return AttachmentSource(url=f"{self._content_base()}{path}",
                                headers={"Authorization": f"Bearer {token}"},
                                size=attachment.size)

    async def _prepared(self, path: str, token: str) -> None:
        """LINE's transcoding status of a video or voice note: returns once it is ready."""
        http = ChannelHttp(self._content_base(), platform="LINE",
                           auth=lambda: {"Authorization": f"Bearer {token}"}, secrets=[token])
        try:
            answer = await http.call("GET", f"{path}/transcoding")
        except FatalConnectorError as exc:
            raise AttachmentUnavailable(f"LINE no longer has the file; it keeps what users "
                                        f"send only for a while ({exc})") from exc
        finally:
            await http.close()
        status = answer.data.get("status") if isinstance(answer.data, dict) else None
        if status == "processing":
            raise RetryableError("LINE is still preparing the file")
        if status != "succeeded":
            raise AttachmentUnavailable(f"LINE could not prepare the file (transcoding "
                                        f"{status or 'gave no status'})")

    def _content_base(self) -> str:
        base = self.config.api_base.rstrip("/")
        return CONTENT_API if base == LINE_API else base

    # ---- helpers --------------------------------------------------------------------------

    def _make_api(self) -> LineApi:
        return LineApi(self.config.api_base, self.secret("channel_access_token"),
                       secrets=[self.secret_or_none("channel_secret") or ""],
                       warn=self._warn)

    def _warn(self, message: str) -> None:
        if self.running:
            self.ctx.log("warning", message)
        else:
            self.log.warning("%s", message)

    async def _whoami(self, api: LineApi) -> str:
        info = await api.bot_info()
        self._bot_user_id = info.user_id
        return info.display_name or "a LINE bot"


def _event_id(event: object) -> str:
    value = event.get("webhookEventId") if isinstance(event, dict) else None
    return value if isinstance(value, str) else ""


CONNECTOR = LineConnector
