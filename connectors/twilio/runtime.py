"""The Twilio connector: signed form webhooks in, ``POST .../Messages.json`` out.

What the official ``twilio`` SDK does here is what it does best: its
``RequestValidator`` checks ``X-Twilio-Signature`` (base64 HMAC-SHA1 with the Auth
Token of the public URL plus the sorted form parameters, tried with and without the
default port, as Twilio's own servers are inconsistent about it), and its TwiML
writer gives the empty ``<Response/>`` that tells Twilio we answer through the REST
API.

The two REST calls (fetch the account, create a message) go through the kit's
``ChannelHttp`` rather than the SDK's ``Client`` + ``AsyncTwilioHttpClient``. The
SDK's client can be pointed at a loopback fake (``client.api.base_url``), but:

- its errors lose what the retry layer needs: ``TwilioRestException`` carries no
  response headers (no Retry-After), and a connection cut after the request went out
  surfaces as a bare aiohttp exception, so every outcome would have to be sorted again;
  ``ChannelHttp`` already sorts refused / 429 / 5xx / lost answer and redacts secrets;
- ``AsyncTwilioHttpClient`` sets no timeout of its own on a request;
- ``Client`` reads ``TWILIO_EDGE``/``TWILIO_REGION`` from the environment and rewrites
  the host name of every request with them (passing ``environment={}`` does not stop
  it: an empty mapping falls back to ``os.environ``), so credentials could go to a host
  the configuration does not name.

Twilio's REST errors are ``{"code", "message", "more_info", "status"}``; the code
decides (:func:`_twilio_error`, ChannelHttp's ``classify`` hook):

- 429 / 20429 -> RetryableError. Twilio documents no Retry-After for it ("wait for a
  short period", the request was not processed), so one is honoured when present and
  otherwise the wait is :data:`RATE_LIMIT_WAIT`;
- 401 / 20003 -> FatalConnectorError naming the credential fields;
- a refusal the user can act on (unsubscribed 21610, WhatsApp's 24-hour window 63016,
  an invalid or unroutable number) -> FatalConnectorError in plain words;
- everything else as ChannelHttp sorts it.

Typing: Messaging v2's ``POST /v2/Indicators/Typing.json`` (``channel=whatsapp``,
``messageId`` of the user's latest message) on ``messaging_api_base``; WhatsApp shows
it until the answer arrives. SMS has no typing indicator.

Delivery is asynchronous at Twilio: a message accepted as ``queued`` may still fail
(an unreachable handset, a carrier filter, 63016 for a WhatsApp reply outside the
window). With ``status_callbacks`` each message asks for status callbacks to
``webhook_url``; they are not messages and are not journaled: ``failed`` and
``undelivered`` become a channel-log line with Twilio's error code and what it means,
the rest a debug line.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from connectors.twilio._parse import (
    WHATSAPP,
    Form,
    Ignored,
    Malformed,
    Message,
    OptOut,
    StatusUpdate,
    parse_form,
    parse_webhook,
)
from connectors.twilio.manifest import SPEC, TwilioConfig
from pyclaw_app.channels import (
    ChannelHttp,
    HttpAnswer,
    Limits,
    Recent,
    RestConnector,
    WebhookRejected,
    WebhookRequest,
    WebhookResponse,
    utf16_len,
)
from pyclaw_app.channels.contract import AttachmentSource, AttachmentUnavailable
from pyclaw_app.errors import ConnectorError, FatalConnectorError, RetryableError
from pyclaw_app.model import Address, Attachment

__all__ = ["TwilioConnector"]

API = "/2010-04-01/Accounts"
KEPT = 1000
"""WhatsApp chats whose latest inbound MessageSid is kept (for the typing indicator)."""
RATE_LIMIT_WAIT = 1.0
"""Seconds to wait after a 429 that names no Retry-After (Twilio documents none)."""
TOO_MANY_REQUESTS = 20429
AUTHENTICATE = 20003
EMPTY_TWIML = str(MessagingResponse())
"""``<Response />``: Twilio sends nothing itself; our answer goes out through the REST API."""
FAILED = frozenset({"failed", "undelivered"})
MEANING: dict[int, str] = {
    # Twilio error codes (twilio.com/docs/api/errors/<code>) a user can act on.
    21211: "the To number is not a valid phone number",
    21408: "sending to this country is not enabled (Console > Messaging > Settings > "
           "Geo permissions)",
    21606: "the From number is not a message-capable Twilio number of this account",
    21610: "the recipient texted STOP; Twilio refuses every message to them until they "
           "text START",
    21614: "the To number is not a mobile number",
    30003: "the handset is unreachable (switched off or out of coverage)",
    30004: "the recipient or their carrier blocked the message",
    30005: "the number is unknown or no longer in service",
    30006: "the number is a landline or its carrier cannot receive SMS",
    30007: "the carrier filtered the message as spam (register the number for A2P 10DLC "
           "or toll-free verification)",
    63003: "the recipient is not on WhatsApp, or the address is wrong",
    63016: "WhatsApp allows free-form replies only within 24 hours of the user's last "
           "message, and that window is closed; only an approved template can reach them "
           "now, and the conversation continues when they write again",
    63018: "the WhatsApp sender's rate limit was exceeded",
}
REFUSALS = frozenset({21211, 21408, 21606, 21610, 21614, 63003, 63016})


def _code(body: Any) -> int | None:
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def _twilio_error(answer: HttpAnswer, what: str, detail: str) -> ConnectorError | None:
    """Twilio's error codes sorted before the HTTP status (ChannelHttp's hook)."""
    code = _code(answer.data)
    if code == TOO_MANY_REQUESTS and answer.status != 429:
        return RetryableError(f"Twilio rate limit ({what}: {detail})",
                              retry_after=RATE_LIMIT_WAIT)
    if answer.status == 401 or code == AUTHENTICATE:
        return FatalConnectorError(f"Twilio refused our credentials ({detail}); check "
                                   "account_sid and auth_token (or api_key_sid and "
                                   "api_key_secret) in this channel's settings")
    if code in REFUSALS:
        return FatalConnectorError(f"Twilio refused the message: {MEANING[code]} ({detail})")
    return None


def _describe(body: Any) -> str | None:
    """``message (error <code>, <more_info>)`` from Twilio's error body."""
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, str):
        return None
    code, info = _code(body), body.get("more_info")
    extra = [f"error {code}"] if code is not None else []
    if isinstance(info, str) and info:
        extra.append(info)
    return f"{message} ({', '.join(extra)})" if extra else message


