"""The Teams connector: JWT-verified Bot Framework activities in, Bot Connector REST out.

SDK. The Bot Framework SDK for Python (botbuilder-*) is archived; its successor, the
Microsoft 365 Agents SDK, is used for what fits: its ``Activity`` models build every
activity we send (field names, aliases, type and text-format values as Microsoft
defines them). Its JWT validator does not fit: it picks the JWKS URL from a table keyed
by issuer (never reading the OpenID metadata, so it cannot be pointed at a sovereign
cloud's or a test server's) and fetches keys with a blocking client in a worker thread;
the ``serviceurl`` claim is left to its HTTP adapter, which compares hosts only, lets a
token without the claim pass, and refuses a mismatch only with its host validator on.
Its connector client turns every error answer into one ``aiohttp.ClientResponseError``
and cuts conversation ids to 150 characters, and hosting-core has no client-credentials
token provider (microsoft-agents-authentication-msal wraps the synchronous MSAL).
So the JWT is checked with PyJWT (``_auth``: keys from the metadata's ``jwks_uri``,
fetched through ``ChannelHttp``), and the REST calls go through ``ChannelHttp``, which
already sorts 429/5xx/refused/lost the way the gateway's retry layer needs.

Where answers go. Each activity names its ``serviceUrl``; the bot's access token goes
only to one that a verified JWT vouched for (its ``serviceurl`` claim) and whose host is
in ``service_url_hosts``, checked again before every call. The last such URL of each
chat is kept in ``ctx.state`` (``ref:<chat>``, written before the message is journaled),
so replies resumed after a restart still know where to go.

Errors Teams documents ("Status codes from bot conversational APIs") are sorted by their
``error.code``: 412 PreconditionFailed is retried; ConversationBlockedByUser,
BotNotInConversationRoster, BotDisabledByAdmin, MessageSizeTooBig, ConversationNotFound
and BotNotRegistered are fatal with a sentence saying what happened. A 401 drops the
cached token so the next call fetches a fresh one.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from microsoft_agents.activity import (
    Activity,
    ActivityTypes,
    ChannelAccount,
    ConversationAccount,
    TextFormatTypes,
)

from connectors.teams._auth import (
    AccessToken,
    SigningKeys,
    TokenRejected,
    bearer,
    binding_problem,
    key_id,
    service_url_problem,
    verify_token,
)
from connectors.teams._parse import (
    Ignored,
    Malformed,
    Message,
    conversation_id,
    parse_activity,
    platform_id,
    split_platform_id,
)
from connectors.teams.manifest import SPEC, TeamsConfig
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

__all__ = ["TeamsConnector"]

KEPT = 1000
"""Chats whose service URL is kept in memory, and ids of our messages remembered."""
MULTI_TENANT = "botframework.com"
_FATAL_CODES = {
    "ConversationBlockedByUser": "the user blocked the bot in Teams; it cannot write there "
    "until they unblock it and write to it again",
    "BotNotInConversationRoster": "the bot is no longer part of this conversation (the app "
    "was removed); add it again to answer there",
    "BotDisabledByAdmin": "the tenant's Teams admin disabled this bot (app policies)",
    "MessageSizeTooBig": "Teams refused the message as too large; lower max_text",
    "ConversationNotFound": "Teams does not know this conversation (deleted?)",
    "ActivityNotFoundInConversation": "the message no longer exists in Teams (deleted?)",
    "BotNotRegistered": "no Bot Framework registration has this app_id (check app_id and "
    "that the Azure Bot has the Teams channel enabled)",
}


@dataclass(frozen=True, slots=True)
class _Reference:
    """Where a chat's messages are answered, and the bot's account there."""

    service_url: str
    bot: dict[str, str]

    def as_json(self) -> dict[str, Any]:
        return {"serviceUrl": self.service_url, "bot": self.bot}


_CONNECTOR_ATTACHMENT = re.compile(
    r"^(?P<base>https?://[^?#]+?)/v3/attachments/(?P<id>[^/?#]+)/views/(?P<view>[^/?#]+)$")
"""A Bot Connector attachment view (ConnectorAPI.json ``Attachments_GetAttachment``)."""


def _bot_framework_error(answer: HttpAnswer, what: str, detail: str) -> ConnectorError | None:
    """Bot Connector errors by ``error.code``, Entra ID's (RFC 6749 ``error`` strings) by
    status; None leaves the rest to ChannelHttp (429 with Retry-After, 5xx, 401...)."""
    error = answer.data.get("error") if isinstance(answer.data, dict) else None
    if isinstance(error, str):  # the token endpoint: {"error", "error_description"}
        if answer.status in (400, 401):
            return FatalConnectorError(f"Microsoft Entra ID refused the bot's credentials "
                                       f"({detail}); check app_id, app_password and "
                                       "tenant_id in this channel's settings")
        return None
    code = error.get("code") if isinstance(error, dict) else None
    if code == "PreconditionFailed" or answer.status == 412:
        return RetryableError(f"{what}: Teams asks to try again ({detail})")
    if code in _FATAL_CODES:
        return FatalConnectorError(f"{_FATAL_CODES[code]} ({what} answered HTTP "
                                   f"{answer.status}: {detail})")
    if answer.status == 401:
        return FatalConnectorError(f"the Bot Connector refused the bot's access token ({what} "
                                   f"answered HTTP 401: {detail}); check app_id, app_password "
                                   "and tenant_id (a single-tenant bot needs its tenant_id)")
    return None


def _describe(body: Any) -> str | None:
    """``{"error": {"code", "message"}}`` (Bot Connector) or ``{"error", "error_description"}``
    (Entra ID)."""
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict):
        said = [str(error[k]) for k in ("code", "message") if error.get(k)]
        return ": ".join(said) or None
    if isinstance(error, str):
        description = body.get("error_description")
        first = description.splitlines()[0] if isinstance(description, str) and description \
            else ""
        return f"{error}: {first}" if first else error
    return None


class TeamsConnector(RestConnector):
    spec = SPEC
    config: TeamsConfig

    def __init__(self, name: str, config: TeamsConfig, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(name, config)
        tenant = config.tenant_id.strip() or MULTI_TENANT
        self._token = AccessToken(config.token_url.replace("{tenant}", tenant),
                                  config.app_id.strip(), self.secret_or_none("app_password")
                                  or "", clock=clock)
        self._keys = SigningKeys(config.openid_metadata_url.strip(), clock=clock)
        self._refs: Recent[str, _Reference] = Recent(KEPT)
        self._sent: Recent[str, None] = Recent(KEPT)

    @property
    def limits(self) -> Limits:
        return Limits(max_text=self.config.max_text, text_length=utf16_len)

    def check_config(self) -> None:
        if not self.config.app_id.strip():
            raise FatalConnectorError("the Microsoft Teams app_id is not set: copy the "
                                      "Microsoft App ID from the Azure Bot's Configuration "
                                      "page")
        self.secret("app_password")
        if not any(h.strip() for h in self.config.service_url_hosts):
            raise FatalConnectorError("service_url_hosts is empty: replies could go nowhere")

    # ---- sending --------------------------------------------------------------------------

    async def send_part(self, address: Address, text: str, reply_to: str | None) -> str:
        reference = await self._reference(address.chat)
        _, replied = split_platform_id(reply_to) if reply_to else ("", "")
        conversation = conversation_id(address.chat, address.thread)
        activity = Activity(
            type=ActivityTypes.message, text=text, text_format=TextFormatTypes.markdown,
            from_property=ChannelAccount(**reference.bot),
            conversation=ConversationAccount(id=conversation),
            **({"reply_to_id": replied} if replied else {}))
        path = f"v3/conversations/{quote(conversation, safe='')}/activities"
        if replied:  # ReplyToActivity: threads under (or quotes) the message answered
            path += f"/{quote(replied, safe='')}"
        answer = await self._call("POST", reference, path, activity)
        sent = answer.data.get("id") if isinstance(answer.data, dict) else None
        if not isinstance(sent, str) or not sent:
            return ""  # Teams answers without an id only when it split the activity
        pid = platform_id(address.chat, sent)
        self._sent.remember(pid, None)
        return pid

    async def edit(self, address: Address, platform_id: str, text: str) -> None:
        _, activity_id = split_platform_id(platform_id)
        if not activity_id:
            raise FatalConnectorError("this message cannot be edited: Teams gave it no id")
        reference = await self._reference(address.chat)
        conversation = conversation_id(address.chat, address.thread)
        activity = Activity(type=ActivityTypes.message, id=activity_id, text=text,
                            text_format=TextFormatTypes.markdown,
                            conversation=ConversationAccount(id=conversation))
        await self._call("PUT", reference, f"v3/conversations/{quote(conversation, safe='')}"
                         f"/activities/{quote(activity_id, safe='')}", activity)

    async def typing(self, address: Address) -> None:
        reference = await self._reference(address.chat)
        conversation = conversation_id(address.chat, address.thread)
        await self._call("POST", reference,
                         f"v3/conversations/{quote(conversation, safe='')}/activities",
                         Activity(type=ActivityTypes.typing,
                                  from_property=ChannelAccount(**reference.bot)),
                         idempotent=True)

    async def _call(self, method: str, reference: _Reference, path: str, activity: Activity,
                    *, idempotent: bool | None = None) -> HttpAnswer:
        problem = service_url_problem(reference.service_url, self.config.service_url_hosts)
        if problem is not None:  # the allowlist may have changed since it was stored
            raise FatalConnectorError(f"not sending the bot's token to {problem}; add the "
                                      "host to service_url_hosts if it is Microsoft's")
        http = self.http
        headers = await self._token.header(http)
        url = reference.service_url.rstrip("/") + "/" + path
        return await http.call(method, url, headers=headers, idempotent=idempotent,
                               json_body=activity.model_dump(by_alias=True, exclude_none=True,
                                                             mode="json"))

    async def _reference(self, chat: str) -> _Reference:
        known = self._refs.get(chat)
        if known is not None:
            return known
        stored = await self.ctx.state.get(f"ref:{chat}")
        if isinstance(stored, dict) and isinstance(stored.get("serviceUrl"), str) \
                and isinstance(stored.get("bot"), dict):
            reference = _Reference(stored["serviceUrl"], {
                k: str(v) for k, v in stored["bot"].items() if k in ("id", "name")})
            self._refs.remember(chat, reference)
            return reference
        raise FatalConnectorError(f"no Teams service URL is known for {chat}: a bot can "
                                  "only answer in a conversation Teams has written to it from")

    async def _remember(self, chat: str, message: Message) -> None:
        reference = _Reference(message.service_url, message.bot)
        if self._refs.get(chat) == reference:
            return
        await self.ctx.state.set(f"ref:{chat}", reference.as_json())
        self._refs.remember(chat, reference)

    # ---- receiving ------------------------------------------------------------------------

    async def handle_webhook(self, request: WebhookRequest) -> WebhookResponse:
        if self.running and request.method == "POST":
            try:
                http = self.http
            except RetryableError:  # still starting: receive() answers 503
                pass
            else:
                token = bearer(request.header("Authorization"))
                await self._keys.refresh_for(http, key_id(token))
        return await self.receive(request, self._verify, self._deliver)

    def _verify(self, request: WebhookRequest) -> None:
        """The Bot Framework's JWT, then the activity against it (its serviceUrl claim and
        the key's endorsements), then the service URL against the allowlist. A replayed
        request passes while its token is valid and is recognised by the journal."""
        if request.method != "POST":
            raise WebhookRejected(405, "the Bot Framework sends activities with POST only")
        token = bearer(request.header("Authorization"))
        if token is None:
            raise WebhookRejected(401, "no Bearer token in the Authorization header (every "
                                  "request from the Bot Framework carries one)")
        try:
            verified = verify_token(token, self._keys, app_id=self.config.app_id.strip())
        except TokenRejected as exc:
            raise WebhookRejected(exc.status, f"Bot Framework token refused: {exc.reason}",
                                  level="error" if self._keys.problem else "warning"
                                  ) from None
        activity = request.json()  # parsed only now that the token is known to be genuine
        problem = binding_problem(verified, activity)
        if problem is not None:
            raise WebhookRejected(403, problem)
        problem = service_url_problem(activity["serviceUrl"], self.config.service_url_hosts)
        if problem is not None:
            raise WebhookRejected(403, f"a genuine activity names a service URL answers "
                                  f"must not go to: {problem}; add the host to "
                                  "service_url_hosts if it is Microsoft's", level="error")

    async def _deliver(self, payload: Any) -> None:
        parsed = parse_activity(payload, channel=self.name, ours=self._sent)
        ctx = self.ctx
        if isinstance(parsed, Malformed):
            ctx.log("error", f"skipped a malformed Teams activity ({parsed.where})")
        elif isinstance(parsed, Ignored):
            if parsed.notice:
                ctx.log("info", parsed.notice)
            self.log.debug("ignored: %s", parsed.reason)
        else:
            inbound = parsed.inbound
            await self._remember(inbound.address.chat, parsed)
            result = await ctx.submit(inbound)
            if result.duplicate:
                self.log.debug("duplicate %s", inbound.platform_id)

    # ---- attachments ----------------------------------------------------------------------

    async def fetch_attachment(self, attachment: Attachment) -> AttachmentSource:
        """A picture pasted in a chat is a Bot Connector attachment, ``{serviceUrl}/v3/
        attachments/{id}/views/{view}``, fetched with the bot's access token; one
        ``GetAttachmentInfo`` (``GET /v3/attachments/{id}``) first says whether it is
        still there and how big each view is. The token goes only to a host in
        ``service_url_hosts``, as for replies. Anything else (a file's pre-signed
        ``downloadUrl`` on SharePoint) is fetched without the token: such links want
        none, and a token never goes to a host the activity chose."""
        url = attachment.url or ""
        if not url.startswith(("https://", "http://")):
            raise AttachmentUnavailable("Teams gave no download link for it")
        found = _CONNECTOR_ATTACHMENT.match(url)
        if found is None or service_url_problem(url, self.config.service_url_hosts):
            return AttachmentSource(url=url, size=attachment.size)
        http = self.http
        headers = await self._token.header(http)
        try:
            answer = await http.call("GET", f"{found['base']}/v3/attachments/{found['id']}",
                                     headers=headers)
        except FatalConnectorError as exc:
            raise AttachmentUnavailable(f"Teams no longer has it ({exc})") from exc
        info = answer.data if isinstance(answer.data, dict) else {}
        views = info.get("views") if isinstance(info.get("views"), list) else []
        size = next((v.get("size") for v in views if isinstance(v, dict)
                     and v.get("viewId") == found["view"]), None)
        return AttachmentSource(url=url, headers=headers,
                                size=size if isinstance(size, int) else attachment.size)

    # ---- helpers --------------------------------------------------------------------------

    def make_http(self) -> ChannelHttp:
        password = self.secret("app_password")
        return ChannelHttp("", platform="Teams", secrets=[password], describe=_describe,
                           classify=self._classify)

    def _classify(self, answer: HttpAnswer, what: str, detail: str) -> ConnectorError | None:
        if answer.status == 401 and not isinstance(
                answer.data.get("error") if isinstance(answer.data, dict) else None, str):
            self._token.forget()  # the next call fetches a fresh token
        return _bot_framework_error(answer, what, detail)

    async def whoami(self, http: ChannelHttp) -> str:
        """A token from Entra ID (the credentials work) and the Bot Framework's signing keys
        (requests from Teams can be verified)."""
        await self._token.header(http)
        count = await self._keys.load(http)
        return f"app {self.config.app_id.strip()} ({count} Bot Framework signing keys)"


CONNECTOR = TeamsConnector
