"""The Matrix connector: matrix-nio for the calls, our own ``/sync`` loop for the events.

``run_connected`` keeps one nio ``AsyncClient`` per connection: log in (an access token, or
the password on every start, reusing the device id kept in ``ctx.state``), then a first
``/sync`` with the full room state (members, names, encryption) before the channel says
it is online. ``serve`` long-polls ``/sync`` from the ``since`` token and, per batch,
handles invites by ``invite_policy``, journals each timeline message, and only then keeps
the batch's ``next_batch`` in ``ctx.state`` (:data:`SINCE_KEY`): a restart resumes there,
messages sent while the bot was down are answered, and a batch that could not be
journaled is fetched again (the journal drops what it already has, by event id). When
more came while it was down than one sync holds (a ``limited`` timeline), the gap is
fetched back with ``/messages`` before the batch is served. The very first start, with no
token, answers nothing of the rooms' history.

Sending only (``receives`` false, another instance syncs): the connection is the login
alone. No ``/sync`` is made, so the ``since`` token, the device id and the encryption
notices in ``ctx.state`` stay the receiving instance's (a password login reuses the stored
device id without writing it; Synapse gives that device one more access token and leaves
the others valid), and replies, edits and typing are the same REST calls as ever.

The sync goes around nio's response classes (``AsyncClient.send`` with our own path) so
each event is read from its JSON as it came (``_parse``); nio's own retries are off
(``max_limit_exceeded=0``, ``max_timeouts=0``), so each reply part is one request and a
429 becomes a ``RetryableError`` with the server's ``retry_after_ms``.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import uuid
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from nio import (
    AsyncClient,
    AsyncClientConfig,
    ErrorResponse,
    JoinResponse,
    LoginResponse,
    RoomSendResponse,
    UploadResponse,
    WhoamiResponse,
)

from connectors.matrix._errors import answer_error, status_error, transport_error
from connectors.matrix._parse import Skip, accepts_invite, inviter, parse_event
from connectors.matrix._rooms import Rooms
from connectors.matrix.manifest import SPEC, MatrixConfig
from pyclaw_app.channels import ConnectorBase, ProbeResult, Recent
from pyclaw_app.channels.contract import AttachmentSource, AttachmentUnavailable, OutboundFile
from pyclaw_app.errors import ConnectorError, FatalConnectorError, PyclawError, RetryableError
from pyclaw_app.model import Address, Attachment

__all__ = ["CONNECTOR", "DEVICE_KEY", "SINCE_KEY", "MatrixConnector"]

SINCE_KEY = "since"
"""``ctx.state`` key of the ``next_batch`` token of the last fully journaled sync."""
DEVICE_KEY = "device_id"
"""``ctx.state`` key of the device a password login reuses (an id, not a secret)."""
E2E_KEY = "e2e_noticed"
"""``ctx.state`` key of the encrypted rooms already told that the bot cannot read them."""
TIMELINE_LIMIT = 100
BACKFILL_LIMIT = 1000
"""Most messages per room fetched back after a gap (a limited timeline after downtime)."""
_FILTER = json.dumps({"room": {"timeline": {"limit": TIMELINE_LIMIT}},
                      "presence": {"types": []}, "account_data": {"types": []}},
                     separators=(",", ":"))
_READ_MARGIN = 15.0
"""Seconds a long poll may take beyond its timeout before it counts as a dead connection."""
_TYPING_MS = 20000
_MXC = re.compile(r"mxc://([A-Za-z0-9.\-]+(?::\d{1,5})?|\[[0-9A-Fa-f:.]+\](?::\d{1,5})?)"
                  r"/([A-Za-z0-9_\-]+)")
"""A content URI: ``mxc://<server-name>/<media-id>`` (the spec's Matrix Content URIs)."""
E2E_NOTICE = ("I cannot read end-to-end encrypted messages yet. Please talk to me in a room "
              "without encryption (or a direct chat started with encryption off).")


