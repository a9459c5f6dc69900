"""The Rocket.Chat connector: the realtime API (DDP) for events, the REST API for the rest.

No SDK fits: ``rocketchat_API`` is synchronous REST; ``rocketchat-async`` speaks only the
realtime API (no history to catch up from, message ids not returned by its send, its own
dispatch loop on ``websockets``); the generic DDP clients on PyPI are unmaintained. So
REST goes through the kit's ``ChannelHttp`` (``_api``) and the realtime API through
aiohttp's WebSocket (``_ddp``).

``run_connected`` keeps one connection: ``GET /api/v1/me`` (a bad token fails the start
with one clear line), then the WebSocket ``/websocket``: ``connect``, ``login`` with
``{"resume": <personal access token>}`` and one subscription, ``stream-room-messages`` with
``__my_messages__``, which carries every message of every room the bot can read, with
``roomParticipant`` and ``roomType`` beside it; then ``rooms.get`` (the bot's rooms, their
kinds and newest messages). A room new to the bot is asked for with ``rooms.info``.

Nothing lost, nothing doubled: the realtime stream keeps nothing for an absent client, so
``serve`` first catches up through the REST history (``im.history``, ``channels.history``,
``groups.history`` with ``oldest``) for every room whose newest message is past its
cursor, and only then reads the live events (they wait in the socket meanwhile). The
cursor is ``ctx.state["cursor"]``, all in the server's clock: ``rooms``, per room the time
of the newest message handled, saved after its submit; ``floors``, per room the newest
message when the bot first started (``lm`` of ``rooms.get``, read before subscribing):
that history is never answered; and ``since``, when the last connection began (the
``Date`` of ``/me``), the floor of rooms that came later (one the bot was added to while
away). The journal recognises a message seen twice by its id, so the overlap a catch-up
fetches again (``_cursor.GRACE_MS`` before each cursor, for messages the server stamped
out of order) is harmless; a message older than that is an update of one handled long ago
(an edit, a reaction, a thread reply changing its parent's counters) and not answered.

Sending is ``chat.sendMessage`` with an id the connector chooses (so its own message is
recognised when the stream echoes it), in the conversation's thread (``tmid``); edits are
``chat.update``; typing is the ``stream-notify-room`` method with ``<rid>/user-activity``
and ``["user-typing"]`` (the event that replaced ``<rid>/typing``, which the server still
translates for old clients). The server takes it only with the bot's username, or its
display name where UI_Use_Real_Name is on: refused once, the channel switches to the name.

Sending only (``receives`` false, another instance holds the realtime connection): the
connection is ``GET /api/v1/me`` alone; no WebSocket, no login over DDP, no subscription
and no catch-up, so the cursor in ``ctx.state`` stays the receiving instance's. Replies and
edits are the same REST calls; typing, a realtime-API method, is not shown.
"""

from __future__ import annotations

import asyncio
import secrets
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp

from connectors.rocketchat._api import (
    RoomGone,
    advice,
    fetch_history,
    make_http,
    server_clock,
    tls_session,
)
from connectors.rocketchat._cursor import Cursor
from connectors.rocketchat._ddp import DdpConnection, DdpError, websocket_url
from connectors.rocketchat._parse import (
    ANSWERED_KINDS,
    RoomInfo,
    Skip,
    Viewpoint,
    parse_message,
    parse_room,
    room_extras,
    stamp,
    stream_message,
)
from connectors.rocketchat.manifest import SPEC, RocketChatConfig
from pyclaw_app.channels import ChannelHttp, ConnectorBase, Limits, ProbeResult, Recent, utf16_len
from pyclaw_app.channels.contract import AttachmentSource, AttachmentUnavailable
from pyclaw_app.errors import ConnectorError, FatalConnectorError, PyclawError, RetryableError
from pyclaw_app.model import Address, Attachment

__all__ = ["CONNECTOR", "CURSOR_KEY", "RocketChatConnector"]

CURSOR_KEY = "cursor"
"""``ctx.state`` key of the :class:`Cursor` (``{"since", "rooms", "floors"}``)."""
REST_TIMEOUT = 30.0
BACKFILL_LIMIT = 1000
KEPT = 2000
_ID_CHARS = "23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz"


