"""The Zulip connector: Zulip's event queue, read by long poll, on the kit's reconnect loop.

``run_connected`` keeps one event queue: ``connect`` asks who the bot is (``GET
/users/me``, so a wrong key fails the start with one clear line) and, when there is no
queue yet, registers one (``POST /register``, message events only, raw Markdown).
``serve`` long-polls ``GET /events`` from the last event id it processed: a dropped
connection changes nothing, because the queue keeps every event until the next poll
acknowledges it, so the reconnect simply polls the same queue again.

A queue the server garbage-collected (``BAD_EVENT_QUEUE_ID``: ten minutes without a
poll) is registered anew, and what arrived in between is fetched with ``GET /messages``
from the last message id processed. That id (:data:`CURSOR_KEY` in ``ctx.state``) is
saved after each message was journaled, so a restart does the same: a fresh queue, then
the history since the cursor, so messages sent while the gateway was down are answered
and none twice (message ids only grow, so anything at or below the cursor is skipped,
and the journal drops a repeat by id as well). The very first start answers nothing of
the bot's history: its cursor starts at the newest message id at registration.

Sending only (``receives`` false, another instance reads the events): the connection is
``GET /users/me`` alone. No queue is registered (so none is deleted on stop) and the
cursor in ``ctx.state`` is never written. Without ``register``'s answer the server's
feature level and limits are unknown: direct messages go as ``type=private``, which every
server takes (``direct`` is its newer name, Zulip 7.0), and the limits are Zulip's
defaults (10,000 characters, topics of 60).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from connectors.zulip._api import QueueGone, ZulipApi
from connectors.zulip._parse import (
    Bot,
    DirectTarget,
    Skip,
    StreamTarget,
    parse_message,
    target_of,
)
from connectors.zulip.manifest import MAX_TEXT, MAX_TOPIC, SPEC, ZulipConfig
from pyclaw_app.channels import ConnectorBase, Limits, ProbeResult
from pyclaw_app.channels.contract import AttachmentSource, AttachmentUnavailable
from pyclaw_app.errors import ConnectorError, FatalConnectorError, PyclawError, RetryableError
from pyclaw_app.model import Address, Attachment

__all__ = ["CONNECTOR", "CURSOR_KEY", "ZulipConnector"]

CURSOR_KEY = "last_message_id"
"""``ctx.state`` key of the id of the newest message fully journaled (or skipped)."""
_DELETE_TIMEOUT = 3.0
"""Seconds stopping waits for ``DELETE /events`` (the gateway allows a stop ten)."""
_DIRECT_TYPE_LEVEL = 174
"""Feature level from which ``type=direct`` replaces ``private`` (Zulip 7.0)."""


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class ZulipConnector(ConnectorBase):
    spec = SPEC
    config: ZulipConfig

    def __init__(self, name: str, config: ZulipConfig) -> None:
        super().__init__(name, config)
        self._api: ZulipApi | None = None
        self._bot: Bot | None = None
        self._queue: str | None = None
        self._last_event = -1
        self._cursor: int | None = None
        self._max_text = MAX_TEXT
        self._max_topic = MAX_TOPIC
        self._feature_level = 0

    @property
    def limits(self) -> Limits:
        """Zulip's 10,000 code points, or what this server's ``max_message_length`` says."""
        return Limits(max_text=self._max_text)

    # ---- lifecycle ------------------------------------------------------------------------

    def _check_config(self) -> str:
        config = self.config
        if not config.site.startswith(("https://", "http://")):
            raise FatalConnectorError("site must be the organization's address, such as "
                                      f"https://example.zulipchat.com, not {config.site!r}")
        if "@" not in config.email:
            raise FatalConnectorError("email must be the bot's email as Zulip shows it (the "
                                      f"zuliprc file's email), not {config.email!r}")
        return self.secret("api_key")

    async def open(self) -> None:
        api_key = self._check_config()
        cursor = await self.ctx.state.get(CURSOR_KEY)
        self._cursor = _int(cursor)
        self._api = ZulipApi(self.config.site, self.config.email, api_key)
        await self.connect_and_keep("events", self._connect,
                                    self._serve if self.receives else self._idle,
                                    platform="Zulip")

    async def close(self) -> None:
        """Delete the queue, so the server does not keep events for a client that left."""
        api, queue = self._api, self._queue
        self._api, self._queue = None, None
        if api is None:
            return
        try:
            if queue is not None:
                async with asyncio.timeout(_DELETE_TIMEOUT):
                    await api.delete_queue(queue)
        except (ConnectorError, TimeoutError) as exc:  # the server forgets it in 10 minutes
            self.log.debug("could not delete the event queue: %r", exc)
        finally:
            await api.close()

    async def probe(self) -> ProbeResult:
        try:
            api = ZulipApi(self.config.site, self.config.email, self._check_config())
            try:
                me = await api.me()
            finally:
                await api.close()
        except ConnectorError as exc:
            return ProbeResult(False, str(exc))
        return ProbeResult(True, f"connected as {me.get('full_name', '?')} "
                                 f"({me.get('email', self.config.email)})")

    def _live(self) -> ZulipApi:
        if self._api is None or not self.running:
            raise RetryableError(f"Zulip channel {self.name!r} is not connected",
                                 retry_after=1.0)
        return self._api

    async def _connect(self) -> str:
        me = await self._live().me()
        user_id, name = _int(me.get("user_id")), me.get("full_name")
        if user_id is None or not isinstance(name, str):
            raise RetryableError(f"Zulip's GET /users/me named no user ({dict(me)!r})")
        self._bot = Bot(user_id=user_id, full_name=name, site=self.config.site)
        if not self.receives:
            return f"connected as {name} (sending only)"
        if self._queue is None:
            await self._register()
        return f"connected as {name}"

    async def _register(self) -> None:
        """A new event queue; then what arrived since the cursor, or, on the very first
        start, the cursor at the newest message."""
        answer = await self._live().register()
        queue, last = answer.get("queue_id"), _int(answer.get("last_event_id"))
        if not isinstance(queue, str) or not queue or last is None:
            raise RetryableError(f"Zulip's register gave no event queue ({dict(answer)!r})")
        self._read_limits(answer)
        if self._cursor is not None:
            await self._backfill(self._cursor)
        else:
            newest = _int(answer.get("max_message_id"))
            if newest is not None:
                self._cursor = newest
                await self.ctx.state.set(CURSOR_KEY, newest)
                self.ctx.log("info", "first start: earlier messages are not answered")
        # Kept only now: a backfill that failed half-way must run again, on a new queue.
        self._queue, self._last_event = queue, last

    def _read_limits(self, answer: Mapping[str, Any]) -> None:
        length, topic = _int(answer.get("max_message_length")), \
            _int(answer.get("max_topic_length"))
        self._max_text = length if length is not None and length >= 2 else MAX_TEXT
        self._max_topic = topic if topic is not None and topic >= 1 else MAX_TOPIC
        self._feature_level = _int(answer.get("zulip_feature_level")) or 0

    # ---- receiving ------------------------------------------------------------------------

    async def _backfill(self, cursor: int) -> None:
        """The bot's messages after ``cursor``, oldest first; when more than
        ``backfill_limit`` arrived, only the newest that many."""
        api, limit = self._live(), self.config.backfill_limit
        page = await api.messages(cursor + 1, before=0, after=limit)
        if page.get("found_newest") is False:
            self.ctx.log("warning", f"more than {limit} messages arrived while the bot was "
                         "away; only the newest are answered")
            page = await api.messages("newest", before=limit, after=0)
        messages = page.get("messages")
        batch = [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) \
            else []
        batch.sort(key=lambda m: _int(m.get("id")) or 0)
        self.ctx.heartbeat()
        for message in batch:
            await self._message(message, message.get("flags"))
        if batch:
            self.ctx.log("info", f"fetched {len(batch)} messages that arrived while the "
                         "event queue was away")

    async def _serve(self) -> None:
        while True:
            if self._queue is None:
                await self._register()
                continue
            try:
                events = await self._live().events(self._queue, self._last_event)
            except QueueGone:
                self.ctx.log("info", "the Zulip event queue expired; registering a new one "
                             "and fetching the messages that arrived meanwhile")
                self._queue = None
                continue
            self.ctx.heartbeat()
            for event in events:
                await self._event(event)

    async def _idle(self) -> None:
        """Sending only: nothing to read, the receiving instance polls its own queue."""
        await asyncio.Event().wait()

    async def _event(self, raw: object) -> None:
        """One event (a message or a heartbeat); acknowledged once it was handled."""
        event = raw if isinstance(raw, dict) else {}
        if event.get("type") == "message":
            await self._message(event.get("message"), event.get("flags"))
        event_id = _int(event.get("id"))
        if event_id is not None and event_id > self._last_event:
            self._last_event = event_id

    async def _message(self, raw: object, flags: object) -> None:
        message_id = _int(raw.get("id")) if isinstance(raw, dict) else None
        if message_id is not None and self._cursor is not None and message_id <= self._cursor:
            self.log.debug("message %s was handled before", message_id)
            return
        if self._bot is None:  # connect sets it before any message is read
            raise RetryableError("Zulip messages arrived before the bot was known")
        parsed = parse_message(raw, flags, channel=self.name, bot=self._bot)
        if isinstance(parsed, Skip):
            if parsed.level == "debug":
                self.log.debug("skipped %s", parsed.reason)
            else:
                self.ctx.log(parsed.level, f"skipped {parsed.reason}")
        else:
            try:
                await self.ctx.submit(parsed)
            except PyclawError as exc:  # not journaled: not acknowledged, it comes again
                self.ctx.log("error", f"could not journal Zulip message {parsed.platform_id}, "
                             f"will retry: {exc}")
                raise RetryableError(f"could not journal a message: {exc}") from exc
        if message_id is not None:
            self._cursor = message_id
            await self.ctx.state.set(CURSOR_KEY, message_id)

    # ---- sending --------------------------------------------------------------------------

    def _target(self, address: Address) -> StreamTarget | DirectTarget:
        target = target_of(address.chat, address.thread)
        if target is None:
            raise FatalConnectorError(f"{address.chat!r} (topic {address.thread!r}) is not a "
                                      "Zulip conversation: expected stream:<id> with a topic "
                                      "or dm:<user ids>")
        return target

    async def send_part(self, address: Address, text: str, reply_to: str | None) -> str:
        """One message to the same stream and topic, or the same direct conversation (Zulip
        has no reply-to; the topic is the thread)."""
        target = self._target(address)
        if isinstance(target, StreamTarget):
            fields: dict[str, Any] = {"type": "stream", "to": target.stream_id,
                                      "topic": target.topic[:self._max_topic],
                                      "content": text}
        else:
            kind = "direct" if self._feature_level >= _DIRECT_TYPE_LEVEL else "private"
            fields = {"type": kind, "to": list(target.user_ids), "content": text}
        return str(await self._live().send(fields))

    async def edit(self, address: Address, platform_id: str, text: str) -> None:
        if not platform_id.isdigit():
            raise FatalConnectorError(f"{platform_id!r} is not a Zulip message id")
        await self._live().edit(int(platform_id), text)

    async def typing(self, address: Address) -> None:
        """``POST /typing`` start; clients clear it when the message arrives. A missing
        indicator fails no reply."""
        api = self._api
        target = target_of(address.chat, address.thread)
        if api is None or target is None:
            return
        if isinstance(target, StreamTarget):
            fields: dict[str, Any] = {"type": "stream", "op": "start",
                                      "stream_id": target.stream_id,
                                      "topic": target.topic[:self._max_topic]}
        else:
            kind = "direct" if self._feature_level >= _DIRECT_TYPE_LEVEL else "private"
            fields = {"type": kind, "op": "start", "to": list(target.user_ids)}
        try:
            await api.typing(fields)
        except ConnectorError as exc:
            self.log.debug("typing indicator failed: %s", exc)

    async def fetch_attachment(self, attachment: Attachment) -> AttachmentSource:
        """The upload's temporary, credential-free address on the organization's own site
        (``ZulipApi.upload_url``); the link comes from a message, so only its path under
        ``/user_uploads/`` is used, and only on the configured site."""
        link = attachment.platform_id or ""
        site = self.config.site
        path = link.removeprefix(site) if link.startswith(f"{site}/") else link
        path_id = path.removeprefix("/user_uploads/")
        if path == path_id or not path_id or any(c in path_id for c in "?#\\") \
                or ".." in path_id.split("/"):
            raise AttachmentUnavailable("the link is not a file uploaded to this Zulip "
                                        "organization")
        temporary = await self._live().upload_url(path_id)
        return AttachmentSource(url=f"{site}{temporary}", size=attachment.size)


CONNECTOR = ZulipConnector
