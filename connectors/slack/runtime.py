"""The Slack connector: slack-sdk's AsyncWebClient sends; Socket Mode or HTTP events receive.

Receiving journals first and acknowledges after: a Socket Mode envelope is
acked only once ``ctx.submit`` returned (Slack redelivers unacked envelopes,
the journal recognises the repeat), an Events API request gets its 200 only
then. Envelopes are journaled one at a time in arrival order so a burst keeps
its order. slack-sdk's own reconnect loop is switched off: a supervisor task
reconnects with :class:`Backoff`, tells the channel log and state about it,
and stops for good on a revoked token instead of retrying forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from pyclaw_app.channels import Connector, ConnectorContext, ProbeResult, split_text
from connectors.slack._parse import (
    BotIdentity,
    Ignored,
    escape_text,
    event_id,
    parse_event,
    platform_id,
)
from connectors.slack.manifest import MAX_TEXT, SPEC, SlackConfig
from pyclaw_app.backoff import Backoff
from pyclaw_app.errors import ConnectorError, FatalConnectorError, PyclawError, RetryableError
from pyclaw_app.model import Address, ChannelState, Inbound, Outbound

__all__ = ["CONNECTOR", "SlackConnector"]

_log = logging.getLogger(__name__)

_RATE_LIMIT_RETRIES = 3
"""429s the SDK sits out (sleeping Retry-After) per call before we raise RetryableError."""
_CONNECT_TIMEOUT = 20.0
_WATCH_INTERVAL = 1.0
"""How often the supervisor checks the socket (cheap: no I/O); an aborted TCP connection
sends no close frame, so this bounds how long a silent drop goes unnoticed."""
_PARTIAL_KEEP = 256
"""Half-sent replies remembered so the gateway's retry does not post their first parts twice."""
_NAME_LOOKUP_TIMEOUT = 1.5
"""users.info must not eat Slack's 3-second ack window."""

# Error codes after which retrying the same call cannot succeed.
_TOKEN_ERRORS = frozenset({
    "not_authed", "invalid_auth", "account_inactive", "token_revoked", "token_expired",
    "not_allowed_token_type", "no_permission", "missing_scope", "team_access_not_granted",
    "ekm_access_denied", "org_login_required",
})
_TRANSIENT_ERRORS = frozenset({
    "ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout",
})