def _message_id() -> str:
    """A message id in Meteor's alphabet and length (``Random.id()``: 17 characters)."""
    return "".join(secrets.choice(_ID_CHARS) for _ in range(17))


@dataclass(frozen=True, slots=True)
class _Me:
    """The bot as ``/api/v1/me`` describes it, and the server's clock (ms) from the
    answer's Date (to the second, so one second early; the local clock without one)."""

    id: str
    username: str
    name: str
    clock: int


def _now_ms() -> int:
    return int(time.time() * 1000)


def _no_redirects() -> aiohttp.TraceConfig:
    trace = aiohttp.TraceConfig()
    trace.on_request_redirect.append(_refuse_redirect)
    return trace


async def _refuse_redirect(_session: object, _ctx: object,
                           params: aiohttp.TraceRequestRedirectParams) -> None:
    """The realtime login sends the token in the first frames: never to where a redirect
    points (ChannelHttp refuses them for REST the same way)."""
    where = params.response.headers.get("Location", "elsewhere")
    raise FatalConnectorError(f"Rocket.Chat's realtime API at {params.url} redirected to "
                              f"{where}; redirects are not followed: check server_url")


class RocketChatConnector(ConnectorBase):
    spec = SPEC
    config: RocketChatConfig

    def __init__(self, name: str, config: RocketChatConfig) -> None:
        super().__init__(name, config)
        self._http: ChannelHttp | None = None
        self._rest_session: aiohttp.ClientSession | None = None
        self._socket_session: aiohttp.ClientSession | None = None
        self._ddp: DdpConnection | None = None
        self._bot_id = ""
        self._bot_username = ""
        self._rooms: dict[str, RoomInfo] = {}
        self._cursor = Cursor()
        self._started = 0
        self._ours: Recent[str, bool] = Recent(KEPT)
        self._display_name = ""
        self._typing_as = ""
        """The name typing is sent with: the username, or the display name once the server
        refused the username (UI_Use_Real_Name)."""
        self._typing_calls: Recent[str, str] = Recent(64)

    @property
    def limits(self) -> Limits:
        return Limits(max_text=self.config.max_text, text_length=utf16_len)

    # ---- lifecycle ------------------------------------------------------------------------

    def _check_config(self) -> None:
        if not self.config.server_url:
            raise FatalConnectorError("set server_url, the workspace address such as "
                                      "https://chat.example.com")
        if not self.config.user_id.strip():
            raise FatalConnectorError("set user_id, the bot's id shown with its personal "
                                      "access token")
        self.secret("auth_token")
        if self.config.ca_file and not Path(self.config.ca_file).is_file():
            raise FatalConnectorError(f"ca_file {self.config.ca_file!r} does not exist")

    def _make_http(self, session: aiohttp.ClientSession) -> ChannelHttp:
        return make_http(self.config.server_url, self.config.user_id.strip(),
                         self.secret("auth_token"), session)

    async def open(self) -> None:
        self._check_config()
        self._cursor = Cursor.from_json(await self.ctx.state.get(CURSOR_KEY))
        self._rest_session = tls_session(self.config.ca_file, total=REST_TIMEOUT)
        self._http = self._make_http(self._rest_session)
        if self.receives:
            self._socket_session = tls_session(self.config.ca_file, total=None,
                                               traces=[_no_redirects()])
        await self.connect_and_keep("realtime", self._connect,
                                    self._serve if self.receives else self._idle,
                                    platform="Rocket.Chat", explain=advice)

    async def close(self) -> None:
        await self._drop_socket()
        http, self._http = self._http, None
        if http is not None:
            await http.close()
        for session in (self._rest_session, self._socket_session):
            if session is not None:
                await session.close()
        self._rest_session = self._socket_session = None

    async def _drop_socket(self) -> None:
        ddp, self._ddp = self._ddp, None
        if ddp is not None:
            await ddp.close()

    async def probe(self) -> ProbeResult:
        """The REST half of a start: the settings and ``GET /api/v1/me``."""
        try:
            self._check_config()
            session = tls_session(self.config.ca_file, total=REST_TIMEOUT)
            try:
                username = (await self._whoami(self._make_http(session))).username
            finally:
                await session.close()
        except ConnectorError as exc:
            return ProbeResult(False, advice(exc))
        return ProbeResult(True, f"connected as @{username}")

    @staticmethod
    async def _whoami(http: ChannelHttp) -> _Me:
        answer = await http.call("GET", "/me")
        data = answer.data if isinstance(answer.data, dict) else {}
        uid, username, name = data.get("_id"), data.get("username"), data.get("name")
        if not isinstance(uid, str) or not isinstance(username, str):
            raise RetryableError("Rocket.Chat answered /api/v1/me without the user's id and "
                                 "username")
        return _Me(uid, username, name if isinstance(name, str) and name else username,
                   server_clock(answer.headers.get("Date"), _now_ms()))

    async def _connect(self) -> str:
        await self._drop_socket()
        http, session = self._live_http(), self._socket_session
        me = await self._whoami(http)
        self._bot_id, self._bot_username, self._started = me.id, me.username, me.clock
        if self._typing_as not in (me.username, me.name):
            self._typing_as = me.username
        self._display_name = me.name
        if session is None:  # sending only
            return f"connected as @{self._bot_username} (sending only)"
        ddp = await DdpConnection.open(session, websocket_url(self.config.server_url),
                                       ping_interval=self.config.ping_interval,
                                       on_traffic=self._traffic)
        try:
            login = await ddp.request({"msg": "method", "method": "login", "id": ddp.next_id(),
                                       "params": [{"resume": self.secret("auth_token")}]})
            result = login.get("result")
            who = result.get("id") if isinstance(result, dict) else None
            if who != self._bot_id:
                raise FatalConnectorError(f"the realtime login is user {who!r}, not the "
                                          f"token's user {self._bot_id!r}")
            first = self._cursor.first
            if first:  # what is in the rooms now is history: their floors
                await self._load_rooms()
                self._cursor.set_floors(self._rooms.values(), self._started)
            await ddp.request({"msg": "sub", "id": ddp.next_id(), "name":
                               "stream-room-messages", "params": ["__my_messages__", False]})
            if not first:  # after the subscription: a room's newest message as listed is
                await self._load_rooms()  # in the list or arrives live, none falls between
        except DdpError as exc:
            await ddp.close()
            if str(exc.error) in ("403", "401", "not-authorized"):
                raise FatalConnectorError(f"Rocket.Chat refused the realtime login ({exc}); "
                                          "check auth_token") from None
            raise RetryableError(f"the Rocket.Chat realtime login failed: {exc}") from None
        except BaseException:
            await ddp.close()
            raise
        self._ddp = ddp
        return f"connected as @{self._bot_username}"

    def _traffic(self) -> None:
        if self.running:
            self.ctx.heartbeat()

    def _live_http(self) -> ChannelHttp:
        http = self._http
        if http is None or not self.running:
            raise RetryableError(f"Rocket.Chat channel {self.name!r} is not running",
                                 retry_after=1.0)
        return http

    @property
    def _view(self) -> Viewpoint:
        return Viewpoint(self.name, self._bot_id, self._bot_username, self.config.server_url,
                         self._ours)

    # ---- rooms ----------------------------------------------------------------------------

    async def _load_rooms(self) -> None:
        data = (await self._live_http().call("GET", "/rooms.get")).data
        rooms = data.get("update") if isinstance(data, dict) else None
        for raw in rooms if isinstance(rooms, list) else []:
            room = parse_room(raw)
            if room is not None:
                self._rooms[room.rid] = room

    async def _room(self, rid: str, kind: str) -> RoomInfo | None:
        """What is known of a room; a room new to the bot is asked for (``rooms.info``),
        falling back to the kind the stream named."""
        room = self._rooms.get(rid)
        if room is not None:
            return room
        try:
            data = (await self._live_http().call("GET", "/rooms.info",
                                                 params={"roomId": rid})).data
            room = parse_room(data.get("room") if isinstance(data, dict) else None)
        except ConnectorError as exc:
            self.log.debug("rooms.info %s failed: %s", rid, exc)
        if room is None and kind:
            return RoomInfo(rid, kind)
        if room is not None:
            self._rooms[rid] = room
        return room

    # ---- receiving ------------------------------------------------------------------------

    async def _serve(self) -> None:
        ddp = self._ddp
        if ddp is None:
            raise RetryableError("not connected")
        await self._catch_up()
        while True:
            frame = await ddp.next_frame()
            kind = frame.get("msg")
            if kind == "nosub":
                raise RetryableError("Rocket.Chat ended the message subscription")
            if kind == "result":  # typing is the only call made while serving
                self._typing_answered(frame)
                continue
            got = stream_message(frame)
            if isinstance(got, Skip):
                self.ctx.log(got.level, f"skipped {got.reason}")
            elif got is not None:
                raw, extras = got
                participant, room_type = room_extras(extras)
                await self._message(raw, participant=participant, room_type=room_type)

    async def _idle(self) -> None:
        """Sending only: nothing to read, the receiving instance holds the realtime API."""
        await asyncio.Event().wait()

    async def _catch_up(self) -> None:
        """What arrived while the bot was away, room by room, before any live event."""
        if self._cursor.first:  # the first start: what came before it is history
            self._cursor.since = self._started
            await self._save()
            return
        handled = 0
        for room in list(self._rooms.values()):
            if room.kind not in ANSWERED_KINDS:
                continue
            oldest = self._cursor.catch_up_from(room)
            if oldest is None:
                continue
            try:
                messages, more = await fetch_history(self._live_http(), room, oldest,
                                                     limit=BACKFILL_LIMIT)
            except RoomGone as exc:
                self.ctx.log("warning", f"could not read what came in {room.rid} while the "
                             f"bot was away: {exc}")
                continue
            if more:
                self.ctx.log("warning", f"more than {BACKFILL_LIMIT} messages arrived in "
                             f"{room.rid} while the bot was away; only the newest are read")
            for raw in messages:
                handled += await self._message(raw, room_type=room.kind)
        self._cursor.since = self._started
        await self._save()
        if handled:
            self.ctx.log("info", f"caught up on {handled} messages that arrived while the bot "
                         "was away")

    async def _message(self, raw: object, *, participant: bool | None = None,
                       room_type: str = "") -> int:
        """Judge one message, journal it, then move its room's cursor; 1 if it was new."""
        where = stamp(raw)
        message = raw if isinstance(raw, dict) else {}
        if participant is False:  # a public channel the bot can read but has not joined
            self.log.debug("skipped message %s of a room the bot is not in",
                           message.get("_id"))
            return 0
        author = message.get("u")
        if where is not None and isinstance(author, dict) and author.get("_id") == self._bot_id:
            self._ours.remember(str(message.get("_id")), True)
            if isinstance(message.get("tmid"), str):
                self._ours.remember(message["tmid"], True)
        if where is not None and self._cursor.is_old(where):
            self.log.debug("skipped an update of older message %s", message.get("_id"))
            return 0
        room = await self._room(where.rid, room_type) if where is not None else None
        parsed = parse_message(raw, room=room, view=self._view, participant=participant)
        submitted = 0
        if isinstance(parsed, Skip):
            if parsed.level == "debug":
                self.log.debug("skipped %s", parsed.reason)
            else:
                self.ctx.log(parsed.level, f"skipped {parsed.reason}")
        else:
            try:
                result = await self.ctx.submit(parsed)
            except PyclawError as exc:  # not journaled: the cursor stays, catch-up fetches it
                self.ctx.log("error", f"could not journal Rocket.Chat message "
                             f"{parsed.platform_id}, will fetch it again: {exc}")
                raise RetryableError(f"could not journal a message: {exc}") from exc
            submitted = 0 if result.duplicate else 1
        if where is not None and self._cursor.advance(where):
            await self._save()
        return submitted

    async def _save(self) -> None:
        await self.ctx.state.set(CURSOR_KEY, self._cursor.to_json())

    # ---- sending --------------------------------------------------------------------------

    async def send_part(self, address: Address, text: str, reply_to: str | None) -> str:
        """One ``chat.sendMessage`` in the conversation's thread. ``reply_to`` is not quoted:
        Rocket.Chat quotes by a link to the message inside the text, which would change the
        text the gateway split; the thread (``tmid``) is the reply where there is one."""
        mid = _message_id()
        message: dict[str, Any] = {"_id": mid, "rid": address.chat, "msg": text}
        if address.thread:
            message["tmid"] = address.thread
            self._ours.remember(address.thread, True)
        self._ours.remember(mid, True)  # before the stream can echo it
        answer = await self._live_http().call("POST", "/chat.sendMessage",
                                              json_body={"message": message})
        sent = answer.data.get("message") if isinstance(answer.data, dict) else None
        got = sent.get("_id") if isinstance(sent, dict) else None
        if isinstance(got, str) and got:
            self._ours.remember(got, True)
            return got
        return mid

    async def edit(self, address: Address, platform_id: str, text: str) -> None:
        """``chat.update``; sending the same text again is harmless, so a lost answer is
        retryable, not uncertain."""
        await self._live_http().call("POST", "/chat.update", json_body={
            "roomId": address.chat, "msgId": platform_id, "text": text}, idempotent=True)

    async def typing(self, address: Address) -> None:
        ddp = self._ddp
        if ddp is None or ddp.closed or not self._typing_as:
            return
        extras = {"tmid": address.thread} if address.thread else {}
        call = ddp.next_id()
        self._typing_calls.remember(call, self._typing_as)
        try:
            await ddp.send({"msg": "method", "method": "stream-notify-room", "id": call,
                            "params": [f"{address.chat}/user-activity", self._typing_as,
                                       ["user-typing"], extras]})
        except RetryableError as exc:  # a missing indicator fails no reply
            self.log.debug("typing indicator failed: %s", exc)

    def _typing_answered(self, frame: dict[str, Any]) -> None:
        sent_as = self._typing_calls.pop(str(frame.get("id")), None)
        if not frame.get("error") or sent_as is None:
            return
        if sent_as == self._bot_username and self._display_name != sent_as:
            self._typing_as = self._display_name  # the server shows real names
            self.log.info("typing refused with the username; using the display name")
        else:
            self.log.debug("typing refused: %s", frame.get("error"))

    async def fetch_attachment(self, attachment: Attachment) -> AttachmentSource:
        """An upload is ``GET {server_url}/file-upload/{_id}/{name}``, which the server's
        ``FileUpload.requestCanAccessFiles`` lets through for the ``rc_uid``/``rc_token``
        cookies (what the web client sends) or the X-User-Id/X-Auth-Token headers. The
        cookies are used because the HTTP client drops a Cookie header when a redirect
        leaves the server (S3 or GridFS proxies off), and would carry custom headers along.
        A link an integration posted to another host is not fetched with the bot's login."""
        if attachment.platform_id and attachment.name:
            url = (f"{self.config.server_url}/file-upload/{quote(attachment.platform_id, safe='')}"
                   f"/{quote(attachment.name, safe='')}")
        elif attachment.url and self._on_server(attachment.url):
            url = attachment.url
        elif attachment.url:
            raise AttachmentUnavailable("the file is a link to another site, not an upload to "
                                        "this Rocket.Chat server, so pyclaw does not fetch it")
        else:
            raise AttachmentUnavailable("Rocket.Chat gave no upload id for it")
        cookie = f"rc_uid={self.config.user_id.strip()}; rc_token={self.secret('auth_token')}"
        trust = ssl.create_default_context(cafile=self.config.ca_file) \
            if self.config.ca_file else None  # the server's own CA, as its REST calls use
        return AttachmentSource(url=url, headers={"Cookie": cookie}, size=attachment.size,
                                ssl_context=trust)

    def _on_server(self, url: str) -> bool:
        """``url`` has the configured server's scheme, host and port."""
        mine, theirs = urlsplit(self.config.server_url), urlsplit(url)
        return (theirs.scheme, theirs.netloc.lower()) == (mine.scheme, mine.netloc.lower())


CONNECTOR = RocketChatConnector
