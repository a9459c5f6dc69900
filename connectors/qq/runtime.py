"""The QQ connector: a OneBot v11 bridge's forward WebSocket, kept by ``run_connected``.

``connect`` opens the socket (a refused token is fatal, with the fix in the log line) and
asks ``get_login_info`` who the account is; ``serve`` journals each message event in
arrival order until the connection ends. Liveness: the bridge's heartbeat meta events say
how often they come (``interval``, ms); two intervals of silence mean the link is dead and
it is made again. A bridge with heartbeats off is asked ``get_status`` after ``idle_check``
seconds of silence instead. Every frame counts as traffic (``ctx.heartbeat``).

OneBot keeps nothing for an absent client and has no cursor to resume from: a message
that arrives while the channel is disconnected or stopped is lost on the bridge's side
(``ctx.state`` holds no cursor because there is none to hold). Within a connection
nothing is lost or doubled: events are journaled in order, and the journal drops an event
pushed twice by its ``message_id``.

Replies go out as segment arrays (no CQ escaping to get wrong): ``send_private_msg`` or
``send_group_msg``, the first part in a group quoting the user's message with a ``reply``
segment. The ids the bot sent are remembered (``Recent``) so a reply to one is
``reply_to_bot``; a quoted id it does not remember (sent before a restart) is looked up
with ``get_msg``. OneBot v11 has no typing indicator and no edits (``delete_msg`` only),
so replies are not streamed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from connectors.qq._conn import AnswerLost, ApiFailed, NotSent, OneBotSocket
from connectors.qq._errors import connect_error, send_error
from connectors.qq._files import lookup, source_from_answer, source_from_segment
from connectors.qq._parse import Message, Skip, View, parse_event
from connectors.qq.manifest import SPEC, QqConfig
from pyclaw_app.channels import ConnectorBase, ProbeResult, Recent
from pyclaw_app.channels.contract import AttachmentSource, AttachmentUnavailable
from pyclaw_app.errors import ConnectorError, FatalConnectorError, PyclawError, RetryableError
from pyclaw_app.model import Address, Attachment, Inbound

__all__ = ["CONNECTOR", "QqConnector"]

_LOOKUP_TIMEOUT = 5.0
"""Seconds a ``get_msg`` for a quoted message may take before the message goes on without."""
_MIN_BEAT = 0.1


class QqConnector(ConnectorBase):
    spec = SPEC
    config: QqConfig

    def __init__(self, name: str, config: QqConfig) -> None:
        super().__init__(name, config)
        self._sock: OneBotSocket | None = None
        self._watch: asyncio.Task[None] | None = None
        self._self_id = ""
        self._beat: float | None = None
        """Seconds between the bridge's heartbeat events, once one said so."""
        self._account_online: bool | None = None
        self._sent: Recent[str, bool] = Recent(2048)

    @property
    def _where(self) -> str:
        parts = urlsplit(self.config.url)
        return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))

    # ---- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        if self.secret_or_none("access_token") is None:
            self.ctx.log("warning", "no access_token is set: anyone who can reach the "
                         f"bridge at {self._where} can send as this QQ account")
        await self.connect_and_keep("connection", self._connect, self._serve,
                                    platform="the OneBot bridge")

    async def close(self) -> None:
        await self._drop()

    async def _drop(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
        sock, self._sock = self._sock, None
        if sock is not None:
            await sock.close()

    async def _login(self, *, probe: bool = False) -> tuple[OneBotSocket, str, str]:
        """An open socket and the account's (QQ number, nickname)."""
        try:
            sock = await OneBotSocket.open(
                self.config.url, self.secret_or_none("access_token"),
                timeout=self.config.api_timeout,
                on_frame=(lambda: None) if probe else self.ctx.heartbeat,
                name=f"{self.spec.name}:{self.name}")
        except (ApiFailed, NotSent) as exc:
            raise connect_error(exc, self._where) from exc
        try:
            info = await sock.call("get_login_info", {}, self.config.api_timeout)
        except (ApiFailed, NotSent, AnswerLost) as exc:
            await sock.close()
            raise connect_error(exc, self._where) from exc
        except BaseException:
            await sock.close()
            raise
        info = info if isinstance(info, dict) else {}
        user_id = info.get("user_id")
        if isinstance(user_id, bool) or not isinstance(user_id, int | str) \
                or not str(user_id).isdigit():
            await sock.close()
            raise FatalConnectorError(f"the bridge at {self._where} answered get_login_info "
                                      f"without a QQ number ({str(info)[:100]}): is the "
                                      "account logged in?")
        return sock, str(user_id), str(info.get("nickname") or user_id)

    async def _connect(self) -> str:
        await self._drop()
        sock, self_id, nickname = await self._login()
        self._sock, self._self_id, self._beat = sock, self_id, None
        self._watch = asyncio.create_task(self._watchdog(sock),
                                          name=f"{self.spec.name}:{self.name}:watchdog")
        return f"connected as {nickname} ({self_id}) at {self._where}"

    async def probe(self) -> ProbeResult:
        try:
            sock, self_id, nickname = await self._login(probe=True)
        except ConnectorError as exc:
            return ProbeResult(False, str(exc))
        await sock.close()
        return ProbeResult(True, f"connected as {nickname} ({self_id}) at {self._where}")

    # ---- receiving ------------------------------------------------------------------------

    async def _serve(self) -> None:
        sock = self._sock
        if sock is None:
            raise RetryableError("not connected")
        try:
            while (event := await sock.events.get()) is not None:
                await self._event(sock, event)
                self._log_odd_frames(sock)
        finally:
            self._log_odd_frames(sock)
            await self._drop()
        raise RetryableError(sock.ended)

    def _log_odd_frames(self, sock: OneBotSocket) -> None:
        while sock.odd_frames:
            self.ctx.log("warning", f"skipped a frame from the bridge: {sock.odd_frames.pop(0)}")

    async def _event(self, sock: OneBotSocket, event: dict[str, Any]) -> None:
        if event.get("post_type") == "meta_event":
            self._meta(event)
            return
        parsed = parse_event(event, View(self.name, self._self_id, self._sent))
        if isinstance(parsed, Skip):
            if parsed.level in ("", "debug"):
                self.log.debug("skipped %s", parsed.reason)
            else:
                self.ctx.log(parsed.level, f"skipped {parsed.reason}")
            return
        inbound = await self._resolve_reply(sock, parsed)
        try:
            await self.ctx.submit(inbound)
        except PyclawError as exc:  # OneBot cannot deliver it again: say it is lost
            self.ctx.log("error", f"could not journal QQ message {inbound.platform_id}, "
                         f"and OneBot cannot deliver it again: {exc}")

    async def _resolve_reply(self, sock: OneBotSocket, parsed: Message) -> Inbound:
        """A group message quoting an id the bot does not remember: ask who wrote it."""
        inbound = parsed.inbound
        if parsed.quoted is None or not inbound.is_group or inbound.mentioned:
            return inbound
        try:
            found = await sock.call("get_msg", {"message_id": int(parsed.quoted)},
                                    min(_LOOKUP_TIMEOUT, self.config.api_timeout))
        except (ApiFailed, NotSent, AnswerLost) as exc:
            self.log.debug("could not look up quoted message %s: %s", parsed.quoted, exc)
            return inbound
        sender = found.get("sender") if isinstance(found, dict) else None
        author = str(sender.get("user_id", "")) if isinstance(sender, dict) else ""
        if author != self._self_id:
            return inbound
        self._sent.remember(parsed.quoted, True)
        return dataclasses.replace(inbound, reply_to_bot=True)

    def _meta(self, event: dict[str, Any]) -> None:
        kind = event.get("meta_event_type")
        if kind == "heartbeat":
            interval = event.get("interval")
            if isinstance(interval, int | float) and not isinstance(interval, bool) \
                    and interval > 0:
                self._beat = max(_MIN_BEAT, interval / 1000)
            status = event.get("status")
            online = status.get("online") if isinstance(status, dict) else None
            if isinstance(online, bool) and online != self._account_online:
                if not online:
                    self.ctx.log("warning", "the bridge says the QQ account is offline: "
                                 "log it in again in the bridge (NapCat: scan the QR code)")
                elif self._account_online is False:
                    self.ctx.log("info", "the bridge says the QQ account is online again")
                self._account_online = online
        elif kind == "lifecycle":
            self.log.debug("lifecycle %s", event.get("sub_type"))

    async def _watchdog(self, sock: OneBotSocket) -> None:
        """End a connection that fell silent: two missed heartbeats, or no answer to
        ``get_status`` after ``idle_check`` seconds without heartbeats."""
        while not sock.ended:
            limit = 2 * self._beat if self._beat else self.config.idle_check
            silent = time.monotonic() - sock.last_frame
            if silent < limit:  # look again soon: the first heartbeat may set the interval
                await asyncio.sleep(min(limit - silent, self._beat or 1.0))
                continue
            if self._beat:
                sock.kill(f"no heartbeat from the bridge for {silent:.1f}s (it beats every "
                          f"{self._beat:g}s): the connection is dead")
                return
            try:
                await sock.call("get_status", {}, self.config.api_timeout)
            except (AnswerLost, NotSent) as exc:
                sock.kill(f"no answer to get_status after {silent:.0f}s of silence ({exc}): "
                          "the connection is dead")
                return
            except ApiFailed:
                pass  # an answer all the same: the link is alive

    # ---- sending --------------------------------------------------------------------------

    def _live(self) -> OneBotSocket:
        sock = self._sock
        if sock is None or sock.ended or not self.running:
            raise RetryableError("not connected to the OneBot bridge", retry_after=1.0)
        return sock

    async def fetch_attachment(self, attachment: Attachment) -> AttachmentSource:
        """The segment's link when it is on QQ's media servers or the bridge's host, else
        the bridge's answer to get_image / get_record / get_file (``_files``)."""
        bridge_host = (urlsplit(self.config.url).hostname or "").lower()
        found = source_from_segment(attachment, bridge_host)
        if found is not None:
            return found
        action, params = lookup(attachment)
        try:
            data = await self._live().call(action, params, self.config.api_timeout)
        except ApiFailed as exc:
            raise AttachmentUnavailable(f"the OneBot bridge did not hand the file over "
                                        f"({exc})") from exc
        except (NotSent, AnswerLost) as exc:
            raise RetryableError(f"the OneBot bridge did not answer {action}") from exc
        return source_from_answer(action, data, attachment, bridge_host)

    async def send_part(self, address: Address, text: str, reply_to: str | None) -> str:
        kind, _, target = address.chat.partition(":")
        if kind not in ("private", "group") or not target.isdigit():
            raise FatalConnectorError(f"not a QQ chat: {address.chat!r} (private:<QQ number> "
                                      "or group:<group number>)")
        sock = self._live()
        message: list[dict[str, Any]] = []
        if reply_to and reply_to.isdigit() and kind == "group":
            message.append({"type": "reply", "data": {"id": reply_to}})
        message.append({"type": "text", "data": {"text": text}})
        action, key = ("send_group_msg", "group_id") if kind == "group" \
            else ("send_private_msg", "user_id")
        try:
            data = await sock.call(action, {key: int(target), "message": message},
                                   self.config.api_timeout)
        except (NotSent, AnswerLost, ApiFailed) as exc:
            raise send_error(exc, address.chat) from exc
        message_id = data.get("message_id") if isinstance(data, dict) else None
        if isinstance(message_id, bool) or not isinstance(message_id, int | str):
            return f"qq-{uuid.uuid4().hex}"  # sent, but the bridge named no id to quote
        self._sent.remember(str(message_id), True)
        return str(message_id)


CONNECTOR = QqConnector