class SlackConnector(Connector):
    spec = SPEC
    config: SlackConfig

    def __init__(self, name: str, config: SlackConfig) -> None:
        super().__init__(name, config)
        self._logger = _log.getChild(name)
        self._ctx: ConnectorContext | None = None
        self._web: AsyncWebClient | None = None
        self._socket: SocketModeClient | None = None
        self._bot = BotIdentity(user_id="")
        self._supervisor: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._order = asyncio.Lock()
        self._names: dict[str, str] = {}
        self._partial: dict[int, list[str]] = {}  # journal id -> parts posted before a failure

    # ---- lifecycle -----------------------------------------------------------------

    async def start(self, ctx: ConnectorContext) -> None:
        """Connect; a bad token raises, an unreachable Slack leaves a supervisor retrying."""
        if self._ctx is not None:
            raise RuntimeError(f"slack channel {self.name!r} is already started")
        self._ctx = ctx
        ctx.set_state(ChannelState.CONNECTING, "connecting to Slack")
        try:
            self._web = self._web_client(self._secret("bot_token", "bot token"))
            if self.config.mode == "socket":
                self._socket = self._socket_client(self._web)
            else:
                self._secret("signing_secret", "signing secret")
            try:
                await self._open()
                connected = True
            except RetryableError as exc:
                connected = False
                ctx.set_state(ChannelState.DEGRADED, str(exc))
                ctx.log("warning", f"Slack not reachable yet, retrying in the background: {exc}")
        except FatalConnectorError as exc:
            ctx.set_state(ChannelState.OFFLINE, str(exc))
            ctx.log("error", f"could not start: {exc}")
            await self._teardown()
            self._ctx = None
            raise
        if connected:
            how = "Socket Mode" if self.config.mode == "socket" else "Events API"
            ctx.set_state(ChannelState.ONLINE, f"connected as @{self._bot.name}")
            ctx.log("info", f"connected as @{self._bot.name} ({how})")
            ctx.heartbeat()
        if self.config.mode == "socket" or not connected:
            self._supervisor = asyncio.create_task(
                self._supervise(connected=connected), name=f"slack:{self.name}:supervisor")

    async def stop(self) -> None:
        await self._teardown()
        if self._ctx is not None:
            self._ctx.set_state(ChannelState.STOPPED, "stopped")
            self._ctx = None

    async def _teardown(self) -> None:
        task, self._supervisor = self._supervisor, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        client, self._socket = self._socket, None
        if client is not None:
            await client.close()
            # close() only cancels the SDK's tasks; wait for them so none outlives us.
            pending = [t for t in (client.message_processor, client.current_session_monitor,
                                   client.message_receiver) if t is not None]
            await asyncio.gather(*pending, return_exceptions=True)
        self._web = None

    async def probe(self) -> ProbeResult:
        """auth.test for the bot token; in Socket Mode also apps.connections.open, the only
        call an app-level token can make (the URL it returns is simply left unused)."""
        bot_token = self._secret_or_none("bot_token")
        if bot_token is None:
            return ProbeResult(False, "bot token (xoxb-...) is not set")
        web = self._web_client(bot_token)
        try:
            bot = await self._whoami(web)
            if self.config.mode == "socket":
                app_token = self._secret_or_none("app_token")
                if app_token is None:
                    return ProbeResult(False, "app-level token (xapp-...) is not set; "
                                              "Socket Mode needs it")
                with self._mapped("apps.connections.open", token="app-level"):
                    await web.apps_connections_open(app_token=app_token)
            elif self._secret_or_none("signing_secret") is None:
                return ProbeResult(False, "signing secret is not set; the Events API needs it")
        except ConnectorError as exc:
            return ProbeResult(False, str(exc))
        return ProbeResult(True, f"connected as @{bot.name}")

    # ---- sending ---------------------------------------------------------------------

    async def send(self, outbound: Outbound) -> list[str]:
        """Post each part in the conversation's thread (Slack has no quote-reply: the thread is it).

        Parts are cut at :data:`MAX_TEXT` characters before escaping ``& < >``; the
        escaped part stays far below Slack's 40,000-character hard limit.
        """
        web = self._web
        if web is None:
            raise ConnectorError(f"slack channel {self.name!r} is not running")
        chat, thread = outbound.address.chat, outbound.address.thread
        key = outbound.journal_id
        ids = self._partial.pop(key, []) if key is not None else []
        parts = [p for p in split_text(outbound.text, MAX_TEXT) if p.strip()]
        for part in parts[len(ids):]:  # a retried reply resumes after the parts already posted
            try:
                with self._mapped("chat.postMessage"):
                    resp = await web.chat_postMessage(channel=chat, text=escape_text(part),
                                                      thread_ts=thread)
            except ConnectorError:
                if key is not None and ids:
                    self._partial[key] = ids
                    while len(self._partial) > _PARTIAL_KEEP:
                        self._partial.pop(next(iter(self._partial)))
                raise
            ids.append(platform_id(str(resp.get("channel") or chat), str(resp.get("ts"))))
        return ids

    async def edit(self, address: Address, platform_id: str, text: str) -> None:
        """chat.update the message ``send`` posted, escaped as ``send`` escapes it.

        429s are sat out by the SDK's retry handler as for ``send``; past its retries
        they become RetryableError. ``message_not_found``, ``cant_update_message``
        and ``edit_window_closed`` mean this message can no longer be changed.
        """
        web = self._web
        if web is None:
            raise ConnectorError(f"slack channel {self.name!r} is not running")
        channel, _, ts = platform_id.rpartition(":")
        if not ts:
            raise FatalConnectorError(f"not a Slack message id: {platform_id!r}")
        with self._mapped("chat.update"):
            await web.chat_update(channel=channel or address.chat, ts=ts,
                                  text=escape_text(text))

    # ---- receiving: Socket Mode --------------------------------------------------------

    async def _on_request(self, client: SocketModeClient, req: SocketModeRequest) -> None:
        """Journal, then ack; an envelope the journal could not take stays unacked (redelivered)."""
        async with self._order:
            try:
                if req.type == "events_api":
                    await self._deliver(req.payload, retry=req.retry_attempt)
            except PyclawError as exc:
                self._log_ctx("error", f"could not journal a Slack event, Slack will resend "
                                       f"it: {exc}", event_id=event_id(req.payload))
                return
        try:
            await client.send_socket_mode_response(SocketModeResponse(req.envelope_id))
        except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
            # The socket went away under us; Slack redelivers and the journal dedupes.
            self._logger.info("ack for %s not sent: %s", req.envelope_id, exc)

    async def _on_frame(self, message: aiohttp.WSMessage) -> None:
        """Every text frame is traffic; a ``disconnect`` frame is worth a line in the log."""
        if self._ctx is None:
            return
        self._ctx.heartbeat()
        with contextlib.suppress(ValueError, TypeError):
            data = json.loads(message.data)
            if isinstance(data, dict) and data.get("type") == "disconnect":
                self._ctx.log("info", f"Slack asked to reconnect ({data.get('reason')}); "
                                      "reconnecting")

    async def _on_lost(self, message: aiohttp.WSMessage) -> None:
        self._wake.set()

    def _socket_client(self, web: AsyncWebClient) -> SocketModeClient:
        client = SocketModeClient(
            app_token=self._secret("app_token", "app-level token"),
            web_client=web,
            auto_reconnect_enabled=False,
            logger=self._logger.getChild("socket_mode"),
            on_message_listeners=[self._on_frame],
            on_close_listeners=[self._on_lost],
            on_error_listeners=[self._on_lost],
        )
        client.socket_mode_request_listeners.append(self._on_request)
        return client

    async def _connect(self, client: SocketModeClient) -> None:
        """Open a fresh Socket Mode URL and connect, unless the SDK already reconnected."""
        async with client.connect_operation_lock:
            if await client.is_connected():
                return
            with self._mapped("apps.connections.open", token="app-level"):
                client.wss_uri = await client.issue_new_wss_url()
            try:
                await asyncio.wait_for(client.connect(), _CONNECT_TIMEOUT)
            except TimeoutError:
                raise RetryableError(f"Socket Mode connection did not open within "
                                     f"{_CONNECT_TIMEOUT:.0f}s") from None

    async def _open(self) -> None:
        """Learn who the bot is (once), then open the socket in Socket Mode."""
        assert self._web is not None
        if not self._bot.user_id:
            self._bot = await self._whoami(self._web)
        if self._socket is not None:
            await self._connect(self._socket)

    async def _supervise(self, *, connected: bool) -> None:
        """Watch the socket and reconnect with backoff; in Events API mode only finish starting."""
        backoff = Backoff()
        while True:
            if connected:
                if self._socket is None:
                    return  # Events API: nothing to watch, Slack comes to us
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), _WATCH_INTERVAL)
                self._wake.clear()
                if await self._socket.is_connected():
                    self._heartbeat()
                    continue
                self._set_state(ChannelState.DEGRADED, "connection lost; reconnecting")
                self._log_ctx("warning", "Slack connection lost; reconnecting")
            while True:
                await asyncio.sleep(backoff.next_delay())
                try:
                    await self._open()
                    break
                except FatalConnectorError as exc:
                    self._set_state(ChannelState.OFFLINE, str(exc))
                    self._log_ctx("error", f"giving up: {exc}")
                    return
                except RetryableError as exc:
                    self._log_ctx("warning", f"reconnect failed: {exc}",
                                  attempt=backoff.attempts)
            connected = True
            backoff.reset()
            self._set_state(ChannelState.ONLINE, f"connected as @{self._bot.name}")
            self._log_ctx("info", "reconnected to Slack")

    # ---- receiving: Events API over HTTP -----------------------------------------------

    async def handle_webhook(self, headers: Mapping[str, str], body: bytes) -> tuple[int, str]:
        """One Events API request: signature first, then journal, then 200.

        Slack resends a request it got no 200 for within 3 s (``X-Slack-Retry-Num``);
        the resend has the same message ``ts``, so the journal answers it once.
        """
        ctx = self._ctx
        secret = self._secret_or_none("signing_secret")
        if ctx is None or self.config.mode != "events" or secret is None:
            return 503, "channel is not receiving Events API requests"
        lower = {k.lower(): v for k, v in headers.items()}
        verifier = SignatureVerifier(secret)
        timestamp = lower.get("x-slack-request-timestamp", "")
        signature = lower.get("x-slack-signature", "")
        # The SDK's verifier raises on a non-numeric timestamp: an unsigned request is a forgery.
        if not (timestamp.isdigit() and signature
                and verifier.is_valid(body, timestamp, signature)):
            ctx.log("warning", "rejected an Events API request: bad or expired Slack signature")
            return 401, "invalid signature"
        try:
            payload = json.loads(body)
        except ValueError:
            ctx.log("error", "skipped an Events API request whose body is not JSON")
            return 400, "body is not JSON"
        if not isinstance(payload, dict):
            ctx.log("error", "skipped an Events API request whose body is not a JSON object")
            return 400, "body is not a JSON object"
        if payload.get("type") == "url_verification":
            challenge = payload.get("challenge")
            return 200, challenge if isinstance(challenge, str) else ""
        try:
            await self._deliver(payload, retry=lower.get("x-slack-retry-num"))
        except PyclawError as exc:
            ctx.log("error", f"could not journal a Slack event, Slack will resend it: {exc}",
                    event_id=event_id(payload))
            return 500, "not stored"
        return 200, ""

    # ---- shared receive path ------------------------------------------------------------

    async def _deliver(self, payload: Mapping[str, Any], *, retry: object = None) -> None:
        ctx = self._ctx
        if ctx is None:
            return
        ctx.heartbeat()
        parsed = parse_event(payload, channel=self.name, bot=self._bot)
        if parsed is None:
            ctx.log("error", "skipped a malformed Slack event", event_id=event_id(payload))
            return
        if isinstance(parsed, Ignored):
            self._logger.debug("ignored %s: %s", event_id(payload), parsed.reason)
            return
        if (parsed.is_group and self.config.require_mention
                and not (parsed.mentioned or parsed.reply_to_bot)):
            return
        result = await ctx.submit(await self._named(parsed))
        if result.duplicate:
            self._logger.debug("duplicate %s (retry %s)", parsed.platform_id, retry)

    async def _named(self, inbound: Inbound) -> Inbound:
        """Fill ``sender_name`` from users.info (cached; best effort, never delays the ack long)."""
        if inbound.sender_name or self._web is None:
            return inbound
        user = inbound.sender_id
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
                self._logger.debug("users.info %s failed: %s", user, exc)
            self._names[user] = name if isinstance(name, str) else ""
        name = self._names[user]
        if not name:
            return inbound
        return dataclasses.replace(inbound, sender_name=name)

    # ---- helpers ------------------------------------------------------------------------------

    def _web_client(self, token: str) -> AsyncWebClient:
        return AsyncWebClient(
            token=token,
            base_url=self.config.base_url,
            timeout=30,
            retry_handlers=[
                AsyncConnectionErrorRetryHandler(max_retry_count=2),
                AsyncRateLimitErrorRetryHandler(max_retry_count=_RATE_LIMIT_RETRIES),
            ],
        )

    async def _whoami(self, web: AsyncWebClient) -> BotIdentity:
        with self._mapped("auth.test"):
            resp = await web.auth_test()
        return BotIdentity(user_id=str(resp.get("user_id") or ""),
                           bot_id=str(resp.get("bot_id") or ""),
                           name=str(resp.get("user") or "bot"))

    def _secret_or_none(self, field: str) -> str | None:
        value = getattr(self.config, field)
        secret = value.get_secret_value() if value is not None else ""
        return secret or None

    def _secret(self, field: str, label: str) -> str:
        secret = self._secret_or_none(field)
        if secret is None:
            raise FatalConnectorError(f"the Slack {label} is not set")
        return secret

    @contextlib.contextmanager
    def _mapped(self, method: str, token: str = "bot") -> Iterator[None]:
        """SDK and network errors -> pyclaw's fatal/retryable split, in one place."""
        try:
            yield
        except SlackApiError as exc:
            code = str(exc.response.get("error") or f"HTTP {exc.response.status_code}")
            if exc.response.status_code == 429 or code in _TRANSIENT_ERRORS:
                raise RetryableError(f"Slack {method} failed: {code}",
                                     retry_after=_retry_after(exc)) from None
            if code in _TOKEN_ERRORS:
                raise FatalConnectorError(f"Slack rejected the {token} token ({code})") from None
            raise FatalConnectorError(f"Slack {method} failed: {code}") from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise RetryableError(f"Slack unreachable at {self.config.base_url} "
                                 f"({type(exc).__name__}: {exc})") from None
        except SlackClientError as exc:
            raise RetryableError(f"Slack {method} failed: {exc}") from None

    def _log_ctx(self, level: str, message: str, **data: Any) -> None:
        if self._ctx is not None:
            self._ctx.log(level, message, **data)

    def _set_state(self, state: ChannelState, reason: str) -> None:
        if self._ctx is not None:
            self._ctx.set_state(state, reason)

    def _heartbeat(self) -> None:
        if self._ctx is not None:
            self._ctx.heartbeat()


def _retry_after(exc: SlackApiError) -> float | None:
    value = exc.response.headers.get("Retry-After") or exc.response.headers.get("retry-after")
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


CONNECTOR = SlackConnector
