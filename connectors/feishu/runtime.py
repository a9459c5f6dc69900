"""The Feishu / Lark connector: event callbacks in, the IM message API out.

No SDK at run time. lark-oapi was weighed piece by piece (it is installed and the tests
use it as the reference): importing it at all loads every generated API (4-5 s and some
130 MB, since its package ``__init__`` imports them all); its ``acreate``/``areply``/
``aupdate`` await httpx but fetch the tenant token with blocking ``requests`` inside the
event loop, keep it in a process-wide cache and never drop it on 99991663; and its
``EventDispatcherHandler`` decrypts and parses before it checks the signature, compares
it with ``!=``, has no timestamp window, runs handlers synchronously and answers every
failure with HTTP 500. So the calls go through the kit's ``ChannelHttp`` (``_api``), and the
webhook's AES and signature are twenty lines on ``cryptography`` (``_crypto``), the same
algorithm as the SDK's ``AESCipher``; the tests decrypt with the SDK, run the fake's
signed requests through its dispatcher and point its client at the fake.

Receiving: the Request URL gets events as ``POST``s. With an Encrypt Key every event is
encrypted and signed: the signature (with a 5-minute timestamp window, and a request
seen before refused) is checked before the body is read; the Request URL check
(``url_verification``) is the one request Feishu does not sign, and it passes on its
Verification Token alone. Every body carries that token (``header.token`` in v2,
``token`` in v1), compared in constant time. An event is answered 200 only after its
message was journaled; the journal knows a redelivered event by its message id.

Sending: the first part of an answer replies to (quotes) the user's message; in a thread
every part is a reply in that thread; other parts are new messages in the chat. A reply
to a message recalled in the meantime becomes a plain message. Streaming edits the text
message (``PUT /open-apis/im/v1/messages/{id}``), which Feishu allows 20 times per
message: the first ten edits follow the gateway's pace, later ones are spaced wider
(:data:`EDIT_GAPS`) so the budget lasts for a long answer, and an edit that would not
change the text is not sent.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from connectors.feishu._api import FeishuApi, TargetGone, data_of
from connectors.feishu._crypto import DecryptError, decrypt, signature_matches
from connectors.feishu._parse import (
    RECEIVE,
    Envelope,
    Ignored,
    Malformed,
    Message,
    envelope,
    parse_message,
)
from connectors.feishu.manifest import SPEC, FeishuConfig
from pyclaw_app.channels import (
    ConnectorBase,
    Limits,
    ProbeResult,
    Recent,
    WebhookRejected,
    WebhookRequest,
    WebhookResponse,
    fresh_timestamp,
    same_secret,
)
from pyclaw_app.channels.contract import AttachmentSource, AttachmentUnavailable
from pyclaw_app.errors import ConnectorError, FatalConnectorError, RetryableError
from pyclaw_app.model import Address, Attachment

__all__ = ["EDIT_GAPS", "EDIT_LIMIT", "FeishuConnector"]

KEPT = 2000
"""Ids of messages the bot sent, drafts being edited, and signatures of accepted requests."""
RESOURCE_LIMIT = 100 * 2**20
"""The largest file "Get resources in messages" hands over."""
EDIT_LIMIT = 20
"""Edits Feishu allows per message (error 230072 after)."""
EDIT_GAPS = (0.0,) * 10 + (2.0, 2.0, 3.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0)
"""Seconds that must pass after edit n (index) before edit n+1: the gateway's own pace for
ten, then wider, so twenty edits last about a minute of streaming."""
ACTIVE = 2
"""``bot.activate_status`` of an app enabled in its tenant."""
SIGNATURE = "X-Lark-Signature"
TIMESTAMP = "X-Lark-Request-Timestamp"
NONCE = "X-Lark-Request-Nonce"


@dataclass(slots=True)
class _Draft:
    """A message the bot sent, as far as editing it goes."""

    text: str
    at: float
    edits: int = 0


class FeishuConnector(ConnectorBase):
    spec = SPEC
    config: FeishuConfig
    clock = time.monotonic
    """Edit pacing and token expiry run on this clock (a test may set its own)."""

    def __init__(self, name: str, config: FeishuConfig) -> None:
        super().__init__(name, config)
        self._api: FeishuApi | None = None
        self._bot_open_id = ""
        self._sent: Recent[str, None] = Recent(KEPT)
        self._drafts: Recent[str, _Draft] = Recent(KEPT)
        self._accepted: Recent[str, None] = Recent(KEPT)

    @property
    def limits(self) -> Limits:
        return Limits(max_text=self.config.max_text)

    # ---- lifecycle ------------------------------------------------------------------------

    def check_config(self) -> None:
        if not self.config.app_id.strip():
            raise FatalConnectorError("the Feishu app_id is not set: copy the App ID (cli_...) "
                                      "from the app's Credentials & Basic Info page")
        self.secret("verification_token")  # no token, no way to tell Feishu's events apart

    def make_api(self) -> FeishuApi:
        others = [self.secret_or_none(f) or "" for f in ("verification_token", "encrypt_key")]
        return FeishuApi(self.config.base_url, self.config.app_id.strip(),
                         self.secret("app_secret"), secrets=others, clock=self._now)

    async def whoami(self, api: FeishuApi) -> tuple[str, str, str]:
        """(name, open_id, a warning or "") from ``GET /open-apis/bot/v3/info``; fetching the
        token first is the app_id/app_secret check."""
        body = await api.call("GET", "/open-apis/bot/v3/info")
        bot = body.get("bot") if isinstance(body.get("bot"), dict) else {}
        name, open_id = str(bot.get("app_name") or "a Feishu bot"), str(bot.get("open_id") or "")
        if not open_id:
            raise FatalConnectorError("Feishu reports no bot for this app: add the Bot feature "
                                      "in the developer console and publish a version")
        status = bot.get("activate_status")
        warning = "" if status in (ACTIVE, None) else (
            f"the app is not enabled in its tenant (activate_status {status}): publish a "
            "version and have the tenant admin enable it")
        return name, open_id, warning

    async def open(self) -> None:
        self.check_config()
        self._api = self.make_api()
        name, self._bot_open_id, warning = await self.whoami(self._api)
        if warning:
            self.ctx.log("warning", warning)
        self.went_online(f"connected as {name}")

    async def close(self) -> None:
        api, self._api = self._api, None
        if api is not None:
            await api.close()

    async def probe(self) -> ProbeResult:
        try:
            self.check_config()
            api = self.make_api()
            try:
                name, _, warning = await self.whoami(api)
            finally:
                await api.close()
        except ConnectorError as exc:
            return ProbeResult(False, str(exc))
        return ProbeResult(not warning, f"connected as {name}{f'; {warning}' if warning else ''}")

    @property
    def api(self) -> FeishuApi:
        if self._api is None or not self.running:
            raise RetryableError(f"Feishu channel {self.name!r} is not running")
        return self._api

    def _now(self) -> float:
        return self.clock()

    # ---- attachments ----------------------------------------------------------------------

    async def fetch_attachment(self, attachment: Attachment) -> AttachmentSource:
        """"Get resources in messages": ``GET /open-apis/im/v1/messages/{message_id}/
        resources/{key}?type=image|file`` on the configured open platform (one of Feishu's
        or Lark's own hosts, which the config allows), with a fresh tenant token; the
        platform hands over files of up to 100 MB."""
        mid, _, key = (attachment.platform_id or "").partition("/")
        if not mid or not key:
            raise AttachmentUnavailable("Feishu gave no resource key for it")
        if attachment.size is not None and attachment.size > RESOURCE_LIMIT:
            raise AttachmentUnavailable("Feishu lets apps download files of up to 100 MB")
        kind = "image" if attachment.kind == "image" else "file"
        return AttachmentSource(
            url=f"{self.config.base_url}/open-apis/im/v1/messages/{quote(mid, safe='')}/"
                f"resources/{quote(key, safe='')}?type={kind}",
            headers=await self.api.auth_headers(), size=attachment.size)

    # ---- sending --------------------------------------------------------------------------

    async def send_part(self, address: Address, text: str, reply_to: str | None) -> str:
        content = json.dumps({"text": text}, ensure_ascii=False)
        target = reply_to or address.thread
        body: dict[str, Any] | None = None
        if target:
            try:
                body = await self.api.call("POST", f"/open-apis/im/v1/messages/"
                                           f"{quote(target, safe='')}/reply", json_body={
                                               "msg_type": "text", "content": content,
                                               "reply_in_thread": address.thread is not None})
            except TargetGone as exc:
                self.log.info("%s; sending a plain message instead", exc)
        if body is None:
            body = await self.api.call("POST", "/open-apis/im/v1/messages",
                                       params={"receive_id_type": "chat_id"}, json_body={
                                           "receive_id": address.chat, "msg_type": "text",
                                           "content": content})
        pid = str(data_of(body).get("message_id") or "")
        if pid:
            self._sent.remember(pid, None)
            self._drafts.remember(pid, _Draft(text, self._now()))
        return pid

    async def edit(self, address: Address, platform_id: str, text: str) -> None:
        draft = self._drafts.get(platform_id)
        if draft is None:
            draft = _Draft("", 0.0)
        elif draft.text == text:
            return  # the draft already shows it: keep the edit for later
        if draft.edits >= EDIT_LIMIT:
            raise FatalConnectorError(f"Feishu allows {EDIT_LIMIT} edits per message and "
                                      f"message {platform_id} has had them")
        wait = EDIT_GAPS[draft.edits] - (self._now() - draft.at)
        if wait > 0:
            raise RetryableError(f"pacing the live draft (Feishu allows {EDIT_LIMIT} edits "
                                 f"per message): next edit in {wait:.1f}s", retry_after=wait)
        await self.api.call("PUT", f"/open-apis/im/v1/messages/{quote(platform_id, safe='')}",
                            json_body={"msg_type": "text", "content": json.dumps(
                                {"text": text}, ensure_ascii=False)})
        draft.text, draft.at, draft.edits = text, self._now(), draft.edits + 1
        self._drafts.remember(platform_id, draft)

    # ---- receiving ------------------------------------------------------------------------

    async def handle_webhook(self, request: WebhookRequest) -> WebhookResponse:
        response = await self.receive(request, self._verify, self._handle, parse=self._open)
        signed = request.header(SIGNATURE)
        if response.status == 200 and signed:
            self._accepted.remember(signed.strip().lower(), None)  # the same again: a replay
        return response

    def _verify(self, request: WebhookRequest) -> None:
        """With an Encrypt Key: the signature over timestamp, nonce, key and raw body, within
        five minutes, and not a request accepted before. A request without a signature
        may only be the Request URL check (``_open`` makes sure of that)."""
        if request.method != "POST":
            raise WebhookRejected(405, "Feishu posts events with POST only")
        key = self.secret_or_none("encrypt_key")
        given = request.header(SIGNATURE)
        if key is None or given is None:
            return
        stamp, nonce = request.header(TIMESTAMP), request.header(NONCE) or ""
        if not fresh_timestamp(stamp):
            raise WebhookRejected(401, f"{TIMESTAMP} missing or more than five minutes off "
                                  "(a replayed request, or this machine's clock is wrong)")
        if not signature_matches(given, stamp or "", nonce, key, request.body):
            raise WebhookRejected(401, f"bad {SIGNATURE} (is encrypt_key this app's Encrypt "
                                  "Key?)")
        if given.strip().lower() in self._accepted:
            raise WebhookRejected(401, "a request already accepted, sent again (replay)")

    def _open(self, request: WebhookRequest) -> tuple[Envelope, dict[str, Any]]:
        """Decrypt (if encrypted) and read the body; check its Verification Token."""
        body = request.json()
        key = self.secret_or_none("encrypt_key")
        if isinstance(body, dict) and "encrypt" in body:
            if key is None:
                raise WebhookRejected(400, "Feishu sent an encrypted event but encrypt_key is "
                                      "not set: copy the Encrypt Key into this channel's "
                                      "settings", level="error")
            try:
                body = json.loads(decrypt(key, str(body["encrypt"])))
            except DecryptError as exc:
                raise WebhookRejected(401, f"cannot decrypt the event ({exc}): is encrypt_key "
                                      "this app's Encrypt Key?") from None
            except ValueError:
                raise WebhookRejected(400, "the decrypted event is not JSON",
                                      level="error") from None
        head = envelope(body)
        if isinstance(head, Malformed):
            raise WebhookRejected(400, f"not a Feishu event ({head.where})", level="error")
        if not same_secret(head.token, self.secret("verification_token")):
            raise WebhookRejected(401, "wrong or missing Verification Token (compare "
                                  "verification_token with Events & Callbacks > Encryption "
                                  "Strategy in the console)")
        if key is not None and request.header(SIGNATURE) is None and head.kind != "challenge":
            raise WebhookRejected(401, f"an event without {SIGNATURE} although encrypt_key is "
                                  "set")
        return head, body

    async def _handle(self, opened: tuple[Envelope, dict[str, Any]]) -> WebhookResponse | None:
        head, body = opened
        ctx = self.ctx
        if head.kind == "challenge":
            ctx.log("info", "Request URL verified by Feishu (url_verification answered)")
            return WebhookResponse(200, json.dumps({"challenge": head.challenge}),
                                   content_type="application/json")
        if head.kind == "v1":
            ctx.log("warning", f"skipped a v1 (legacy) {head.event_type or 'event'} callback: "
                    f"subscribe to {RECEIVE} (v2) in the console", event_id=head.event_id)
            return None
        if head.event_type != RECEIVE:
            self.log.debug("ignored event %s (%s)", head.event_id, head.event_type)
            return None
        parsed = parse_message(body, channel=self.name, account=self.config.app_id.strip(),
                               bot_open_id=self._bot_open_id, ours=self._sent)
        if isinstance(parsed, Malformed):
            ctx.log("error", f"skipped a malformed Feishu message event ({parsed.where})",
                    event_id=head.event_id)
        elif isinstance(parsed, Ignored):
            self.log.debug("ignored event %s: %s", head.event_id, parsed.reason)
        elif isinstance(parsed, Message):
            result = await ctx.submit(parsed.inbound)
            if result.duplicate:
                self.log.debug("duplicate %s (event %s)", parsed.inbound.platform_id,
                               head.event_id)
        return None


CONNECTOR = FeishuConnector
