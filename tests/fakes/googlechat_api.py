"""A fake Google Chat (REST API, OAuth token endpoint, signing certificates) and Google Chat's
signed interaction-event posts, on 127.0.0.1.

Written from Google's published reference, not from what our connector sends: the Chat API
v1 discovery document (``googleapiclient/discovery_cache/documents/chat.v1.json`` in
github.com/googleapis/google-api-python-client: ``spaces.messages.create`` / ``patch``,
``spaces.list``, the ``Message``, ``Space``, ``User``, ``Annotation``, ``Attachment`` and
``DeprecatedEvent`` schemas), developers.google.com/workspace/chat ("Verify requests from
Google Chat", "Usage limits", "Send a message"), and RFC 7523 as Google's token endpoint
speaks it:

* Every Chat API call needs ``Authorization: Bearer <access token>`` from ``POST /token``;
  a missing, unknown or expired one is 401 UNAUTHENTICATED. Errors are ``{"error": {"code",
  "message", "status"}}`` with Google's canonical status names.
* ``POST /token`` takes ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`` and an
  ``assertion``: an RS256 JWT signed with the service account's key, ``iss`` its email,
  ``aud`` this token URI, ``scope`` including chat.bot, at most an hour long. It answers
  ``{access_token, expires_in, token_type: "Bearer"}``, or 400 ``{"error": "invalid_grant",
  "error_description"}``.
* ``POST /v1/{space}/messages`` (``Message`` body; ``messageReplyOption``, ``requestId``):
  the app must be a member of the space (else 404); ``text`` is required and at most 4,096
  characters (400 "Message is longer than 4096 characters", the words Google answers with;
  counted here in UTF-16 code units, the stricter reading of an undocumented unit) and
  32,000 bytes. A thread ``name`` with REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD replies in that
  thread of a named space, or starts a new one when it is not there; REPLY_MESSAGE_OR_FAIL
  answers 404 instead; without an option a new thread starts (the thread is ignored, as the
  reference says). A ``requestId`` seen before returns the message it created. The answer is
  the created ``Message`` (``name``, ``sender`` the app's BOT user, ``thread``, ``space``,
  ``createTime``).
* ``PATCH /v1/{message}?updateMask=text`` replaces the text of a message the app created
  (another's is 403, an unknown one 404, no or another mask 400).
* ``GET /v1/spaces`` lists the spaces the app is in (``pageSize``).
* ``GET /v1/media/{resourceName}?alt=media`` (``media.download``) with the app's token:
  the bytes of an uploaded attachment (``attachmentDataRef.resourceName``) with their
  Content-Type; without ``alt=media`` 400, an unknown resource 404 NOT_FOUND. Drive files
  (``driveDataRef``) are not served here: only the Drive API opens them.
* 429 is RESOURCE_EXHAUSTED with no Retry-After (Google documents exponential backoff and
  none); a refused call carries nothing out.
* Certificates: ``GET /service_accounts/v1/metadata/x509/chat@system.gserviceaccount.com``
  (the project-number tokens) and ``GET /oauth2/v1/certs`` (ID tokens), ``{kid: PEM x509}``
  with ``Cache-Control: public, max-age=...``.
* Events: :meth:`GoogleChatFake.message_event` builds a ``MESSAGE`` interaction event as a
  user's message arrives (``argumentText`` without the app's mention, a ``USER_MENTION``
  annotation, ``attachment[]``, ``thread``/``threadReply``); :meth:`signed` adds the bearer
  token Google Chat signs (a JWT from chat@system.gserviceaccount.com for the project
  number, or an ID token for the endpoint URL).

Scripted faults come from :class:`FakePlatform` under the method names ``create``, ``patch``,
``token``, ``list_spaces``, ``certs`` and ``id_certs``.
"""

from __future__ import annotations

import itertools
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import jwt
from aiohttp import web

from tests.fakes.googlechat_keys import SigningKey, signing_key
from tests.fakes.platform import FakePlatform
from tests.fakes.server import json_response

