"""The Webex connector: signed notifications in, then the message fetched; ``/messages`` out.

No SDK. ``webexpythonsdk`` (the official one) can be pointed at a loopback fake
(``WebexAPI(base_url=...)`` accepts any ``http(s)://host``), but it is synchronous on
``requests``: every call here (fetch each inbound message, send each part, edit the draft
about once a second) would cost a worker thread. Its ``RestSession`` sleeps out a 429
inside the call (``wait_on_rate_limit``, on by default) where the gateway's one retry
layer must decide, and ``requests`` reports a connection refused before sending and one
reset after sending alike (``ConnectionError``), so a lost answer could not be told from
a message that never left. It verifies no signatures and the token is a plain bearer,
so there is nothing it does that the kit does not. The six REST calls go through
``ChannelHttp`` (429 with Retry-After and 5xx retryable, 401/403 fatal with advice, a
lost answer to a POST ``DeliveryUncertain``); :func:`_webex_error` adds Webex's 423
Locked (temporarily unavailable, with Retry-After: retryable) and says what a 404 means.

Receiving: Webex POSTs a ``messages``/``created`` notification signed with the webhook
secret (``X-Spark-Signature``: hex HMAC-SHA1 of the raw body, developer.webex.com's
"Using a Webhook Secret"); it is verified before anything is parsed. It names the
message but carries no text, so the connector fetches ``GET /messages/{id}`` and
journals that; 200 goes back only after ``ctx.submit``. The bot's own messages (Webex
notifies those too) are skipped by author, before the fetch. A fetch that fails for a
moment (429, 5xx) is tried once more within the request when the wait is short; failing
that, the request is answered 503 and the channel log names the message, because
Webex's notification is the only copy the gateway will get. A notification it cannot
read is logged and answered 200: Webex would only send the same bytes again, and
failed deliveries count towards Webex deactivating the webhook.

In a group space Webex tells a bot only of the messages that @mention it; with a
person's token every message of the space arrives and ``group_reply`` sorts them.

Sending: one ``POST /messages`` per part, as ``markdown`` or ``text``
(``message_format``), with ``parentId`` set to the conversation's thread when it has
one. Edits are ``PUT /messages/{id}``, at most ten per message (see ``_edits``).
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

from connectors.webex._edits import MAX_EDITS, EditBudget
from connectors.webex._parse import (
    Ignored,
    Malformed,
    Person,
    parse_message,
    parse_notification,
    parse_person,
    valid_id,
)
from connectors.webex._register import register_webhook
from connectors.webex.manifest import SPEC, WebexConfig
from pyclaw_app.channels import (
    ChannelHttp,
    HttpAnswer,
    Recent,
    RestConnector,
    WebhookRejected,
    WebhookRequest,
    WebhookResponse,
    verify_hmac,
)
from pyclaw_app.channels.contract import AttachmentSource, AttachmentUnavailable
from pyclaw_app.errors import ConnectorError, FatalConnectorError, RetryableError
from pyclaw_app.model import Address, Attachment

__all__ = ["Gone", "WebexConnector"]

KEPT = 1000
"""Ids of messages the bot sent and threads it wrote in, and drafts' edit budgets (each)."""
FETCH_ATTEMPTS = 2
FETCH_WAIT = 5.0
"""Longest Retry-After waited out inside a webhook request before answering 503."""
SIGNATURE = "X-Spark-Signature"
_CONTENT_REFUSALS = {
    404: "Webex no longer has the file",
    410: "Webex's malware scan found the file unsafe, so it cannot be downloaded",
    428: "Webex could not scan the file for malware (it may be encrypted), so it is not "
         "handed over",
}
"""What ``/contents/{id}`` answers instead of the file (the anti-malware scan's outcomes)."""


class Gone(FatalConnectorError):
    """Webex answered 404 or 410 to a messages call: the space or message is not there (for
    this bot)."""


def _webex_error(answer: HttpAnswer, what: str, detail: str) -> ConnectorError | None:
    """ChannelHttp's ``classify`` hook: Webex's own meanings of two 4xx answers."""
    if answer.status == 423:  # Locked: "temporarily unavailable", may carry Retry-After
        wait = _seconds(answer.headers.get("Retry-After"))
        return RetryableError(f"{what} answered HTTP 423 (temporarily unavailable): "
                              f"{detail}", retry_after=wait)
    if answer.status in _CONTENT_REFUSALS and "/contents/" in what:
        return AttachmentUnavailable(f"{_CONTENT_REFUSALS[answer.status]} (HTTP "
                                     f"{answer.status}: {detail})")
    if answer.status in (404, 410) and " /messages" in what:
        return Gone(f"{what} answered HTTP {answer.status}: {detail}; the space or message "
                    "does not exist, or the bot is not (or no longer) a member of the space")
    return None


