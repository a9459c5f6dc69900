"""The Nextcloud Talk connector: signed webhook activities in, the OCS bot API out.

No SDK: Talk has no official Python one, and the bot API is one signed POST. The REST
calls go through the kit's ``ChannelHttp`` (its outcome mapping, with Talk's own
answers sorted first by :func:`_classify`); the signatures are two HMACs.

Webhooks (``X-Nextcloud-Talk-Signature`` = hex HMAC-SHA256 of the
``X-Nextcloud-Talk-Random`` header + the raw body) are verified before anything is
parsed. Every one is signed: messages, the bot being added or removed, reactions.
``X-Nextcloud-Talk-Backend`` is not covered by the signature; a request naming a
server other than the configured one is refused, and replies always go to the
configured ``server_url``, never to a server a payload names. Talk draws a fresh
64-character random for every request and never retries a webhook, so a random seen
before is a replay and is refused too (in memory; after a restart the journal still
recognises the message id).

Replies: ``POST /ocs/v2.php/apps/spreed/api/v1/bot/{token}/message`` with the headers
``X-Nextcloud-Talk-Bot-Random`` / ``-Signature`` (HMAC of random + the message text).
Talk answers 201 with no message id, so a part's platform id is the random
``referenceId`` it was sent with. Talk never sends a bot its own messages, and the
parser skips any message whose author is a bot, so nothing the bot posts comes back
as a question.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlsplit

from connectors.nextcloud._parse import (
    TOKEN,
    BotIdentity,
    Ignored,
    Membership,
    parse_activity,
)
from connectors.nextcloud.manifest import MAX_TEXT, SPEC, NextcloudConfig
from pyclaw_app.channels import (
    ChannelHttp,
    HttpAnswer,
    Limits,
    Recent,
    RestConnector,
    WebhookRejected,
    WebhookRequest,
    WebhookResponse,
    hmac_digest,
    verify_hmac,
)
from pyclaw_app.errors import ConnectorError, FatalConnectorError
from pyclaw_app.model import Address

SEEN_RANDOMS = 10_000
"""Webhook randoms remembered to refuse replays (Talk never repeats one)."""
BOT_IDS_KEY = "bot_actor_ids"
"""``ctx.state``: the bot's actor ids (``bots/bot-<sha1 of its URL>``) from Join events."""
_CAPABILITIES = "/ocs/v2.php/cloud/capabilities"


class _BadRequest(FatalConnectorError):
    """Talk's 400: an empty message, or a ``replyTo`` the bot may not answer."""


