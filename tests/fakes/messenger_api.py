"""A fake Messenger Platform (Graph API Send API) and Meta's signed Page webhooks, on 127.0.0.1.

Written from Meta's published reference (developers.facebook.com/docs/messenger-platform:
Send API reference, sender actions, webhook events ``messages`` / ``message_echoes`` /
``messaging_postbacks`` / ``message_deliveries`` / ``message_reads``, the Send API and
common error codes, Graph API rate limiting and securing requests) and the official
samples in github.com/fbsamples/messenger-platform-samples (``node/app.js``,
``postman/messenger-platform-api.postman_collection.json``), not from what our connector
sends:

* The access token goes in ``Authorization: Bearer|OAuth <token>`` (the Postman
  collection's auth) or an ``access_token`` query or form parameter; a wrong one is
  HTTP 400 ``{"error": {"message": "Invalid OAuth access token - Cannot parse access
  token", "type": "OAuthException", "code": 190, "fbtrace_id"}}`` with a
  ``WWW-Authenticate: OAuth`` header. Every error has that shape (``error_subcode``
  where Meta gives one), titles as ``(#<code>) <title>``.
* ``appsecret_proof`` (hex HMAC-SHA256 of the token keyed with the app secret), when
  sent, must match (else code 100 "Invalid appsecret_proof provided in the API
  argument"); with ``require_proof`` ("Require app secret" on) it must be sent.
* ``GET /{version}/me?fields=...`` -> the Page (``id``, ``name``, ``category``); with the
  user token, asking for a Page-only field is 400 code 100 "Tried accessing nonexisting
  field (category) on node type (User)".
* ``POST /{version}/me/messages`` (or ``/{page-id}/messages``), JSON or form fields with
  JSON values:
  - ``{recipient: {id: PSID}, messaging_type, message: {text}, tag?}``: ``messaging_type``
    is RESPONSE, UPDATE or MESSAGE_TAG (with ``tag``); text of 1-2,000 characters (counted
    here in UTF-16 code units, the strict reading); the PSID must be someone who messaged
    the Page (else 100/2018001 "No matching user found"); RESPONSE and UPDATE only within
    ``window`` (24 hours) of their last message, else 10/2018278 "This message is sent
    outside of allowed window"; HUMAN_AGENT within 7 days; a person who blocked the Page
    is 551/1545041 "This person isn't available right now". Answers ``{"recipient_id",
    "message_id": "m_..."}``.
  - ``{recipient, sender_action: typing_on|typing_off|mark_seen}`` (no message) answers
    ``{"recipient_id"}``, under the same window rule.
* Throttling is HTTP 400 code 613 "Calls to this API have exceeded the rate limit" with an
  ``X-Business-Use-Case-Usage`` header whose ``estimated_time_to_regain_access`` is in
  minutes (0 when the limit is per second); no Retry-After. 500 is code 2 "An unexpected
  error has occurred. Please retry your request later.", 503 code 1200 "Temporary send
  message failure".
* Attachments: ``payload.url`` is a signed CDN link, ``https://scontent.xx.fbcdn.net/v/
  t1.15752-9/<id>_n.png?_nc_cat=1&oh=<signature>&oe=<expiry, hex Unix seconds>``, that
  wants no token; the fake serves it (:meth:`MessengerFake.media` with ``data``) with the
  file's Content-Type, 403 "URL signature expired" after ``oe``, 403 "Bad URL hash" when
  ``oh`` does not match, 404 for a file the CDN never had.
* Webhooks: :meth:`MessengerFake.payload` builds the ``object: "page"`` body, one entry per
  event as Meta batches them; :meth:`signed` serialises it as Meta does (non-ASCII as
  ``\\uXXXX``, ``/`` as ``\\/``) and adds ``X-Hub-Signature`` (sha1) and
  ``X-Hub-Signature-256`` (``sha256=`` + hex HMAC of the raw body with the app secret);
  :meth:`verify_subscription` makes Meta's GET verification request. A user's message
  opens their 24-hour window, as a delivered one does.

Scripted faults come from :class:`FakePlatform` under the method names ``send`` (text
messages), ``action`` (sender actions) and ``me``.
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
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from pyclaw_app.channels import utf16_len
from tests.fakes.platform import FakePlatform
from tests.fakes.server import json_response

__all__ = ["PAGE_ID", "PAGE_NAME", "MessengerFake", "SentMessenger"]

PAGE_ID = "106378625516323"
PAGE_NAME = "Pyclaw Test Page"
APP_ID = 1517776481860111
MAX_TEXT = 2000
WINDOW = 24 * 3600.0
HUMAN_AGENT_WINDOW = 7 * 24 * 3600.0
TAGS = frozenset({"ACCOUNT_UPDATE", "CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE",
                  "HUMAN_AGENT"})
ACTIONS = frozenset({"typing_on", "typing_off", "mark_seen"})
_VERSION = re.compile(r"^v\d+\.\d+$")
_ERRORS: dict[int, tuple[int, str, int | None]] = {
    # HTTP status -> (code, title, subcode) for scripted failures
    400: (100, "Invalid parameter", None),
    401: (190, "Invalid OAuth access token - Cannot parse access token", None),
    403: (200, "Cannot message users who are not admins, developers or testers of the app "
          "until pages_messaging permission is reviewed and the app is live.", 2018028),
    404: (100, "Unsupported post request.", 33),
    429: (613, "Calls to this API have exceeded the rate limit.", None),
    500: (2, "An unexpected error has occurred. Please retry your request later.", None),
    503: (1200, "Temporary send message failure. Please try again later", None),
}


@dataclass(frozen=True)
class SentMessenger:
    """One text message the fake accepted."""

    to: str
    text: str
    id: str
    messaging_type: str
    tag: str
    monotonic: float


class MessengerFake(FakePlatform):
    send_method = "send"

    def __init__(self, *, page_access_token: str = "EAAfake-messenger-page-token",
                 app_secret: str = "fake-messenger-app-secret",
                 verify_token: str = "fake-messenger-verify-token") -> None:
        super().__init__()
        self.page_access_token = page_access_token
        self.user_access_token = "EAAfake-messenger-user-token"
        self.app_secret = app_secret
        self.verify_token = verify_token
        self.page_id = PAGE_ID
        self.window = WINDOW
        self.require_proof = False
        self.sent: list[SentMessenger] = []
        self.actions: list[tuple[str, str]] = []  # (psid, sender_action)
        self.token_places: list[str] = []  # where each call carried its token
        self.last_inbound: dict[str, float] = {}  # psid -> time.time() of its last message
        self.blocked: set[str] = set()  # people who blocked the Page
        self._inbound: dict[str, dict[str, Any]] = {}  # mid -> its messaging event
        self._ids = itertools.count(1)
        self._regain_minutes = 0
        self.files: dict[str, tuple[bytes, str]] = {}  # CDN path -> (bytes, content type)
        self.downloads: list[tuple[str, dict[str, str]]] = []  # (CDN path, headers)

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/v/{bucket}/{name}", self._cdn)
        app.router.add_get("/{version}/{node}", self._node)
        app.router.add_post("/{version}/{node}/messages", self._messages)

    # ---- controls ----------------------------------------------------------------------------

    def close_window(self, psid: str, *, hours: float = 25) -> None:
        """Make ``psid``'s last message ``hours`` old."""
        self.last_inbound[psid] = time.time() - hours * 3600

    def throttle_next_send(self, minutes: int) -> None:
        """The next send is throttled (613) and the usage header says ``minutes`` to wait."""
        self._regain_minutes = minutes
        self.fail_next("send", 429)

    def proof(self, token: str | None = None) -> str:
        key = self.app_secret.encode()
        return hmac.new(key, (token or self.page_access_token).encode(),
                        hashlib.sha256).hexdigest()

    # ---- API ---------------------------------------------------------------------------------

    def error_response(self, method: str, status: int, retry_after: float | None
                       ) -> web.Response:
        """Meta's error for a scripted ``status``: a throttle is HTTP 400 code 613 with the
        usage header (Meta sends no Retry-After)."""
        code, title, subcode = _ERRORS.get(status, (1, "An unknown error occurred", None))
        if status != 429:
            return _error(status, code, title, subcode)
        minutes, self._regain_minutes = self._regain_minutes, 0
        usage = {self.page_id: [{"type": "messenger", "call_count": 100, "total_cputime": 12,
                                 "total_time": 15,
                                 "estimated_time_to_regain_access": minutes}]}
        return _error(400, code, title, subcode,
                      headers={"X-Business-Use-Case-Usage": json.dumps(usage)})

    async def _node(self, request: web.Request) -> web.StreamResponse:
        scripted = await self.before("me")
        if scripted is not None:
            return scripted
        token, refused = self._check(request, {})
        if refused is not None:
            return refused
        fields = request.query.get("fields", "id,name").split(",")
        if token == self.user_access_token:
            user = {"id": "10158123456789012", "name": "Page Admin"}
            unknown = [f for f in fields if f not in user]
            if unknown:
                return _error(400, 100, f"Tried accessing nonexisting field ({unknown[0]}) "
                              "on node type (User)")
            self.after("me", request)
            return json_response({f: user[f] for f in fields})
        page = {"id": self.page_id, "name": PAGE_NAME, "category": "Software"}
        self.after("me", request)
        return json_response({f: page[f] for f in fields if f in page})

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        form: dict[str, Any] = {}
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                body = None
        else:
            form = dict(await request.post())
            body = {k: _json_value(v) for k, v in form.items() if k != "access_token"}
        method = "action" if isinstance(body, dict) and "sender_action" in body else "send"
        scripted = await self.before(method)
        if scripted is not None:
            return scripted
        _, refused = self._check(request, form)
        if refused is not None:
            return refused
        if not isinstance(body, dict):
            return _error(400, 100, "Invalid parameter")
        recipient = body.get("recipient")
        psid = recipient.get("id") if isinstance(recipient, dict) else None
        if not isinstance(psid, str) or psid not in self.last_inbound:
            return _error(400, 100, "No matching user found", 2018001)
        if psid in self.blocked:
            return _error(400, 551, "This person isn't available right now.", 1545041)
        if method == "action":
            return self._action(body, psid, request)
        return self._send(body, psid, request)

    def _action(self, body: dict[str, Any], psid: str, request: web.Request
                ) -> web.StreamResponse:
        action = body.get("sender_action")
        if "message" in body or action not in ACTIONS:
            return _error(400, 100, "Invalid parameter", 2018015)
        if self._closed(psid, self.window):
            return _outside_window()
        self.actions.append((psid, str(action)))
        self.after("action", request)
        return json_response({"recipient_id": psid})

    def _send(self, body: dict[str, Any], psid: str, request: web.Request
              ) -> web.StreamResponse:
        kind, tag = body.get("messaging_type"), body.get("tag")
        if kind not in ("RESPONSE", "UPDATE", "MESSAGE_TAG"):
            return _error(400, 100, "Param messaging_type must be one of {RESPONSE, UPDATE, "
                          "MESSAGE_TAG}")
        if kind == "MESSAGE_TAG" and tag not in TAGS:
            return _error(400, 100, "Param tag must be a valid message tag")
        message = body.get("message")
        text = message.get("text") if isinstance(message, dict) else None
        if not isinstance(text, str) or not 1 <= utf16_len(text) <= MAX_TEXT:
            return _error(400, 100, "Length of param message[text] must be less than or "
                          f"equal to {MAX_TEXT}")
        if kind != "MESSAGE_TAG" and self._closed(psid, self.window):
            return _outside_window()
        if tag == "HUMAN_AGENT" and self._closed(psid, HUMAN_AGENT_WINDOW):
            return _outside_window()
        mid = "m_" + base64.urlsafe_b64encode(
            f"{self.page_id}:{psid}:{next(self._ids):012d}".encode()).decode().rstrip("=")
        self.sent.append(SentMessenger(psid, text, mid, kind, str(tag or ""),
                                       time.monotonic()))
        self.after("send", request)  # a scripted lost answer: delivered, then the line is cut
        return json_response({"recipient_id": psid, "message_id": mid})

    def _closed(self, psid: str, window: float) -> bool:
        return time.time() - self.last_inbound.get(psid, float("-inf")) > window

    def _check(self, request: web.Request, form: dict[str, Any]
               ) -> tuple[str | None, web.Response | None]:
        """The call's token (header, query or form) and its proof; an error when wrong."""
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if header and scheme in ("Bearer", "OAuth"):
            token, place = value, "header"
        elif "access_token" in request.query:
            token, place = request.query["access_token"], "query"
        elif "access_token" in form:
            token, place = str(form["access_token"]), "form"
        else:
            return None, _error(400, 2500, "An active access token must be used to query "
                                "information about the current user.")
        self.token_places.append(place)
        if token not in (self.page_access_token, self.user_access_token):
            return None, _error(400, 190, "Invalid OAuth access token - Cannot parse access "
                                "token", headers={"WWW-Authenticate": 'OAuth "Facebook '
                                                  'Platform" "invalid_token" "Invalid OAuth '
                                                  'access token"'})
        if not _VERSION.match(request.match_info["version"]):
            return None, _error(400, 2635, "The version in the path is not a valid Graph API "
                                "version")
        node = request.match_info["node"]
        if node not in ("me", self.page_id):
            return None, _error(400, 100, f"Unsupported request. Object with ID '{node}' does "
                                "not exist, cannot be loaded due to missing permissions, or "
                                "does not support this operation.", 33)
        proof = request.query.get("appsecret_proof") or form.get("appsecret_proof")
        if proof is None and self.require_proof:
            return None, _error(400, 100, "API calls from the server require an "
                                "appsecret_proof argument")
        if proof is not None and not hmac.compare_digest(str(proof), self.proof(token)):
            return None, _error(400, 100, "Invalid appsecret_proof provided in the API "
                                "argument")
        return token, None

    # ---- webhooks ------------------------------------------------------------------------------

    def message(self, psid: str, text: str | None = None, *,
                attachments: list[dict[str, Any]] | None = None,
                quick_reply: str | None = None, reply_to: str | None = None) -> dict[str, Any]:
        """A person's message (a ``messaging`` event), delivered now: it opens their window."""
        mid = "m_" + base64.urlsafe_b64encode(uuid.uuid4().bytes * 2).decode().rstrip("=")
        message: dict[str, Any] = {"mid": mid}
        if text is not None:
            message["text"] = text
        if attachments:
            message["attachments"] = attachments
        if quick_reply is not None:
            message["quick_reply"] = {"payload": quick_reply}
        if reply_to is not None:
            message["reply_to"] = {"mid": reply_to}
        event = self._event(psid, message=message)
        self._inbound[mid] = event
        return event

    def media(self, psid: str, kind: str, *, sticker_id: int | None = None,
              data: bytes | None = None, mime: str = "image/png", ttl: float = 3 * 86400.0
              ) -> dict[str, Any]:
        """An image/audio/video/file message with its CDN URL, as Meta sends it; the CDN
        serves ``data`` there (None: it has no such file) until ``ttl`` seconds from now."""
        asset = next(self._ids) + 1046567782564531
        path = f"/v/t1.15752-9/{asset}_{uuid.uuid4().int % 10**15}_n." + \
            mime.rsplit("/", 1)[-1]
        if data is not None:
            self.files[path] = (data, mime)
        expiry = f"{int(time.time() + ttl):X}"
        payload: dict[str, Any] = {"url": f"{self.url}{path}?_nc_cat=1&_nc_sid=8cd0a2&"
                                   f"oh=00_{self._cdn_hash(path, expiry)}&oe={expiry}"}
        if sticker_id is not None:
            payload["sticker_id"] = sticker_id
        return self.message(psid, attachments=[{"type": kind, "payload": payload}])

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        path, expiry = request.path, request.query.get("oe", "")
        self.downloads.append((path, dict(request.headers)))
        if request.query.get("oh") != f"00_{self._cdn_hash(path, expiry)}":
            return web.Response(status=403, text="Bad URL hash")
        if int(expiry, 16) < time.time():
            return web.Response(status=403, text="URL signature expired")
        if path not in self.files:
            return web.Response(status=404, text="Not Found")
        data, mime = self.files[path]
        return web.Response(body=data, content_type=mime)

    @staticmethod
    def _cdn_hash(path: str, expiry: str) -> str:
        return hmac.new(b"fake-fbcdn-key", f"{path}{expiry}".encode(),
                        hashlib.sha256).hexdigest()[:32]

    def postback(self, psid: str, title: str, payload: str) -> dict[str, Any]:
        mid = "m_" + base64.urlsafe_b64encode(uuid.uuid4().bytes * 2).decode().rstrip("=")
        event = self._event(psid, postback={"title": title, "payload": payload, "mid": mid})
        self._inbound[mid] = event
        return event

    def echo(self, psid: str, text: str) -> dict[str, Any]:
        """The ``message_echoes`` copy of a message the Page sent to ``psid``."""
        mid = "m_" + base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        return {"sender": {"id": self.page_id}, "recipient": {"id": psid},
                "timestamp": _now_ms(), "message": {"is_echo": True, "app_id": APP_ID,
                                                    "mid": mid, "text": text}}

    def delivery(self, psid: str, mids: list[str]) -> dict[str, Any]:
        return {"sender": {"id": psid}, "recipient": {"id": self.page_id},
                "timestamp": _now_ms(), "delivery": {"mids": mids, "watermark": _now_ms()}}

    def read(self, psid: str) -> dict[str, Any]:
        return {"sender": {"id": psid}, "recipient": {"id": self.page_id},
                "timestamp": _now_ms(), "read": {"watermark": _now_ms()}}

    def redelivery(self, mid: str) -> dict[str, Any]:
        """The same event again, as Meta redelivers one that got no 200."""
        return self._inbound[mid]

    def _event(self, psid: str, **content: Any) -> dict[str, Any]:
        self.last_inbound[psid] = time.time()
        return {"sender": {"id": psid}, "recipient": {"id": self.page_id},
                "timestamp": _now_ms(), **content}

    def payload(self, *events: Any, page_id: str | None = None) -> dict[str, Any]:
        """The webhook body: one entry per event, as Meta batches them."""
        return {"object": "page", "entry": [
            {"id": page_id or self.page_id, "time": _now_ms(), "messaging": [event]}
            for event in events]}

    def signed(self, payload: Any, *, secret: str | None = None
               ) -> tuple[bytes, dict[str, str]]:
        """The raw body (Meta's escaping) and the headers Meta sends with it."""
        body = json.dumps(payload, separators=(",", ":")).replace("/", "\\/").encode()
        key = (secret if secret is not None else self.app_secret).encode()
        return body, {"Content-Type": "application/json",
                      "X-Hub-Signature": "sha1=" + hmac.new(key, body, hashlib.sha1
                                                            ).hexdigest(),
                      "X-Hub-Signature-256": "sha256=" + hmac.new(key, body, hashlib.sha256
                                                                  ).hexdigest(),
                      "User-Agent": "facebookexternalua"}

    async def verify_subscription(self, url: str, *, token: str | None = None,
                                  challenge: str = "1158201444", mode: str = "subscribe"
                                  ) -> tuple[int, str]:
        """Meta's GET when the callback URL is saved; ``token`` None sends none at all."""
        params = {"hub.mode": mode, "hub.challenge": challenge}
        if token is not None:
            params["hub.verify_token"] = token
        async with aiohttp.ClientSession() as session, session.get(url, params=params) as resp:
            return resp.status, await resp.text()


def _outside_window() -> web.Response:
    return _error(400, 10, "This message is sent outside of allowed window. Learn more about "
                  "the new policy here: https://developers.facebook.com/docs/messenger-"
                  "platform/policy-overview", 2018278)


def _json_value(value: Any) -> Any:
    """A form field as the Graph API reads it: JSON when it parses, else the string."""
    try:
        return json.loads(str(value))
    except ValueError:
        return str(value)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _error(status: int, code: int, title: str, subcode: int | None = None, *,
           headers: dict[str, str] | None = None) -> web.Response:
    error: dict[str, Any] = {"message": title if code == 190 else f"(#{code}) {title}",
                             "type": "OAuthException", "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    error["fbtrace_id"] = base64.urlsafe_b64encode(uuid.uuid4().bytes[:8]).decode().rstrip("=")
    return json_response({"error": error}, status=status, headers=headers)