__all__ = ["APP_USER", "CHAT_ISSUER", "PROJECT_NUMBER", "ChatRecord", "GoogleChatFake"]

CHAT_ISSUER = "chat@system.gserviceaccount.com"
PROJECT_NUMBER = "396108371523"
APP_USER = "users/108236542309915770114"
APP_NAME = "pyclaw"
SCOPE = "https://www.googleapis.com/auth/chat.bot"
GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
MAX_TEXT = 4096
MAX_BYTES = 32_000
SKEW = 60
CHAT_CERTS_PATH = f"/service_accounts/v1/metadata/x509/{CHAT_ISSUER}"
ID_CERTS_PATH = "/oauth2/v1/certs"
_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
           404: "NOT_FOUND", 409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED",
           500: "INTERNAL", 503: "UNAVAILABLE"}
_MESSAGES = {
    400: "Invalid JSON payload received.",
    401: "Request had invalid authentication credentials. Expected OAuth 2 access token, "
         "login cookie or other valid authentication credential.",
    403: "The caller does not have permission",
    404: "Requested entity was not found.",
    429: "Resource has been exhausted (e.g. check quota).",
    500: "Internal error encountered.",
    503: "The service is currently unavailable.",
}


@dataclass
class ChatRecord:
    """One message in the fake Chat: a user's (as delivered in an event) or the app's."""

    name: str
    space: str
    thread: str
    text: str
    sender: str
    by_app: bool
    monotonic: float = field(default_factory=time.monotonic)
    edits: int = 0
    request_id: str | None = None
    created: str = field(default_factory=lambda: _rfc3339(time.time()))


@dataclass
class _Space:
    name: str
    space_type: str  # SPACE, GROUP_CHAT, DIRECT_MESSAGE
    display_name: str
    app_member: bool = True

    def resource(self) -> dict[str, Any]:
        direct = self.space_type == "DIRECT_MESSAGE"
        body: dict[str, Any] = {
            "name": self.name, "type": "DM" if direct else "ROOM",
            "spaceType": self.space_type, "singleUserBotDm": direct,
            "spaceThreadingState": "THREADED_MESSAGES" if self.space_type == "SPACE"
            else "UNTHREADED_MESSAGES",
            "spaceHistoryState": "HISTORY_ON"}
        if not direct:
            body["displayName"] = self.display_name
        return body