class NextcloudConnector(RestConnector):
    spec = SPEC
    config: NextcloudConfig

    def __init__(self, name: str, config: NextcloudConfig) -> None:
        super().__init__(name, config)
        self._randoms: Recent[str, None] = Recent(SEEN_RANDOMS)
        self._bot_ids: set[str] = set()
        self._max_text = MAX_TEXT

    @property
    def limits(self) -> Limits:
        """32,000 characters, or less where the server's ``max-length`` capability says so."""
        return Limits(max_text=self._max_text)

    def check_config(self) -> None:
        secret = self.secret("secret")
        if not 40 <= len(secret) <= 128:
            raise FatalConnectorError(
                f"the Nextcloud Talk secret is {len(secret)} characters long; Talk requires "
                "40 to 128 (the one given to occ talk:bot:install)")
        for field in ("server_url", "backend_url"):
            value = getattr(self.config, field).strip()
            if (value or field == "server_url") and _origin(value) is None:
                raise FatalConnectorError(f"the Nextcloud Talk {field} {value!r} is not an "
                                          "http(s) address like https://cloud.example.com")
        if not self.config.bot_name.strip():
            raise FatalConnectorError("the Nextcloud Talk bot_name is empty: give the name "
                                      "the bot was installed with (occ talk:bot:install)")

    # ---- sending --------------------------------------------------------------------------

    async def send_part(self, address: Address, text: str, reply_to: str | None) -> str:
        token = address.chat
        if not TOKEN.match(token):
            raise FatalConnectorError(f"{token!r} is not a Talk conversation token")
        reference = secrets.token_hex(32)  # docs/bots.md: "should be a random sha256"
        body: dict[str, Any] = {"message": text, "referenceId": reference}
        if reply_to is not None and reply_to.isdigit():
            body["replyTo"] = int(reply_to)
        path = f"/ocs/v2.php/apps/spreed/api/v1/bot/{token}/message"
        try:
            await self.http.call("POST", path, json_body=body, headers=self._signed(text))
        except _BadRequest as exc:
            if "replyTo" not in body:
                raise
            self.log.info("Talk refused replyTo %s (%s); posting without it", reply_to, exc)
            del body["replyTo"]
            await self.http.call("POST", path, json_body=body, headers=self._signed(text))
        return reference

    def _signed(self, text: str) -> dict[str, str]:
        random = secrets.token_hex(32)
        return {"X-Nextcloud-Talk-Bot-Random": random,
                "X-Nextcloud-Talk-Bot-Signature":
                    hmac_digest(self.secret("secret"), (random + text).encode()).hex()}

    # ---- receiving ------------------------------------------------------------------------

    async def handle_webhook(self, request: WebhookRequest) -> WebhookResponse:
        return await self.receive(request, self._verify, self._deliver)

    def _verify(self, request: WebhookRequest) -> None:
        if request.method != "POST":
            raise WebhookRejected(405, "Nextcloud Talk sends webhooks with POST only")
        random = request.header("X-Nextcloud-Talk-Random") or ""
        signature = (request.header("X-Nextcloud-Talk-Signature") or "").lower()
        if not random or not verify_hmac(self.secret("secret"), random.encode() + request.body,
                                         signature):
            raise WebhookRejected(401, "bad or missing X-Nextcloud-Talk-Signature (is the "
                                  "secret the one given to occ talk:bot:install?)")
        backend = request.header("X-Nextcloud-Talk-Backend") or ""
        allowed = {_origin(self.config.server_url), _origin(self.config.backend_url)}
        if _origin(backend) not in allowed - {None}:
            raise WebhookRejected(403, f"the webhook names the server {backend!r}, not "
                                  f"{self.config.server_url!r}: if that is this Nextcloud "
                                  "(its overwrite.cli.url), put it in backend_url",
                                  level="error")
        if random in self._randoms:
            raise WebhookRejected(403, "replayed request (its X-Nextcloud-Talk-Random was "
                                  "seen before; Talk draws a new one every time)")
        self._randoms.remember(random, None)

    async def _deliver(self, payload: Any) -> None:
        ctx = self.ctx
        parsed = parse_activity(payload, channel=self.name, bot=self._identity(),
                                direct=frozenset(self.config.direct_conversations))
        if parsed is None:
            raise WebhookRejected(400, f"not a Talk activity this channel understands "
                                  f"(type {_field(payload, 'type')!r}, message "
                                  f"{_field(_field(payload, 'object'), 'id')!r})",
                                  level="error")
        if isinstance(parsed, Ignored):
            self.log.debug("ignored: %s", parsed.reason)
        elif isinstance(parsed, Membership):
            await self._membership(parsed)
        else:
            await ctx.submit(parsed)

    async def _membership(self, event: Membership) -> None:
        """A moderator enabled or disabled the bot in a conversation: say so, and learn the
        bot's actor id (how replies to its messages are recognised)."""
        ctx = self.ctx
        where = f"conversation {event.conversation!r} ({event.token})"
        ctx.log("info", f"{'added to' if event.joined else 'removed from'} {where}")
        if event.bot_name and event.bot_name.casefold() != \
                self.config.bot_name.strip().casefold():
            ctx.log("warning", f"Talk calls this bot {event.bot_name!r} but bot_name is "
                    f"{self.config.bot_name!r}: mentions of @{event.bot_name} are not "
                    "recognised until bot_name matches")
        if event.bot_id.startswith("bots/") and event.bot_id not in self._bot_ids:
            self._bot_ids.add(event.bot_id)
            await ctx.state.set(BOT_IDS_KEY, sorted(self._bot_ids))

    def _identity(self) -> BotIdentity:
        return BotIdentity(self.config.bot_name, frozenset(self._bot_ids))

    # ---- helpers --------------------------------------------------------------------------

    def make_http(self) -> ChannelHttp:
        return ChannelHttp(self.config.server_url.strip(), platform="Nextcloud",
                           auth=lambda: {"OCS-APIRequest": "true",
                                         "Accept": "application/json"},
                           secrets=[self.secret_or_none("secret") or ""],
                           describe=_describe, classify=_classify)

    async def whoami(self, http: ChannelHttp) -> str:
        """The public capabilities: is this a Nextcloud whose Talk has bots? Nothing public
        checks the secret; a wrong one shows as HTTP 401 on the first reply."""
        answer = await http.call("GET", _CAPABILITIES)
        data = _dig(answer.data, "ocs", "data")
        talk = _dig(data, "capabilities", "spreed")
        features = talk.get("features") if isinstance(talk, dict) else None
        host = urlsplit(http.base_url).netloc
        if not isinstance(features, list) or "bots-v1" not in features:
            raise FatalConnectorError(
                f"{host} answered, but its Talk has no bots (capability bots-v1, Nextcloud "
                "27.1 / Talk 17.1 or newer), or Talk is not enabled there")
        limit = _dig(talk, "config", "chat").get("max-length")
        if isinstance(limit, int) and not isinstance(limit, bool) and limit >= 2:
            self._max_text = min(MAX_TEXT, limit)
        server = _dig(data, "version").get("string")
        return (f"bot {self.config.bot_name} on {host} (Nextcloud {server or '?'}, "
                f"Talk {talk.get('version') or '?'})")

    async def connected(self, http: ChannelHttp) -> None:
        known = await self.ctx.state.get(BOT_IDS_KEY, [])
        self._bot_ids = {i for i in known if isinstance(i, str)} if isinstance(
            known, list) else set()


