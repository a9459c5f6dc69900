"""A fake Nextcloud with Talk's bot API, and Talk's signed webhook posts, on 127.0.0.1.

Written from Talk's published reference, not from what our connector sends
(github.com/nextcloud/spreed: ``docs/bots.md``, ``openapi-bots.json``,
``lib/Controller/BotController.php``, ``lib/Service/BotService.php``,
``lib/Service/ActivityPubHelper.php``; github.com/nextcloud/server: ``core/Controller/
OCSController.php``, ``BruteForceMiddleware.php``, ``Throttler.php``):

* OCS: every call needs ``OCS-APIRequest: true`` (else 412, CSRF check failed). Answers
  are the envelope ``{"ocs": {"meta": {status, statuscode, message}, "data": ...}}``,
  as JSON only when the client asks for it (``Accept: application/json`` or
  ``format=json``), otherwise XML, as Nextcloud does.
* ``GET /ocs/v2.php/cloud/capabilities`` is public: ``version`` and
  ``capabilities.spreed`` (``features`` with ``bots-v1``, ``config.chat.max-length``,
  ``version``).
* ``POST /ocs/v2.php/apps/spreed/api/v1/bot/{token}/message`` ``{message, replyTo,
  referenceId, silent}`` (JSON or form): a blank ``message`` is 400; an
  ``X-Nextcloud-Talk-Bot-Random`` shorter than 32 characters or no
  ``X-Nextcloud-Talk-Bot-Signature`` is 400; the signature must be the hex HMAC-SHA256
  of random + message with the secret of a bot enabled in that conversation with the
  ``response`` feature (compared lower-cased, as ``hash_equals(.., strtolower(..))``),
  else 401; ``replyTo`` must name a user's message of the same conversation, else 400;
  more than ``max_length`` characters (``mb_strlen``) is 413. An unknown conversation is
  401 as well: the controller looks for the conversation's bots before the conversation
  (docs/bots.md lists 404, the code cannot reach it). Success is 201 with ``data: null``:
  Talk gives the bot no message id.
* Brute-force protection: each 401 counts as a failed attempt; more than
  ``max_attempts`` (Nextcloud's 10 in 30 minutes) and every further bot call is 429
  ``Reached maximum delay``, with no Retry-After. (The real throttler also sleeps up to
  25 s before answering; the fake does not make tests wait.)
* A 429 given a ``retry_after`` by the shared controls carries ``Retry-After``: what a
  reverse proxy's rate limit in front of Nextcloud answers.
* Webhooks: :meth:`NextcloudFake.signed` builds the request Talk POSTs: the body as PHP's
  ``json_encode`` writes it (``\\/`` and ``\\uXXXX`` escapes), ``X-Nextcloud-Talk-Random``
  (64 random characters), ``X-Nextcloud-Talk-Signature`` (hex HMAC-SHA256 of random +
  body), ``X-Nextcloud-Talk-Backend`` (the server's URL with a trailing slash). Talk
  never retries a webhook and never sends a bot's own messages to bots.

Scripted faults come from :class:`FakePlatform` under the method names ``message`` and
``capabilities``.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import secrets
import string
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.platform import FakePlatform
from tests.fakes.server import json_response

__all__ = ["BOT_NAME", "SECRET", "NextcloudFake", "SentTalk"]

BOT_NAME = "pyclaw"
SECRET = "fake-nextcloud-talk-bot-secret-0123456789abcdef"  # 40 to 128 characters
MAX_TEXT = 32_000
_TOKEN = re.compile(r"^[a-z0-9]{4,30}$")
_RANDOM_CHARS = string.ascii_letters + string.digits + "+/"
_STATUS_TEXT = {400: "", 401: "", 404: "", 412: "CSRF check failed", 413: "",
                429: "Reached maximum delay", 500: "Internal Server Error",
                503: "Service Unavailable"}


@dataclass(frozen=True)
class SentTalk:
    """One message the bot posted."""

    token: str
    text: str
    id: str
    reply_to: str | None
    reference_id: str
    silent: bool
    monotonic: float


@dataclass
class Conversation:
    token: str
    name: str
    bot_enabled: bool = True
    messages: dict[str, str] = field(default_factory=dict)  # id -> "comment" | "system"


class NextcloudFake(FakePlatform):
    send_method = "message"

    def __init__(self, *, secret: str = SECRET, bot_name: str = BOT_NAME) -> None:
        super().__init__()
        self.secret = secret
        self.bot_name = bot_name
        self.bot_url = "http://127.0.0.1/webhook/nextcloud"
        """The URL the bot was installed with; its sha1 is the bot's actor id."""
        self.features = {"webhook", "response"}
        self.max_length = MAX_TEXT
        self.max_attempts = 10
        self.failed_attempts = 0
        self.server_version = "31.0.4"
        self.talk_version = "21.1.0"
        self.talk_features = ["chat-v2", "reactions", "bots-v1", "markdown-messages",
                              "edit-messages", "chat-reference-id"]
        self.conversations: dict[str, Conversation] = {}
        self.sent: list[SentTalk] = []
        self._ids = itertools.count(1567)
        self._file_ids = itertools.count(4001)

    @property
    def backend(self) -> str:
        """What Talk puts in X-Nextcloud-Talk-Backend: overwrite.cli.url with one '/'."""
        return self.url.rstrip("/") + "/"

    @property
    def bot_actor_id(self) -> str:
        return "bots/bot-" + hashlib.sha1(self.bot_url.encode()).hexdigest()

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/ocs/v2.php/cloud/capabilities", self._capabilities)
        app.router.add_post("/ocs/v2.php/apps/spreed/api/{version}/bot/{token}/message",
                            self._message)

    # ---- API ---------------------------------------------------------------------------------

    def error_response(self, method: str, status: int, retry_after: float | None
                       ) -> web.Response:
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
        return _ocs(None, status, _STATUS_TEXT.get(status, ""), headers=headers)

    async def _capabilities(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("OCS-APIRequest") != "true":
            return _ocs(None, 412, _STATUS_TEXT[412])
        scripted = await self.before("capabilities")
        if scripted is not None:
            return scripted
        major, minor, micro = (int(p) for p in self.server_version.split("."))
        self.after("capabilities", request)
        return _ocs({"version": {"major": major, "minor": minor, "micro": micro,
                                 "string": self.server_version, "edition": "",
                                 "extendedSupport": False},
                     "capabilities": {"core": {"pollinterval": 60}, "spreed": {
                         "features": list(self.talk_features),
                         "config": {"chat": {"max-length": self.max_length,
                                             "read-privacy": 0}},
                         "version": self.talk_version}}},
                    200, "OK", request=request)

    async def _message(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("OCS-APIRequest") != "true":
            return _ocs(None, 412, _STATUS_TEXT[412], request=request)
        scripted = await self.before("message")
        if scripted is not None:
            return scripted
        if self.failed_attempts > self.max_attempts:
            return _ocs(None, 429, _STATUS_TEXT[429], request=request)
        token = request.match_info["token"]
        body = await _params(request)
        message = body.get("message")
        if not isinstance(message, str) or message.strip() == "":
            return _ocs(None, 400, "", request=request)
        random = request.headers.get("X-Nextcloud-Talk-Bot-Random", "")
        signature = request.headers.get("X-Nextcloud-Talk-Bot-Signature", "")
        if len(random) < 32 or not signature:
            return _ocs(None, 400, "", request=request)
        room = self.conversations.get(token)
        expected = _hmac(self.secret, random + message)
        if room is None or not room.bot_enabled or "response" not in self.features \
                or not hmac.compare_digest(expected, signature.lower()):
            self.failed_attempts += 1  # the response is throttled: a brute-force attempt
            return _ocs(None, 401, "", request=request)
        reply_to = _int(body.get("replyTo", 0))
        if reply_to is None or (reply_to and room.messages.get(str(reply_to)) != "comment"):
            return _ocs(None, 400, "", request=request)
        if len(message) > self.max_length:
            return _ocs(None, 413, "", request=request)
        mid = str(next(self._ids))
        room.messages[mid] = "bot"
        self.sent.append(SentTalk(token, message, mid, str(reply_to) if reply_to else None,
                                  str(body.get("referenceId") or ""),
                                  body.get("silent") in (True, "true", "1", 1),
                                  time.monotonic()))
        self.after("message", request)  # a scripted lost answer: posted, then the line is cut
        return _ocs(None, 201, "", request=request)

    # ---- conversations and their activities -----------------------------------------------------

    def conversation(self, token: str, name: str = "", *, bot_enabled: bool = True
                     ) -> Conversation:
        """A conversation the bot is set up in (``bot_enabled``), created on first use."""
        assert _TOKEN.match(token), token
        room = self.conversations.get(token)
        if room is None:
            room = self.conversations[token] = Conversation(token, name or token, bot_enabled)
        return room

    def message(self, token: str, text: str, *, sender: str = "users/ada-lovelace",
                sender_name: str = "Ada Lovelace",
                parameters: dict[str, dict[str, Any]] | None = None,
                reply_to: str | None = None) -> dict[str, Any]:
        """A ``Create`` activity: ``text`` with placeholders for ``parameters``. With
        ``reply_to`` the message quotes that one (``object.inReplyTo``, Talk 21+)."""
        room = self.conversation(token)
        mid = str(next(self._ids))
        room.messages[mid] = "comment"
        note: dict[str, Any] = {
            "type": "Note", "id": mid, "name": "message",
            "content": _php_json({"message": text, "parameters": parameters or []}),
            "mediaType": "text/markdown"}
        if reply_to is not None:
            note["inReplyTo"] = {"type": "Note", "actor": self._author(room, reply_to),
                                 "object": {"type": "Note", "id": reply_to, "name": "message",
                                            "content": _php_json({"message": "…",
                                                                  "parameters": []}),
                                            "mediaType": "text/markdown"}}
        return {"type": "Create",
                "actor": {"type": "Person", "id": sender, "name": sender_name,
                          "talkParticipantType": "3"},
                "object": note, "target": self._collection(room)}

    def mention_bot(self, token: str, text: str, **kw: Any) -> dict[str, Any]:
        """"@pyclaw ...": the bot is no user account, so Talk leaves the mention as text."""
        return self.message(token, f"@{self.bot_name} {text}", **kw)

    def file_message(self, token: str, name: str = "photo.jpg", mimetype: str = "image/jpeg",
                     size: int = 48213) -> dict[str, Any]:
        """A shared file: ``{file}`` and a ``file`` rich object (server
        lib/public/RichObjectStrings/Definitions.php)."""
        fid = str(next(self._file_ids))
        return self.message(token, "{file}", parameters={"file": {
            "type": "file", "id": fid, "name": name, "size": str(size),
            "path": f"Talk/{name}", "link": f"{self.url}/f/{fid}", "etag": secrets.token_hex(16),
            "permissions": "27", "mimetype": mimetype, "preview-available": "yes",
            "mtime": str(int(time.time()))}})

    def membership(self, token: str, *, joined: bool = True) -> dict[str, Any]:
        """``Join`` when a moderator enables the bot in the conversation, ``Leave`` when
        they disable it."""
        room = self.conversation(token)
        room.bot_enabled = joined
        return {"type": "Join" if joined else "Leave",
                "actor": {"type": "Application", "id": self.bot_actor_id, "name": self.bot_name},
                "object": self._collection(room)}

    def signed(self, activity: Any, *, secret: str | None = None, backend: str | None = None
               ) -> tuple[bytes, dict[str, str]]:
        """The body and headers Talk sends; every call draws a fresh random, as Talk does."""
        body = _php_json(activity).encode()
        random = "".join(secrets.choice(_RANDOM_CHARS) for _ in range(64))
        return body, {"Content-Type": "application/json",
                      "X-Nextcloud-Talk-Random": random,
                      "X-Nextcloud-Talk-Signature": _hmac(
                          self.secret if secret is None else secret, random, body),
                      "X-Nextcloud-Talk-Backend": self.backend if backend is None else backend,
                      "OCS-APIRequest": "true"}

    def _author(self, room: Conversation, message_id: str) -> dict[str, str]:
        if room.messages.get(message_id) == "bot":  # MessageParser names bots "<name> (Bot)"
            return {"type": "Person", "id": self.bot_actor_id, "name": f"{self.bot_name} (Bot)"}
        return {"type": "Person", "id": "users/ada-lovelace", "name": "Ada Lovelace"}

    @staticmethod
    def _collection(room: Conversation) -> dict[str, str]:
        return {"type": "Collection", "id": room.token, "name": room.name}


def _hmac(secret: str, random: str, body: bytes | str = "") -> str:
    data = random.encode() + (body if isinstance(body, bytes) else body.encode())
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


def _php_json(value: Any) -> str:
    """PHP's ``json_encode`` without flags: non-ASCII as \\uXXXX and '/' as '\\/'."""
    return json.dumps(value, separators=(",", ":")).replace("/", "\\/")


def _int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return int(value) if isinstance(value, str) and value.isdigit() else None


async def _params(request: web.Request) -> dict[str, Any]:
    """Nextcloud reads a JSON body or form fields alike."""
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}
    return dict(await request.post())


def _ocs(data: Any, status: int, message: str, *, headers: dict[str, str] | None = None,
         request: web.Request | None = None) -> web.Response:
    meta = {"status": "ok" if status < 300 else "failure", "statuscode": status,
            "message": message or ("OK" if status < 300 else ""), "totalitems": "",
            "itemsperpage": ""}
    wants_json = request is None or "application/json" in request.headers.get("Accept", "") \
        or request.query.get("format") == "json"
    if wants_json:
        return json_response({"ocs": {"meta": meta, "data": data}}, status=status,
                             headers=headers)
    xml = ("<?xml version=\"1.0\"?>\n<ocs><meta>" + "".join(
        f"<{k}>{v}</{k}>" for k, v in meta.items()) + "</meta><data/></ocs>")
    return web.Response(body=xml.encode(), status=status, headers=headers,
                        content_type="application/xml")
