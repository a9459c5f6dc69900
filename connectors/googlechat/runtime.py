"""The Google Chat connector: interaction events POSTed to us, the Chat REST API (or the HTTP
response itself) out.

Receiving: Google POSTs one interaction event per request with ``Authorization: Bearer
<token>`` that Google signs; ``_verify`` checks it (see ``_verify``) before a byte of the body
is read. The certificates it needs are fetched first, on the loop, when they are stale or the
token names a key we do not have yet.

Replying, in one of two modes (``reply_mode``):

* ``async`` (the default): the request is answered ``{}`` as soon as the message is in the
  journal, and each reply part is ``POST /v1/{space}/messages`` as the app's service account
  (scope chat.bot), into the thread of the message it answers
  (``messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD``). It is the default because
  it is the only mode that can send what the gateway produces: a reply longer than 4,096
  characters is several messages, and a streamed reply is one message edited as it grows
  (``PATCH /v1/{message}?updateMask=text``); neither fits in one HTTP response.
* ``sync``: the request is held (up to ``sync_timeout``, under Google's 30-second deadline)
  and answered with the reply as its JSON ``Message``. No service account is needed, which is
  the whole point: the setup is a Cloud project and a URL. A reply is then one message; if it
  has more parts, or takes longer than ``sync_timeout``, the rest goes through the REST API
  when a key is set and fails with a clear error when not. Streaming is off in this mode (a
  draft would become the HTTP response), so the spec says ``edit=False`` for it.

No SDK for the REST calls: the Chat API client (google-apps-chat, or google-api-python-client)
is gRPC or sync, and either way maps errors its own way, while ``ChannelHttp`` already sorts
every outcome the contract needs (429/5xx retryable, a lost answer to a POST uncertain).
google-auth is used for what it is for: reading the key, signing the JWT-bearer assertion,
and checking Google's signature on the bearer tokens (``_account``, ``_verify``).

Google's own rules, in pyclaw's words:

- 429 RESOURCE_EXHAUSTED (Google documents exponential backoff and no Retry-After; its
  per-space write quota is one a second): retryable, after a Retry-After when one is sent,
  else one second.
- 401 from the Chat API: the access token expired or was revoked; it is forgotten and the
  part retried with a new one, unless the refused token was brand new (then it is the key or
  the project: fatal, saying which to check).
- 403 PERMISSION_DENIED / 404 NOT_FOUND: the app was removed from the space, the message is
  gone, or the Chat API is not configured for the key's project: fatal, with Google's words.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any
from urllib.parse import quote, urlsplit

from connectors.googlechat._account import ServiceAccount
from connectors.googlechat._parse import (
    DRIVE,
    MESSAGE_NAME,
    SPACE_NAME,
    THREAD_NAME,
    ChatMessage,
    Ignored,
    Malformed,
    parse_event,
)
from connectors.googlechat._verify import (
    CHAT_CERTS_URL,
    ID_TOKEN_CERTS_URL,
    Audience,
    Certificates,
    key_id,
    verify_bearer,
)
from connectors.googlechat.manifest import CHAT_ISSUER, SPEC, GoogleChatConfig
from pyclaw_app.channels import (
    Capabilities,
    ChannelHttp,
    HttpAnswer,
    ProbeResult,
    Recent,
    RestConnector,
    WebhookRejected,
    WebhookRequest,
    WebhookResponse,
)
from pyclaw_app.channels.contract import AttachmentSource, AttachmentUnavailable
from pyclaw_app.errors import ConnectorError, FatalConnectorError, RetryableError
from pyclaw_app.model import Address, Attachment

__all__ = ["SYNC_CAPABILITIES", "GoogleChatConnector"]

SYNC_CAPABILITIES = dataclasses.replace(SPEC.capabilities, edit=False)
"""What a channel in sync mode can do: a streamed draft would be the HTTP response."""
KEPT = 1000
"""Threads and messages the app posted, remembered for ``reply_to_bot``."""
RATE_LIMIT_WAIT = 1.0
"""Google's 429 carries no Retry-After; its per-space write quota is one a second."""
SYNC_PREFIX = "sync:"
"""Id of a reply sent in the HTTP response (Google does not tell us its name)."""


class _Unauthenticated(FatalConnectorError):
    """The Chat API answered 401 (sorted out in ``_call``, where the token is known)."""