def _classify(answer: HttpAnswer, what: str, detail: str) -> ConnectorError | None:
    """Talk's bot API answers, in words a user can act on (BotController.php)."""
    if "/bot/" not in what:
        return None  # the public capabilities call: the kit's mapping says it well
    said = f"{what} answered HTTP {answer.status}{f' ({detail})' if detail else ''}"
    if answer.status == 401:
        return FatalConnectorError(
            f"{said}: Nextcloud could not verify the bot for this conversation. The bot is "
            "not enabled there (Conversation settings > Bots, or occ talk:bot:setup), was "
            "installed without --feature response, or this channel's secret is not the one "
            "given to occ talk:bot:install. Repeated 401s make Nextcloud block the bot's "
            "requests for up to 30 minutes")
    if answer.status == 429 and "retry-after" not in {k.lower() for k in answer.headers}:
        return FatalConnectorError(
            f"{said}: Nextcloud's brute-force protection blocks bot requests from this "
            "address after more than 10 refused signatures in 30 minutes, so retrying now "
            "cannot help. Fix the cause of the earlier HTTP 401 (secret, or the bot not "
            "enabled in the conversation), then wait or clear the block on the server with "
            "occ security:bruteforce:reset <this gateway's IP>")
    if answer.status == 404:
        return FatalConnectorError(f"{said}: the conversation does not exist (any more)")
    if answer.status == 413:
        return FatalConnectorError(f"{said}: the message is longer than this server allows")
    if answer.status == 400:
        return _BadRequest(f"{said}: Talk refused the message (empty, or replyTo names a "
                           "message the bot may not answer)")
    return None  # 429 with Retry-After (a proxy's limit), 5xx...: the kit's mapping


def _describe(body: Any) -> str | None:
    """The OCS envelope's ``meta.message`` (empty on the bot API's refusals, which say it
    all with the status); None for a body that is no envelope (a proxy's page)."""
    meta = _dig(body, "ocs", "meta")
    message = meta.get("message")
    return (message if isinstance(message, str) else "") if meta else None


def _origin(url: str) -> tuple[str, str, str] | None:
    """scheme, host[:port], path of an http(s) URL, for comparing servers."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    default = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname + (f":{port}" if port not in (None, default) else "")
    return parts.scheme, host, parts.path.rstrip("/")


def _dig(value: Any, *keys: str) -> dict[str, Any]:
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, dict) else {}


def _field(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else None


CONNECTOR = NextcloudConnector