class WebexConnector(RestConnector):
    spec = SPEC
    config: WebexConfig

    def __init__(self, name: str, config: WebexConfig) -> None:
        super().__init__(name, config)
        self._me: Person | None = None
        self._ours: Recent[str, None] = Recent(KEPT)
        self._edits = EditBudget(KEPT)

    def check_config(self) -> None:
        self.secret("webhook_secret")  # no secret, no verifiable notification: refuse to start

    async def connected(self, http: ChannelHttp) -> None:
        ctx, me = self.ctx, self._person
        if me.kind == "bot" and self.config.group_reply == "all":
            ctx.log("warning", "group_reply is 'all', but Webex tells a bot only of the "
                    "group-space messages that @mention it: the others never arrive. Use a "
                    "person's (or integration's) token to read every message of a space")
        url = self.config.webhook_url.strip()
        if not url:
            ctx.log("info", "webhook_url is empty: the Webex webhook is not registered by the "
                    "channel; create one for resource messages, event created, with this "
                    f"channel's webhook secret, pointing at /webhook/{self.name}")
            return
        done = await register_webhook(http, name=f"pyclaw {self.name}", url=url,
                                      secret=self.secret("webhook_secret"))
        revived = " and reactivated (Webex had disabled it)" if done.was == "inactive" else ""
        ctx.log("info", f"Webex webhook {done.action}{revived}: messages created -> {url}",
                webhook=done.webhook_id)

    # ---- sending --------------------------------------------------------------------------

    async def send_part(self, address: Address, text: str, reply_to: str | None) -> str:
        """One message in the conversation's space (and thread); Webex has no quote-reply,
        the thread is it, so ``reply_to`` adds nothing (``parse_message``)."""
        body: dict[str, Any] = {"roomId": address.chat, self.config.message_format: text}
        if address.thread:
            body["parentId"] = address.thread
        answer = await self.http.call("POST", "/messages", json_body=body)
        mid = answer.data.get("id") if isinstance(answer.data, dict) else None
        if not isinstance(mid, str) or not mid:
            return ""
        self._ours.remember(mid, None)
        if address.thread:
            self._ours.remember(address.thread, None)
        self._edits.sent(mid, text)
        return mid

    async def edit(self, address: Address, platform_id: str, text: str) -> None:
        if not valid_id(platform_id):
            raise FatalConnectorError(f"{platform_id!r} is not a Webex message id")
        if self._edits.showing(platform_id, text):
            return
        wait = self._edits.wait(platform_id, text)
        if wait:
            raise RetryableError(f"Webex allows {MAX_EDITS} edits per message and this one has "
                                 f"{self._edits.left(platform_id)} left: the edit waits "
                                 f"{wait:.1f}s for the text to settle", retry_after=wait)
        await self.http.call("PUT", f"/messages/{platform_id}", json_body={
            "roomId": address.chat, self.config.message_format: text})
        self._edits.edited(platform_id, text)

    # ---- receiving ------------------------------------------------------------------------

    async def handle_webhook(self, request: WebhookRequest) -> WebhookResponse:
        return await self.receive(request, self._verify, self._deliver)

    def _verify(self, request: WebhookRequest) -> None:
        """``X-Spark-Signature``: hex HMAC-SHA1 of the raw body, keyed with the webhook
        secret. It covers no timestamp, so a replayed request passes here and is recognised
        by the journal (same message id)."""
        if request.method != "POST":
            raise WebhookRejected(405, "Webex sends notifications with POST only")
        if not verify_hmac(self.secret("webhook_secret"), request.body,
                           request.header(SIGNATURE), algorithm="sha1"):
            raise WebhookRejected(401, f"bad or missing {SIGNATURE}")

    async def _deliver(self, payload: Any) -> None:
        ctx, me = self.ctx, self._person
        notice = parse_notification(payload)
        if isinstance(notice, Malformed):
            ctx.log("error", f"skipped a malformed Webex notification ({notice.where})",
                    webhook=_field(payload, "id"))
            return
        if isinstance(notice, Ignored):
            self.log.debug("ignored: %s", notice.reason)
            return
        if notice.person_id == me.id:
            self.log.debug("skipped the bot's own message %s", notice.message_id)
            return
        raw = await self._fetch(notice.message_id)
        if raw is None:
            return
        item = parse_message(raw, channel=self.name, bot_id=me.id, ours=self._ours,
                             bot_name=me.name)
        if isinstance(item, Malformed):
            ctx.log("error", f"skipped a malformed Webex message ({item.where})",
                    message_id=notice.message_id)
        elif isinstance(item, Ignored):
            self.log.debug("ignored message %s: %s", notice.message_id, item.reason)
        else:
            result = await ctx.submit(item)
            if result.duplicate:
                self.log.debug("duplicate %s", item.platform_id)

    async def _fetch(self, message_id: str) -> Any:
        """The message a notification names; None when it is gone (deleted already)."""
        last: RetryableError | None = None
        for _ in range(FETCH_ATTEMPTS):
            if last is not None:
                await asyncio.sleep(last.retry_after or 0.0)
            try:
                return (await self.http.call("GET", f"/messages/{message_id}")).data
            except Gone as exc:
                self.ctx.log("warning", f"Webex message {message_id} was gone before it could "
                             f"be read ({exc})", message_id=message_id)
                return None
            except RetryableError as exc:
                last = exc
                if (exc.retry_after or 0.0) > FETCH_WAIT:
                    break
            except ConnectorError as exc:
                raise WebhookRejected(503, f"could not fetch Webex message {message_id} "
                                      f"({exc})", level="error") from None
        raise WebhookRejected(503, f"could not fetch Webex message {message_id} ({last}); it "
                              "is answered only if Webex sends the notification again",
                              level="error")

    # ---- helpers --------------------------------------------------------------------------

    @property
    def _person(self) -> Person:
        if self._me is None:
            raise RetryableError(f"Webex channel {self.name!r} is not running")
        return self._me

    async def fetch_attachment(self, attachment: Attachment) -> AttachmentSource:
        """A message's ``files`` entry, ``{api_base}/contents/{id}``, fetched with the token.

        One ``HEAD`` first: it carries the anti-malware scan's verdict (423 Locked with
        Retry-After while the scan runs, retryable; 410 unsafe; 428 unscannable) and the
        size, before anything is downloaded. The URL came from the message, so before the
        token is attached its host must be the configured ``api_base``'s: a token never
        goes to a host a payload named."""
        url = attachment.url or ""
        file_at, api = urlsplit(url), urlsplit(self.config.api_base)
        if (file_at.scheme, file_at.netloc.lower()) != (api.scheme, api.netloc.lower()) \
                or "/contents/" not in file_at.path:
            raise AttachmentUnavailable(f"the file is on {file_at.hostname or 'no host'}, "
                                        "not Webex's API host, so the token is not sent "
                                        "there")
        answer = await self.http.call("HEAD", url)
        length = answer.headers.get("Content-Length", "")
        token = self.secret("access_token")
        return AttachmentSource(url=url, headers={"Authorization": f"Bearer {token}"},
                                size=int(length) if length.isdigit() else attachment.size)

    def make_http(self) -> ChannelHttp:
        token = self.secret("access_token")
        return ChannelHttp(self.config.api_base, platform="Webex",
                           auth=lambda: {"Authorization": f"Bearer {token}"},
                           secrets=[token, self.secret_or_none("webhook_secret") or ""],
                           describe=_describe, classify=_webex_error)

    async def whoami(self, http: ChannelHttp) -> str:
        person = parse_person((await http.call("GET", "/people/me")).data)
        if person is None:
            raise FatalConnectorError("Webex answered GET /people/me without the token's "
                                      "person id; check api_base")
        self._me = person
        return f"{person.name or person.id} ({person.kind})"


def _describe(body: Any) -> str | None:
    """Webex's error body: ``{"message", "errors": [{"description"}], "trackingId"}``; the
    tracking id is what Webex support asks for."""
    if not isinstance(body, dict) or not isinstance(body.get("message"), str):
        return None
    tracking = body.get("trackingId")
    return f"{body['message']}{f' (tracking id {tracking})' if tracking else ''}"


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _field(payload: Any, key: str) -> str:
    value = payload.get(key) if isinstance(payload, dict) else None
    return value if isinstance(value, str) else ""


CONNECTOR = WebexConnector
