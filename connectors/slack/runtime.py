"""The Slack connector: slack-sdk's AsyncWebClient sends; Socket Mode or HTTP events receive.

Receiving journals first and acknowledges after: a Socket Mode envelope is
acked only once ``ctx.submit`` returned (Slack redelivers unacked envelopes,
the journal recognises the repeat), an Events API request gets its 200 only
then (``ConnectorBase.receive``). A conversation's events are journaled one at
a time in arrival order, so it keeps its order; different conversations are
journaled side by side (one turn per channel id, :class:`~pyclaw_app.channels.Turns`), so
in a burst their writes share commits and no ack waits for every other conversation's write.
slack-sdk's own reconnect loop is switched off: the ``socket`` task runs the kit's
``run_connected`` (backoff, channel state and log, a revoked token stops it for
good), and a crash of that task reaches the supervisor.

Sending is one ``chat.postMessage`` per part, with *no* SDK retry handler (see
:meth:`SlackConnector._web_client`): the gateway is the one retry layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from connectors.slack._parse import (
    BotIdentity,
    Ignored,
    escape_text,
    event_id,
    mentioned_users,
    parse_event,
    platform_id,
)
from connectors.slack.manifest import SPEC, SlackConfig
from pyclaw_app.channels import (
    ConnectorBase,
    ProbeResult,
    Recent,
    Turns,
    WebhookRejected,
    WebhookRequest,
    WebhookResponse,
    fresh_timestamp,
    verify_hmac,
)
from pyclaw_app.channels.contract import AttachmentSource, AttachmentUnavailable, OutboundFile
from pyclaw_app.errors import (
    ConnectorError,
    DeliveryUncertain,
    FatalConnectorError,
    PyclawError,
    RetryableError,
)
from pyclaw_app.model import Address, Attachment

__all__ = ["CONNECTOR", "SlackConnector"]

_log = logging.getLogger(__name__)

_CONNECT_TIMEOUT = 20.0
_WATCH_INTERVAL = 1.0
"""How often the socket task checks the socket (cheap: no I/O); an aborted TCP connection
sends no close frame, so this bounds how long a silent drop goes unnoticed."""
_NAME_LOOKUP_TIMEOUT = 1.5
"""users.info must not eat Slack's 3-second ack window."""
_MAX_NAME_LOOKUPS = 10
_NAMES_KEPT = 5000

# Error codes after which retrying the same call cannot succeed.
_TOKEN_ERRORS = frozenset({
    "not_authed", "invalid_auth", "account_inactive", "token_revoked", "token_expired",
    "not_allowed_token_type", "no_permission", "missing_scope", "team_access_not_granted",
    "ekm_access_denied", "org_login_required",
})
_TRANSIENT_ERRORS = frozenset({
    "ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout",
})
_NOT_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
"""Failures while opening the connection: the request never left, so it may be sent again."""