class TwilioConnector(RestConnector):
    spec = SPEC
    config: TwilioConfig

    def __init__(self, name: str, config: TwilioConfig) -> None:
        super().__init__(name, config)
        self._latest: Recent[str, str] = Recent(KEPT)  # WhatsApp chat -> newest MessageSid

    @property
    def limits(self) -> Limits:
        return Limits(max_text=self.config.max_text, text_length=utf16_len)

    def check_config(self) -> None:
        self.secret("auth_token")  # every webhook is signed with it
        if not self.config.webhook_url:
            raise FatalConnectorError(
                "the Twilio webhook_url is not set: enter this channel's public URL "
                f"(https://<your host>/webhook/{self.name}), the one set as the number's "
                "\"A message comes in\" webhook; Twilio signs that URL")

    # ---- sending --------------------------------------------------------------------------

    async def send_part(self, address: Address, text: str, reply_to: str | None) -> str:
        """One message from the number the user wrote to (``address.account``); Twilio has
        no quoting, so ``reply_to`` is not sent."""
        sender = address.account or self.config.from_number.strip()
        service = self.config.messaging_service_sid
        if not sender and not service:
            raise FatalConnectorError(
                f"no Twilio sender for {address.chat}: set from_number (or "
                "messaging_service_sid) in this channel's settings")
        form = {"To": address.chat, "Body": text}
        if sender:
            form["From"] = sender
        if service:
            form["MessagingServiceSid"] = service
        if self.config.status_callbacks:
            form["StatusCallback"] = self._public_url
        answer = await self.http.call("POST", f"{API}/{self.config.account_sid}/Messages.json",
                                      data=form)
        sid = answer.data.get("sid") if isinstance(answer.data, dict) else None
        return str(sid or "")

    async def typing(self, address: Address) -> None:
        """WhatsApp's typing indicator, tied to the user's newest message; SMS has none."""
        message_id = self._latest.get(address.chat)
        if message_id is None:
            return
        await self.http.call("POST", f"{self.config.messaging_api_base.rstrip('/')}"
                             "/v2/Indicators/Typing.json", idempotent=True,
                             data={"channel": "whatsapp", "messageId": message_id})

    # ---- receiving ------------------------------------------------------------------------

    async def handle_webhook(self, request: WebhookRequest) -> WebhookResponse:
        return await self.receive(request, self._verify, self._deliver, parse=_form)

    @property
    def _public_url(self) -> str:
        """The URL Twilio calls and signs; a fragment (Twilio's connection overrides,
        ``#rc=3``) never reaches us, so it is not part of what was signed."""
        parts = urlsplit(self.config.webhook_url)
        return urlunsplit(parts._replace(fragment=""))

    def _verify(self, request: WebhookRequest) -> None:
        """``X-Twilio-Signature`` over ``webhook_url`` and the form, checked by the SDK's
        validator with the Auth Token. Nothing in it is time-bound: a replayed request
        passes here and is recognised by the journal (same MessageSid)."""
        if request.method != "POST":
            raise WebhookRejected(405, "Twilio must call this URL with HTTP POST (set the "
                                  "webhook's method to HTTP POST in the Twilio Console)")
        form = parse_form(request.body)
        if form is None:
            raise WebhookRejected(400, "the body is not UTF-8 form data", level="error")
        signature = request.header("X-Twilio-Signature")
        token = self.secret_or_none("auth_token")
        if not signature or token is None:
            raise WebhookRejected(401, "no X-Twilio-Signature")
        if not RequestValidator(token).validate(self._public_url, form, signature):
            settings = request.header("X-Twilio-Webhooks-Signature-Settings")
            hint = (f"it is signed with a shared key ({settings}), and this channel checks "
                    "Auth Token signatures only" if settings else "check that webhook_url is "
                    "exactly the URL set in Twilio and auth_token is the Auth Token of the "
                    "account that owns the number")
            raise WebhookRejected(401, f"bad X-Twilio-Signature for {self._public_url}: "
                                  f"{hint}")

    async def _deliver(self, form: Form) -> WebhookResponse:
        """Journal the message (or log the status); TwiML 200 only after ``submit``."""
        ctx = self.ctx
        item = parse_webhook(form, channel=self.name, account_sid=self.config.account_sid)
        if isinstance(item, Message):
            if item.inbound.address.chat.startswith(WHATSAPP):
                self._latest.remember(item.inbound.address.chat, item.inbound.platform_id)
            await ctx.submit(item.inbound)
        elif isinstance(item, StatusUpdate):
            self._status(item)
        elif isinstance(item, OptOut):
            ctx.log("info", f"{item.sender} texted STOP: Twilio unsubscribed them and will "
                    "refuse messages to them until they text START (not answered)",
                    message_id=item.message_id)
        elif isinstance(item, Malformed):
            ctx.log("error", f"skipped a malformed Twilio webhook ({item.reason})")
        elif isinstance(item, Ignored):
            self.log.debug("ignored: %s", item.reason)
        return WebhookResponse(200, EMPTY_TWIML, "text/xml")

    def _status(self, update: StatusUpdate) -> None:
        """A status callback: a failed or undelivered reply is worth a log line a user can
        act on, with Twilio's code; queued, sent, delivered and read are not."""
        if update.status not in FAILED:
            self.log.debug("message %s %s", update.message_id, update.status)
            return
        code = update.error_code
        said = MEANING.get(code or 0) or update.error_message or "no reason given"
        if code is not None:
            said += f" (error {code}, https://www.twilio.com/docs/api/errors/{code})"
        self.ctx.log("error", f"Twilio could not deliver message {update.message_id} to "
                     f"{update.to or 'the user'} ({update.status}): {said}",
                     message_id=update.message_id, code=code)

    # ---- attachments ----------------------------------------------------------------------

    async def fetch_attachment(self, attachment: Attachment) -> AttachmentSource:
        """``MediaUrl{N}``: the Media resource on Twilio's REST API, fetched with HTTP basic
        auth (accounts that enforce auth on media URLs refuse it otherwise); Twilio answers
        a redirect to a short-lived copy on its CDN, and the gateway's client drops the
        credentials on that cross-host redirect. The URL came in the webhook, so before
        the credentials are attached its host must be the configured ``api_base``'s: a
        token never goes to a host a payload named. One lookup of the resource's JSON
        (``.json``) first tells a deleted file apart with Twilio's own words."""
        url = attachment.url or ""
        parts = urlsplit(url)
        api = urlsplit(self.config.api_base)
        if parts.scheme not in ("http", "https") or "/Media/" not in parts.path:
            raise AttachmentUnavailable(f"Twilio sends no file for a {attachment.kind}")
        if (parts.scheme, parts.netloc.lower()) != (api.scheme, api.netloc.lower()):
            raise AttachmentUnavailable(f"the file is on {parts.hostname or 'no host'}, not "
                                        "Twilio's API host, so the credentials are not sent "
                                        "there")
        media = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
        try:
            await self.http.call("GET", f"{media}.json")
        except FatalConnectorError as exc:
            raise AttachmentUnavailable(f"Twilio no longer has the file ({exc})") from exc
        return AttachmentSource(url=media, headers=self._auth(), size=attachment.size)

    # ---- the client -----------------------------------------------------------------------

    def _auth(self) -> dict[str, str]:
        """HTTP basic auth: the API key when one is set, else the account SID and Auth
        Token."""
        key = self.config.api_key_sid
        user, password = (key, self.secret("api_key_secret")) if key else \
            (self.config.account_sid, self.secret("auth_token"))
        return {"Authorization": "Basic " + base64.b64encode(
            f"{user}:{password}".encode()).decode()}

    def make_http(self) -> ChannelHttp:
        sid = self.config.account_sid
        if not sid:
            raise FatalConnectorError("the Twilio account_sid is not set: copy it (AC...) "
                                      "from the Twilio Console's Account Info panel")
        token = self.secret("auth_token")
        headers = self._auth()
        password = self.secret("api_key_secret") if self.config.api_key_sid else token
        return ChannelHttp(self.config.api_base, platform="Twilio",
                           auth=lambda: headers,
                           secrets=[token, password, headers["Authorization"][6:]],
                           describe=_describe, rate_limit=lambda _body: RATE_LIMIT_WAIT,
                           classify=_twilio_error)

    async def whoami(self, http: ChannelHttp) -> str:
        """The account's name; a suspended or closed account cannot send."""
        sid = self.config.account_sid
        answer = await http.call("GET", f"{API}/{sid}.json")
        account = answer.data if isinstance(answer.data, dict) else {}
        status = account.get("status")
        if isinstance(status, str) and status != "active":
            raise FatalConnectorError(f"the Twilio account {sid} is {status}: it cannot "
                                      "send messages")
        name = account.get("friendly_name")
        return f"{name} ({sid})" if isinstance(name, str) and name else sid


def _form(request: WebhookRequest) -> Form:
    """The verified body's parameters (``_verify`` already refused a body that is not)."""
    return parse_form(request.body) or Form()