def _client_config() -> AsyncClientConfig:
    return AsyncClientConfig(max_limit_exceeded=0, max_timeouts=0, encryption_enabled=False,
                             store_sync_tokens=False, request_timeout=30.0)


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _events(section: object) -> list[object]:
    events = _dict(section).get("events")
    return events if isinstance(events, list) else []


class MatrixConnector(ConnectorBase):
    spec = SPEC
    config: MatrixConfig

    def __init__(self, name: str, config: MatrixConfig) -> None:
        super().__init__(name, config)
        self._client: AsyncClient | None = None
        self._rooms = Rooms(config.user_id)
        self._since: str | None = None
        self._pending: dict[str, Any] | None = None
        """The first sync of a connection, made in ``_connect``, served by ``_serve``."""
        self._bot_events: Recent[str, bool] = Recent(1000)
        self._invites_done: set[str] = set()
        self._e2e_noticed: set[str] = set()

    # ---- lifecycle ------------------------------------------------------------------------

    def _check_config(self) -> None:
        if self.secret_or_none("access_token") is None:
            if self.secret_or_none("password") is None:
                raise FatalConnectorError("set the bot's access_token or its password")
            if not self.config.user_id.startswith("@") or ":" not in self.config.user_id:
                raise FatalConnectorError(f"user_id must be a full Matrix ID such as "
                                          f"@bot:example.org, not {self.config.user_id!r}")

    async def open(self) -> None:
        self._check_config()
        state = self.ctx.state
        self._since = await state.get(SINCE_KEY)
        self._e2e_noticed = set(await state.get(E2E_KEY) or [])
        await self.connect_and_keep("sync", self._connect,
                                    self._serve if self.receives else self._idle,
                                    platform="the homeserver")

    async def close(self) -> None:
        await self._drop_client()

    async def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def probe(self) -> ProbeResult:
        try:
            self._check_config()
        except FatalConnectorError as exc:
            return ProbeResult(False, str(exc))
        client = AsyncClient(self.config.homeserver, self.config.user_id,
                             config=_client_config())
        try:
            who = await self._login(client, probe=True)
            if self.secret_or_none("access_token") is None:
                await client.logout()  # the password login made a session just for this check
            return ProbeResult(True, f"connected as {who}")
        except ConnectorError as exc:
            return ProbeResult(False, str(exc))
        except (aiohttp.ClientError, TimeoutError) as exc:
            return ProbeResult(False, str(transport_error(exc, "logout", sent=False)))
        finally:
            await client.close()

    async def _connect(self) -> str:
        await self._drop_client()
        client = AsyncClient(self.config.homeserver, self.config.user_id,
                             device_id=await self.ctx.state.get(DEVICE_KEY),
                             config=_client_config())
        try:
            who = await self._login(client)
            self._client = client
            self._rooms = Rooms(who)
            if self.receives:
                self._pending = await self._sync(full_state=True, timeout=0)
        except BaseException:
            self._client = None
            await client.close()
            raise
        return f"connected as {who}" + ("" if self.receives else " (sending only)")

    async def _login(self, client: AsyncClient, *, probe: bool = False) -> str:
        """Log in (password) or check the token (whoami); returns the bot's user id."""
        user = self.config.user_id
        token = self.secret_or_none("access_token")
        try:
            if token is not None:
                client.access_token = token
                answer = await client.whoami()
                if not isinstance(answer, WhoamiResponse):
                    raise answer_error(answer, "whoami", user=user or "the bot")
                client.user_id = answer.user_id
                client.device_id = answer.device_id or client.device_id
                return answer.user_id
            login = await client.login(self.secret("password"),
                                       device_name=self.config.device_name)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise transport_error(exc, "login", sent=False) from exc
        if not isinstance(login, LoginResponse):
            raise answer_error(login, "login", user=user)
        if not probe and self.receives and login.device_id:
            await self.ctx.state.set(DEVICE_KEY, login.device_id)
        return login.user_id

    # ---- receiving ------------------------------------------------------------------------

    async def _sync(self, *, full_state: bool, timeout: int) -> dict[str, Any]:
        """One ``/sync`` from ``since`` (``timeout`` seconds of long poll), as raw JSON."""
        query = {"filter": _FILTER, "timeout": str(timeout * 1000)}
        if self._since:
            query["since"] = self._since
        if full_state:
            query["full_state"] = "true"
        return await self._get(f"/_matrix/client/v3/sync?{urlencode(query)}", "sync",
                               timeout + _READ_MARGIN)

    async def _get(self, path: str, what: str, timeout: float) -> dict[str, Any]:
        """A GET of the client API as raw JSON, errors mapped."""
        client = self._live()
        headers = {"Authorization": f"Bearer {client.access_token}"}
        try:
            answer = await client.send("GET", path, headers=headers, timeout=timeout)
            async with answer:
                status = answer.status
                body = await answer.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise transport_error(exc, what, sent=False) from exc
        body = _dict(body)
        if status != 200 and body.get("errcode") == "M_UNKNOWN_TOKEN" \
                and self.secret_or_none("access_token") is None:
            # the session was logged out (or soft-logged-out): the reconnect logs in again
            raise RetryableError("the homeserver ended the bot's session; logging in again")
        if status != 200:
            raise status_error(status, str(body.get("errcode", "")), str(body.get("error", "")),
                               body.get("retry_after_ms"), what, user=self._rooms.bot_id)
        return body

    async def _backfill(self, room_id: str, before: object, since: str) -> list[object]:
        """The events between ``since`` and a limited timeline's ``prev_batch`` (what came
        while the bot was away and did not fit the sync), oldest first, at most
        :data:`BACKFILL_LIMIT`; more than that is logged as skipped."""
        events: list[object] = []
        token = before if isinstance(before, str) else ""
        while token and len(events) < BACKFILL_LIMIT:
            query = urlencode({"dir": "b", "from": token, "to": since, "limit": "100"})
            page = await self._get(f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}"
                                   f"/messages?{query}", "backfill", _READ_MARGIN)
            chunk = page.get("chunk")
            if not isinstance(chunk, list) or not chunk:
                return list(reversed(events))
            events.extend(chunk)
            token = page.get("end") if isinstance(page.get("end"), str) else ""
        if token:
            self.ctx.log("warning", f"more than {BACKFILL_LIMIT} messages arrived in "
                         f"{room_id} while the bot was away; only the newest are read")
        return list(reversed(events[:BACKFILL_LIMIT]))

    async def _serve(self) -> None:
        batch, self._pending = self._pending, None
        while True:
            if batch is not None:
                await self._apply(batch)
            batch = await self._sync(full_state=False, timeout=self.config.sync_timeout)
            self.ctx.heartbeat()

    async def _idle(self) -> None:
        """Sending only: nothing to read, the receiving instance syncs."""
        await asyncio.Event().wait()

    async def _apply(self, batch: dict[str, Any]) -> None:
        """Invites, then each joined room's state and messages; the token once all are in."""
        answer = self._since is not None
        rooms = _dict(batch.get("rooms"))
        for room_id, info in _dict(rooms.get("invite")).items():
            await self._invited(room_id, _events(_dict(info).get("invite_state")))
        skipped = 0
        for room_id, raw in _dict(rooms.get("join")).items():
            info = _dict(raw)
            for event in _events(info.get("state")):
                self._rooms.apply(room_id, event)
            timeline = _dict(info.get("timeline"))
            events = _events(timeline)
            if answer and self._since and timeline.get("limited") is True \
                    and not self._joined_in(events):
                events = [*await self._backfill(room_id, timeline.get("prev_batch"),
                                                self._since), *events]
            for event in events:
                self._rooms.apply(room_id, event)
                if answer:
                    await self._event(room_id, event)
                else:
                    skipped += 1
        for room_id in _dict(rooms.get("leave")):
            self._rooms.forget(room_id)
        if not answer and skipped:
            self.ctx.log("info", f"first start: {skipped} earlier events in the bot's rooms "
                         "were not answered")
        token = batch.get("next_batch")
        if isinstance(token, str) and token:
            self._since = token
            await self.ctx.state.set(SINCE_KEY, token)

    def _joined_in(self, timeline: list[object]) -> bool:
        """The bot's own join is in this timeline: the room is new to it, and what came
        before the join is history, not a gap."""
        return any(_dict(e).get("type") == "m.room.member"
                   and _dict(e).get("state_key") == self._rooms.bot_id
                   and _dict(_dict(e).get("content")).get("membership") == "join"
                   for e in timeline)

    async def _event(self, room_id: str, event: object) -> None:
        parsed = parse_event(event, channel=self.name, room=self._rooms.view(room_id),
                             bot_events=self._bot_events)
        if isinstance(parsed, Skip):
            if parsed.encrypted:
                await self._encrypted(room_id, parsed.reason)
            elif parsed.level == "debug":
                self.log.debug("skipped %s", parsed.reason)
            else:
                self.ctx.log(parsed.level, f"skipped {parsed.reason}")
            return
        try:
            await self.ctx.submit(parsed)
        except PyclawError as exc:  # not journaled: the token stays, the batch comes again
            self.ctx.log("error", f"could not journal Matrix event {parsed.platform_id}, "
                         f"will retry: {exc}")
            raise RetryableError(f"could not journal an event: {exc}") from exc

    async def _encrypted(self, room_id: str, reason: str) -> None:
        """Say once per room, in the log and in the room, that encryption is not supported."""
        if room_id in self._e2e_noticed:
            self.log.debug("skipped %s", reason)
            return
        self.ctx.log("warning", f"skipped {reason}; the room was told once")
        self._e2e_noticed.add(room_id)
        await self.ctx.state.set(E2E_KEY, sorted(self._e2e_noticed))
        try:
            await self._send(room_id, {"msgtype": "m.notice", "body": E2E_NOTICE}, "notice")
        except ConnectorError as exc:
            self.ctx.log("warning", f"could not post the encryption notice in {room_id}: {exc}")

    async def _invited(self, room_id: str, invite_state: list[object]) -> None:
        if room_id in self._invites_done:
            return
        self._invites_done.add(room_id)
        client, sender = self._live(), inviter(invite_state, self._rooms.bot_id)
        config = self.config
        who = sender or "an unknown user"
        try:
            if accepts_invite(config.invite_policy, sender, allow_from=config.allow_from,
                              dm_policy=config.dm_policy):
                joined = await client.join(room_id)
                if isinstance(joined, JoinResponse):
                    self.ctx.log("info", f"accepted the invite to {room_id} from {who}")
                else:
                    self.ctx.log("warning", f"could not join {room_id} (invited by {who}): "
                                 f"{joined.message}")
                return
            await client.room_leave(room_id)
            self.ctx.log("info", f"declined the invite to {room_id} from {who}: "
                         f"invite_policy is {config.invite_policy}"
                         + (" and the sender is not in allow_from"
                            if config.invite_policy == "allowed" else ""))
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._invites_done.discard(room_id)  # asked again on the next sync
            raise transport_error(exc, "invite", sent=False) from exc

    # ---- sending --------------------------------------------------------------------------

    def _live(self) -> AsyncClient:
        client = self._client
        if client is None or not self.running:
            raise RetryableError(f"Matrix channel {self.name!r} is not connected",
                                 retry_after=1.0)
        return client

    async def _send(self, room_id: str, content: dict[str, Any], what: str, *,
                    sent_matters: bool = True) -> str:
        """One ``m.room.message`` event, one request; returns its event id."""
        client = self._live()
        try:
            answer = await client.room_send(room_id, "m.room.message", content,
                                            tx_id=uuid.uuid4().hex)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise transport_error(exc, what, sent=sent_matters) from exc
        if not isinstance(answer, RoomSendResponse):
            raise answer_error(answer, what, room=room_id, user=self._rooms.bot_id) \
                if isinstance(answer, ErrorResponse) else RetryableError(f"odd answer to {what}")
        self._bot_events.remember(answer.event_id, True)
        return answer.event_id

    async def fetch_attachment(self, attachment: Attachment) -> AttachmentSource:
        """``GET /_matrix/client/v1/media/download/{serverName}/{mediaId}`` on the bot's own
        homeserver, with its access token (authenticated media, Matrix 1.11): the
        homeserver fetches remote media itself, so the token never goes to the server an
        event names, and the address is built from the ``mxc://`` URI's two parts only."""
        match = _MXC.fullmatch(attachment.url or "")
        if match is None:
            raise AttachmentUnavailable("the message gave no mxc:// address for the file")
        token = self._live().access_token
        server, media = match.group(1), match.group(2)
        return AttachmentSource(
            url=f"{self.config.homeserver}/_matrix/client/v1/media/download/"
                f"{quote(server, safe=':[]')}/{media}",
            headers={"Authorization": f"Bearer {token}"}, size=attachment.size)

    async def send_part(self, address: Address, text: str, reply_to: str | None) -> str:
        content: dict[str, Any] = {"msgtype": "m.text", "body": text}
        _relate(content, address, reply_to)
        return await self._send(address.chat, content, "send")

    async def send_file(self, address: Address, file: OutboundFile, reply_to: str | None
                        ) -> str:
        """``POST /_matrix/media/v3/upload`` (nio's ``upload``), then one ``m.image`` /
        ``m.audio`` / ``m.file`` event naming the ``mxc://`` URI, related like a text part.
        An upload whose answer is lost leaves at most an unused file on the homeserver, so
        it is retried; the event is ``_send``'s single request (a lost answer is
        DeliveryUncertain). A voice message is ``m.audio`` marked as voice (MSC3245)."""
        data = file.content()
        client = self._live()
        try:
            uploaded, _ = await client.upload(io.BytesIO(data), content_type=file.mime,
                                              filename=file.name, filesize=len(data))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise transport_error(exc, "upload", sent=False) from exc
        if not isinstance(uploaded, UploadResponse):  # M_TOO_LARGE (413) is fatal, 429 waits
            raise answer_error(uploaded, "upload", user=self._rooms.bot_id)
        content: dict[str, Any] = {
            "msgtype": _MSGTYPES[file.kind], "body": file.caption or file.name,
            "filename": file.name, "url": uploaded.content_uri,
            "info": {"mimetype": file.mime, "size": len(data)}}
        if file.kind == "voice":
            content["org.matrix.msc3245.voice"] = {}
        _relate(content, address, reply_to)
        return await self._send(address.chat, content, "send file")

    async def edit(self, address: Address, platform_id: str, text: str) -> None:
        """An ``m.replace`` of ``platform_id`` (the original event, however often edited);
        an edit whose answer was lost is harmless to send again, hence retryable."""
        await self._send(address.chat, {
            "msgtype": "m.text", "body": f"* {text}",
            "m.new_content": {"msgtype": "m.text", "body": text},
            "m.relates_to": {"rel_type": "m.replace", "event_id": platform_id}},
            "edit", sent_matters=False)

    async def typing(self, address: Address) -> None:
        client = self._client
        if client is None:
            return
        try:
            answer = await client.room_typing(address.chat, True, timeout=_TYPING_MS)
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.log.debug("typing indicator failed: %r", exc)
            return
        if isinstance(answer, ErrorResponse):  # a missing indicator fails no reply
            self.log.debug("typing indicator refused: %s", answer)


_MSGTYPES = {"image": "m.image", "audio": "m.audio", "voice": "m.audio", "file": "m.file"}
"""The message type each kind of file is sent as (the spec's m.room.message msgtypes)."""


def _relate(content: dict[str, Any], address: Address, reply_to: str | None) -> None:
    """A reply in a thread stays in it (``is_falling_back`` when it quotes nothing); outside
    one it quotes the message answered."""
    if address.thread:
        content["m.relates_to"] = {
            "rel_type": "m.thread", "event_id": address.thread,
            "is_falling_back": reply_to is None,
            "m.in_reply_to": {"event_id": reply_to or address.thread}}
    elif reply_to:
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}


CONNECTOR = MatrixConnector