class SlackConnector(ConnectorBase):
    spec = SPEC
    config: SlackConfig

    def __init__(self, name: str, config: SlackConfig) -> None:
        super().__init__(name, config)
        self._web: AsyncWebClient | None = None
        self._socket: SocketModeClient | None = None
        self._bot = BotIdentity(user_id="")
        self._lost = asyncio.Event()
        self._order = Turns()
        """Keyed by channel id rather than thread: a thread's replies never overtake the
        message they hang under."""
        self._names: Recent[str, str] = Recent(_NAMES_KEPT)

    # ---- lifecycle -----------------------------------------------------------------

    async def open(self) -> None:
        """Connect; a bad token raises, an unreachable Slack leaves the ``socket`` task
        retrying (in Events API mode it only finishes learning who the bot is)."""
        self._web = self._web_client(self.secret("bot_token"))
        if self.config.mode == "socket" and self.receives:
            self._socket = self._socket_client(self._web, self.secret("app_token"))
        elif self.config.mode == "events":
            self.secret("signing_secret")
        try:
            self.went_online(await self._connect())
            connected = True
        except RetryableError as exc:
            connected = False
            self.went_degraded(str(exc))
            self.ctx.log("warning", f"Slack not reachable yet, retrying in the background: {exc}")
        if self._socket is not None or not connected:
            self.spawn("socket", self.run_connected(self._connect, self._serve,
                                                    connected=connected))

    async def close(self) -> None:
        client, self._socket = self._socket, None
        if client is not None:
            await client.close()
            # close() only cancels the SDK's tasks; wait for them so none outlives us.
            pending = [t for t in (client.message_processor, client.current_session_monitor,
                                   client.message_receiver) if t is not None]
            await asyncio.gather(*pending, return_exceptions=True)
        self._web = None

    async def _connect(self) -> str:
        """Learn who the bot is (once), then open a fresh Socket Mode URL and connect, unless
        the SDK already reconnected (it does on Slack's ``disconnect`` frame). Returns what
        the channel state says."""
        assert self._web is not None
        if not self._bot.user_id:
            self._bot = await self._whoami(self._web)
        client = self._socket
        if client is None:
            how = "Events API" if self.config.mode == "events" else "sending only"
            return f"connected as @{self._bot.name} ({how})"
        who = f"connected as @{self._bot.name} (Socket Mode)"
        async with client.connect_operation_lock:
            if await client.is_connected():
                return who
            with self._mapped("apps.connections.open", token="app-level"):
                client.wss_uri = await client.issue_new_wss_url()
            try:
                await asyncio.wait_for(client.connect(), _CONNECT_TIMEOUT)
            except TimeoutError:
                raise RetryableError(f"Socket Mode connection did not open within "
                                     f"{_CONNECT_TIMEOUT:.0f}s") from None
        self._lost.clear()
        return who

    async def _serve(self) -> None:
        """Until the socket is gone; in Events API mode forever (Slack comes to us)."""
        client = self._socket
        if client is None:
            await asyncio.Event().wait()
            return
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), _WATCH_INTERVAL)
            self._lost.clear()
            if not await client.is_connected():
                raise RetryableError("Socket Mode connection lost")
            self.ctx.heartbeat()

    async def probe(self) -> ProbeResult:
        """auth.test for the bot token; in Socket Mode also apps.connections.open, the only
        call an app-level token can make (the URL it returns is simply left unused)."""
        bot_token = self.secret_or_none("bot_token")
        if bot_token is None:
            return ProbeResult(False, "bot token (xoxb-...) is not set")
        web = self._web_client(bot_token)
        try:
            bot = await self._whoami(web)
            if self.config.mode == "socket":
                app_token = self.secret_or_none("app_token")
                if app_token is None:
                    return ProbeResult(False, "app-level token (xapp-...) is not set; "
                                              "Socket Mode needs it")
                with self._mapped("apps.connections.open", token="app-level"):
                    await web.apps_connections_open(app_token=app_token)
            elif self.secret_or_none("signing_secret") is None:
                return ProbeResult(False, "signing secret is not set; the Events API needs it")
        except ConnectorError as exc:
            return ProbeResult(False, str(exc))
        return ProbeResult(True, f"connected as @{bot.name}")

    # ---- sending ---------------------------------------------------------------------

    async def send_part(self, address: Address, text: str, reply_to: str | None) -> str:
        """One ``chat.postMessage`` in the conversation's thread.

        Slack has no quote-reply: the thread is it, and ``address.thread`` already names
        it (a channel message is answered under itself, a DM flat unless the user wrote
        in a thread; see ``parse_event``), so ``reply_to`` adds nothing. ``& < >`` are
        escaped; a part within ``MAX_TEXT`` stays far below Slack's 40,000-character
        hard limit after escaping. A connection lost after the request went out is
        DeliveryUncertain: Slack may have posted it, and posting again would double it.
        """
        web = self._client()
        with self._mapped("chat.postMessage", sent_may_have_landed=True):
            resp = await web.chat_postMessage(channel=address.chat, text=escape_text(text),
                                              thread_ts=address.thread)
        return platform_id(str(resp.get("channel") or address.chat), str(resp.get("ts")))

    async def send_file(self, address: Address, file: OutboundFile, reply_to: str | None
                        ) -> str:
        """slack-sdk's ``files_upload_v2``: files.getUploadURLExternal (name and length),
        the bytes POSTed to the upload URL it gave, then files.completeUploadExternal
        sharing the file in the conversation's thread with the caption as its message.
        Returns the file's id. The three steps are one send: a connection lost in any of
        them may have shared it (DeliveryUncertain); a refused step is Slack's error code.
        Needs the ``files:write`` scope."""
        data = file.content()
        web = self._client()
        try:
            with self._mapped("files.upload", sent_may_have_landed=True):
                resp = await web.files_upload_v2(
                    channel=address.chat, thread_ts=address.thread, file=data,
                    filename=file.name, title=file.name,
                    initial_comment=escape_text(file.caption) if file.caption else None)
        except FatalConnectorError as exc:
            if "missing_scope" in str(exc):
                raise FatalConnectorError("Slack refused the upload: the app needs the "
                                          "files:write scope") from exc
            raise
        info = resp.get("file")
        file_id = info.get("id") if isinstance(info, dict) else None
        if not isinstance(file_id, str) or not file_id:
            raise DeliveryUncertain("Slack completed the upload but answered without the "
                                    "file's id; it is not sent again")
        return file_id

    async def edit(self, address: Address, platform_id: str, text: str) -> None:
        """chat.update the message ``send_part`` posted, escaped as it escapes.

        A 429 is RetryableError with Slack's Retry-After (the gateway waits it out); a
        lost answer is retryable too, since applying the same text twice changes
        nothing. ``message_not_found``, ``cant_update_message`` and ``msg_too_long``
        mean this message cannot take this edit.
        """
        web = self._client()
        channel, _, ts = platform_id.rpartition(":")
        if not ts:
            raise FatalConnectorError(f"not a Slack message id: {platform_id!r}")
        with self._mapped("chat.update"):
            await web.chat_update(channel=channel or address.chat, ts=ts,
                                  text=escape_text(text))

    # ---- receiving: Socket Mode --------------------------------------------------------

    async def _on_request(self, client: SocketModeClient, req: SocketModeRequest) -> None:
        """Journal, then ack; an envelope the journal could not take stays unacked (redelivered)."""
        if not self.running:
            return
        if req.type == "events_api":
            try:
                await self._deliver(req.payload, retry=req.retry_attempt)
            except PyclawError as exc:  # the journal refused (or we are stopping): no ack
                if self.running:
                    self.ctx.log("error", f"could not journal a Slack event, Slack will resend "
                                          f"it: {exc}", event_id=event_id(req.payload))
                return
        try:
            await client.send_socket_mode_response(SocketModeResponse(req.envelope_id))
        except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
            # The socket went away under us; Slack redelivers and the journal dedupes.
            self.log.info("ack for %s not sent: %s", req.envelope_id, exc)

    async def _on_frame(self, message: aiohttp.WSMessage) -> None:
        """Every text frame is traffic; a ``disconnect`` frame is worth a line in the log."""
        if not self.running:
            return
        self.ctx.heartbeat()
        with contextlib.suppress(ValueError, TypeError):
            data = json.loads(message.data)
            if isinstance(data, dict) and data.get("type") == "disconnect":
                self.ctx.log("info", f"Slack asked to reconnect ({data.get('reason')}); "
                                     "reconnecting")

    async def _on_lost(self, message: aiohttp.WSMessage) -> None:
        self._lost.set()

    def _socket_client(self, web: AsyncWebClient, app_token: str) -> SocketModeClient:
        client = SocketModeClient(
            app_token=app_token,
            web_client=web,
            auto_reconnect_enabled=False,
            logger=self.log.getChild("socket_mode"),
            on_message_listeners=[self._on_frame],
            on_close_listeners=[self._on_lost],
            on_error_listeners=[self._on_lost],
        )
        client.socket_mode_request_listeners.append(self._on_request)
        return client

    # ---- receiving: Events API over HTTP -----------------------------------------------

    async def handle_webhook(self, request: WebhookRequest) -> WebhookResponse:
        """One Events API request: signature first, then journal, then 200.

        Slack resends a request it got no 200 for within 3 s (``X-Slack-Retry-Num``);
        the resend has the same message ``ts``, so the journal answers it once.
        """
        if self.config.mode != "events":
            return WebhookResponse(404, "this Slack channel uses Socket Mode, not webhooks")
        retry = request.header("X-Slack-Retry-Num")

        async def handle(payload: Any) -> WebhookResponse | None:
            if not isinstance(payload, dict):
                raise WebhookRejected(400, "body is not a JSON object", level="error")
            if payload.get("type") == "url_verification":
                challenge = payload.get("challenge")
                return WebhookResponse(200, challenge if isinstance(challenge, str) else "")
            await self._deliver(payload, retry=retry)
            return None

        return await self.receive(request, self._verify, handle)

    def _verify(self, request: WebhookRequest) -> None:
        """Slack's ``v0`` signature over ``v0:{timestamp}:{body}``, and a five-minute window
        on the signed timestamp so a captured request cannot be replayed later."""
        if request.method != "POST":
            raise WebhookRejected(405, "Slack sends events with POST only")
        timestamp = request.header("X-Slack-Request-Timestamp")
        if not fresh_timestamp(timestamp):
            raise WebhookRejected(401, "missing or expired Slack signature timestamp "
                                       "(a replayed request?)")
        base = f"v0:{timestamp}:".encode() + request.body
        if not verify_hmac(self.secret("signing_secret"), base,
                           request.header("X-Slack-Signature"), prefix="v0="):
            raise WebhookRejected(401, "bad Slack signature")

    # ---- shared receive path ------------------------------------------------------------

    async def _deliver(self, payload: Mapping[str, Any], *, retry: object = None) -> None:
        """Parse and journal one event, after the events of its Slack conversation that
        came before it (``_order``). No group gating here: the gateway applies
        ``group_reply`` to ``is_group``/``mentioned``/``reply_to_bot``."""
        event = payload.get("event")
        async with self._order.turn(str(event.get("channel", "")) if isinstance(event, dict)
                                    else ""):
            ctx = self.ctx
            ctx.heartbeat()
            names = await self._names_of(mentioned_users(payload))
            parsed = parse_event(payload, channel=self.name, bot=self._bot, names=names)
            if parsed is None:
                ctx.log("error", "skipped a malformed Slack event", event_id=event_id(payload))
                return
            if isinstance(parsed, Ignored):
                self.log.debug("ignored %s: %s", event_id(payload), parsed.reason)
                return
            if not parsed.sender_name:
                name = await self._name_of(parsed.sender_id)
                parsed = dataclasses.replace(parsed, sender_name=name) if name else parsed
            result = await ctx.submit(parsed)
            if result.duplicate:
                self.log.debug("duplicate %s (retry %s)", parsed.platform_id, retry)

    async def _names_of(self, users: set[str]) -> dict[str, str]:
        """Display names of the users a message mentions, looked up together (at most
        ``_MAX_NAME_LOOKUPS``; the rest show as their ids)."""
        wanted = sorted(users)[:_MAX_NAME_LOOKUPS]
        found = await asyncio.gather(*(self._name_of(user) for user in wanted))
        return {user: name for user, name in zip(wanted, found, strict=True) if name}

    async def _name_of(self, user: str) -> str:
        """A user's display name from users.info (cached; best effort, never delays the ack
        long: a failed lookup is remembered as no name)."""
        if self._web is None:
            return ""
        if user not in self._names:
            name = ""
            try:
                resp = await asyncio.wait_for(self._web.users_info(user=user),
                                              _NAME_LOOKUP_TIMEOUT)
                info = resp.get("user") or {}
                profile = info.get("profile") or {}
                name = (profile.get("display_name") or info.get("real_name")
                        or info.get("name") or "")
            except (SlackClientError, aiohttp.ClientError, TimeoutError, AttributeError) as exc:
                self.log.debug("users.info %s failed: %s", user, exc)
            self._names.remember(user, name if isinstance(name, str) else "")
        return self._names[user]

    async def fetch_attachment(self, attachment: Attachment) -> AttachmentSource:
        """files.info for a fresh ``url_private_download`` (an event may carry only the
        file's id), fetched with the bot token in the Authorization header, as Slack asks.
        The token goes only to Slack's own hosts (or the configured API's)."""
        if not attachment.platform_id:
            raise AttachmentUnavailable("Slack gave no file id for it")
        try:
            with self._mapped("files.info"):
                resp = await self._client().files_info(file=attachment.platform_id)
        except FatalConnectorError as exc:
            if "missing_scope" in str(exc) or "no_permission" in str(exc):
                raise AttachmentUnavailable("Slack would not hand the file over: the app "
                                            "needs the files:read scope") from exc
            raise AttachmentUnavailable(f"Slack no longer has the file ({exc})") from exc
        info = resp.get("file")
        info = info if isinstance(info, dict) else {}
        url = info.get("url_private_download") or info.get("url_private") or attachment.url
        if not isinstance(url, str) or not url:
            raise AttachmentUnavailable("Slack did not say where the file is")
        if not self._slack_host(url):
            raise AttachmentUnavailable("the file is not on Slack's servers, so the bot token "
                                        "is not sent there")
        size = info.get("size")
        token = self.secret("bot_token")
        return AttachmentSource(url=url, headers={"Authorization": f"Bearer {token}"},
                                size=size if isinstance(size, int) else attachment.size)

    def _slack_host(self, url: str) -> bool:
        host = (urlsplit(url).hostname or "").lower()
        api = (urlsplit(self.config.base_url).hostname or "").lower()
        return host == api or host == "slack.com" or host.endswith(".slack.com")

    # ---- helpers ------------------------------------------------------------------------------

    def _web_client(self, token: str) -> AsyncWebClient:
        """The Web API client, with no retry handler of its own (``[]``, not the SDK's
        default ``AsyncConnectionErrorRetryHandler``).

        The gateway is the one retry layer. ``AsyncRateLimitErrorRetryHandler`` would sit
        out a 429 inside the call, hiding it from the gateway's backoff and the part's
        custody; a 429 is RetryableError with Retry-After instead.
        ``AsyncConnectionErrorRetryHandler`` retries ServerDisconnectedError and
        ClientOSError ("connection reset"), which also happen after the request went
        out: resending chat.postMessage then can post the message twice, so that is
        DeliveryUncertain. Only a failure to connect (ClientConnectorError, a connect
        time-out) is certainly unsent; it is RetryableError, retried by the gateway
        (sends) or by ``run_connected`` (the connection), so no SDK layer is needed for
        it either. Each call opens its own HTTP session (the SDK default), so a stale
        pooled connection cannot fail a request Slack never saw.
        """
        return AsyncWebClient(token=token, base_url=self.config.base_url, timeout=30,
                              retry_handlers=[])

    def _client(self) -> AsyncWebClient:
        if self._web is None or not self.running:
            raise RetryableError(f"Slack channel {self.name!r} is not running")
        return self._web

    async def _whoami(self, web: AsyncWebClient) -> BotIdentity:
        with self._mapped("auth.test"):
            resp = await web.auth_test()
        return BotIdentity(user_id=str(resp.get("user_id") or ""),
                           bot_id=str(resp.get("bot_id") or ""),
                           name=str(resp.get("user") or "bot"))

    @contextlib.contextmanager
    def _mapped(self, method: str, token: str = "bot", *,
                sent_may_have_landed: bool = False) -> Iterator[None]:
        """SDK and network errors -> pyclaw's retryable/fatal/uncertain split, in one place.

        ``sent_may_have_landed``: the call is not idempotent (chat.postMessage), so a
        connection that failed after the request went out is DeliveryUncertain.
        """
        try:
            yield
        except SlackApiError as exc:
            status, code = _status_and_code(exc)
            if status == 429 or status >= 500 or code in _TRANSIENT_ERRORS:
                raise RetryableError(f"Slack {method} failed: {code}",
                                     retry_after=_retry_after(exc)) from None
            if code in _TOKEN_ERRORS:
                raise FatalConnectorError(f"Slack rejected the {token} token ({code})") from None
            raise FatalConnectorError(f"Slack {method} failed: {code}") from None
        except _NOT_SENT as exc:
            raise RetryableError(f"Slack unreachable at {self.config.base_url} "
                                 f"({type(exc).__name__}: {exc})") from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            what = f"{type(exc).__name__}: {exc}".rstrip(": ")
            if sent_may_have_landed:
                raise DeliveryUncertain(f"Slack {method}: the connection failed after the "
                                        f"request went out ({what}); it may have been "
                                        "posted, so it is not sent again") from None
            raise RetryableError(f"Slack {method} failed ({what})") from None
        except SlackClientError as exc:
            raise RetryableError(f"Slack {method} failed: {exc}") from None


def _status_and_code(exc: SlackApiError) -> tuple[int, str]:
    response = exc.response
    status = int(getattr(response, "status_code", None) or getattr(response, "status", 0) or 0)
    code = ""
    with contextlib.suppress(AttributeError, TypeError):
        code = str(response.get("error") or "")
    return status, code or f"HTTP {status}"


def _retry_after(exc: SlackApiError) -> float | None:
    headers = getattr(exc.response, "headers", None) or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


CONNECTOR = SlackConnector
