"""A fake Twilio Programmable Messaging API and Twilio's signed webhook requests, on 127.0.0.1.

Written from Twilio's published reference (github.com/twilio/twilio-oai
``spec/json/twilio_api_v2010.json``: paths, form fields, the Message resource and its
status enum; twilio.com/docs: the incoming-message webhook parameters, status
callbacks, webhook security, the error codes named below), not from what our
connector sends:

* HTTP basic auth on every call: AccountSid:AuthToken, or an API key SID:secret
  (securityScheme ``accountSid_authToken``); anything else is HTTP 401, code 20003
  "Authenticate". Errors are ``{"code", "message", "more_info", "status"}``.
* ``GET /2010-04-01/Accounts/{Sid}.json`` -> the Account (``friendly_name``,
  ``status`` active/suspended/closed, ``type``, ``auth_token``...).
* ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``, form-encoded: ``To``
  (required), ``From`` and/or ``MessagingServiceSid``, ``Body`` (at most 1,600
  characters: else 21617), ``StatusCallback``. Refusals: 21604 no To, 21602 no Body,
  21603 no sender, 21211 a To that is not E.164, 21606 a From that is not one of the
  account's numbers (63007 for a WhatsApp sender), 21701 an unknown Messaging Service,
  21910 From and To on different channels (SMS / ``whatsapp:``), 21610 an SMS
  recipient who texted STOP. Accepted: HTTP 201 with the Message resource, status
  ``queued`` (``num_segments`` counted as GSM-7 153/160 or UCS-2 67/70 units).
* Delivery happens later, as on Twilio: each accepted message with a StatusCallback
  gets signed ``sent`` and ``delivered`` callbacks queued in :attr:`TwilioFake.callbacks`
  (the requests Twilio would POST); a WhatsApp message whose recipient last wrote over
  24 hours ago is accepted and then fails with 63016 instead.
* ``POST /v2/Indicators/Typing.json`` (Messaging v2, ``twilio_messaging_v2.json``):
  ``channel=whatsapp`` and ``messageId`` (SM/MM + 32 hex) of a message the user sent ->
  ``{"success": true}``. The spec names no error code for an unknown message; the fake
  answers HTTP 400 code 20001.
* Media (the Media resource, twilio.com/docs/messaging/api/media-resource): an incoming
  message's ``MediaUrl{N}`` is ``/2010-04-01/Accounts/{AC}/Messages/{MM}/Media/{ME}`` on
  the API host. With ``.json`` it is the resource (``sid``, ``parent_sid``,
  ``content_type``, ``uri``...); without, the file: with basic auth (media URLs enforce
  HTTP auth) Twilio answers 307 to a short-lived copy on its media CDN (here
  ``localhost``, another origin), which serves the bytes with their Content-Type to anyone
  holding the link. No auth is 401 code 20003; a deleted item is 404 code 20404.
* Throttling is HTTP 429 code 20429 "Too Many Requests" with no Retry-After (Twilio
  documents none; ``retry_after_header`` adds one to show it would be honoured); 500 is
  20500, 503 is 20503.
* Webhooks: :meth:`TwilioFake.inbound` builds an incoming message's parameters as Twilio
  sends them (SMS: the geo fields, ``SmsStatus=received``, ``NumSegments``; WhatsApp:
  ``ProfileName``, ``WaId``, ``MessageType``); :meth:`signed` form-encodes them and adds
  ``X-Twilio-Signature`` = base64 HMAC-SHA1(Auth Token, URL + each name and value,
  sorted by name) for the public URL Twilio was given (:attr:`webhook_url`), however
  the request reaches the gateway.

Scripted faults come from :class:`FakePlatform` under the method names ``send``,
``account`` and ``typing``.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import re
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlencode

from aiohttp import web

from tests.fakes.platform import FakePlatform
from tests.fakes.server import json_response

__all__ = [
    "ACCOUNT_SID",
    "API_KEY_SECRET",
    "API_KEY_SID",
    "AUTH_TOKEN",
    "FRIENDLY_NAME",
    "MAX_BODY",
    "MESSAGING_SERVICE_SID",
    "SMS_NUMBER",
    "WEBHOOK_URL",
    "WHATSAPP_NUMBER",
    "SentTwilio",
    "TwilioFake",
]

ACCOUNT_SID = "AC3f1e2d4c5b6a79880f1e2d3c4b5a6978"
AUTH_TOKEN = "5c0e3b1d9a7f4e2c8b6a0d1f3e5c7a9b"
API_KEY_SID = "SK9a8b7c6d5e4f30211f0e9d8c7b6a5f4e"
API_KEY_SECRET = "k3yS3cr3tF0rTh3Tw1l10F4k3AP1x0x0"
MESSAGING_SERVICE_SID = "MG0a1b2c3d4e5f60718293a4b5c6d7e8f9"
SMS_NUMBER = "+15557770100"
WHATSAPP_NUMBER = "whatsapp:+14155238886"
FRIENDLY_NAME = "Pyclaw Test"
WEBHOOK_URL = "https://pyclaw.example.test/webhook/twilio"
MAX_BODY = 1600
WINDOW = 24 * 3600.0
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START_WORDS = frozenset({"START", "YES", "UNSTOP"})
_MESSAGE_SID = re.compile(r"^(SM|MM)[0-9a-fA-F]{32}$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_GSM7 = frozenset("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
                  "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
_ERRORS: dict[int, tuple[int, str]] = {
    # HTTP status -> (code, message) for scripted failures
    400: (21211, "Invalid 'To' Phone Number"),
    401: (20003, "Authenticate"),
    403: (20403, "Forbidden"),
    404: (20404, "The requested resource was not found"),
    429: (20429, "Too Many Requests"),
    500: (20500, "Internal Server Error"),
    503: (20503, "Service Unavailable"),
}


@dataclass(frozen=True)
class SentTwilio:
    """One message the fake accepted."""

    to: str
    from_: str
    body: str
    sid: str
    status_callback: str
    messaging_service: str
    monotonic: float


def signature(token: str, url: str, params: dict[str, str] | list[tuple[str, str]]) -> str:
    """X-Twilio-Signature: base64 HMAC-SHA1 over the URL and every name+value, sorted."""
    pairs = sorted(set(params.items() if isinstance(params, dict) else params))
    data = url + "".join(name + value for name, value in pairs)
    digest = hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _segments(body: str) -> int:
    if set(body) <= _GSM7:
        return 1 if len(body) <= 160 else -(-len(body) // 153)
    units = len(body.encode("utf-16-le")) // 2
    return 1 if units <= 70 else -(-units // 67)


def _rfc2822(ts: float) -> str:
    return email.utils.formatdate(ts, usegmt=True).replace("GMT", "+0000")


def _sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


class TwilioFake(FakePlatform):
    send_method = "send"

    def __init__(self, *, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN,
                 webhook_url: str = WEBHOOK_URL) -> None:
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.webhook_url = webhook_url
        """The public URL Twilio was given for incoming messages (and signs)."""
        self.api_keys = {API_KEY_SID: API_KEY_SECRET}
        self.numbers = {SMS_NUMBER, WHATSAPP_NUMBER}
        self.services = {MESSAGING_SERVICE_SID: SMS_NUMBER}
        self.status = "active"
        self.retry_after_header = False
        self.window = WINDOW
        self.sent: list[SentTwilio] = []
        self.typing: list[str] = []  # messageIds of the typing indicators sent
        self.callbacks: list[tuple[str, bytes, dict[str, str]]] = []
        """Status callbacks Twilio would POST: (StatusCallback URL, body, headers)."""
        self.unsubscribed: set[str] = set()
        self.last_inbound: dict[str, float] = {}  # whatsapp:+... -> time.time()
        self._inbound: dict[str, dict[str, str]] = {}
        self.media: dict[str, tuple[str, str, bytes]] = {}  # ME sid -> (MM sid, type, bytes)
        self.cdn_requests: list[tuple[str, str | None]] = []  # (ME sid, Authorization)

    def routes(self, app: web.Application) -> None:
        media = "/2010-04-01/Accounts/{sid:[^/.]+}/Messages/{mm:MM[0-9a-f]{32}}/Media/" \
            "{me:ME[0-9a-f]{32}}"
        app.router.add_get(media + ".json", self._media_resource)
        app.router.add_get(media, self._media_file)
        app.router.add_get("/cdn/{me:ME[0-9a-f]{32}}", self._cdn)
        app.router.add_get("/2010-04-01/Accounts/{sid:[^/.]+}.json", self._account)
        app.router.add_post("/2010-04-01/Accounts/{sid:[^/.]+}/Messages.json", self._messages)
        app.router.add_post("/v2/Indicators/Typing.json", self._typing)

    # ---- controls ----------------------------------------------------------------------------

    def close_window(self, address: str) -> None:
        """Make a WhatsApp user's last message older than 24 hours."""
        self.last_inbound[address] = time.time() - self.window - 60

    def error_response(self, method: str, status: int, retry_after: float | None
                       ) -> web.Response:
        code, message = _ERRORS.get(status, (20001, "Unknown error"))
        headers = {"Retry-After": f"{retry_after:g}"} if (
            status == 429 and retry_after is not None and self.retry_after_header) else {}
        return _error(status, code, message, headers)

    # ---- API ---------------------------------------------------------------------------------

    async def _account(self, request: web.Request) -> web.StreamResponse:
        scripted = await self.before("account")
        if scripted is not None:
            return scripted
        refused = self._check(request)
        if refused is not None:
            return refused
        self.after("account", request)
        uri = f"/2010-04-01/Accounts/{self.account_sid}"
        return json_response({
            "auth_token": self.auth_token, "date_created": _rfc2822(1_700_000_000),
            "date_updated": _rfc2822(1_700_000_000), "friendly_name": FRIENDLY_NAME,
            "owner_account_sid": self.account_sid, "sid": self.account_sid,
            "status": self.status, "type": "Full", "uri": f"{uri}.json",
            "subresource_uris": {"messages": f"{uri}/Messages.json"}})

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        scripted = await self.before("send")
        if scripted is not None:
            return scripted
        refused = self._check(request)
        if refused is not None:
            return refused
        form = await request.post()
        to, body = str(form.get("To", "")), str(form.get("Body", ""))
        sender, service = str(form.get("From", "")), str(form.get("MessagingServiceSid", ""))
        if not to:
            return _error(400, 21604, "A 'To' phone number is required.")
        if not body and "MediaUrl" not in form and "ContentSid" not in form:
            return _error(400, 21602, "Message body is required.")
        if not sender and not service:
            return _error(400, 21603, "A 'From' phone number is required.")
        if service and service not in self.services:
            return _error(400, 21701, f"The Messaging Service Sid {service} is invalid.")
        if len(body) > MAX_BODY:
            return _error(400, 21617, "The concatenated message body exceeds the 1600 "
                          "character limit.")
        sender = sender or self.services[service]
        whatsapp = to.startswith("whatsapp:")
        if whatsapp != sender.startswith("whatsapp:"):
            return _error(400, 21910, "Invalid From and To pair. From and To should be of "
                          "the same channel")
        if not _E164.match(to.removeprefix("whatsapp:")):
            return _error(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if sender not in self.numbers:
            if whatsapp:
                return _error(400, 63007, "Twilio could not find a Channel with the "
                              "specified From address")
            return _error(400, 21606, f"The From phone number {sender} is not a valid, "
                          "SMS-capable inbound phone number or short code for your account.")
        if not whatsapp and to in self.unsubscribed:
            return _error(400, 21610, "Attempt to send to unsubscribed recipient")
        sid = _sid("SM")
        callback = str(form.get("StatusCallback", ""))
        self.sent.append(SentTwilio(to, sender, body, sid, callback, service,
                                    time.monotonic()))
        if callback:
            closed = whatsapp and time.time() - self.last_inbound.get(
                to, float("-inf")) > self.window
            outcomes = [("failed", 63016)] if closed else [("sent", None), ("delivered", None)]
            for status, code in outcomes:
                self.callbacks.append((callback, *self.status_callback(
                    sid, status, error_code=code)))
        self.after("send", request)  # a scripted lost answer: accepted, then the line is cut
        now = _rfc2822(time.time())
        uri = f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}"
        return json_response({
            "account_sid": self.account_sid, "api_version": "2010-04-01", "body": body,
            "date_created": now, "date_sent": None, "date_updated": now,
            "direction": "outbound-api", "error_code": None, "error_message": None,
            "from": sender, "messaging_service_sid": service or None, "num_media": "0",
            "num_segments": str(_segments(body)), "price": None, "price_unit": "USD",
            "sid": sid, "status": "queued", "to": to, "uri": f"{uri}.json",
            "subresource_uris": {"media": f"{uri}/Media.json"}}, status=201)

    async def _typing(self, request: web.Request) -> web.StreamResponse:
        scripted = await self.before("typing")
        if scripted is not None:
            return scripted
        refused = self._check(request)
        if refused is not None:
            return refused
        form = await request.post()
        message_id = str(form.get("messageId", ""))
        if form.get("channel") != "whatsapp" or not _MESSAGE_SID.match(message_id) or not (
                self._inbound.get(message_id, {}).get("From", "").startswith("whatsapp:")):
            return _error(400, 20001, "Invalid channel or messageId")
        self.typing.append(message_id)
        self.after("typing", request)
        return json_response({"success": True})

    def _media_item(self, request: web.Request) -> tuple[str, bytes] | web.Response:
        refused = self._check(request)
        if refused is not None:
            return refused
        me, mm = request.match_info["me"], request.match_info["mm"]
        item = self.media.get(me)
        if item is None or item[0] != mm:
            return _error(404, 20404, f"The requested resource {request.path} was not found")
        return item[1], item[2]

    async def _media_resource(self, request: web.Request) -> web.StreamResponse:
        item = self._media_item(request)
        if isinstance(item, web.Response):
            return item
        me, mm = request.match_info["me"], request.match_info["mm"]
        now = _rfc2822(time.time())
        return json_response({
            "account_sid": self.account_sid, "content_type": item[0], "date_created": now,
            "date_updated": now, "parent_sid": mm, "sid": me,
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{mm}/Media/{me}.json"})

    async def _media_file(self, request: web.Request) -> web.StreamResponse:
        item = self._media_item(request)
        if isinstance(item, web.Response):
            return item
        me = request.match_info["me"]
        expires = int(time.time()) + 300
        return web.Response(status=307, headers={
            "Location": f"http://localhost:{self.port}/cdn/{me}?Expires={expires}"
                        f"&Signature={uuid.uuid4().hex}"})

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        me = request.match_info["me"]
        self.cdn_requests.append((me, request.headers.get("Authorization")))
        if me not in self.media:
            return web.Response(status=404, text="Not Found")
        _, mime, data = self.media[me]
        return web.Response(body=data, content_type=mime)

    def _check(self, request: web.Request) -> web.Response | None:
        user, password = _basic(request.headers.get("Authorization", ""))
        good = (user == self.account_sid and password == self.auth_token) or (
            user in self.api_keys and password == self.api_keys[user])
        if not good:
            return _error(401, 20003, "Authenticate")
        if request.match_info.get("sid", self.account_sid) != self.account_sid:
            return _error(404, 20404, f"The requested resource {request.path} was not found")
        return None

    # ---- webhooks ------------------------------------------------------------------------------

    def inbound(self, sender: str, text: str = "", *, to: str | None = None,
                media: tuple[str, ...] = (), files: tuple[bytes | None, ...] = (),
                profile_name: str = "", **extra: str) -> dict[str, str]:
        """An incoming message's parameters, in the order Twilio sends them. ``media`` are
        content types, each item under the Media resource of this fake's API host, served
        with the bytes ``files`` gives at the same position (none or None: deleted);
        ``extra`` adds parameters (``Latitude``...). A WhatsApp message opens the sender's
        24-hour window; an SMS "STOP" unsubscribes them, "START" subscribes them again."""
        whatsapp = sender.startswith("whatsapp:")
        number = to or (WHATSAPP_NUMBER if whatsapp else SMS_NUMBER)
        sid = _sid("MM" if media else "SM")
        base = f"{self.url}/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}"
        items: dict[str, str] = {}
        for i, mime in enumerate(media):
            me = _sid("ME")
            data = files[i] if i < len(files) else None
            if data is not None:
                self.media[me] = (sid, mime, data)
            items |= {f"MediaContentType{i}": mime, f"MediaUrl{i}": f"{base}/Media/{me}"}
        if whatsapp:
            params = {"SmsMessageSid": sid, "NumMedia": str(len(media)),
                      "ProfileName": profile_name, "MessageType": "image" if media else "text",
                      "SmsSid": sid, "WaId": sender.removeprefix("whatsapp:+"),
                      "SmsStatus": "received", "Body": text, "To": number,
                      "NumSegments": "1", "ReferralNumMedia": "0", "MessageSid": sid,
                      "AccountSid": self.account_sid, "From": sender,
                      "ApiVersion": "2010-04-01", **items, **extra}
            self.last_inbound[sender] = time.time()
        else:
            params = {"ToCountry": "US", "ToState": "CA", "SmsMessageSid": sid,
                      "NumMedia": str(len(media)), "ToCity": "", "FromZip": "",
                      "SmsSid": sid, "FromState": "CA", "SmsStatus": "received",
                      "FromCity": "", "Body": text, "FromCountry": "US", "To": number,
                      "ToZip": "", "NumSegments": str(_segments(text) if text else 1),
                      "MessageSid": sid, "AccountSid": self.account_sid, "From": sender,
                      "ApiVersion": "2010-04-01", **items, **extra}
            word = text.strip().upper()
            if word in STOP_WORDS:
                self.unsubscribed.add(sender)
            elif word in START_WORDS:
                self.unsubscribed.discard(sender)
        self._inbound[sid] = params
        return params

    def redelivery(self, sid: str) -> dict[str, str]:
        """The same request again (Twilio retries with the same parameters)."""
        return self._inbound[sid]

    def status_callback(self, sid: str, status: str, *, error_code: int | None = None,
                        error_message: str = "") -> tuple[bytes, dict[str, str]]:
        """A signed status callback for a message the fake accepted, to its StatusCallback."""
        sent = next(m for m in self.sent if m.sid == sid)
        params = {"SmsSid": sid, "SmsStatus": status, "MessageStatus": status,
                  "To": sent.to, "MessageSid": sid, "AccountSid": self.account_sid,
                  "From": sent.from_, "ApiVersion": "2010-04-01"}
        if sent.to.startswith("whatsapp:"):
            params["ChannelPrefix"] = "whatsapp"
            params["ChannelToAddress"] = sent.to.removeprefix("whatsapp:")
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
            if error_message:
                params["ErrorMessage"] = error_message
        return self.signed(params, url=sent.status_callback or self.webhook_url)

    def signed(self, params: dict[str, str] | list[tuple[str, str]], *,
               url: str | None = None, token: str | None = None
               ) -> tuple[bytes, dict[str, str]]:
        """The form body and the headers Twilio sends with it, signed for ``url`` (the
        public webhook URL unless given) with the Auth Token (unless ``token``)."""
        pairs = list(params.items() if isinstance(params, dict) else params)
        body = urlencode(pairs).encode()
        return body, {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature(token or self.auth_token,
                                            url or self.webhook_url, pairs),
            "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
            "User-Agent": "TwilioProxy/1.1"}


def _basic(header: str) -> tuple[str, str]:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return "", ""
    return user, password


def _error(status: int, code: int, message: str, headers: dict[str, str] | None = None
           ) -> web.Response:
    return json_response({"code": code, "message": message,
                          "more_info": f"https://www.twilio.com/docs/errors/{code}",
                          "status": status}, status=status, headers=headers)