class GoogleChatFake(FakePlatform):
    send_method = "create"

    def __init__(self, *, project_number: str = PROJECT_NUMBER) -> None:
        super().__init__()
        self.project_number = project_number
        self.chat_key: SigningKey = signing_key("google-chat")
        self.id_token_key: SigningKey = signing_key("google-id-tokens")
        self.account_key: SigningKey = signing_key("service-account")
        self.client_email = "pyclaw-bot@pyclaw-test.iam.gserviceaccount.com"
        self.token_ttl = 3599
        self.clock: Callable[[], float] = time.time
        """Google's clock for the assertions it is given (``iat`` not ahead, ``exp`` not past,
        with a minute of skew)."""
        self.certs_max_age = 19_800
        self.records: list[ChatRecord] = []
        self.tokens_issued = 0
        self.calls_seen: list[tuple[str, str, dict[str, str], Any]] = []
        """(HTTP method, path, query, JSON body) of every Chat API call carried out."""
        self._spaces: dict[str, _Space] = {}
        self._tokens: dict[str, float] = {}  # access token -> monotonic expiry
        self._events: dict[str, dict[str, Any]] = {}  # message name -> the event delivered
        self._ids = itertools.count(1)
        self.media: dict[str, tuple[bytes, str]] = {}  # resourceName -> (bytes, type)
        self.downloads: list[tuple[str, str | None]] = []  # (resourceName, Authorization)

    def routes(self, app: web.Application) -> None:
        app.router.add_get(CHAT_CERTS_PATH, self._chat_certs)
        app.router.add_get(ID_CERTS_PATH, self._id_certs)
        app.router.add_post("/token", self._token)
        app.router.add_get("/v1/spaces", self._list_spaces)
        app.router.add_get("/v1/media/{resource:.+}", self._media)
        app.router.add_post("/v1/spaces/{space}/messages", self._create)
        app.router.add_patch("/v1/spaces/{space}/messages/{message}", self._patch)

    # ---- what a test configures and reads ----------------------------------------------------

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    @property
    def certs_url(self) -> str:
        return f"{self.url}{CHAT_CERTS_PATH}"

    @property
    def id_certs_url(self) -> str:
        return f"{self.url}{ID_CERTS_PATH}"

    def service_account_json(self) -> str:
        """The JSON key Google Cloud offers for download (Service accounts > Keys)."""
        return json.dumps({
            "type": "service_account", "project_id": "pyclaw-test",
            "private_key_id": self.account_key.kid,
            "private_key": self.account_key.private_pem, "client_email": self.client_email,
            "client_id": "104539881772634620413",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "universe_domain": "googleapis.com"})

    def space(self, name: str, space_type: str = "DIRECT_MESSAGE") -> str:
        """A space the app is a member of (created on first use)."""
        if name not in self._spaces:
            self._spaces[name] = _Space(name, space_type, f"Team {name.rsplit('/', 1)[-1]}")
        return name

    def remove_app(self, space: str) -> None:
        self._spaces[space].app_member = False

    def revoke_tokens(self) -> None:
        self._tokens.clear()

    def sent(self, space: str | None = None) -> list[ChatRecord]:
        return [r for r in self.records if r.by_app and (space is None or r.space == space)]

    # ---- events --------------------------------------------------------------------------------

    def message_event(self, space: str, text: str = "", *, sender: int = 1,
                      thread: str | None = None, mention: bool = False,
                      attachments: list[dict[str, Any]] | None = None,
                      event_type: str = "MESSAGE") -> dict[str, Any]:
        """A user's message as Google Chat delivers it to the app: in ``thread`` (a reply in
        it) or starting a new one; ``mention`` puts "@pyclaw " in front, with its
        ``USER_MENTION`` annotation, and leaves it out of ``argumentText``."""
        room = self._spaces[self.space(space)]
        user = {"name": f"users/{100000 + sender}", "displayName": f"User {sender}",
                "avatarUrl": "https://lh3.googleusercontent.com/a/default-user",
                "email": f"user{sender}@example.com", "type": "HUMAN",
                "domainId": "c03x1k0"}
        thread_name = thread or f"{space}/threads/{self._id()}"
        name = f"{space}/messages/{self._id()}.{thread_name.rsplit('/', 1)[-1]}"
        full = f"@{APP_NAME} {text}" if mention else text
        record = ChatRecord(name, space, thread_name, full, user["name"], by_app=False)
        self.records.append(record)
        message: dict[str, Any] = {
            "name": name, "sender": user, "createTime": record.created,
            "text": full, "argumentText": f" {text}" if mention else text,
            "formattedText": full, "thread": {"name": thread_name},
            "threadReply": thread is not None, "space": room.resource()}
        if mention:
            message["annotations"] = [{
                "type": "USER_MENTION", "startIndex": 0, "length": len(APP_NAME) + 1,
                "userMention": {"type": "MENTION", "user": {
                    "name": APP_USER, "displayName": APP_NAME, "type": "BOT"}}}]
        if attachments:
            message["attachment"] = [self._attachment(name, a) for a in attachments]
        if not full:
            del message["text"], message["argumentText"], message["formattedText"]
        event = {"type": event_type, "eventTime": record.created, "message": message,
                 "user": user, "space": room.resource(),
                 "common": {"userLocale": "en", "hostApp": "CHAT"}}
        self._events[name] = event
        return event

    def membership_event(self, space: str, event_type: str) -> dict[str, Any]:
        """``ADDED_TO_SPACE`` (without a message) or ``REMOVED_FROM_SPACE``."""
        room = self._spaces[self.space(space, "SPACE")]
        return {"type": event_type, "eventTime": _rfc3339(time.time()),
                "user": {"name": "users/100001", "displayName": "User 1", "type": "HUMAN"},
                "space": room.resource()}

    def redelivery(self, message_name: str) -> dict[str, Any]:
        """The event of an earlier message again, exactly as it was."""
        return self._events[message_name]

    def bearer(self, *, key: SigningKey | None = None, audience: str | None = None,
               issuer: str = CHAT_ISSUER, lifetime: int = 3600, issued: float | None = None
               ) -> str:
        """The token Google Chat signs for the project-number audience (a JWT from
        chat@system.gserviceaccount.com)."""
        now = int(time.time() if issued is None else issued)
        signer = key or self.chat_key
        return jwt.encode({"iss": issuer, "aud": audience or self.project_number,
                           "iat": now, "exp": now + lifetime}, signer.private_pem,
                          algorithm="RS256", headers={"kid": signer.kid})

    def id_token(self, endpoint_url: str, *, email: str = CHAT_ISSUER,
                 key: SigningKey | None = None) -> str:
        """The ID token Google signs for the HTTP-endpoint-URL audience."""
        now = int(time.time())
        signer = key or self.id_token_key
        return jwt.encode({"iss": "https://accounts.google.com", "aud": endpoint_url,
                           "azp": "113834213577465016419", "sub": "113834213577465016419",
                           "email": email, "email_verified": True, "iat": now,
                           "exp": now + 3600}, signer.private_pem, algorithm="RS256",
                          headers={"kid": signer.kid})

    def signed(self, event: dict[str, Any] | bytes, *, token: str | None = None
               ) -> tuple[bytes, dict[str, str]]:
        """The request Google Chat makes to the app's endpoint."""
        body = event if isinstance(event, bytes) else json.dumps(event, ensure_ascii=False
                                                                 ).encode()
        return body, {"Authorization": f"Bearer {token or self.bearer()}",
                      "Content-Type": "application/json", "User-Agent": "Google-Dynamite"}

    # ---- certificates and tokens ----------------------------------------------------------------

    def error_response(self, method: str, status: int, retry_after: float | None
                       ) -> web.Response:
        if method == "token":
            return json_response({"error": "invalid_grant" if status == 400 else
                                  "internal_failure", "error_description": "scripted"},
                                 status=status)
        words = "Message is longer than 4096 characters" if status == 400 else \
            _MESSAGES.get(status, "Unknown error.")
        return _error(status, words)

    async def _chat_certs(self, request: web.Request) -> web.StreamResponse:
        return await self._certs("certs", self.chat_key, request)

    async def _id_certs(self, request: web.Request) -> web.StreamResponse:
        return await self._certs("id_certs", self.id_token_key, request)

    async def _certs(self, method: str, key: SigningKey, request: web.Request
                     ) -> web.StreamResponse:
        scripted = await self.before(method)
        if scripted is not None:
            return scripted
        self.after(method, request)
        return json_response({key.kid: key.certificate_pem}, headers={
            "Cache-Control": f"public, max-age={self.certs_max_age}, must-revalidate, "
            "no-transform"})

    async def _token(self, request: web.Request) -> web.StreamResponse:
        scripted = await self.before("token")
        if scripted is not None:
            return scripted
        form = {k: v[0] for k, v in parse_qs((await request.read()).decode()).items()}
        if form.get("grant_type") != GRANT:
            return json_response({"error": "unsupported_grant_type",
                                  "error_description": "Invalid grant_type: "
                                  f"{form.get('grant_type', '')}"}, status=400)
        try:
            claims = jwt.decode(form.get("assertion", ""), self.account_key.public_pem,
                                algorithms=["RS256"], audience=self.token_uri,
                                options={"require": ["iss", "aud", "iat", "exp"],
                                         "verify_exp": False, "verify_iat": False})
        except jwt.InvalidTokenError as exc:
            return json_response({"error": "invalid_grant",
                                  "error_description": f"Invalid JWT: {exc}"}, status=400)
        now = self.clock()
        if not int(claims["iat"]) - SKEW <= now < int(claims["exp"]) + SKEW:
            return json_response({"error": "invalid_grant", "error_description":
                                  "Invalid JWT: Token must be a short-lived token (60 "
                                  "minutes) and in a reasonable timeframe. Check your iat "
                                  "and exp values in the JWT claim."}, status=400)
        if claims["iss"] != self.client_email or SCOPE not in str(claims.get("scope", "")
                                                                  ).split():
            return json_response({"error": "invalid_scope" if claims["iss"] ==
                                  self.client_email else "invalid_grant",
                                  "error_description": "Invalid JWT claims."}, status=400)
        if int(claims["exp"]) - int(claims["iat"]) > 3600:
            return json_response({"error": "invalid_grant", "error_description":
                                  "Invalid JWT: Token must be a short-lived token (60 "
                                  "minutes) and in a reasonable timeframe."}, status=400)
        token = f"ya29.fake-{secrets.token_urlsafe(24)}"
        self._tokens[token] = time.monotonic() + self.token_ttl
        self.tokens_issued += 1
        self.after("token", request)
        return json_response({"access_token": token, "expires_in": self.token_ttl,
                              "token_type": "Bearer"})

    # ---- the Chat API ----------------------------------------------------------------------------

    async def _gate(self, method: str, request: web.Request) -> web.StreamResponse | None:
        """Scripted faults first (as FakePlatform asks), then the access token."""
        scripted = await self.before(method)
        if scripted is not None:
            return scripted
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else ""
        expiry = self._tokens.get(token)
        if expiry is None or time.monotonic() > expiry:
            return _error(401, _MESSAGES[401])
        return None

    async def _media(self, request: web.Request) -> web.StreamResponse:
        resource = request.match_info["resource"]
        self.downloads.append((resource, request.headers.get("Authorization")))
        refused = await self._gate("media", request)
        if refused is not None:
            return refused
        if request.query.get("alt") != "media":
            return _error(400, "Download requests need alt=media.")
        if resource not in self.media:
            return _error(404, "Requested entity was not found.")
        data, mime = self.media[resource]
        return web.Response(body=data, content_type=mime)

    async def _list_spaces(self, request: web.Request) -> web.StreamResponse:
        refused = await self._gate("list_spaces", request)
        if refused is not None:
            return refused
        size = request.query.get("pageSize", "100")
        if not size.isdigit():
            return _error(400, "Invalid value at 'page_size' (TYPE_INT32)")
        spaces = [s.resource() for s in self._spaces.values() if s.app_member]
        self.after("list_spaces", request)
        return json_response({"spaces": spaces[:max(1, min(int(size), 1000))]})

    async def _create(self, request: web.Request) -> web.StreamResponse:
        refused = await self._gate("create", request)
        if refused is not None:
            return refused
        space = self._spaces.get(f"spaces/{request.match_info['space']}")
        if space is None or not space.app_member:
            return _error(404, _MESSAGES[404])
        body = await _json(request)
        if body is None:
            return _error(400, _MESSAGES[400])
        query = dict(request.query)
        checked = _text_error(body.get("text"))
        if checked is not None:
            return checked
        request_id = query.get("requestId")
        if request_id:
            for record in self.records:
                if record.request_id == request_id and record.space == space.name:
                    self.after("create", request)
                    return json_response(self._resource(record))
        thread = self._thread_for(space, body.get("thread"), query.get("messageReplyOption"))
        if thread is None:
            return _error(404, _MESSAGES[404])
        name = f"{space.name}/messages/{self._id()}.{thread.rsplit('/', 1)[-1]}"
        record = ChatRecord(name, space.name, thread, body["text"], APP_USER, by_app=True,
                            request_id=request_id)
        self.records.append(record)
        self.calls_seen.append(("POST", request.path, query, body))
        self.after("create", request)  # a scripted lost answer: created, then the line is cut
        return json_response(self._resource(record))

    async def _patch(self, request: web.Request) -> web.StreamResponse:
        refused = await self._gate("patch", request)
        if refused is not None:
            return refused
        name = f"spaces/{request.match_info['space']}/messages/{request.match_info['message']}"
        record = next((r for r in self.records if r.name == name), None)
        if record is None:
            return _error(404, _MESSAGES[404])
        if not record.by_app:
            return _error(403, _MESSAGES[403])
        mask = request.query.get("updateMask", "")
        if not mask:
            return _error(400, "updateMask is required.")
        if mask != "text":
            return _error(400, f"Invalid field mask: {mask}")
        body = await _json(request)
        if body is None:
            return _error(400, _MESSAGES[400])
        checked = _text_error(body.get("text"))
        if checked is not None:
            return checked
        record.text = body["text"]
        record.edits += 1
        self.calls_seen.append(("PATCH", request.path, dict(request.query), body))
        self.after("patch", request)
        return json_response({**self._resource(record),
                              "lastUpdateTime": _rfc3339(time.time())})

    def _thread_for(self, space: _Space, thread: object, option: str | None) -> str | None:
        """The thread a new message goes into; None for REPLY_MESSAGE_OR_FAIL to a thread
        that is not there."""
        fresh = f"{space.name}/threads/{self._id()}"
        wanted = thread.get("name") if isinstance(thread, dict) else None
        if space.space_type != "SPACE" or option not in (
                "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD", "REPLY_MESSAGE_OR_FAIL"):
            return fresh  # only named spaces have replies; no option starts a new thread
        if isinstance(wanted, str) and any(r.thread == wanted and r.space == space.name
                                           for r in self.records):
            return wanted
        return None if option == "REPLY_MESSAGE_OR_FAIL" else fresh

    def _resource(self, record: ChatRecord) -> dict[str, Any]:
        space = self._spaces[record.space]
        return {"name": record.name,
                "sender": {"name": APP_USER, "displayName": APP_NAME, "type": "BOT"},
                "createTime": record.created, "text": record.text,
                "formattedText": record.text, "argumentText": record.text,
                "thread": {"name": record.thread},
                "threadReply": any(r.thread == record.thread and r.monotonic < record.monotonic
                                   for r in self.records if r is not record),
                "space": {"name": space.name, "type": space.resource()["type"],
                          "spaceType": space.space_type}}

    def _attachment(self, message: str, given: dict[str, Any]) -> dict[str, Any]:
        """One ``attachment[]`` item; a ``data`` key (bytes) is served by media.download."""
        n = self._id()
        name = f"{message}/attachments/{n}"
        given = dict(given)
        data = given.pop("data", None)
        if data is not None:
            self.media[f"ClxDaGF0QXR0YWNobWVudC{n}"] = (
                data, given.get("contentType", "application/octet-stream"))
        return {"name": name, "contentName": given.get("contentName", f"file-{n}"),
                "contentType": given.get("contentType", "application/octet-stream"),
                "thumbnailUri": "https://chat.google.com/api/get_attachment_url?url_type="
                "FIFE_URL&content_type=image%2Fjpeg&sz=w512",
                "downloadUri": f"https://chat.google.com/api/get_attachment_url?url_type="
                f"DOWNLOAD_URL&attachment_token={n}",
                "source": "UPLOADED_CONTENT",
                "attachmentDataRef": {"resourceName": f"ClxDaGF0QXR0YWNobWVudC{n}"},
                **{k: v for k, v in given.items() if k not in ("contentName", "contentType")}}

    def _id(self) -> str:
        return f"{next(self._ids):011d}"


def _text_error(text: object) -> web.Response | None:
    if not isinstance(text, str) or not text:
        return _error(400, "Message cannot be empty. Discarding empty message.")
    if len(text.encode("utf-16-le")) // 2 > MAX_TEXT:
        return _error(400, "Message is longer than 4096 characters")
    if len(text.encode()) > MAX_BYTES:
        return _error(400, "Message exceeds the maximum size of 32000 bytes.")
    return None


def _error(status: int, message: str) -> web.Response:
    return json_response({"error": {"code": status, "message": message,
                                    "status": _STATUS.get(status, "UNKNOWN")}}, status=status)


def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def _json(request: web.Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
