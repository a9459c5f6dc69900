"""The signed webhook connector: our own small protocol for callers without a channel.

Requests are verified like Slack's Events API: an HMAC-SHA256 over
``"<timestamp>." + raw body`` with the shared secret, and a timestamp within five
minutes of our clock, so a captured request cannot be replayed later (a replay
inside the window carries the same ``id`` and is a duplicate for the journal).

Replies leave through ``send_part`` in both modes, so the journal's custody of
every part is the same as on any platform:

* ``callback``: each part is POSTed, signed the same way, to the callback URL with
  ``ChannelHttp`` (429/5xx retryable, other 4xx fatal, a lost answer uncertain).
  The URL is the configured one, or, with ``allow_request_callback``, the one the
  conversation's latest request named, but only on an allowlisted host: checked
  before the message is stored, so a refused request leaves nothing to send.
  Parts after the first carry no ``reply_to`` (the gateway gives it to the first
  only); lanes answer one message per conversation at a time, so a chat's current
  reply is what a later part continues.
* ``sync``: the request waits on a future keyed by (chat, id); ``send_part`` with
  that address and ``reply_to`` completes it instead of POSTing, and the request is
  answered 200 ``{"reply"}``. A reply is one part in this mode (``limits``), since
  nothing tells the channel which part of a split reply is the last. After
  ``sync_timeout`` the request is answered 202 and the future dropped, so the part
  goes to the callback like any other.

Files come inline as base64 (``_parse``) and are held in memory from before the message
is stored until it is answered (``_files``); ``fetch_attachment`` reads them from there.
A ``url`` a request names is never fetched.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from connectors.webhook._files import InlineFiles, token_of
from connectors.webhook._parse import Malformed, Ping, WebhookMessage, parse_request
from connectors.webhook.manifest import SPEC, SYNC_MAX_TEXT, WebhookConfig
from pyclaw_app.channels import (
    ChannelHttp,
    ConnectorBase,
    Limits,
    ProbeResult,
    Recent,
    WebhookRejected,
    WebhookRequest,
    WebhookResponse,
    fresh_timestamp,
    hmac_digest,
    verify_hmac,
)
from pyclaw_app.channels.contract import AttachmentSource
from pyclaw_app.errors import ConnectorError, FatalConnectorError, RetryableError
from pyclaw_app.model import Address, Attachment

__all__ = ["SIGNATURE", "TIMESTAMP", "WebhookConnector", "sign"]

TIMESTAMP = "X-Pyclaw-Timestamp"
SIGNATURE = "X-Pyclaw-Signature"
CALLBACK_STATE = "callback:"
"""``ctx.state`` key prefix: the callback URL a chat's latest request named (kept across
restarts, so a reply finished after one still reaches it)."""
KEPT = 1000


def sign(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The headers that sign ``body``: the same for requests and for callbacks."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac_digest(secret, f"{stamp}.".encode() + body).hex()
    return {TIMESTAMP: stamp, SIGNATURE: f"sha256={digest}",
            "Content-Type": "application/json"}


@dataclass(slots=True)
class _Reply:
    """The reply a chat's parts currently belong to."""

    in_reply_to: str | None
    part: int


