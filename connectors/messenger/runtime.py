"""The Messenger connector: signed Page webhooks in, ``POST /{version}/me/messages`` out.

No SDK: Meta publishes none for Python, and the calls are three (who the Page is, send a
text, send a sender action). They go through the kit's ``ChannelHttp`` with the Page
access token in the ``Authorization: Bearer`` header (as Meta's own Postman collection
for the Send API sends it), never in a URL, plus an ``appsecret_proof`` so apps with
"Require app secret" switched on work too. Graph error codes are sorted in ``_graph``.

The standard messaging window: a Page may answer for 24 hours after the person's last
message. Outside it Messenger refuses a ``RESPONSE`` (error 10/2018278); with
``message_tag`` set, the connector sends the same part once more as ``MESSAGE_TAG``
with that tag and says so in the channel log; without one, the part fails with an error
that says why and what to set. Nothing else is tracked: Meta's answer is the authority.

Seen receipts: the message being answered is marked seen when its answer starts (by
``typing``, before ``typing_on``, or by the first part), not when it was stored, because
the gateway may never answer it (pairing, rate limit). A failed receipt is logged and
never fails a reply.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from connectors.messenger._graph import OutsideWindow, describe, graph_error
from connectors.messenger._parse import (
    Elsewhere,
    Ignored,
    Malformed,
    Message,
    PolicyNotice,
    parse_payload,
)
from connectors.messenger.manifest import SPEC, MessengerConfig
from connectors.meta_webhook import challenge, check_signature, check_subscription
from pyclaw_app.channels import (
    ChannelHttp,
    Recent,
    RestConnector,
    WebhookRejected,
    WebhookRequest,
    WebhookResponse,
)
from pyclaw_app.channels.contract import AttachmentSource, AttachmentUnavailable
from pyclaw_app.errors import ConnectorError, FatalConnectorError
from pyclaw_app.model import Address, Attachment

__all__ = ["CONNECTOR", "MessengerConnector"]

KEPT = 1000
"""Chats whose newest message id is kept (for seen receipts), and ids remembered."""
_POLICY_LEVELS = {"unblock": "info", "warning": "warning", "block": "error"}


class MessengerConnector(RestConnector):
    spec = SPEC
    config: MessengerConfig

    def __init__(self, name: str, config: MessengerConfig) -> None:
        super().__init__(name, config)
        self._page_id = ""
        self._latest: Recent[str, str] = Recent(KEPT)  # chat -> newest inbound mid
        self._seen: Recent[str, None] = Recent(KEPT)  # inbound mids marked seen
        self._sent: Recent[str, None] = Recent(KEPT)  # mids the Page sent (reply_to_bot)
        self._tagged: set[str] = set()  # chats told about the tag since they last wrote
        self._elsewhere: set[str] = set()  # other Pages / objects already warned about

    def check_config(self) -> None:
        self.secret("app_secret")  # no secret, no verifiable webhook: refuse to start
        self.secret("verify_token")

    # ---- sending --------------------------------------------------------------------------

    async def send_part(self, address: Address, text: str, reply_to: str | None) -> str:
        http = self.http
        if reply_to and self.config.mark_seen and reply_to not in self._seen:
            await self._mark_seen(http, address.chat, reply_to)
        try:
            return await self._send(http, address.chat, text)
        except OutsideWindow as exc:
            return await self._outside_window(http, address.chat, text, exc)

    async def typing(self, address: Address) -> None:
        """``typing_on`` (shown for 20 s or until the next message); the gateway repeats it.
        The newest message of the chat is marked seen first, once."""
        http, chat = self.http, address.chat
        newest = self._latest.get(chat)
        if newest is not None and self.config.mark_seen and newest not in self._seen:
            await self._mark_seen(http, chat, newest)
        await self._action(http, chat, "typing_on")

    async def _send(self, http: ChannelHttp, psid: str, text: str, tag: str = "") -> str:
        body: dict[str, Any] = {"recipient": {"id": psid}, "message": {"text": text},
                                "messaging_type": "MESSAGE_TAG" if tag else "RESPONSE"}
        if tag:
            body["tag"] = tag
        answer = await http.call("POST", self._path("me/messages"), json_body=body,
                                 params=self._proof())
        mid = str(answer.data.get("message_id") or "") if isinstance(answer.data, dict) else ""
        if mid:
            self._sent.remember(mid, None)
        return mid

    async def _outside_window(self, http: ChannelHttp, psid: str, text: str,
                              refused: OutsideWindow) -> str:
        """Messenger refused the part because ``psid`` last wrote over 24 hours ago: send it
        with the configured message tag, or fail with what to do about it."""
        tag = self.config.message_tag
        if not tag:
            raise FatalConnectorError(
                f"Messenger refused the reply: {psid} last wrote more than 24 hours ago, and "
                "outside that standard messaging window a Page may not send ordinary replies "
                f"({refused}); set message_tag to the tag this kind of message qualifies for "
                "(HUMAN_AGENT for a person answering within 7 days), or wait until they "
                "write again") from None
        try:
            mid = await self._send(http, psid, text, tag)
        except OutsideWindow as again:
            raise FatalConnectorError(
                f"Messenger refused the reply to {psid} outside the 24-hour window even with "
                f"the message tag {tag} ({again}); HUMAN_AGENT reaches people only up to 7 "
                "days after they wrote, and needs Meta's Human Agent permission") from None
        if psid not in self._tagged:
            self._tagged.add(psid)
            self.ctx.log("warning", f"{psid} last wrote more than 24 hours ago, so Messenger "
                         f"refused a standard reply; sent it with the message tag {tag} "
                         "instead (tags are only for what their policy allows)")
        return mid

    async def _mark_seen(self, http: ChannelHttp, psid: str, mid: str) -> None:
        try:
            await self._action(http, psid, "mark_seen")
        except ConnectorError as exc:
            self.log.info("seen receipt for %s failed: %s", mid, exc)
            return
        self._seen.remember(mid, None)

    async def _action(self, http: ChannelHttp, psid: str, action: str) -> None:
        await http.call("POST", self._path("me/messages"), params=self._proof(),
                        json_body={"recipient": {"id": psid}, "sender_action": action},
                        idempotent=True)

    # ---- receiving ------------------------------------------------------------------------

    async def handle_webhook(self, request: WebhookRequest) -> WebhookResponse:
        if request.method == "GET":
            return await self.receive(request, self._verify_subscription, self._challenge,
                                      parse=challenge)
        return await self.receive(request, self._verify, self._deliver)

    def _verify_subscription(self, request: WebhookRequest) -> None:
        check_subscription(request, self.secret_or_none("verify_token"), product="Messenger",
                           where="entered under Messenger API Settings > Configure webhooks")

    async def _challenge(self, challenge: str) -> WebhookResponse:
        self.ctx.log("info", "webhook verified by Meta (subscription confirmed); subscribe "
                     "the Page to the messages and messaging_postbacks fields")
        return WebhookResponse(200, challenge)

    def _verify(self, request: WebhookRequest) -> None:
        check_signature(request, self.secret_or_none("app_secret"), product="Messenger")

    async def _deliver(self, payload: Any) -> None:
        """Every event in order; 200 (by ``receive``) only after each message was submitted."""
        if not isinstance(payload, dict) or not isinstance(payload.get("entry"), list):
            raise WebhookRejected(400, "not a Messenger webhook body (no entry array)",
                                  level="error")
        ctx = self.ctx
        for item in parse_payload(payload, channel=self.name, page_id=self._page_id):
            if isinstance(item, Message):
                inbound = item.inbound
                if item.replied_to is not None and item.replied_to in self._sent:
                    inbound = dataclasses.replace(inbound, reply_to_bot=True)
                self._latest.remember(inbound.address.chat, inbound.platform_id)
                self._tagged.discard(inbound.address.chat)  # the window is open again
                result = await ctx.submit(inbound)
                if result.duplicate:
                    self.log.debug("duplicate %s", inbound.platform_id)
            elif isinstance(item, PolicyNotice):
                level = _POLICY_LEVELS.get(item.action, "error")
                ctx.log(level, f"Meta policy enforcement on this Page: {item.action}"
                        f"{f' ({item.reason})' if item.reason else ''}", action=item.action)
            elif isinstance(item, Elsewhere):
                if item.what not in self._elsewhere:
                    self._elsewhere.add(item.what)
                    ctx.log("warning", f"ignored webhook traffic for {item.what}: this "
                            f"channel answers Messenger messages to Page {self._page_id} only "
                            "(an app's one callback URL receives every Page and product it "
                            "is subscribed to)")
            elif isinstance(item, Malformed):
                ctx.log("error", f"skipped a malformed Messenger webhook event ({item.where})")
            elif isinstance(item, Ignored):
                self.log.debug("ignored: %s", item.reason)

    # ---- helpers --------------------------------------------------------------------------

    async def fetch_attachment(self, attachment: Attachment) -> AttachmentSource:
        """The attachment's ``payload.url``: a signed, expiring link on Meta's CDN
        (scontent.xx.fbcdn.net, lookaside.fbsbx.com) that wants no credentials. It is
        fetched without the Page token, which never goes to a URL a payload named; a link
        whose ``oe`` (its expiry, hex Unix seconds) has passed is refused here with the
        reason, instead of the CDN's bare 403 "URL signature expired"."""
        url = attachment.url or ""
        if not url.startswith(("https://", "http://")):
            raise AttachmentUnavailable(f"Messenger sends no file for a {attachment.kind}")
        expiry = parse_qs(urlsplit(url).query).get("oe", [""])[0]
        try:
            expired = int(expiry, 16) < time.time() if expiry else False
        except ValueError:
            expired = False
        if expired:
            raise AttachmentUnavailable("Messenger's link to the file has expired (its "
                                        "attachment links are valid for a limited time)")
        return AttachmentSource(url=url, size=attachment.size)

    def make_http(self) -> ChannelHttp:
        token = self.secret("page_access_token")
        return ChannelHttp(self.config.api_base, platform="Messenger",
                           auth=lambda: {"Authorization": f"Bearer {token}"},
                           secrets=[token, self.secret_or_none("app_secret") or "",
                                    self.secret_or_none("verify_token") or ""],
                           describe=describe, classify=graph_error)

    def _path(self, edge: str) -> str:
        return f"/{self.config.api_version}/{edge}"

    def _proof(self) -> dict[str, str]:
        """``appsecret_proof``: HMAC-SHA256 of the access token keyed with the app secret,
        which Graph requires on every call when the app has "Require app secret" on."""
        secret = self.secret_or_none("app_secret")
        if secret is None:
            return {}
        token = self.secret("page_access_token")
        return {"appsecret_proof": hmac.new(secret.encode(), token.encode(),
                                            hashlib.sha256).hexdigest()}

    async def whoami(self, http: ChannelHttp) -> str:
        """The Page behind the token; asking for ``category`` (a Page field) makes a user
        token fail here with a clear error instead of at the first reply."""
        answer = await http.call("GET", self._path("me"), params={
            "fields": "id,name,category", **self._proof()})
        info = answer.data if isinstance(answer.data, dict) else {}
        page = str(info.get("id") or "")
        if not page:
            raise FatalConnectorError("the Graph API did not say which Page the token is for")
        self._page_id = page
        return f"{info.get('name') or 'Page'} (Page {page})"


CONNECTOR = MessengerConnector
