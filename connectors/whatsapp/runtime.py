"""The WhatsApp connector: signed Cloud API webhooks in, ``POST /{phone-number-id}/messages`` out.

No SDK: Meta publishes none for Python, and the calls are four (phone number info,
send a text, send a template, mark read). They go through the kit's
``ChannelHttp``, with one difference: ChannelHttp sorts answers by HTTP status,
and the Graph API puts its throttling and its 24-hour rule in HTTP 400 answers
told apart only by ``error.code``. :func:`_graph_error` (ChannelHttp's ``classify``
hook) reads that code first:

- 130429 (throughput), 131056 (pair rate limit), 4 / 80007 (call limits) ->
  RetryableError, nothing was sent; the Graph API sends no Retry-After, so the wait
  is the limit's own window (1 s of throughput, 6 s between messages to one user).
- 131047 (more than 24 hours since the user last wrote: the customer-service window
  is closed) -> :class:`OutsideWindow`, a FatalConnectorError: WhatsApp will refuse
  every free-form reply until the user writes again. With ``template_name`` set, the
  connector sends that approved template instead (once per closed window), so the
  user gets a message they can answer, and says so in the channel log and the error.
  Meta may also accept such a message and fail it later in a ``statuses`` webhook
  (``failed``, code 131047): that one gets the template too, logged with the failure.
- 190 (bad or expired token, HTTP 400 or 401) -> FatalConnectorError naming the field.
- everything else as ChannelHttp sorts it (5xx retryable, a lost answer to a send
  DeliveryUncertain, other 4xx fatal with Meta's own words).

Read receipts: an inbound message is marked read when its answer starts, because that
is when the user should see the blue ticks, not when a message the gateway may never
answer (pairing, rate limit) was stored. Two places do it: ``typing`` (called once the
answer takes over a second) sends the read receipt *with* the typing indicator, which
the Cloud API only offers as part of a read receipt; a fast answer never shows typing,
so ``send_part`` marks the message it answers read just before the first part goes, if
``typing`` did not already. A read receipt that fails is logged and never fails a reply.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from connectors.meta_webhook import challenge, check_signature, check_subscription
from connectors.whatsapp._parse import (
    Ignored,
    Malformed,
    Message,
    Problem,
    StatusUpdate,
    parse_payload,
)
from connectors.whatsapp.manifest import SPEC, WhatsAppConfig
from pyclaw_app.channels import (
    ChannelHttp,
    HttpAnswer,
    Recent,
    RestConnector,
    WebhookRejected,
    WebhookRequest,
    WebhookResponse,
)
from pyclaw_app.channels.contract import AttachmentSource, AttachmentUnavailable
from pyclaw_app.errors import ConnectorError, FatalConnectorError, RetryableError
from pyclaw_app.model import Address, Attachment

__all__ = ["OutsideWindow", "WhatsAppConnector"]

KEPT = 1000
"""Chats whose latest message id is kept (for typing), and read message ids remembered."""
RATE_LIMITS = {130429: 1.0, 131056: 6.0, 4: None, 80007: None}
"""Graph error codes that mean "too fast, nothing sent", with the limit's window (s)."""
OUTSIDE_WINDOW = 131047
BAD_TOKEN = 190
MEDIA_HOSTS = frozenset({"lookaside.fbsbx.com"})
"""Where the Cloud API's media URLs point ("Retrieve media URL": ``https://lookaside.fbsbx
.com/whatsapp_business/attachments/?mid=...``); the access token goes nowhere else."""


class OutsideWindow(FatalConnectorError):
    """WhatsApp refused a free-form message: the user last wrote over 24 hours ago."""