def _classify(answer: HttpAnswer, what: str, detail: str) -> ConnectorError | None:
    """Google's statuses in pyclaw's words, before ChannelHttp's generic ones."""
    said = f"{what} answered HTTP {answer.status}{f': {detail}' if detail else ''}"
    if answer.status == 401:
        return _Unauthenticated(said)
    if answer.status == 403:
        return FatalConnectorError(f"Google Chat does not let the app do this ({said}); is "
                                   "it still a member of the space, and does the service "
                                   "account belong to the Chat app's Cloud project?")
    if answer.status == 404:
        return FatalConnectorError(f"Google Chat does not know it ({said}); the space or "
                                   "message is gone, the app was removed from the space, or "
                                   "the Chat API is not configured in the key's project")
    return None


class GoogleChatConnector(RestConnector):
    spec = SPEC
    config: GoogleChatConfig

    def __init__(self, name: str, config: GoogleChatConfig) -> None:
        super().__init__(name, config)
        self._certs = Certificates(config.certs_url.strip() or (
            ID_TOKEN_CERTS_URL if config.audience_type == "endpoint_url" else CHAT_CERTS_URL))
        self._account: ServiceAccount | None = None
        self._waiters: dict[str, asyncio.Future[str]] = {}
        self._ours: Recent[str, None] = Recent(KEPT)
        self._bot_user = ""

    # ---- settings --------------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        return SYNC_CAPABILITIES if self.config.reply_mode == "sync" else SPEC.capabilities

    def check_config(self) -> None:
        self._audience()
        if self.config.reply_mode == "async":
            self.secret("service_account_key")
        self._service_account()

    def _audience(self) -> Audience:
        config = self.config
        number = config.project_number.strip()
        if config.audience_type == "project_number":
            if not number:
                raise FatalConnectorError("the Google Chat project_number is not set: every "
                                          "request's token is checked against it (Cloud "
                                          "console > IAM & Admin > Settings)")
            return Audience(project_number=number)
        url = config.endpoint_url.strip()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FatalConnectorError("the Google Chat endpoint_url must be the HTTP endpoint "
                                      "URL set in the Chat API's Configuration page")
        emails = {CHAT_ISSUER}
        if number:
            emails.add(f"service-{number}@gcp-sa-gsuiteaddons.iam.gserviceaccount.com")
        return Audience(project_number=number, endpoint_url=url, emails=frozenset(emails))

    def _service_account(self) -> ServiceAccount | None:
        if self._account is None:
            key = self.secret_or_none("service_account_key")
            if key is not None:
                self._account = ServiceAccount(key, token_uri=self.config.token_uri.strip())
        return self._account

    # ---- lifecycle -------------------------------------------------------------------------

    def make_http(self) -> ChannelHttp:
        account = self._service_account()
        return ChannelHttp(self.config.api_base, platform="Google Chat",
                           secrets=account.secrets if account is not None else (),
                           describe=_describe, rate_limit=lambda _body: RATE_LIMIT_WAIT,
                           classify=_classify)

    async def whoami(self, http: ChannelHttp) -> str:
        """The service account, once it got a token and the Chat API took it (a space list
        of one); in sync mode without a key there is nothing to ask before requests come."""
        account = self._service_account()
        if account is None:
            return "Google Chat (replies in the HTTP response; no service account)"
        await self._call(http, "GET", "/v1/spaces", params={"pageSize": "1"})
        return account.email

    async def probe(self) -> ProbeResult:
        """The settings, the service account and Chat API, and Google's certificates."""
        try:
            self.check_config()
            http = self.make_http()
            try:
                name = await self.whoami(http)
                await self._certs.ensure(http, None)
            finally:
                await http.close()
        except ConnectorError as exc:
            return ProbeResult(False, str(exc))
        return ProbeResult(True, f"connected as {name}; {len(self._certs.current)} Google "
                           "certificates loaded for checking requests")

    async def close(self) -> None:
        for waiter in self._waiters.values():
            waiter.cancel()  # held requests are answered {} (their reply: the REST API)
        self._waiters.clear()
        await super().close()

    # ---- sending ---------------------------------------------------------------------------

    async def send_part(self, address: Address, text: str, reply_to: str | None) -> str:
        if reply_to is not None:
            waiter = self._waiters.pop(reply_to, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(text)  # the held request answers with it
                return f"{SYNC_PREFIX}{reply_to}"
        space = _checked(address.chat, SPACE_NAME.match(address.chat), "space")
        body: dict[str, Any] = {"text": text}
        params: dict[str, str] = {}
        if address.thread is not None:
            thread = _checked(address.thread, THREAD_NAME.match(address.thread) and
                              address.thread.startswith(space + "/"), "thread")
            body["thread"] = {"name": thread}
            params["messageReplyOption"] = "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD"
        answer = await self._call(self.http, "POST", f"/v1/{space}/messages", params=params,
                                  json_body=body)
        return self._sent(answer.data)

    async def edit(self, address: Address, platform_id: str, text: str) -> None:
        if not (MESSAGE_NAME.match(platform_id) and platform_id.startswith(address.chat + "/")):
            raise FatalConnectorError(f"cannot edit {platform_id!r}: not a message the app "
                                      "posted in this space (a reply sent in the HTTP "
                                      "response has no name to edit)")
        await self._call(self.http, "PATCH", f"/v1/{platform_id}",
                         params={"updateMask": "text"}, json_body={"text": text},
                         idempotent=True)

    def _sent(self, data: object) -> str:
        """The created message's name; its thread and sender are remembered (a reply in that
        thread is a reply to the bot, and the sender is the app's own user name)."""
        message = data if isinstance(data, dict) else {}
        name = message.get("name")
        thread = message.get("thread")
        sender = message.get("sender")
        if isinstance(thread, dict) and isinstance(thread.get("name"), str):
            self._ours.remember(thread["name"], None)
        if isinstance(sender, dict) and sender.get("type") == "BOT" and \
                isinstance(sender.get("name"), str):
            self._bot_user = sender["name"]
        if not isinstance(name, str) or not name:
            return ""
        self._ours.remember(name, None)
        return name

    async def _call(self, http: ChannelHttp, method: str, path: str, *,
                    params: dict[str, str] | None = None, json_body: Any = None,
                    idempotent: bool | None = None) -> HttpAnswer:
        """One Chat API call as the service account; a 401 is sorted out here (see module)."""
        account = self._service_account()
        if account is None:
            raise FatalConnectorError(
                "this reply needs the Chat REST API, and no service_account_key is set: in "
                "reply_mode sync only one message per reply can be sent, in the HTTP response, "
                "within sync_timeout. Set service_account_key to send longer or slower "
                "replies (or to use reply_mode async)")
        token = await account.token(http)
        try:
            return await http.call(method, path, params=params, json_body=json_body,
                                   headers={"Authorization": f"Bearer {token}"},
                                   idempotent=idempotent)
        except _Unauthenticated as exc:
            if account.refused(token):
                raise RetryableError(f"{exc}; the access token is renewed for the retry",
                                     retry_after=0.0) from None
            raise FatalConnectorError(
                f"{exc}; Google refused a fresh access token for {account.email}: enable the "
                "Chat API and configure the Chat app in that service account's Cloud "
                "project") from None

    # ---- attachments -----------------------------------------------------------------------

    async def fetch_attachment(self, attachment: Attachment) -> AttachmentSource:
        """An uploaded file is ``media.download`` (``GET {api_base}/v1/media/{resourceName}
        ?alt=media``) as the app, with the service account's token (scope chat.bot lets an
        app download what is sent to it); the token goes to the configured API only, never
        to the message's ``downloadUri`` (a link for people signed in to Chat). A GIF from
        the picker is a public link fetched without credentials. A Drive file can only be
        opened through the Drive API with the user's consent, so it is refused, saying so."""
        ref = attachment.platform_id or ""
        if ref.startswith(DRIVE):
            raise AttachmentUnavailable("it is a Google Drive file, and a Chat app may only "
                                        "download files uploaded to the chat (share it as an "
                                        "upload instead)")
        if not ref:
            if attachment.url and attachment.url.startswith(("https://", "http://")):
                return AttachmentSource(url=attachment.url, size=attachment.size)
            raise AttachmentUnavailable("Google Chat gave no reference to the file")
        account = self._service_account()
        if account is None:
            raise AttachmentUnavailable("downloading files needs this channel's "
                                        "service_account_key, which is not set")
        token = await account.token(self.http)
        return AttachmentSource(
            url=f"{self.config.api_base.rstrip('/')}/v1/media/{quote(ref, safe='/')}?alt=media",
            headers={"Authorization": f"Bearer {token}"}, size=attachment.size)

    # ---- receiving -------------------------------------------------------------------------

    async def handle_webhook(self, request: WebhookRequest) -> WebhookResponse:
        if request.method == "POST" and self.running:
            try:
                await self._certs.ensure(self.http, key_id(request.header("Authorization")))
            except ConnectorError as exc:
                self.ctx.log("error", "cannot check a Google Chat request: Google's "
                             f"certificates could not be fetched ({exc})")
                return WebhookResponse(503, "certificates unavailable")
        return await self.receive(request, self._verify, self._deliver)

    def _verify(self, request: WebhookRequest) -> None:
        if request.method != "POST":
            raise WebhookRejected(405, "Google Chat sends interaction events with POST only")
        verify_bearer(request.header("Authorization"), self._certs.current, self._audience())

    async def _deliver(self, payload: Any) -> WebhookResponse:
        """One event; answered only after ``ctx.submit`` returned (by then, in sync mode,
        with the reply). An event that is not a message is answered ``{}`` (no reply)."""
        ctx = self.ctx
        parsed = parse_event(payload, channel=self.name, bot_user=self._bot_user,
                             ours=self._ours)
        if isinstance(parsed, Malformed):
            ctx.log("error", f"skipped a malformed Google Chat event: {parsed.reason}")
            return _json({})
        if isinstance(parsed, Ignored):
            if parsed.note:
                ctx.log(parsed.level, parsed.note)
            else:
                self.log.debug("ignored: %s", parsed.reason)
            return _json({})
        if self.config.reply_mode == "sync":
            return await self._answer_sync(parsed)
        result = await ctx.submit(parsed.inbound)
        if result.duplicate:
            self.log.debug("duplicate %s", parsed.inbound.platform_id)
        return _json({})

    async def _answer_sync(self, parsed: ChatMessage) -> WebhookResponse:
        """Hold the request for the reply's first part, then answer with it."""
        pid = parsed.inbound.platform_id
        waiter: asyncio.Future[str] | None = None
        if pid not in self._waiters:  # before submit: the reply may be quicker than we are
            waiter = self._waiters[pid] = asyncio.get_running_loop().create_future()
        try:
            result = await self.ctx.submit(parsed.inbound)
            if waiter is None or result.duplicate or result.ignored or result.quarantined:
                return _json({})
            await asyncio.wait({waiter}, timeout=self.config.sync_timeout)
        finally:
            if waiter is not None and self._waiters.get(pid) is waiter:
                del self._waiters[pid]  # from here on a part for it goes to the REST API
        if waiter.done() and not waiter.cancelled():
            if parsed.thread is not None:
                self._ours.remember(parsed.thread, None)  # the answer goes into its thread
            return _json({"text": waiter.result()})
        waiter.cancel()
        if self.running:  # not merely stopping, which answers every held request
            rest = ("it will be sent through the Chat REST API" if self._account is not None
                    else "without a service_account_key it cannot be delivered")
            self.ctx.log("warning", f"the reply to {pid} was not ready within sync_timeout "
                         f"({self.config.sync_timeout:g}s); {rest}")
        return _json({})


def _checked(value: str, ok: object, what: str) -> str:
    """A resource name from a payload, before it becomes part of a REST path."""
    if not ok:
        raise FatalConnectorError(f"not a Google Chat {what} name: {value!r}")
    return value


def _describe(body: Any) -> str | None:
    """Google's error bodies: ``{"error": {"code", "message", "status"}}`` from the Chat API,
    ``{"error": "invalid_grant", "error_description"}`` from the token endpoint."""
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        status = error.get("status")
        return f"{error['message']}{f' ({status})' if isinstance(status, str) else ''}"
    if isinstance(error, str):
        description = body.get("error_description")
        return f"{error}: {description}" if isinstance(description, str) else error
    return None


def _json(data: dict[str, Any]) -> WebhookResponse:
    return WebhookResponse(200, json.dumps(data, ensure_ascii=False),
                           content_type="application/json")


CONNECTOR = GoogleChatConnector
