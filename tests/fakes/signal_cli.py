"""signal-cli's HTTP daemon (``signal-cli daemon --http``) on 127.0.0.1, for the Signal channel.

Written from AsamK/signal-cli (commit c26e063): ``man/signal-cli-jsonrpc.5.adoc``,
``man/signal-cli.1.adoc`` and the Java behind them (``http/HttpServerHandler``,
``http/ServerSentEventSender``, ``jsonrpc/JsonRpcReader``, ``SignalJsonRpcCommandHandler``,
``commands/SendCommand``, ``util/SendMessageResultUtils``, the ``json`` records). What it
does as the daemon does:

- ``POST /api/v1/rpc``: Host header pinned to the listening address (421), POST only
  (405), ``Content-Type: application/json`` (415); one JSON-RPC 2.0 request or a batch,
  answered with HTTP 200 (201 and no body for a notification without id); errors are
  ``{"code", "message", "data"}`` with signal-cli's codes: -32700 parse, -32600 invalid
  request ("method field must be set"), -32601 "Method not implemented", -32602 for the
  account ("Specified account does not exist", "Method requires valid account
  parameter"), -1 user errors (no recipients, empty message, unknown group, a recipient not
  on Signal, with the per-recipient ``results`` in ``data.response``), -5 rate limiting
  (``RATE_LIMIT_FAILURE`` results with ``retryAfterSeconds``).
- ``GET /api/v1/events``: server-sent events ``event:receive`` / ``data:{"account",
  "envelope"}``, no ``id:``, a ``:`` keep-alive every ``keepalive`` seconds, ``?account=``
  choosing the account in multi-account mode (400 for one it does not have).
- ``GET /api/v1/check``: 200, no body.
- Receive modes: ``manual`` (and ``on-connection``) fetch from Signal only while an event
  stream is open, so what users send meanwhile waits (Signal's servers keep it) and comes
  when a stream opens; ``on-start`` reads continuously and a message nobody is streaming is
  gone for HTTP clients.
- Attachments: the daemon downloads what arrives into its attachments folder and names
  each file in the envelope (``JsonAttachment``: ``contentType``, ``filename``, ``id``,
  ``size``...); ``getAttachment`` (``commands/GetAttachmentCommand``) ``{id}`` answers
  ``{"data": <base64>}`` (``JsonAttachmentData``); an id it has no file for is the user
  error -1 ``Could not find attachment with ID: <id>``. The CLI also wants ``recipient``
  or ``groupId``; over JSON-RPC they are taken and not needed.
- Texts longer than 2,000 UTF-8 bytes are sent (as a long-text attachment), not refused;
  an edit names the original message's timestamp (``editTimestamp``).

signal-cli has no authentication. ``proxy_token`` puts a reverse proxy in front that wants
``Authorization: Bearer <token>`` and answers 401 otherwise.

The user side: :meth:`person`, :meth:`group`, then :meth:`user_message` builds the
envelope a message of that person would arrive as and :meth:`deliver` hands it to the
daemon (streamed, queued or dropped by the receive mode). What the bot sent is
:attr:`sent`; :meth:`visible` applies its edits. Scripted failures come from
:class:`FakePlatform` (``fail_next``, ``rate_limit_next_send``, ``lose_next_answer``);
:meth:`drop_connection` cuts every open event stream server-side.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import re
import secrets
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.platform import FakePlatform

__all__ = ["Person", "SentRecord", "SignalCliFake"]

MAX_BODY = 2000
_NUMBER = re.compile(r"^\+[1-9][0-9]{6,14}$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_LONE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Person:
    """A Signal user (the bot's account is one too)."""

    number: str
    uuid: str
    name: str

    def address(self) -> dict[str, Any]:
        return {"uuid": self.uuid, "number": self.number, "username": None}


@dataclass
class SentRecord:
    """One ``send`` the daemon carried out for the bot."""

    account: str
    chat: str
    """The recipient as given (number or ACI), or ``group:<id>``."""
    text: str
    timestamp: int
    quote: tuple[str, int] | None = None
    edit_of: int | None = None
    long_text: bool = False
    monotonic: float = 0.0


@dataclass
class _Group:
    gid: str
    name: str
    members: list[Person]


@dataclass
class _Stream:
    accounts: set[str]
    response: web.StreamResponse
    request: web.Request
    closed: asyncio.Event = field(default_factory=asyncio.Event)


class _RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.error = {"code": code, "message": message, "data": data}


class SignalCliFake(FakePlatform):
    send_method = "send"

    def __init__(self, *, account: str = "+15550000001", multi_account: bool = False,
                 receive_mode: str = "manual", keepalive: float = 15.0,
                 proxy_token: str | None = None) -> None:
        super().__init__()
        self.multi_account = multi_account
        self.receive_mode = receive_mode
        self.keepalive = keepalive
        self.proxy_token = proxy_token
        self.accounts: dict[str, Person] = {}
        self.people: dict[str, Person] = {}
        self.groups: dict[str, _Group] = {}
        self.sent: list[SentRecord] = []
        self.files: dict[str, bytes] = {}
        """Attachment id -> the bytes in the daemon's attachments folder."""
        self.fetched: list[str] = []
        """The ids of each ``getAttachment`` call, in order."""
        self.typing: list[tuple[str, str, bool]] = []
        """(account, chat, stop) of each sendTyping."""
        self.dropped: list[dict[str, Any]] = []
        """Messages read in on-start mode while no event stream was open (gone)."""
        self.streams_opened = 0
        self._pending: dict[str, deque[dict[str, Any]]] = {}
        self._streams: list[_Stream] = []
        self._clock = 0
        self._params: dict[str, Any] = {}
        self._rid: object = None
        self.add_account(account)

    # ---- the daemon's accounts and Signal's users -------------------------------------------

    def add_account(self, number: str) -> Person:
        bot = self.person(number, "Pyclaw Bot")
        self.accounts[number] = bot
        self._pending[number] = deque()
        return bot

    @property
    def bot(self) -> Person:
        return next(iter(self.accounts.values()))

    def person(self, number: str, name: str) -> Person:
        if number not in self.people:
            self.people[number] = Person(number, str(uuid.uuid4()), name)
        return self.people[number]

    def group(self, name: str, members: list[Person]) -> str:
        gid = base64.b64encode(secrets.token_bytes(32)).decode()
        self.groups[gid] = _Group(gid, name, [self.bot, *members])
        return gid

    def now(self) -> int:
        """A Signal timestamp (ms since the epoch), distinct from every earlier one."""
        self._clock = max(self._clock + 1, int(time.time() * 1000))
        return self._clock

    def _find(self, identifier: str) -> Person | None:
        return next((p for p in self.people.values()
                     if identifier in (p.number, p.uuid, f"PNI:{p.uuid}")), None)

    # ---- what users send -------------------------------------------------------------------

    def attachment(self, data: bytes, content_type: str, filename: str | None = None, *,
                   stored: bool = True) -> dict[str, Any]:
        """The ``JsonAttachment`` of a file a user sends; ``stored`` False: the daemon could
        not download it (or it was deleted from its folder since)."""
        ext = (filename or "").rsplit(".", 1)[-1] if filename and "." in filename else "bin"
        file_id = f"{secrets.token_urlsafe(15)}.{ext}"
        if stored:
            self.files[file_id] = data
        return {"contentType": content_type, "filename": filename, "id": file_id,
                "size": len(data), "width": None, "height": None, "caption": None,
                "uploadTimestamp": self.now()}

    def user_message(self, sender: Person, text: str | None, *, group: str | None = None,
                     mentions: list[Person] = (), quote: tuple[Person, int, str] | None = None,
                     attachments: list[dict[str, Any]] | None = None,
                     account: str | None = None, **extra: Any) -> dict[str, Any]:
        """The ``receive`` event of a message ``sender`` writes: each U+FFFC in ``text`` is
        the next of ``mentions`` (placed in UTF-16 units, as Signal places them). A lone
        surrogate cannot be sent: the sender's UTF-8 encoder writes U+FFFD."""
        stamp = self.now()
        data: dict[str, Any] = {"timestamp": stamp,
                                "message": None if text is None else _LONE.sub("\ufffd", text),
                                "expiresInSeconds": 0, "viewOnce": False}
        if mentions:
            data["mentions"] = _placed(data["message"] or "", mentions)
        if quote is not None:
            author, quoted, quoted_text = quote
            data["quote"] = {"id": quoted, "author": author.number,
                             "authorNumber": author.number, "authorUuid": author.uuid,
                             "text": quoted_text, "attachments": []}
        if attachments:
            data["attachments"] = attachments
        if group is not None:
            data["groupInfo"] = {"groupId": group, "groupName": self.groups[group].name,
                                 "revision": 2, "type": "DELIVER"}
        data.update(extra)
        return self.envelope(sender, {"dataMessage": data}, stamp=stamp, account=account)

    def envelope(self, sender: Person, body: dict[str, Any], *, stamp: int | None = None,
                 account: str | None = None) -> dict[str, Any]:
        stamp = stamp or self.now()
        return {"account": account or self.bot.number, "envelope": {
            "source": sender.number, "sourceNumber": sender.number,
            "sourceUuid": sender.uuid, "sourceName": sender.name, "sourceDevice": 1,
            "timestamp": stamp, "serverReceivedTimestamp": stamp + 20,
            "serverDeliveredTimestamp": stamp + 40, **body}}

    async def deliver(self, event: dict[str, Any]) -> None:
        """Signal hands the account a message: streamed to every open event stream of its
        account; with none, kept for the next one (manual) or read and lost (on-start)."""
        account = str(event.get("account"))
        streams = [s for s in self._streams if account in s.accounts and not s.closed.is_set()]
        if not streams:
            if self.receive_mode == "on-start":
                self.dropped.append(event)
            else:
                self._pending[account].append(event)
            return
        for stream in streams:
            await self._write_event(stream, event)

    # ---- what the bot sent -----------------------------------------------------------------

    def messages(self, chat: str | None = None) -> list[SentRecord]:
        """Sent messages that are not edits, oldest first."""
        return [r for r in self.sent if r.edit_of is None and (chat is None or r.chat == chat)]

    def visible(self, chat: str) -> list[str]:
        """The texts a reader of ``chat`` sees now: each message as its latest edit has it
        (an edit naming no message of the bot's in that chat is ignored, as apps do)."""
        texts = {r.timestamp: r.text for r in self.messages(chat)}
        for r in self.sent:
            if r.edit_of is not None and r.chat == chat and r.edit_of in texts:
                texts[r.edit_of] = r.text
        return list(texts.values())

    def edits(self, chat: str) -> int:
        return sum(1 for r in self.sent if r.edit_of is not None and r.chat == chat)

    # ---- the network -----------------------------------------------------------------------

    async def drop_connection(self) -> None:
        for stream in list(self._streams):
            stream.closed.set()
            if stream.request.transport is not None:
                stream.request.transport.abort()
            self._streams.remove(stream)

    async def stop(self) -> None:
        for stream in self._streams:
            stream.closed.set()  # the daemon shuts down: its streams end
        await super().stop()

    @property
    def open_streams(self) -> int:
        return sum(1 for s in self._streams if not s.closed.is_set())

    # ---- HTTP ------------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/v1/rpc", self._rpc)
        app.router.add_get("/api/v1/events", self._events)
        app.router.add_get("/api/v1/check", self._check)

    def _proxy_refuses(self, request: web.Request) -> web.Response | None:
        if self.proxy_token is None:
            return None
        if request.headers.get("Authorization") == f"Bearer {self.proxy_token}":
            return None
        return web.Response(status=401, text="401 Authorization Required",
                            headers={"WWW-Authenticate": 'Bearer realm="signal"'})

    def _host_allowed(self, request: web.Request) -> bool:
        host = request.headers.get("Host", "")
        name, _, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
        if not port.isdigit():
            name, port = host, ""
        return name.strip("[]").lower() in ("localhost", "127.0.0.1", "::1") \
            and (not port or int(port) == self.port)

    async def _check(self, request: web.Request) -> web.StreamResponse:
        return self._proxy_refuses(request) or web.Response(status=200)

    async def _rpc(self, request: web.Request) -> web.StreamResponse:
        refused = self._proxy_refuses(request)
        if refused is not None:
            return refused
        if not self._host_allowed(request):
            return web.Response(status=421)
        if not request.headers.get("Content-Type", "").startswith("application/json"):
            return web.Response(status=415)
        raw = await request.read()
        try:
            message = json.loads(raw) if raw.strip() else None
        except ValueError as exc:
            return _json(_error_reply(None, -32700, str(exc)))
        if isinstance(message, list):
            if not message:
                return _json(_error_reply(None, -32600, "invalid request"))
            replies = [r for r in [await self._one(request, m) for m in message]
                       if isinstance(r, dict)]
            return _json(replies) if replies else web.Response(status=201)
        if not isinstance(message, dict):
            what = "invalid request" if message is None else \
                f"unexpected type: {type(message).__name__.upper()}"
            return _json(_error_reply(None, -32600, what))
        reply = await self._one(request, message)
        if isinstance(reply, web.StreamResponse):
            return reply
        return _json(reply) if reply is not None else web.Response(status=201)

    async def _one(self, request: web.Request, message: object
                   ) -> dict[str, Any] | web.StreamResponse | None:
        body = message if isinstance(message, dict) else {}
        rid = body.get("id")
        if body.get("jsonrpc") != "2.0":
            return _error_reply(rid, -32600, "only jsonrpc version 2.0 is supported")
        method = body.get("method")
        if not isinstance(method, str):
            return _error_reply(rid, -32600, "method field must be set")
        params = body.get("params") if isinstance(body.get("params"), dict) else {}
        self._params, self._rid = params, rid
        scripted = await self.before(method)
        if scripted is not None:
            return scripted if rid is not None else None
        try:
            result = self._call(method, dict(params))
        except _RpcError as exc:
            return {"jsonrpc": "2.0", "error": exc.error, "id": rid} if rid is not None \
                else None
        if self.after(method, request):
            return web.Response(status=200)  # never arrives: the connection is cut
        return {"jsonrpc": "2.0", "result": result, "id": rid} if rid is not None else None

    def error_response(self, method: str, status: int, retry_after: float | None
                       ) -> web.StreamResponse:
        """What signal-cli answers when Signal refuses: -5 with the per-recipient
        RATE_LIMIT_FAILURE (429), -1 with NETWORK_FAILURE (500) or UNREGISTERED_FAILURE
        (400), all in HTTP 200; another status is a reverse proxy's own answer."""
        kinds = {429: ("RATE_LIMIT_FAILURE", -5, "Failed to send message due to rate limiting"),
                 500: ("NETWORK_FAILURE", -1, "Failed to send message"),
                 400: ("UNREGISTERED_FAILURE", -1, "Failed to send message")}
        if status not in kinds:
            return web.Response(status=status, text=f"{status} from the reverse proxy")
        kind, code, message = kinds[status]
        result: dict[str, Any] = {"recipientAddress": self._first_recipient(), "type": kind}
        if status == 429 and retry_after is not None:
            result["retryAfterSeconds"] = math.ceil(retry_after)
        data = {"response": {"timestamp": self.now(), "results": [result]}}
        return _json({"jsonrpc": "2.0", "error": {"code": code, "message": message,
                                                  "data": data}, "id": self._rid})

    def _first_recipient(self) -> dict[str, Any]:
        recipients = _list(self._params.get("recipient") or self._params.get("recipients"))
        person = self._find(str(recipients[0])) if recipients else None
        return person.address() if person else {"uuid": None, "number": None,
                                                "username": None}

    # ---- JSON-RPC methods ------------------------------------------------------------------

    def _account(self, params: dict[str, Any]) -> Person:
        """The manager of a request, as SignalJsonRpcCommandHandler picks it."""
        if not self.multi_account:
            return self.bot
        if params.get("account") is not None:
            wanted = str(params.pop("account"))
            found = next((p for n, p in self.accounts.items() if wanted in (n, p.uuid)), None)
            if found is None:
                raise _RpcError(-32602, "Specified account does not exist")
            return found
        if len(self.accounts) == 1:
            return self.bot
        raise _RpcError(-32602, "Method requires valid account parameter")

    def _call(self, method: str, params: dict[str, Any]) -> Any:
        handlers = {"send": self._send, "sendTyping": self._send_typing,
                    "listGroups": self._list_groups, "getAttachment": self._get_attachment}
        handler = handlers.get(method)
        if handler is None:
            raise _RpcError(-32601, "Method not implemented")
        return handler(self._account(params), params)

    def _targets(self, account: Person, params: dict[str, Any]) -> list[str]:
        """``recipient``/``recipients`` and ``groupId``/``groupIds`` as signal-cli reads them
        (a single value or a list), checked the way CommandUtil checks them."""
        targets: list[str] = []
        for raw in _list(params.get("recipient") or params.get("recipients")):
            text = str(raw)
            if not (_NUMBER.match(text) or _UUID.match(text.removeprefix("PNI:"))
                    or text.startswith("u:")):
                raise _RpcError(-1, f"Invalid phone number '{text}': not a valid number")
            targets.append(text)
        for raw in _list(params.get("groupId") or params.get("groupIds")):
            gid = str(raw)
            try:
                if len(base64.b64decode(gid, validate=True)) != 32:
                    raise ValueError("wrong length")
            except (ValueError, binascii.Error) as exc:
                raise _RpcError(-1, f"Invalid group id: {exc}") from None
            group = self.groups.get(gid)
            if group is None:
                raise _RpcError(-1, f"Group not found: {gid}")
            if account not in group.members:
                raise _RpcError(-1, f"User is not a member in group: {group.name} ({gid})")
            targets.append(f"group:{gid}")
        if not targets:
            raise _RpcError(-1, "No recipients given")
        return targets

    def _results(self, targets: list[str]) -> list[dict[str, Any]]:
        results = []
        for target in targets:
            if target.startswith("group:"):
                gid = target.removeprefix("group:")
                results += [{"recipientAddress": m.address(), "groupId": gid, "type": "SUCCESS"}
                            for m in self.groups[gid].members if m.number not in self.accounts]
                continue
            person = self._find(target)
            if person is None:
                results.append({"recipientAddress": {"uuid": None, "number": target,
                                                     "username": None},
                                "type": "UNREGISTERED_FAILURE"})
            else:
                results.append({"recipientAddress": person.address(), "type": "SUCCESS"})
        return results

    def _send(self, account: Person, params: dict[str, Any]) -> dict[str, Any]:
        targets = self._targets(account, params)
        text = params.get("message")
        text = text if isinstance(text, str) else ""
        quote: tuple[str, int] | None = None
        if params.get("quoteTimestamp") is not None:
            if params.get("quoteAuthor") is None:
                raise _RpcError(-1, "Quote author parameter is missing")
            quoted = params["quoteTimestamp"]
            if not isinstance(quoted, int):  # Jackson hands the command a String: a cast fails
                raise _RpcError(-32603, "class java.lang.String cannot be cast to class "
                                        "java.lang.Long (ClassCastException)")
            quote = (str(params["quoteAuthor"]), quoted)
        if not text and not params.get("attachment") and not params.get("attachments") \
                and quote is None:
            raise _RpcError(-1, "Sending empty message is not allowed, either a message, "
                                "attachment or sticker must be given.")
        edit = params.get("editTimestamp")
        stamp = self.now()
        results = self._results(targets)
        answer = {"timestamp": stamp, "results": results}
        if not any(r["type"] == "SUCCESS" for r in results):
            raise _RpcError(-1, "Failed to send message", {"response": answer})
        for target in targets:
            self.sent.append(SentRecord(account.number, target, text, stamp, quote,
                                        int(edit) if edit is not None else None,
                                        len(text.encode()) > MAX_BODY, time.monotonic()))
        return answer

    def _send_typing(self, account: Person, params: dict[str, Any]) -> dict[str, Any]:
        targets = self._targets(account, params)
        for target in targets:
            self.typing.append((account.number, target, params.get("stop") is True))
        return {"timestamp": self.now(), "results": self._results(targets)}

    def _get_attachment(self, account: Person, params: dict[str, Any]) -> dict[str, Any]:
        file_id = str(params.get("id"))
        self.fetched.append(file_id)
        if file_id not in self.files:
            raise _RpcError(-1, f"Could not find attachment with ID: {file_id}")
        return {"data": base64.b64encode(self.files[file_id]).decode()}

    def _list_groups(self, account: Person, params: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"id": g.gid, "name": g.name, "description": "", "isMember": True,
                 "isBlocked": False, "messageExpirationTime": 0,
                 "members": [{"number": m.number, "uuid": m.uuid, "isAdmin": False}
                             for m in g.members],
                 "pendingMembers": [], "requestingMembers": [], "admins": [], "banned": [],
                 "permissionAddMember": "EVERY_MEMBER", "permissionEditDetails": "EVERY_MEMBER",
                 "permissionSendMessage": "EVERY_MEMBER", "groupInviteLink": None}
                for g in self.groups.values() if account in g.members]

    # ---- the event stream ------------------------------------------------------------------

    async def _events(self, request: web.Request) -> web.StreamResponse:
        refused = self._proxy_refuses(request)
        if refused is not None:
            return refused
        if not self._host_allowed(request):
            return web.Response(status=421)
        accounts = set(self.accounts)
        if self.multi_account and request.query.get("account"):
            wanted = request.query["account"]
            found = [n for n, p in self.accounts.items() if wanted in (n, p.uuid)]
            if not found:
                return web.Response(status=400)
            accounts = set(found)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        stream = _Stream(accounts, response, request)
        self._streams.append(stream)
        self.streams_opened += 1
        for account in accounts:  # the receive thread starts: what Signal kept comes now
            queue = self._pending[account]
            while queue and not stream.closed.is_set():
                await self._write_event(stream, queue.popleft())
        try:
            while not stream.closed.is_set():
                try:
                    await asyncio.wait_for(stream.closed.wait(), self.keepalive)
                except TimeoutError:
                    await self._write(stream, ":\n")
        finally:
            stream.closed.set()
            if stream in self._streams:
                self._streams.remove(stream)
        return response

    async def _write_event(self, stream: _Stream, event: dict[str, Any]) -> None:
        await self._write(stream, "event:receive\ndata:"
                          + json.dumps(event, ensure_ascii=False) + "\n\n")

    async def _write(self, stream: _Stream, text: str) -> None:
        try:
            await stream.response.write(text.encode())
        except (ConnectionError, RuntimeError):
            stream.closed.set()  # the client went away; signal-cli unsubscribes it


def _list(value: object) -> list[object]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _placed(text: str, mentions: list[Person]) -> list[dict[str, Any]]:
    """One JsonMention per U+FFFC of ``text``, in order, at its UTF-16 offset."""
    placed, units = [], 0
    who = iter(mentions)
    for char in text:
        if char == "\ufffc":
            person = next(who, None)
            if person is not None:
                placed.append({"name": person.number, "number": person.number,
                               "uuid": person.uuid, "start": units, "length": 1})
        units += 2 if ord(char) > 0xFFFF else 1
    return placed


def _error_reply(rid: object, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "error": {"code": code, "message": message, "data": None},
            "id": rid}


def _json(body: object) -> web.Response:
    return web.Response(body=json.dumps(body).encode(), status=200,
                        headers={"Content-Type": "application/json"})