def _graph_error(answer: HttpAnswer, what: str, detail: str) -> ConnectorError | None:
    """Graph API errors sorted by ``error.code`` before the HTTP status (ChannelHttp's hook)."""
    error = answer.data.get("error") if isinstance(answer.data, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    if not isinstance(code, int):
        return None
    if code in RATE_LIMITS:
        return RetryableError(f"WhatsApp rate limit ({what} answered HTTP {answer.status}: "
                              f"{detail})", retry_after=RATE_LIMITS[code])
    if code == OUTSIDE_WINDOW:
        return OutsideWindow(detail)
    if code == BAD_TOKEN:
        return FatalConnectorError(f"WhatsApp refused the access token ({detail}); check "
                                   "access_token in this channel's settings")
    return None


class WhatsAppConnector(RestConnector):
    spec = SPEC
    config: WhatsAppConfig

    def __init__(self, name: str, config: WhatsAppConfig) -> None:
        super().__init__(name, config)
        self._latest: Recent[str, str] = Recent(KEPT)  # chat -> newest inbound id
        self._read: Recent[str, None] = Recent(KEPT)  # inbound ids marked read
        self._templated: set[str] = set()  # chats sent the template since they last wrote

    def check_config(self) -> None:
        self.secret("app_secret")  # no secret, no verifiable webhook: refuse to start
        self.secret("verify_token")

    # ---- sending --------------------------------------------------------------------------

    async def send_part(self, address: Address, text: str, reply_to: str | None) -> str:
        http = self.http
        if reply_to and reply_to not in self._read:
            await self._mark_read(http, reply_to, typing=False)
        message: dict[str, Any] = {"type": "text", "text": {"body": text, "preview_url": False}}
        if reply_to:
            message["context"] = {"message_id": reply_to}  # quoted in the chat
        try:
            return await self._send(http, address.chat, message)
        except OutsideWindow as exc:
            done = await self._re_engage(http, address.chat)
            raise FatalConnectorError(
                f"WhatsApp refused the reply: {address.chat} last wrote more than 24 hours "
                "ago, and outside that customer-service window only approved templates may "
                f"be sent ({exc}); {done}") from None

    async def typing(self, address: Address) -> None:
        """The read receipt with the typing indicator (shown up to 25 s or until we answer)
        for the newest message in the chat; the gateway repeats it every few seconds."""
        mid = self._latest.get(address.chat)
        if mid is not None:
            await self._mark_read(self.http, mid, typing=True)

    async def _send(self, http: ChannelHttp, to: str, message: dict[str, Any]) -> str:
        answer = await http.call("POST", self._path("messages"), json_body={
            "messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
            **message})
        sent = answer.data.get("messages") if isinstance(answer.data, dict) else None
        first = sent[0] if isinstance(sent, list) and sent and isinstance(sent[0], dict) \
            else {}
        return str(first.get("id") or "")

    async def _re_engage(self, http: ChannelHttp, chat: str) -> str:
        """After WhatsApp refused a message to ``chat`` with 131047: send the configured
        template (once per closed window) so the user can reopen the window; returns what
        was done, for the error and the log."""
        name = self.config.template_name.strip()
        if not name:
            return ("set template_name (an approved template) to re-engage such users, or "
                    "wait until they write")
        if chat in self._templated:
            return f"the template {name!r} was already sent and they have not answered yet"
        language = self.config.template_language.strip() or "en_US"
        try:
            await self._send(http, chat, {"type": "template", "template": {
                "name": name, "language": {"code": language}}})
        except ConnectorError as exc:
            self.ctx.log("error", f"could not send the re-engagement template {name!r} "
                         f"to {chat}: {exc}")
            return f"the template {name!r} could not be sent either: {exc}"
        self._templated.add(chat)
        self.ctx.log("warning", f"{chat} last wrote over 24 hours ago, so WhatsApp refused "
                     f"our message; sent the template {name!r} ({language}) instead to "
                     "re-engage them")
        return f"sent the template {name!r} instead, the conversation continues when they " \
            "answer it"

    async def _mark_read(self, http: ChannelHttp, message_id: str, *, typing: bool) -> None:
        body: dict[str, Any] = {"messaging_product": "whatsapp", "status": "read",
                                "message_id": message_id}
        if typing:
            body["typing_indicator"] = {"type": "text"}
        try:
            await http.call("POST", self._path("messages"), json_body=body, idempotent=True)
        except ConnectorError as exc:
            self.log.info("read receipt for %s failed: %s", message_id, exc)
            if typing:
                raise  # the gateway logs a failed typing indicator itself
            return
        self._read.remember(message_id, None)

    # ---- attachments ----------------------------------------------------------------------

    async def fetch_attachment(self, attachment: Attachment) -> AttachmentSource:
        """``GET /{version}/{media-id}`` for the media's short-lived URL (about five minutes),
        then that URL with the access token, as the Cloud API asks ("Download media").

        The URL comes from the Graph API's own answer, not from the webhook, yet the token
        is still sent only to Meta's media host or the configured ``api_base`` host: least
        privilege, so a proxy or a changed answer can never lead the token elsewhere."""
        if not attachment.platform_id:
            raise AttachmentUnavailable("WhatsApp gave no media id for it")
        try:
            answer = await self.http.call("GET", f"/{self.config.api_version}/"
                                          f"{attachment.platform_id}")
        except FatalConnectorError as exc:
            raise AttachmentUnavailable(f"WhatsApp no longer has the file ({exc})") from exc
        info = answer.data if isinstance(answer.data, dict) else {}
        url = info.get("url")
        if not isinstance(url, str) or not url:
            raise AttachmentUnavailable("WhatsApp did not say where the file is")
        host = (urlsplit(url).hostname or "").lower()
        if host not in MEDIA_HOSTS and host != (urlsplit(self.config.api_base).hostname
                                                or "").lower():
            raise AttachmentUnavailable(f"WhatsApp named {host or 'no host'} for the file, "
                                        "not its media host, so the access token is not sent "
                                        "there")
        size = info.get("file_size")  # a string in the answer ("303833"), an int in older ones
        token = self.secret("access_token")
        return AttachmentSource(url=url, headers={"Authorization": f"Bearer {token}"},
                                size=int(size) if str(size).isdigit() else attachment.size)

    # ---- receiving ------------------------------------------------------------------------

    async def handle_webhook(self, request: WebhookRequest) -> WebhookResponse:
        if request.method == "GET":
            return await self.receive(request, self._verify_subscription, self._challenge,
                                      parse=challenge)
        return await self.receive(request, self._verify, self._deliver)

    def _verify_subscription(self, request: WebhookRequest) -> None:
        check_subscription(request, self.secret_or_none("verify_token"), product="WhatsApp",
                           where="set in the app's WhatsApp > Configuration page")

    async def _challenge(self, challenge: str) -> WebhookResponse:
        self.ctx.log("info", "webhook verified by Meta (subscription confirmed)")
        return WebhookResponse(200, challenge)

    def _verify(self, request: WebhookRequest) -> None:
        check_signature(request, self.secret_or_none("app_secret"), product="WhatsApp")

    async def _deliver(self, payload: Any) -> None:
        """Every item in order; 200 (by ``receive``) only after each message was submitted."""
        if not isinstance(payload, dict) or not isinstance(payload.get("entry"), list):
            raise WebhookRejected(400, "not a WhatsApp webhook body (no entry array)",
                                  level="error")
        ctx = self.ctx
        for item in parse_payload(payload, channel=self.name,
                                  phone_number_id=self.config.phone_number_id.strip()):
            if isinstance(item, Message):
                inbound = item.inbound
                self._latest.remember(inbound.address.chat, inbound.platform_id)
                self._templated.discard(inbound.address.chat)  # the window is open again
                result = await ctx.submit(inbound)
                if result.duplicate:
                    self.log.debug("duplicate %s", inbound.platform_id)
            elif isinstance(item, StatusUpdate):
                await self._status(item)
            elif isinstance(item, Problem):
                ctx.log("error", "WhatsApp reported an error: "
                        f"{_said(item.title, item.code, item.details)}")
            elif isinstance(item, Malformed):
                ctx.log("error", f"skipped a malformed WhatsApp webhook item ({item.where})")
            elif isinstance(item, Ignored):
                self.log.debug("ignored: %s", item.reason)

    async def _status(self, update: StatusUpdate) -> None:
        """Statuses of what we sent are not messages: only a failed one is worth a log line.
        A message WhatsApp accepted and then failed with 131047 (the window closed) gets the
        re-engagement template, as a refused one does."""
        if update.status != "failed":
            self.log.debug("message %s %s", update.message_id, update.status)
            return
        said = _said(update.error or "no reason given", update.code, update.details)
        if update.code == OUTSIDE_WINDOW and update.recipient:
            said = f"{said}; {await self._re_engage(self.http, update.recipient)}"
        self.ctx.log("error", f"WhatsApp could not deliver message {update.message_id} to "
                     f"{update.recipient or 'the user'}: {said}",
                     message_id=update.message_id, code=update.code)

    # ---- helpers --------------------------------------------------------------------------

    def make_http(self) -> ChannelHttp:
        token = self.secret("access_token")
        if not self.config.phone_number_id.strip():
            raise FatalConnectorError("the WhatsApp phone_number_id is not set: copy it from "
                                      "the app's WhatsApp > API Setup page")
        return ChannelHttp(self.config.api_base, platform="WhatsApp",
                           auth=lambda: {"Authorization": f"Bearer {token}"},
                           secrets=[token, self.secret_or_none("app_secret") or "",
                                    self.secret_or_none("verify_token") or ""],
                           describe=_describe, classify=_graph_error)

    def _path(self, edge: str = "") -> str:
        path = f"/{self.config.api_version}/{self.config.phone_number_id.strip()}"
        return f"{path}/{edge}" if edge else path

    async def whoami(self, http: ChannelHttp) -> str:
        answer = await http.call("GET", self._path(), params={
            "fields": "display_phone_number,verified_name"})
        info = answer.data if isinstance(answer.data, dict) else {}
        number, name = info.get("display_phone_number"), info.get("verified_name")
        if name and number:
            return f"{name} ({number})"
        return str(name or number or f"phone number {self.config.phone_number_id}")


def _describe(body: Any) -> str | None:
    """The Graph API error: ``{"error": {"message", "type", "code", "error_subcode",
    "error_data": {"details"}, "fbtrace_id"}}``."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        return None
    data = error.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    code = error.get("code")
    return _said(error["message"], code if isinstance(code, int) else None,
                 details if isinstance(details, str) else "")


def _said(title: str, code: int | None, details: str) -> str:
    return f"{title}{f' (error {code})' if code is not None else ''}" \
        f"{f': {details}' if details else ''}"


CONNECTOR = WhatsAppConnector
