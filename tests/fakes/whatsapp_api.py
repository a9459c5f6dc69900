"""A fake WhatsApp Business Cloud API (Graph API) and Meta's signed webhook posts, on 127.0.0.1.

Written from Meta's published reference (github.com/facebook/openapi
``business-messaging-api_v23.0.yaml``; developers.facebook.com/docs/whatsapp/cloud-api:
messages, mark-as-read, error codes), not from what our connector sends:

* ``Authorization: Bearer <access token>`` on every call; a missing or wrong token is
  HTTP 401 ``{"error": {"message": "Invalid OAuth access token - Cannot parse access
  token", "type": "OAuthException", "code": 190, "fbtrace_id"}}``. Every error has that
  shape (``error_subcode`` and ``error_data.details`` where Meta gives them); titles are
  in ``message`` as ``(#<code>) <title>``.
* ``GET /{Version}/{Phone-Number-ID}`` -> ``id``, ``display_phone_number``,
  ``verified_name``, ``quality_rating``; an unknown id is 400, code 100, subcode 33.
* ``POST /{Version}/{Phone-Number-ID}/messages`` with ``messaging_product: whatsapp``:
  - a text ``{to, type: text, text: {body, preview_url}, context: {message_id}}``: body of
    1-4,096 characters; refused with 131047 "Re-engagement message" (HTTP 400) when the
    recipient's last inbound message is older than ``window`` (24 hours) or there is none;
  - a template ``{to, type: template, template: {name, language: {code}}}``: accepted
    outside the window when (name, language) is in ``templates``, else 132001;
  - both answer ``{"messaging_product", "contacts": [{"input", "wa_id"}], "messages":
    [{"id": "wamid..."}]}``;
  - a read receipt ``{status: read, message_id, typing_indicator?: {type: text}}`` for a
    message the fake delivered answers ``{"success": true}``, else 400 code 100.
* Media ("Retrieve media URL", "Download media"): ``GET /{Version}/{Media-ID}`` with the
  token answers ``{"messaging_product", "url", "mime_type", "sha256", "file_size" (a
  string), "id"}``; the ``url`` (Meta's is on lookaside.fbsbx.com, here the fake's
  ``media_base``) answers the bytes with their Content-Type only with ``Authorization:
  Bearer <token>`` (401 without), 404 once the link is unknown. A media id the fake does not
  hold (deleted, expired) is 400 code 100 subcode 33, "Unsupported get request".
* Throttling is HTTP 400, not 429, told apart by code: 130429 "(#130429) Rate limit hit"
  (throughput), 131056 "(Business Account, Consumer Account) pair rate limit hit"; no
  Retry-After. A throttled call carries nothing out. 500 is 131000 "Something went wrong",
  503 is 131016 "Service unavailable".
* Webhooks: :meth:`WhatsAppFake.payload` builds a ``WebhookPayload`` (``object:
  whatsapp_business_account``, ``entry[].changes[].value`` with ``metadata``, ``contacts``,
  ``messages`` or ``statuses``); :meth:`signed` adds ``X-Hub-Signature-256: sha256=<hex
  HMAC-SHA256(app secret, raw body)>``; :meth:`post_webhook` POSTs it as Meta does and
  :meth:`verify_subscription` makes Meta's GET verification request. A message event
  opens the recipient's 24-hour window, as a delivered user message does.

Scripted faults come from :class:`FakePlatform` under the method names ``send`` (text and
template messages), ``read`` (read receipts) and ``phone_number``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from tests.fakes.platform import FakePlatform
from tests.fakes.server import json_response

__all__ = ["DISPLAY_NUMBER", "PHONE_NUMBER_ID", "VERIFIED_NAME", "SentWhatsApp", "WhatsAppFake"]

PHONE_NUMBER_ID = "106540352242922"
DISPLAY_NUMBER = "+1 555-078-3881"
VERIFIED_NAME = "Pyclaw Test"
WABA_ID = "419561257915477"
MAX_TEXT = 4096
WINDOW = 24 * 3600.0
_VERSION = re.compile(r"^v\d+\.\d+$")
_ERRORS: dict[int, tuple[int, str, str, int | None]] = {
    # HTTP status -> (code, title, details, subcode) for scripted failures
    400: (100, "Invalid parameter", "Param text['body'] is invalid.", None),
    401: (190, "Invalid OAuth access token - Cannot parse access token", "", None),
    403: (200, "Requires whatsapp_business_messaging permission", "", 1349176),
    404: (100, "Unsupported post request.", "", 33),
    429: (130429, "Rate limit hit", "Cloud API message throughput has been reached.", None),
    500: (131000, "Something went wrong", "Something went wrong.", None),
    503: (131016, "Service unavailable", "A service is temporarily unavailable.", None),
}


@dataclass(frozen=True)
class SentWhatsApp:
    """One message the fake accepted."""

    to: str
    kind: str  # "text" or "template"
    text: str  # the body, or the template's name
    id: str
    quoted: str | None  # context.message_id
    monotonic: float
    language: str = ""


@dataclass
class _Inbound:
    wa_id: str
    message: dict[str, Any]
    at: float = field(default_factory=time.time)


class WhatsAppFake(FakePlatform):
    send_method = "send"

    def __init__(self, *, access_token: str = "fake-whatsapp-access-token",
                 app_secret: str = "fake-whatsapp-app-secret",
                 verify_token: str = "fake-whatsapp-verify-token") -> None:
        super().__init__()
        self.access_token = access_token
        self.app_secret = app_secret
        self.verify_token = verify_token
        self.phone_number_id = PHONE_NUMBER_ID
        self.window = WINDOW
        self.templates: set[tuple[str, str]] = {("hello_world", "en_US")}
        """Approved (name, language code) pairs."""
        self.sent: list[SentWhatsApp] = []
        self.reads: list[tuple[str, bool]] = []  # (message_id, with typing indicator)
        self.last_inbound: dict[str, float] = {}  # wa_id -> time.time() of its last message
        self._inbound: dict[str, _Inbound] = {}  # wamid -> the message, for redelivery
        self._ids = itertools.count(1)
        self._pair_limit = False
        self.files: dict[str, tuple[bytes, str]] = {}  # media id -> (bytes, mime type)
        self._media_ids: set[str] = set()  # every media id a message carried
        self.downloads: list[tuple[str, str | None]] = []  # (media id, Authorization)
        self.media_base = ""
        """Where media URLs point; empty: this server (Meta's is lookaside.fbsbx.com)."""

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/whatsapp_business/attachments/", self._download)
        app.router.add_get("/{version}/{phone_id}", self._phone_number)
        app.router.add_post("/{version}/{phone_id}/messages", self._messages)

    # ---- controls ----------------------------------------------------------------------------

    def close_window(self, wa_id: str) -> None:
        """Make ``wa_id``'s last message older than 24 hours."""
        self.last_inbound[wa_id] = time.time() - self.window - 60

    def pair_rate_limit_next_send(self) -> None:
        """The next send is refused with 131056 (too many messages to one user)."""
        self._pair_limit = True

    # ---- API ---------------------------------------------------------------------------------

    def error_response(self, method: str, status: int, retry_after: float | None
                       ) -> web.Response:
        """Meta's error for a scripted ``status``; a rate limit is HTTP 400 code 130429 and
        carries no Retry-After (Meta sends none)."""
        code, title, details, subcode = _ERRORS.get(status, (1, "API Unknown", "", None))
        return _error(400 if status == 429 else status, code, title, details, subcode)

    async def _phone_number(self, request: web.Request) -> web.StreamResponse:
        scripted = await self.before("phone_number")
        if scripted is not None:
            return scripted
        media_id = request.match_info["phone_id"]
        if media_id in self._media_ids:
            return self._media_url(request, media_id)
        refused = self._check(request, "get")
        if refused is not None:
            return refused
        self.after("phone_number", request)
        return json_response({"id": self.phone_number_id, "display_phone_number": DISPLAY_NUMBER,
                              "verified_name": VERIFIED_NAME, "quality_rating": "GREEN"})

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            body = None
        method = "read" if isinstance(body, dict) and "status" in body else "send"
        scripted = await self.before(method)
        if scripted is not None:
            return scripted
        refused = self._check(request, "post")
        if refused is not None:
            return refused
        if not isinstance(body, dict) or body.get("messaging_product") != "whatsapp":
            return _error(400, 100, "Invalid parameter",
                          "The parameter messaging_product is required.")
        if method == "read":
            return self._read(body, request)
        if self._pair_limit:
            self._pair_limit = False
            return _error(400, 131056, "(Business Account, Consumer Account) pair rate limit "
                          "hit", "Message failed to send because there were too many messages "
                          "sent from this phone number to the same phone number in a short "
                          "period of time.")
        to, kind = body.get("to"), body.get("type", "text")
        if not isinstance(to, str) or not to.lstrip("+").isdigit():
            return _error(400, 100, "Invalid parameter", "The parameter to is required.")
        wa_id = to.lstrip("+")
        if kind == "text":
            text = body.get("text")
            content = text.get("body") if isinstance(text, dict) else None
            if not isinstance(content, str) or not 1 <= len(content) <= MAX_TEXT:
                return _error(400, 100, "Invalid parameter", "Param text['body'] must be "
                              f"between 1 and {MAX_TEXT} characters long.")
            if time.time() - self.last_inbound.get(wa_id, float("-inf")) > self.window:
                return _error(400, 131047, "Re-engagement message", "Message failed to send "
                              "because more than 24 hours have passed since the customer "
                              "last replied to this number.", 2494010)
            language = ""
        elif kind == "template":
            template = body.get("template")
            name = template.get("name") if isinstance(template, dict) else None
            lang = template.get("language") if isinstance(template, dict) else None
            language = lang.get("code") if isinstance(lang, dict) else None
            if (name, language) not in self.templates:
                return _error(404, 132001, "Template name does not exist in the translation",
                              f"template name ({name}) does not exist in {language}")
            content = str(name)
        else:
            return _error(400, 100, "Invalid parameter", f"the fake sends only text and "
                          f"template messages, not {kind!r}")
        context = body.get("context")
        quoted = context.get("message_id") if isinstance(context, dict) else None
        mid = "wamid." + base64.b64encode(
            f"HBgL{wa_id}FQIAERgS{next(self._ids):020d}".encode()).decode()
        self.sent.append(SentWhatsApp(wa_id, kind, content, mid, quoted, time.monotonic(),
                                      language or ""))
        self.after("send", request)  # a scripted lost answer: delivered, then the line is cut
        return json_response({"messaging_product": "whatsapp",
                              "contacts": [{"input": to, "wa_id": wa_id}],
                              "messages": [{"id": mid, **(
                                  {"message_status": "accepted"} if kind == "template"
                                  else {})}]})

    def _media_url(self, request: web.Request, media_id: str) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.access_token}":
            return _error(401, 190, "Invalid OAuth access token - Cannot parse access token")
        if media_id not in self.files:
            return _error(400, 100, f"Unsupported get request. Object with ID '{media_id}' "
                          "does not exist, cannot be loaded due to missing permissions, or "
                          "does not support this operation.", subcode=33)
        data, mime = self.files[media_id]
        base = self.media_base or self.url
        return json_response({
            "messaging_product": "whatsapp", "id": media_id, "mime_type": mime,
            "sha256": hashlib.sha256(data).hexdigest(), "file_size": str(len(data)),
            "url": f"{base}/whatsapp_business/attachments/?mid={media_id}&ext="
                   f"{int(time.time()) + 300}&hash={uuid.uuid4().hex[:20]}"})

    async def _download(self, request: web.Request) -> web.StreamResponse:
        media_id = request.query.get("mid", "")
        auth = request.headers.get("Authorization")
        self.downloads.append((media_id, auth))
        if auth != f"Bearer {self.access_token}":
            return _error(401, 190, "Invalid OAuth access token - Cannot parse access token")
        if media_id not in self.files:
            return web.Response(status=404, text="Not Found")
        data, mime = self.files[media_id]
        return web.Response(body=data, content_type=mime)

    def _read(self, body: dict[str, Any], request: web.Request) -> web.StreamResponse:
        mid = body.get("message_id")
        typing = body.get("typing_indicator")
        if body.get("status") != "read" or mid not in self._inbound or (
                typing is not None and typing != {"type": "text"}):
            return _error(400, 100, "Invalid parameter", "Invalid message_id or status.")
        self.reads.append((mid, typing is not None))
        self.after("read", request)
        return json_response({"success": True})

    def _check(self, request: web.Request, verb: str) -> web.Response | None:
        if request.headers.get("Authorization") != f"Bearer {self.access_token}":
            return _error(401, 190, "Invalid OAuth access token - Cannot parse access token")
        if not _VERSION.match(request.match_info["version"]):
            return _error(400, 100, "Unknown path components")
        if request.match_info["phone_id"] != self.phone_number_id:
            return _error(400, 100, f"Unsupported {verb} request. Object with ID "
                          f"'{request.match_info['phone_id']}' does not exist, cannot be loaded "
                          "due to missing permissions, or does not support this operation.",
                          subcode=33)
        return None

    # ---- webhooks ------------------------------------------------------------------------------

    def message(self, wa_id: str, text: str | None = None, *, kind: str = "text",
                context: str | None = None, **content: Any) -> dict[str, Any]:
        """A user's message (``IncomingMessage``), delivered now: it opens ``wa_id``'s window.
        Media kinds take their object in ``content`` (``image={"id", "mime_type"...}``)."""
        mid = "wamid." + base64.b64encode(
            f"HBgL{wa_id}FQIAEhgU{uuid.uuid4().hex.upper()}".encode()).decode()
        message: dict[str, Any] = {"from": wa_id, "id": mid, "timestamp": str(int(time.time())),
                                   "type": kind, **content}
        if kind == "text":
            message["text"] = {"body": text or ""}
        if context is not None:
            message["context"] = {"from": DISPLAY_NUMBER, "id": context}
        self._inbound[mid] = _Inbound(wa_id, message)
        self.last_inbound[wa_id] = time.time()
        return message

    def media(self, wa_id: str, kind: str, data: bytes | None = None, **fields: Any
              ) -> dict[str, Any]:
        """An image/audio/video/document/sticker message with a media id, as Meta sends it;
        with ``data`` the fake holds the file under that id (else the id is unknown)."""
        media = {"id": str(1003383421387256 + next(self._ids)), "mime_type": {
            "image": "image/jpeg", "audio": "audio/ogg; codecs=opus", "video": "video/mp4",
            "document": "application/pdf", "sticker": "image/webp"}[kind],
            "sha256": base64.b64encode(uuid.uuid4().bytes * 2).decode(), **fields}
        self._media_ids.add(media["id"])
        if data is not None:
            self.files[media["id"]] = (data, media["mime_type"].split(";")[0])
        return self.message(wa_id, kind=kind, **{kind: media})

    def status(self, message_id: str, status: str, *, error: tuple[int, str, str] | None = None
               ) -> dict[str, Any]:
        """A ``Statuses`` object for a message the fake sent (``error``: code, title, details)."""
        sent = next(m for m in self.sent if m.id == message_id)
        item: dict[str, Any] = {"id": message_id, "status": status,
                                "timestamp": str(int(time.time())), "recipient_id": sent.to}
        if status != "failed":
            item["pricing"] = {"billable": True, "pricing_model": "PMP", "category": "service"}
        if error is not None:
            code, title, details = error
            item["errors"] = [{"code": code, "title": title, "message": title,
                               "error_data": {"details": details}}]
        return item

    def redelivery(self, message_id: str) -> dict[str, Any]:
        """The same message again, as Meta redelivers one that got no 200."""
        return self._inbound[message_id].message

    def payload(self, *, messages: Sequence[Any] = (), statuses: Sequence[Any] = ()
                ) -> dict[str, Any]:
        """A ``WebhookPayload`` with one ``messages`` change for our phone number."""
        value: dict[str, Any] = {"messaging_product": "whatsapp", "metadata": {
            "display_phone_number": DISPLAY_NUMBER.lstrip("+").replace(" ", "").replace(
                "-", ""), "phone_number_id": self.phone_number_id}}
        if messages:
            senders = {m["from"] for m in messages if isinstance(m, dict) and "from" in m}
            value["contacts"] = [{"profile": {"name": f"User {w[-4:]}"}, "wa_id": w}
                                 for w in sorted(senders)]
            value["messages"] = list(messages)
        if statuses:
            value["statuses"] = list(statuses)
        return {"object": "whatsapp_business_account", "entry": [
            {"id": WABA_ID, "changes": [{"value": value, "field": "messages"}]}]}

    def signed(self, payload: Any, *, secret: str | None = None
               ) -> tuple[bytes, dict[str, str]]:
        """The raw body and the headers Meta sends with it."""
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        return body, {"Content-Type": "application/json",
                      "X-Hub-Signature-256": self.signature(body, secret),
                      "User-Agent": "facebookexternalua"}

    def signature(self, body: bytes, secret: str | None = None) -> str:
        key = (secret if secret is not None else self.app_secret).encode()
        return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()

    async def verify_subscription(self, url: str, *, token: str | None = None,
                                  challenge: str = "1158201444", mode: str = "subscribe"
                                  ) -> tuple[int, str]:
        """Meta's GET when the callback URL is saved; ``token`` None sends none at all."""
        params = {"hub.mode": mode, "hub.challenge": challenge}
        if token is not None:
            params["hub.verify_token"] = token
        async with aiohttp.ClientSession() as session, session.get(url, params=params) as resp:
            return resp.status, await resp.text()


def _error(status: int, code: int, title: str, details: str = "", subcode: int | None = None
           ) -> web.Response:
    error: dict[str, Any] = {"message": f"(#{code}) {title}" if code != 190 else title,
                             "type": "OAuthException", "code": code}
    if details:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    if subcode is not None:
        error["error_subcode"] = subcode
    error["fbtrace_id"] = base64.urlsafe_b64encode(uuid.uuid4().bytes[:12]).decode()
    return json_response({"error": error}, status=status)
