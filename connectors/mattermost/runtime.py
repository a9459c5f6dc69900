"""The Mattermost connector: REST API v4 through the kit's ``ChannelHttp``, events from the
WebSocket through aiohttp.

No SDK: ``mattermostdriver`` (the Python driver) is synchronous ``requests`` for REST,
last released in 2022, and runs its own WebSocket reconnect loop, which would hide the
disconnects ``run_connected`` must see. The API is plain JSON, so aiohttp (a core
dependency) does both halves.

``run_connected`` keeps one connection: ``GET /users/me`` (the token, the bot's id and
username), then the WebSocket login (``_socket``). ``serve`` first catches up: every
channel of the bot (``GET /users/{id}/channels``) that had posts since the cursor is read
back with ``GET /channels/{id}/posts?since=`` (the WebSocket replays nothing), then it
reads ``posted`` events until the connection ends. Each post is journaled, then the
cursor (``ctx.state["cursor"]``, :mod:`_cursor`) moves past it, so a restart or a
reconnect reads on from there and the journal's one-row-per-post-id keeps anything read
twice from being answered twice. The very first start answers nothing of the channels'
history.

Replies are ``POST /posts`` (one request per part; a lost answer is ``DeliveryUncertain``),
in the thread the conversation is in (``root_id``); streaming edits are ``PUT
/posts/{id}/patch``; typing is ``POST /users/{id}/typing``.

Sending only (``receives`` false, another instance holds the WebSocket): the connection
is ``GET /users/me`` alone, for the bot's id that typing needs; no WebSocket is opened and
nothing is read back, so the cursor in ``ctx.state`` stays the receiving instance's.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import quote

import aiohttp

from connectors.mattermost._api import make_http, ws_url
from connectors.mattermost._cursor import Cursor
from connectors.mattermost._parse import (
    DIRECT,
    Bot,
    Frame,
    Skip,
    created_at,
    is_mentioned,
    parse_post,
    post_of,
)
from connectors.mattermost._socket import Socket
from connectors.mattermost.manifest import SPEC, MattermostConfig
from pyclaw_app.channels import ChannelHttp, ConnectorBase, Limits, ProbeResult, Recent
from pyclaw_app.channels.contract import AttachmentSource, AttachmentUnavailable, OutboundFile
from pyclaw_app.errors import ConnectorError, FatalConnectorError, PyclawError, RetryableError
from pyclaw_app.model import Address, Attachment

__all__ = ["CONNECTOR", "CURSOR_KEY", "MattermostConnector"]

CURSOR_KEY = "cursor"
"""``ctx.state`` key of the :class:`Cursor`."""
CATCH_UP_LIMIT = 1000
"""Posts ``?since=`` returns at most (posts.yaml); more in one channel is logged."""


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


class MattermostConnector(ConnectorBase):
    spec = SPEC
    config: MattermostConfig

    def __init__(self, name: str, config: MattermostConfig) -> None:
        super().__init__(name, config)
        self._session: aiohttp.ClientSession | None = None
        self._http: ChannelHttp | None = None
        self._socket: Socket | None = None
        self._bot = Bot("", "")
        self._cursor = Cursor()
        self._threads: Recent[str, bool] = Recent(2000)
        """Root post id -> whether the bot started or wrote in that thread."""
        self._handled: Recent[str, bool] = Recent(2000)
        """Posts journaled (or skipped) in this run: a catch-up's overlap is not resubmitted."""

    @property
    def limits(self) -> Limits:
        return Limits(max_text=self.config.max_text)

    # ---- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        token = self.secret("token")
        self._session = aiohttp.ClientSession(trust_env=False,
                                              timeout=aiohttp.ClientTimeout(total=30))
        self._http = make_http(self.config.url, token, self._session)
        self._cursor = Cursor.load(await self.ctx.state.get(CURSOR_KEY))
        await self.connect_and_keep("socket", self._connect,
                                    self._serve if self.receives else self._idle,
                                    platform="the Mattermost server")

    async def close(self) -> None:
        await self._drop_socket()
        http, self._http = self._http, None
        if http is not None:
            await http.close()
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def _drop_socket(self) -> None:
        socket, self._socket = self._socket, None
        if socket is not None:
            await socket.close()

    async def probe(self) -> ProbeResult:
        try:
            http = make_http(self.config.url, self.secret("token"))
        except FatalConnectorError as exc:
            return ProbeResult(False, str(exc))
        try:
            bot = await self._whoami(http)
            return ProbeResult(True, f"connected as @{bot.username}")
        except ConnectorError as exc:
            return ProbeResult(False, str(exc))
        finally:
            await http.close()

    @staticmethod
    async def _whoami(http: ChannelHttp) -> Bot:
        me = _dict((await http.call("GET", "/api/v4/users/me")).data)
        if not isinstance(me.get("id"), str) or not isinstance(me.get("username"), str):
            raise FatalConnectorError(f"{http.base_url} did not answer /api/v4/users/me as "
                                      "a Mattermost server does: check the server URL")
        return Bot(me["id"], me["username"])

    async def _connect(self) -> str:
        await self._drop_socket()
        assert self._session is not None
        self._bot = await self._whoami(self._api)
        if not self.receives:
            return f"connected as @{self._bot.username} (sending only)"
        self._socket = await Socket.open(
            self._session, ws_url(self.config.url), self.secret("token"),
            ping_interval=self.config.ping_interval, ping_timeout=self.config.ping_timeout)
        version = ".".join(self._socket.server_version.split(".")[:3])
        return f"connected as @{self._bot.username}" + (f" (Mattermost {version})"
                                                        if version else "")

    @property
    def _api(self) -> ChannelHttp:
        if self._http is None or not self.running:
            raise RetryableError(f"Mattermost channel {self.name!r} is not running",
                                 retry_after=1.0)
        return self._http

    # ---- receiving ------------------------------------------------------------------------

    async def _serve(self) -> None:
        socket = self._socket
        if socket is None:
            raise RetryableError("no WebSocket")
        await self._catch_up()
        async for frame in socket.frames(self.ctx.heartbeat):
            await self._frame(frame)
        raise RetryableError(f"the Mattermost server closed the WebSocket"
                             f"{f' (code {socket.close_code})' if socket.close_code else ''}")

    async def _idle(self) -> None:
        """Sending only: nothing to read, the receiving instance holds the WebSocket."""
        await asyncio.Event().wait()

    async def _frame(self, frame: Frame | None) -> None:
        if frame is None:
            self.ctx.log("warning", "skipped a WebSocket frame that is not a Mattermost event")
            return
        if frame.event != "posted":
            self.log.debug("event %s", frame.event or f"reply to {frame.seq_reply}")
            return
        data = frame.data or {}
        post = post_of(data)
        if post is None:
            self.ctx.log("warning", "skipped a malformed posted event (its post is not a "
                         "post object)")
            return
        await self._post(post, channel_type=str(data.get("channel_type") or ""),
                         sender_name=str(data.get("sender_name") or ""))

    async def _catch_up(self) -> None:
        """Read back what was posted since the cursor, in every channel of the bot."""
        channels = (await self._api.call(
            "GET", f"/api/v4/users/{quote(self._bot.id, safe='')}/channels")).data
        channels = [c for c in channels if isinstance(c, dict)] \
            if isinstance(channels, list) else []
        if self._cursor.empty:
            last = [c.get("last_post_at") for c in channels]
            self._cursor.at = max([v for v in last if isinstance(v, int)] +
                                  [int(time.time() * 1000)])
            await self.ctx.state.set(CURSOR_KEY, self._cursor.dump())
            self.ctx.log("info", "first start: posts made before now are not answered")
            return
        for channel in channels:
            channel_id, last = channel.get("id"), channel.get("last_post_at")
            if not isinstance(channel_id, str) or not isinstance(last, int):
                continue
            since = self._cursor.known(channel_id)
            if last >= since:
                await self._catch_up_channel(channel_id, str(channel.get("type") or ""), since)

    async def _catch_up_channel(self, channel_id: str, channel_type: str, since: int) -> None:
        try:
            answer = await self._api.call(
                "GET", f"/api/v4/channels/{quote(channel_id, safe='')}/posts",
                params={"since": str(max(1, since - 1))})  # the server reads "after" it
        except FatalConnectorError as exc:  # removed from it since the list was made
            self.ctx.log("warning", f"could not read back channel {channel_id}: {exc}")
            return
        posts = _dict(_dict(answer.data).get("posts"))
        fresh = sorted((p for p in posts.values()
                        if (created_at(p) or 0) >= since and isinstance(p, dict)),
                       key=lambda p: created_at(p) or 0)
        if len(posts) >= CATCH_UP_LIMIT:
            self.ctx.log("warning", f"more than {CATCH_UP_LIMIT} posts changed in channel "
                         f"{channel_id} while the bot was away; some may not be answered")
        for post in fresh:
            await self._post(post, channel_type=channel_type, sender_name="")

    async def _post(self, post: dict[str, Any], *, channel_type: str, sender_name: str
                    ) -> None:
        post_id, chat = str(post.get("id")), str(post.get("channel_id"))
        if post_id in self._handled:
            return
        parsed = parse_post(post, channel=self.name, bot=self._bot, channel_type=channel_type,
                            sender_name=sender_name,
                            bot_thread=await self._in_bot_thread(post, channel_type),
                            files_url=f"{self.config.url}/api/v4/files")
        if parsed is None:
            self.ctx.log("warning", f"skipped a malformed post {post_id[:40]!r}")
            return
        if isinstance(parsed, Skip):
            if parsed.own:
                self._threads.remember(str(post.get("root_id") or post_id), True)
            if parsed.level == "debug":
                self.log.debug("skipped %s", parsed.reason)
            else:
                self.ctx.log(parsed.level, f"skipped {parsed.reason}")
        else:
            try:
                await self.ctx.submit(parsed)
            except PyclawError as exc:  # not journaled: the cursor stays, it is read again
                self.ctx.log("error", f"could not journal Mattermost post {post_id}, will "
                             f"read it again: {exc}")
                raise RetryableError(f"could not journal a post: {exc}") from exc
        self._handled.remember(post_id, True)
        when = created_at(post)
        if when is not None and self._cursor.advance(chat, when):
            await self.ctx.state.set(CURSOR_KEY, self._cursor.dump())

    async def _in_bot_thread(self, post: dict[str, Any], channel_type: str) -> bool:
        """Whether a reply's thread is the bot's (it started it or wrote in it): known from
        its own posts, else asked once per thread (``GET /posts/{root}/thread``). Not asked
        where it cannot matter: a direct message, or a post that @mentions the bot."""
        root = post.get("root_id")
        if not isinstance(root, str) or not root or channel_type == DIRECT \
                or post.get("user_id") == self._bot.id:
            return False
        known = self._threads.get(root)
        if known is not None:
            return known
        message = post.get("message")
        if isinstance(message, str) and is_mentioned(message, self._bot.username):
            return False
        try:
            answer = await self._api.call("GET", f"/api/v4/posts/{quote(root, safe='')}/thread")
        except FatalConnectorError as exc:  # the root was deleted, or is out of reach
            self.log.debug("thread %s not readable: %s", root, exc)
            return False
        posts = _dict(_dict(answer.data).get("posts")).values()
        mine = any(_dict(p).get("user_id") == self._bot.id for p in posts)
        self._threads.remember(root, mine)
        return mine

    # ---- sending --------------------------------------------------------------------------

    async def send_part(self, address: Address, text: str, reply_to: str | None) -> str:
        """One ``POST /posts`` in the conversation's thread (Mattermost has no quoting:
        the thread is the reply, and ``address.thread`` already names it)."""
        answer = await self._api.call("POST", "/api/v4/posts", json_body={
            "channel_id": address.chat, "message": text, "root_id": address.thread or ""})
        post_id = _dict(answer.data).get("id")
        if not isinstance(post_id, str) or not post_id:
            raise FatalConnectorError("Mattermost accepted the post but named no id")
        self._threads.remember(address.thread or post_id, True)
        return post_id

    async def send_file(self, address: Address, file: OutboundFile, reply_to: str | None
                        ) -> str:
        """``POST /files`` (multipart: ``channel_id`` and the file), then one ``POST /posts``
        with its ``file_ids``, in the conversation's thread like a text part. An upload no
        post holds yet is invisible to everyone, so one whose answer is lost is sent again;
        the post is the usual single request (a lost answer is uncertain)."""
        form = aiohttp.FormData(quote_fields=False)  # the file's name as it is
        form.add_field("channel_id", address.chat)
        form.add_field("files", file.content(), filename=file.name, content_type=file.mime)
        uploaded = await self._api.call("POST", "/api/v4/files", data=form, idempotent=True)
        infos = _dict(uploaded.data).get("file_infos")
        first = _dict(infos[0]) if isinstance(infos, list) and infos else {}
        file_id = first.get("id")
        if not isinstance(file_id, str) or not file_id:
            raise RetryableError("Mattermost took the upload but named no file id")
        answer = await self._api.call("POST", "/api/v4/posts", json_body={
            "channel_id": address.chat, "message": file.caption,
            "root_id": address.thread or "", "file_ids": [file_id]})
        post_id = _dict(answer.data).get("id")
        if not isinstance(post_id, str) or not post_id:
            raise FatalConnectorError("Mattermost accepted the post but named no id")
        self._threads.remember(address.thread or post_id, True)
        return post_id

    async def edit(self, address: Address, platform_id: str, text: str) -> None:
        await self._api.call("PUT", f"/api/v4/posts/{quote(platform_id, safe='')}/patch",
                             json_body={"message": text})

    async def typing(self, address: Address) -> None:
        if not self._bot.id:
            return
        try:
            await self._api.call("POST", f"/api/v4/users/{quote(self._bot.id, safe='')}/typing",
                                 json_body={"channel_id": address.chat,
                                            "parent_id": address.thread or ""},
                                 idempotent=True)
        except ConnectorError as exc:  # a missing indicator fails no reply
            self.log.debug("typing indicator failed: %s", exc)

    async def fetch_attachment(self, attachment: Attachment) -> AttachmentSource:
        """``GET {url}/api/v4/files/{file_id}`` (files.yaml ``GetFile``) with the bot's token,
        which needs ``read_channel`` on the post's channel. The address is built from the
        configured server and the file id, never taken from the event, so the token goes
        to that server only."""
        if not attachment.platform_id:
            raise AttachmentUnavailable("Mattermost gave no file id for it")
        return AttachmentSource(
            url=f"{self.config.url}/api/v4/files/{quote(attachment.platform_id, safe='')}",
            headers={"Authorization": f"Bearer {self.secret('token')}"},
            size=attachment.size)


CONNECTOR = MattermostConnector
