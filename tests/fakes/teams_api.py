"""A fake Bot Framework for Teams on 127.0.0.1: its login service, its OpenID metadata and
keys, the Bot Connector REST API, and activities posted to the bot signed as the Bot
Framework signs them.

Written from Microsoft's published reference, not from what our connector sends:

* "Authentication with the Bot Connector API" (learn.microsoft.com, MicrosoftDocs/bot-docs
  ``bot-framework-rest-connector-authentication.md``):
  - ``POST /{tenant}/oauth2/v2.0/token`` (form: ``grant_type=client_credentials``,
    ``client_id``, ``client_secret``, ``scope=https://api.botframework.com/.default``)
    answers ``{"token_type": "Bearer", "expires_in", "ext_expires_in", "access_token"}``;
    refusals are Entra ID's ``{"error", "error_description": "AADSTS...", "error_codes"}``
    (401 invalid_client for a wrong secret, 400 unauthorized_client for an unknown app,
    400 invalid_scope);
  - ``GET /v1/.well-known/openidconfiguration`` -> ``issuer``, ``jwks_uri``,
    ``id_token_signing_alg_values_supported: ["RS256"]``...; ``GET /v1/.well-known/keys`` ->
    a JWK set whose keys carry ``endorsements`` (channel ids, ``msteams``);
  - every activity POSTed to the bot carries ``Authorization: Bearer <JWT>``: RS256 with a
    listed key (``kid``, ``x5t``), ``iss`` https://api.botframework.com, ``aud`` the App ID,
    ``serviceurl`` the activity's serviceUrl, ``nbf``/``exp`` an hour apart.
* The Bot Connector API v3 (botbuilder-js ``libraries/swagger/ConnectorAPI.json``) at the
  service URL ``{url}/teams/``: ``POST v3/conversations/{id}/activities`` (SendToConversation),
  ``POST .../activities/{activityId}`` (ReplyToActivity), ``PUT .../activities/{activityId}``
  (UpdateActivity), each answering a ``ResourceResponse`` ``{"id"}``; ``typing`` activities
  go to SendToConversation and are shown, not stored. Every call needs a token the login
  service issued and that has not expired (else 401).
* Attachments (ConnectorAPI.json ``Attachments_GetAttachmentInfo`` / ``GetAttachment``): a
  picture pasted in a chat arrives as ``{contentType: "image/*", contentUrl: {serviceUrl}
  v3/attachments/{id}/views/original}``; ``GET v3/attachments/{id}`` answers
  ``AttachmentInfo`` ``{name, type, views: [{viewId, size}]}`` and ``GET .../views/{viewId}``
  the bytes with their Content-Type, both only with a token the login service issued (401);
  an unknown id is 404 ``{"error": {"code": "NotFound"}}``. A file sent to the bot
  ("Send and receive files using bots") is ``{contentType: application/vnd.microsoft.teams
  .file.download.info, name, contentUrl, content: {downloadUrl, uniqueId, fileType}}``
  whose ``downloadUrl`` is a pre-signed SharePoint link (``tempauth``) wanting no token;
  once the link expired SharePoint answers 401.
* Teams' "Status codes from bot conversational APIs": errors are ``{"error": {"code",
  "message"}}``; 403 ConversationBlockedByUser / BotNotInConversationRoster, 404
  ConversationNotFound / ActivityNotFoundInConversation, 413 MessageSizeTooBig (an activity
  over 40 KB as UTF-16), 429 Throttled with ``Retry-After``, 412 PreconditionFailed, 502/503.

Message ids are epoch milliseconds, as Teams' are, and unique only within a conversation.
Scripted faults use the method names ``send`` (post and reply alike), ``update``,
``typing``, ``token``, ``metadata`` and ``keys``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes.platform import FakePlatform
from tests.fakes.server import json_response

__all__ = ["APP_ID", "BOT_NAME", "ISSUER", "Posted", "TeamsFake"]

ISSUER = "https://api.botframework.com"
SCOPE = "https://api.botframework.com/.default"
APP_ID = "c9e8c047-2a74-40a2-b28a-b162d5f5327c"
BOT_NAME = "Pyclaw Bot"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
MAX_ACTIVITY_BYTES = 40 * 1024
_ERRORS: dict[int, tuple[str, str]] = {  # status -> (code, message) for scripted failures
    400: ("BadArgument", "Activity text is malformed"),
    401: ("Unauthorized", "Authorization has been denied for this request."),
    403: ("BotNotInConversationRoster", "The bot isn't part of the conversation roster."),
    404: ("ConversationNotFound", "Conversation not found."),
    412: ("PreconditionFailed", "Precondition failed, please try again."),
    413: ("MessageSizeTooBig", "Message size too large."),
    429: ("Throttled", "Too many requests."),
    500: ("ServiceError", "Internal server error."),
    502: ("ServiceError", "Service dependency issue."),
    503: ("ServiceUnavailable", "Service is unavailable."),
}


@dataclass
class Posted:
    """A message the bot posted; ``text`` is what it said first, ``history`` every version."""

    chat: str  # the conversation id before ";messageid="
    thread: str | None
    id: str
    text: str
    reply_to: str | None  # replyToId: the activity answered
    monotonic: float
    history: list[str] = field(default_factory=list)

    @property
    def current(self) -> str:
        return self.history[-1]


@dataclass
class _Signer:
    kid: str
    key: rsa.RSAPrivateKey

    def jwk(self, endorsements: list[str]) -> dict[str, Any]:
        numbers = self.key.public_key().public_numbers()
        return {"kty": "RSA", "use": "sig", "kid": self.kid, "x5t": self.kid,
                "n": _b64(numbers.n), "e": _b64(numbers.e), "endorsements": endorsements}


class TeamsFake(FakePlatform):
    send_method = "send"

    def __init__(self, *, app_id: str = APP_ID, app_password: str = "fake-teams-client-secret",
                 tenant: str = "botframework.com") -> None:
        super().__init__()
        self.app_id = app_id
        self.app_password = app_password
        self.tenant = tenant
        self.token_lifetime = 3599
        self.issuer = ISSUER
        """What the metadata names as issuer (https://api.botframework.us in US Government)."""
        self.endorsements = ["msteams", "skype", "webchat"]
        self.signer = _Signer(_kid(), rsa.generate_private_key(public_exponent=65537,
                                                               key_size=2048))
        self.forger = _Signer(self.signer.kid, rsa.generate_private_key(public_exponent=65537,
                                                                        key_size=2048))
        """A key nobody lists, claiming the real key's id: what an attacker can sign with."""
        self.tokens: dict[str, float] = {}  # access token -> time.time() it expires
        self.token_requests = 0
        self.metadata_requests = 0
        self.posted: list[Posted] = []
        self.updates: list[tuple[str, str, str]] = []  # (chat, id, new text)
        self.typing: list[str] = []  # conversation ids
        self.blocked: set[str] = set()  # chats whose user blocked the bot
        self.removed: set[str] = set()  # chats the app was removed from
        self._conversations: dict[str, str] = {}  # chat -> conversationType
        self._delivered: dict[str, dict[str, Any]] = {}  # platform id -> activity
        self._clock_ms = int(time.time() * 1000)
        self.attachments: dict[str, tuple[bytes, str]] = {}  # attachment id -> (bytes, type)
        self.shared: dict[str, tuple[bytes, str, bool]] = {}  # tempauth -> (bytes, type, valid)
        self.downloads: list[tuple[str, str | None]] = []  # (path, Authorization)

    @property
    def service_url(self) -> str:
        return f"{self.url}/teams/"

    @property
    def metadata_url(self) -> str:
        return f"{self.url}/v1/.well-known/openidconfiguration"

    @property
    def token_url(self) -> str:
        return f"{self.url}/{{tenant}}/oauth2/v2.0/token"

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/.well-known/openidconfiguration", self._metadata)
        app.router.add_get("/v1/.well-known/keys", self._keys)
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token)
        base = "/teams/v3/conversations/{conversation}/activities"
        app.router.add_post(base, self._send)
        app.router.add_post(base + "/{activity}", self._send)
        app.router.add_put(base + "/{activity}", self._update)
        app.router.add_get("/teams/v3/attachments/{id}", self._attachment_info)
        app.router.add_get("/teams/v3/attachments/{id}/views/{view}", self._attachment_view)
        app.router.add_get("/personal/user/_layouts/15/download.aspx", self._sharepoint)

    # ---- controls ----------------------------------------------------------------------------

    def text_of(self, chat: str, activity_id: str) -> str:
        return next(p.current for p in self.posted if p.chat == chat and p.id == activity_id)

    def rotate_keys(self) -> None:
        """Sign with a new key from now on (published in the key set at once)."""
        self.signer = _Signer(_kid(), rsa.generate_private_key(public_exponent=65537,
                                                               key_size=2048))

    def expire_tokens(self) -> None:
        for token in self.tokens:
            self.tokens[token] = 0.0

    # ---- the login service -------------------------------------------------------------------

    async def _metadata(self, request: web.Request) -> web.StreamResponse:
        scripted = await self.before("metadata")
        if scripted is not None:
            return scripted
        self.metadata_requests += 1
        return json_response({
            "issuer": self.issuer, "authorization_endpoint": "https://invalid.botframework.com",
            "jwks_uri": f"{self.url}/v1/.well-known/keys",
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"]})

    async def _keys(self, request: web.Request) -> web.StreamResponse:
        scripted = await self.before("keys")
        if scripted is not None:
            return scripted
        return json_response({"keys": [self.signer.jwk(self.endorsements)]})

    async def _token(self, request: web.Request) -> web.StreamResponse:
        scripted = await self.before("token")
        if scripted is not None:
            return scripted
        form = await request.post()
        if request.match_info["tenant"] != self.tenant:
            return _aad(400, "invalid_request", 90002, f"Tenant "
                        f"'{request.match_info['tenant']}' not found.")
        if form.get("grant_type") != "client_credentials":
            return _aad(400, "unsupported_grant_type", 70003, "The app requested an "
                        "unsupported grant type.")
        if form.get("client_id") != self.app_id:
            return _aad(400, "unauthorized_client", 700016, f"Application with identifier "
                        f"'{form.get('client_id')}' was not found in the directory.")
        if form.get("client_secret") != self.app_password:
            return _aad(401, "invalid_client", 7000215, "Invalid client secret provided. "
                        "Ensure the secret being sent in the request is the client secret "
                        "value, not the client secret ID.")
        if form.get("scope") != SCOPE:
            return _aad(400, "invalid_scope", 1002012, f"The provided value for scope "
                        f"{form.get('scope')} is not valid.")
        token = "eyJ0eXAiOiJKV1Qi." + secrets.token_urlsafe(32)
        self.tokens[token] = time.time() + self.token_lifetime
        self.token_requests += 1
        self.after("token", request)
        return json_response({"token_type": "Bearer", "expires_in": self.token_lifetime,
                              "ext_expires_in": self.token_lifetime, "access_token": token})

    # ---- the Bot Connector -------------------------------------------------------------------

    def error_response(self, method: str, status: int, retry_after: float | None
                       ) -> web.Response:
        if method == "token":
            return _aad(status, "temporarily_unavailable", 50001, "scripted failure")
        code, message = _ERRORS.get(status, ("ServiceError", "scripted failure"))
        headers = {"Retry-After": f"{retry_after:g}"} if status == 429 and retry_after else {}
        return _error(status, code, message, headers)

    async def _send(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        method = "typing" if isinstance(body, dict) and body.get("type") == "typing" else "send"
        scripted = await self.before(method)
        if scripted is not None:
            return scripted
        conversation = request.match_info["conversation"]
        chat, _, thread = conversation.partition(";messageid=")
        refused = self._check(request, chat) or self._check_activity(body)
        if refused is not None:
            return refused
        if method == "typing":
            self.typing.append(conversation)
            self.after("typing", request)
            return json_response({})
        mid = self.next_id()
        self.posted.append(Posted(chat, thread or None, mid, body["text"],
                                  request.match_info.get("activity") or body.get("replyToId"),
                                  time.monotonic(), [body["text"]]))
        self.after("send", request)
        return json_response({"id": mid}, status=201)

    async def _update(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        scripted = await self.before("update")
        if scripted is not None:
            return scripted
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        chat = request.match_info["conversation"].partition(";messageid=")[0]
        refused = self._check(request, chat) or self._check_activity(body)
        if refused is not None:
            return refused
        activity = request.match_info["activity"]
        post = next((p for p in self.posted if p.chat == chat and p.id == activity), None)
        if post is None:
            return _error(404, "ActivityNotFoundInConversation", "Conversation not found.")
        post.history.append(body["text"])
        self.updates.append((chat, activity, body["text"]))
        self.after("update", request)
        return json_response({"id": activity})

    def _check(self, request: web.Request, chat: str) -> web.Response | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or self.tokens.get(token, 0.0) < time.time():
            return _error(401, "Unauthorized", "Authorization has been denied for this "
                          "request.")
        if chat not in self._conversations:
            return _error(404, "ConversationNotFound", "Conversation not found.")
        if chat in self.removed:
            return _error(403, "BotNotInConversationRoster", "The bot isn't part of the "
                          "conversation roster.")
        if chat in self.blocked:
            return _error(403, "ConversationBlockedByUser", "User blocked the conversation "
                          "with the bot.")
        return None

    def _attachment(self, request: web.Request) -> tuple[bytes, str] | web.Response:
        self.downloads.append((request.path, request.headers.get("Authorization")))
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or self.tokens.get(token, 0.0) < time.time():
            return _error(401, "Unauthorized", "Authorization has been denied for this "
                          "request.")
        item = self.attachments.get(request.match_info["id"])
        if item is None:
            return _error(404, "NotFound", "The attachment was not found.")
        return item

    async def _attachment_info(self, request: web.Request) -> web.StreamResponse:
        item = self._attachment(request)
        if isinstance(item, web.Response):
            return item
        return json_response({"name": "image", "type": item[1], "views": [
            {"viewId": "original", "size": len(item[0])}]})

    async def _attachment_view(self, request: web.Request) -> web.StreamResponse:
        item = self._attachment(request)
        if isinstance(item, web.Response):
            return item
        if request.match_info["view"] != "original":
            return _error(404, "NotFound", "The view was not found.")
        return web.Response(body=item[0], content_type=item[1])

    async def _sharepoint(self, request: web.Request) -> web.StreamResponse:
        self.downloads.append((request.path, request.headers.get("Authorization")))
        item = self.shared.get(request.query.get("tempauth", ""))
        if item is None or not item[2]:
            return json_response({"error": {"code": "-2147024891, System.Unauthorized"
                                            "AccessException", "message": {
                                                "lang": "en-US", "value": "Access denied."}}},
                                 status=401)
        return web.Response(body=item[0], content_type=item[1])

    def _check_activity(self, body: Any) -> web.Response | None:
        """Teams measures the activity encoded as UTF-16 (not the JSON's escapes)."""
        if not isinstance(body, dict) or body.get("type") not in ("message", "typing"):
            return _error(400, "BadArgument", "Unknown activity type")
        if body["type"] == "message" and not (isinstance(body.get("text"), str)
                                              and body["text"]):
            return _error(400, "BadArgument", "Activity text or attachments are required")
        if len(json.dumps(body, ensure_ascii=False).encode("utf-16-le")) > MAX_ACTIVITY_BYTES:
            return _error(413, "MessageSizeTooBig", "Message size too large.")
        return None

    # ---- activities to the bot ---------------------------------------------------------------

    def message(self, conversation: str, text: str | None, *, kind: str = "personal",
                mention: bool = False, sender: int = 1, activity_id: str | None = None,
                **fields: Any) -> dict[str, Any]:
        """A user's message in ``conversation`` (a full id: a channel's names its thread).
        ``mention`` puts ``<at>`` the bot in the text and a mention entity beside it."""
        chat = conversation.partition(";messageid=")[0]
        self._conversations[chat] = kind
        user = {"id": f"29:1user{sender:03d}" + "x" * 40, "name": f"User {sender}",
                "aadObjectId": str(uuid.UUID(int=sender))}
        bot = {"id": f"28:{self.app_id}", "name": BOT_NAME}
        entities: list[dict[str, Any]] = [{"type": "clientInfo", "locale": "en-US",
                                           "country": "US", "platform": "Web"}]
        if mention:
            tag = f"<at>{BOT_NAME}</at>"
            text = f"{tag} {text or ''}".rstrip()
            entities.append({"type": "mention", "text": tag, "mentioned": bot})
        conv: dict[str, Any] = {"conversationType": kind, "tenantId": TENANT, "id": conversation}
        if kind != "personal":
            conv["isGroup"] = True
        activity: dict[str, Any] = {
            "type": "message", "id": activity_id or self.next_id(),
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            "serviceUrl": self.service_url, "channelId": "msteams", "from": user,
            "conversation": conv, "recipient": bot, "textFormat": "plain",
            "entities": entities, "channelData": {"tenant": {"id": TENANT}},
            "locale": "en-US", **fields}
        if text is not None:
            activity["text"] = text
        self._delivered[f"{chat}|{activity['id']}"] = activity
        return activity

    def image(self, conversation: str, data: bytes | None = None, mime: str = "image/png",
              **fields: Any) -> dict[str, Any]:
        """A pasted image and no words: an ``image/*`` attachment on the Bot Connector and
        the ``text/html`` rendering Teams sends beside it; the Bot Connector holds ``data``
        (None: it no longer has it)."""
        attachment = f"0-eus-d1-{uuid.uuid4().hex}"
        if data is not None:
            self.attachments[attachment] = (data, mime)
        url = f"{self.service_url}v3/attachments/{attachment}/views/original"
        return self.message(conversation, None, attachments=[
            {"contentType": "image/*", "contentUrl": url},
            {"contentType": "text/html",
             "content": f'<div><div><span><img src="{url}" itemtype="http://schema.skype.com/'
                        'AMSImage"></span></div></div>'}], **fields)

    def file(self, conversation: str, name: str, data: bytes, mime: str, *,
             expired: bool = False, **fields: Any) -> dict[str, Any]:
        """A file sent to the bot: a ``file.download.info`` attachment whose pre-signed
        ``downloadUrl`` serves ``data`` (``expired``: the link no longer works)."""
        tempauth = secrets.token_urlsafe(24)
        self.shared[tempauth] = (data, mime, not expired)
        unique = str(uuid.uuid4())
        site = f"{self.url}/personal/user"
        return self.message(conversation, None, attachments=[{
            "contentType": "application/vnd.microsoft.teams.file.download.info",
            "contentUrl": f"{site}/Documents/Microsoft Teams Chat Files/{name}",
            "name": name, "content": {
                "downloadUrl": f"{site}/_layouts/15/download.aspx?UniqueId={unique}"
                               f"&Translate=false&tempauth={tempauth}&ApiVersion=2.0",
                "uniqueId": unique, "fileType": name.rpartition(".")[2]}}], **fields)

    def redelivery(self, pid: str) -> dict[str, Any]:
        return self._delivered[pid]

    def signed(self, activity: dict[str, Any] | bytes, *, forged: bool = False,
               audience: str | None = None, issuer: str | None = None,
               service_url: str | None = None, lifetime: float = 3600.0
               ) -> tuple[bytes, dict[str, str]]:
        """The raw body and the headers the Bot Framework sends it with."""
        body = activity if isinstance(activity, bytes) else json.dumps(activity).encode()
        claimed = service_url if service_url is not None else (
            activity.get("serviceUrl") if isinstance(activity, dict) else self.service_url)
        return body, {"Content-Type": "application/json; charset=utf-8",
                      "Authorization": "Bearer " + self.jwt(
                          forged=forged, audience=audience, issuer=issuer,
                          service_url=claimed, lifetime=lifetime),
                      "User-Agent": "Microsoft-SkypeBotApi (Microsoft-BotFramework/3.0)"}

    def jwt(self, *, forged: bool = False, audience: str | None = None,
            issuer: str | None = None,
            service_url: str | None = None, lifetime: float = 3600.0,
            algorithm: str = "RS256") -> str:
        signer = self.forger if forged else self.signer
        now = int(time.time())
        claims: dict[str, Any] = {"iss": issuer or self.issuer, "aud": audience or self.app_id,
                                  "nbf": now - 5, "exp": int(now + lifetime)}
        if service_url is not None:
            claims["serviceurl"] = service_url
        return jwt.encode(claims, signer.key, algorithm=algorithm,
                          headers={"kid": signer.kid, "x5t": signer.kid})

    def next_id(self) -> str:
        """A new message id: epoch milliseconds, as Teams makes them."""
        self._clock_ms = max(self._clock_ms + 1, int(time.time() * 1000))
        return str(self._clock_ms)


def _kid() -> str:
    return base64.urlsafe_b64encode(hashlib.sha1(uuid.uuid4().bytes).digest()).decode().rstrip("=")


def _b64(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None
           ) -> web.Response:
    return json_response({"error": {"code": code, "message": message}}, status=status,
                         headers=headers)


def _aad(status: int, error: str, number: int, description: str) -> web.Response:
    trace = str(uuid.uuid4())
    return json_response({
        "error": error,
        "error_description": f"AADSTS{number}: {description}\r\nTrace ID: {trace}\r\n"
                             f"Correlation ID: {uuid.uuid4()}\r\nTimestamp: "
                             f"{time.strftime('%Y-%m-%d %H:%M:%SZ', time.gmtime())}",
        "error_codes": [number], "trace_id": trace}, status=status)