class WebhookConnector(ConnectorBase):
    spec = SPEC
    config: WebhookConfig

    def __init__(self, name: str, config: WebhookConfig) -> None:
        super().__init__(name, config)
        self._http: ChannelHttp | None = None
        self._waiters: dict[tuple[str, str], asyncio.Future[str]] = {}
        self._replies: Recent[str, _Reply] = Recent(KEPT)
        self._callbacks: Recent[str, str] = Recent(KEPT)
        """chat -> the callback URL its latest request named ("" for none)."""
        self._inline: InlineFiles | None = None

    @property
    def limits(self) -> Limits:
        if self.config.reply_mode == "sync":
            return Limits(max_text=SYNC_MAX_TEXT)
        return Limits(max_text=self.config.max_text)

    async def open(self) -> None:
        secret = self.secret("secret")  # nothing can be verified without it: refuse to start
        if self.config.callback_url:
            _check_url(self.config.callback_url, "callback_url")
        self._http = self._client(secret)
        self._inline = InlineFiles()
        target = urlsplit(self.config.callback_url).netloc if self.config.callback_url else ""
        self.went_online(f"ready: waiting for signed requests"
                         f"{f'; replies to {target}' if target else ''}")

    async def close(self) -> None:
        for waiter in self._waiters.values():
            waiter.cancel()  # the held requests are answered 202 (their reply: the callback)
        self._waiters.clear()
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def probe(self) -> ProbeResult:
        try:
            secret = self.secret("secret")
            if not self.config.callback_url:
                return ProbeResult(True, "ready: waiting for signed requests")
            _check_url(self.config.callback_url, "callback_url")
            http = self._client(secret)
            try:
                await self._post(http, self.config.callback_url, {"type": "ping"})
            finally:
                await http.close()
        except ConnectorError as exc:
            return ProbeResult(False, str(exc))
        return ProbeResult(True, f"callback {urlsplit(self.config.callback_url).netloc} "
                           "answered the signed ping")

    # ---- sending --------------------------------------------------------------------------

    async def send_part(self, address: Address, text: str, reply_to: str | None) -> str:
        if reply_to is not None:
            await self._files().drop(token_of(address.chat, reply_to))  # answered: read
            waiter = self._waiters.pop((address.chat, reply_to), None)
            if waiter is not None and not waiter.done():
                waiter.set_result(text)  # the held request answers with it
                return f"sync-{uuid.uuid4().hex}"
        http = self._running()
        url = await self._callback_for(address.chat)
        held = self._replies.get(address.chat)
        current = _Reply(reply_to, 1) if reply_to is not None or held is None else \
            _Reply(held.in_reply_to, held.part + 1)
        answer = await self._post(http, url, {"in_reply_to": current.in_reply_to,
                                              "chat": address.chat, "text": text,
                                              "part": current.part})
        self._replies.remember(address.chat, current)  # only once the part went out
        given = answer.get("id") if isinstance(answer, dict) else None
        if isinstance(given, str | int) and not isinstance(given, bool) and str(given):
            return str(given)
        return f"{current.in_reply_to or 'msg'}:{current.part}:{uuid.uuid4().hex[:8]}"

    async def _post(self, http: ChannelHttp, url: str, payload: dict[str, Any]) -> Any:
        body = json.dumps(payload, ensure_ascii=False).encode()
        answer = await http.call("POST", url, data=body,
                                 headers=sign(self.secret("secret"), body))
        return answer.data

    async def _callback_for(self, chat: str) -> str:
        url: str | None = None
        if self.config.allow_request_callback:
            url = self._callbacks.get(chat)
            if url is None:  # not seen since a restart: what its latest request named
                stored = await self.ctx.state.get(CALLBACK_STATE + chat)
                url = stored if isinstance(stored, str) else ""
                self._callbacks.remember(chat, url)
            if url and self._allowed(url) is not None:
                url = ""  # the allowlist changed since: never POST outside it
        url = url or self.config.callback_url
        if not url:
            raise FatalConnectorError("no callback URL to send the reply to: set callback_url "
                                      "in this channel's settings (or use reply_mode sync)")
        return url

    # ---- receiving ------------------------------------------------------------------------

    async def fetch_attachment(self, attachment: Attachment) -> AttachmentSource:
        return await self._files().source(attachment)

    def _files(self) -> InlineFiles:
        if self._inline is None or not self.running:
            raise RetryableError(f"webhook channel {self.name!r} is not running")
        return self._inline

    async def handle_webhook(self, request: WebhookRequest) -> WebhookResponse:
        return await self.receive(request, self._verify, self._deliver)

    def _verify(self, request: WebhookRequest) -> None:
        if request.method != "POST":
            raise WebhookRejected(405, "signed webhook requests are POSTs")
        stamp = request.header(TIMESTAMP)
        if not fresh_timestamp(stamp):
            raise WebhookRejected(401, f"missing or stale {TIMESTAMP} (more than 5 minutes "
                                  "from our clock: refused as a replay)")
        message = f"{stamp.strip()}.".encode() + request.body  # type: ignore[union-attr]
        if not verify_hmac(self.secret("secret"), message, request.header(SIGNATURE),
                           prefix="sha256="):
            raise WebhookRejected(401, f"bad or missing {SIGNATURE}")

    async def _deliver(self, payload: Any) -> WebhookResponse:
        parsed = parse_request(payload, channel=self.name)
        if isinstance(parsed, Malformed):
            raise WebhookRejected(400, parsed.reason, level="error")
        if isinstance(parsed, Ping):
            return _json(200, {"ok": True})
        await self._take_callback(parsed)
        inbound = parsed.inbound
        key = (inbound.address.chat, inbound.platform_id)
        waiter: asyncio.Future[str] | None = None
        if self.config.reply_mode == "sync" and key not in self._waiters:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters[key] = waiter  # before submit: the reply may be quicker than us
        token = token_of(*key)
        held = bool(parsed.files) and await self._files().hold(token, parsed.files)
        try:
            result = await self.ctx.submit(inbound)
            status = "duplicate" if result.duplicate else "ignored" if result.ignored else \
                "quarantined" if result.quarantined else "accepted"
            if held and status != "accepted":
                await self._files().drop(token)  # it will not be answered: nothing reads them
            if waiter is None or status != "accepted":
                return _json(202, {"id": inbound.platform_id, "status": status})
            await asyncio.wait({waiter}, timeout=self.config.sync_timeout)
        finally:
            if waiter is not None and self._waiters.get(key) is waiter:
                del self._waiters[key]  # from here on a part for it goes to the callback
        if waiter.done() and not waiter.cancelled():
            return _json(200, {"id": inbound.platform_id, "chat": inbound.address.chat,
                               "reply": waiter.result()})
        waiter.cancel()
        return _json(202, {"id": inbound.platform_id, "status": "timeout"})

    async def _take_callback(self, parsed: WebhookMessage) -> None:
        """A request's own callback_url: refused (403, before anything is stored) unless
        allowed and on an allowlisted host; then the chat's replies go there. A request
        without one sends its chat's replies back to the configured callback_url."""
        url, chat = parsed.callback_url, parsed.inbound.address.chat
        if url is not None:
            refusal = self._allowed(url)
            if refusal is not None:
                raise WebhookRejected(403, refusal)
        if not self.config.allow_request_callback:
            return
        if self._callbacks.get(chat) != (url or ""):
            if url is None:
                await self.ctx.state.delete(CALLBACK_STATE + chat)
            else:
                await self.ctx.state.set(CALLBACK_STATE + chat, url)
            self._callbacks.remember(chat, url or "")

    def _allowed(self, url: str) -> str | None:
        """Why ``url`` may not be a request's callback, or None when it may."""
        if not self.config.allow_request_callback:
            return "callback_url in a request is not accepted (allow_request_callback is off)"
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return "callback_url is not a valid URL"
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or not host or parts.username is not None:
            return "callback_url must be an http or https URL without credentials"
        port = port or (443 if parts.scheme == "https" else 80)
        for entry in self.config.callback_hosts:
            allowed_host, allowed_port = _host_port(entry)
            if allowed_host == host and allowed_port in (None, port):
                return None
        return f"callback_url host {host!r} is not in callback_hosts"

    # ---- helpers --------------------------------------------------------------------------

    def _client(self, secret: str) -> ChannelHttp:
        return ChannelHttp(self.config.callback_url or "http://callback.invalid",
                           platform="webhook callback", secrets=[secret], describe=_describe)

    def _running(self) -> ChannelHttp:
        if self._http is None or not self.running:
            raise RetryableError(f"webhook channel {self.name!r} is not running")
        return self._http


def _check_url(url: str, field: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FatalConnectorError(f"{field} must be an http or https URL, not {url!r}")


def _host_port(entry: str) -> tuple[str, int | None]:
    """A ``callback_hosts`` entry: ``host``, ``host:port``, ``[v6]`` or ``[v6]:port``."""
    entry = entry.strip().lower()
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest.removeprefix(":")
    elif entry.count(":") == 1:
        host, _, port = entry.partition(":")
    else:
        host, port = entry, ""
    return host, int(port) if port.isdigit() else None


def _describe(body: Any) -> str | None:
    if isinstance(body, dict):
        for key in ("error", "message", "detail"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return None


def _json(status: int, data: dict[str, Any]) -> WebhookResponse:
    return WebhookResponse(status, json.dumps(data, ensure_ascii=False),
                           content_type="application/json")


CONNECTOR = WebhookConnector
