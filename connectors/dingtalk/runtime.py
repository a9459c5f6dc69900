"""The DingTalk connector: Stream mode in, session webhooks or the robot API out.

``run_connected`` keeps one Stream connection (``_stream``): ``connect`` asks
``connections/open`` for a one-time ticket (a wrong Client ID/Secret fails the start
itself) and opens the socket; ``serve`` reads frames one at a time until the connection
ends. A robot-message callback is parsed, journaled with ``ctx.submit`` and only then
acked; a message the journal refused is not acked, and the connection is reopened so it
comes again. DingTalk may push a message twice (network jitter, or a redelivery of what
was never acked); its ``msgId`` is the platform id, so the journal answers it once. A
SYSTEM ``ping`` is answered with its ``opaque``; a SYSTEM ``disconnect`` (DingTalk
retires connections regularly and closes the socket 10 s later) is met by opening the
next connection at once and closing the old one, without going offline. Stopping
cancels the task and closes the socket and both HTTP sessions, each close bounded
(:data:`connectors.dingtalk._stream.CLOSE_TIMEOUT`).

Replies: each message names a session webhook valid for about 90 minutes; while the
newest one of a chat is valid (with :data:`WEBHOOK_MARGIN` to spare) a part is posted
there (no token, no OpenAPI quota). Otherwise, and after a restart (webhooks are kept in
memory only), it goes through the robot OpenAPI: ``oToMessages/batchSend`` to the user's
staff id for a single chat, ``groupMessages/send`` to the ``openConversationId`` for a
group (chat ids of groups are conversation ids, which start with ``cid``; single chats
are staff ids). DingTalk's robot API cannot edit a message or show typing.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from dingtalk_stream import AckMessage, CallbackMessage, EventMessage, SystemMessage

from connectors.dingtalk._api import ROBOT_TOPIC, DingTalkApi, SessionGone
from connectors.dingtalk._parse import Conversation, Frame, Parsed, parse_message
from connectors.dingtalk._stream import IDLE, NOT_JSON, StreamSocket
from connectors.dingtalk.manifest import SPEC, DingTalkConfig
from pyclaw_app.channels import ConnectorBase, ProbeResult, Recent
from pyclaw_app.channels.contract import AttachmentSource, AttachmentUnavailable
from pyclaw_app.errors import ConnectorError, FatalConnectorError, PyclawError, RetryableError
from pyclaw_app.model import Address, Attachment

__all__ = ["CONNECTOR", "WEBHOOK_MARGIN", "DingTalkConnector"]

WEBHOOK_MARGIN = 30.0
"""Seconds of validity a session webhook must have left to be used for a part."""
GROUP_PREFIX = "cid"
TITLE_CHARS = 24
"""Length of a markdown message's title (what notifications and the chat list show)."""
_LINE_MARK = re.compile(r"^\s*(?:#{1,6}|>|[-*+]|\d{1,3}[.)])\s+")


def markdown_title(text: str) -> str:
    """The first line of ``text`` without its markdown marks, shortened; never empty."""
    for line in text.splitlines():
        plain = _LINE_MARK.sub("", line).strip("*_`~ \t")
        if plain:
            return plain if len(plain) <= TITLE_CHARS else plain[:TITLE_CHARS - 1] + "…"
    return "Reply"


class DingTalkConnector(ConnectorBase):
    spec = SPEC
    config: DingTalkConfig

    def __init__(self, name: str, config: DingTalkConfig) -> None:
        super().__init__(name, config)
        self._api: DingTalkApi | None = None
        self._socket: StreamSocket | None = None
        self._chats: Recent[str, Conversation] = Recent(4096)
        self._foreign_hooks: set[str] = set()

    # ---- lifecycle ------------------------------------------------------------------------

    def _make_api(self) -> DingTalkApi:
        client_id = self.config.client_id.strip()
        if not client_id:
            raise FatalConnectorError("the DingTalk client_id is not set: the Client ID "
                                      "(AppKey) of the app that owns the robot")
        return DingTalkApi(api_base=self.config.api_base, oapi_base=self.config.oapi_base,
                           client_id=client_id, client_secret=self.secret("client_secret"),
                           robot_code=self.config.robot_code.strip() or client_id)

    async def open(self) -> None:
        self._api = self._make_api()
        await self.connect_and_keep("stream", self._connect, self._serve, platform="DingTalk")

    async def close(self) -> None:
        await self._drop_socket()
        api, self._api = self._api, None
        if api is not None:
            await api.close()

    async def probe(self) -> ProbeResult:
        """An access token (the credentials) and a Stream ticket (Stream mode is on for the
        robot); the ticket expires unused after 90 s."""
        try:
            api = self._make_api()
        except FatalConnectorError as exc:
            return ProbeResult(False, str(exc))
        try:
            await api.access_token()
            await api.open_connection()
        except ConnectorError as exc:
            return ProbeResult(False, str(exc))
        finally:
            await api.close()
        return ProbeResult(True, f"connected as robot {api.robot_code} (Stream mode)")

    async def fetch_attachment(self, attachment: Attachment) -> AttachmentSource:
        """The message's ``downloadCode`` exchanged for a temporary URL (robot
        messageFiles/download, with the access token); the URL is fetched without it."""
        if not attachment.platform_id:
            raise AttachmentUnavailable("DingTalk gave no download code for it")
        try:
            url = await self._live_api().download_url(attachment.platform_id)
        except FatalConnectorError as exc:
            raise AttachmentUnavailable(f"DingTalk did not hand the file over ({exc})") \
                from exc
        return AttachmentSource(url=url, size=attachment.size)

    async def _connect(self) -> str:
        await self._drop_socket()
        api = self._live_api()
        endpoint, ticket = await api.open_connection()
        self._socket = await StreamSocket.connect(endpoint, ticket)
        return f"robot {api.robot_code}, Stream mode"

    async def _drop_socket(self) -> None:
        socket, self._socket = self._socket, None
        if socket is not None:
            await socket.close()

    def _live_api(self) -> DingTalkApi:
        if self._api is None or not self.running:
            raise RetryableError(f"DingTalk channel {self.name!r} is not running")
        return self._api

    # ---- receiving ------------------------------------------------------------------------

    async def _serve(self) -> None:
        socket = self._socket
        if socket is None:
            raise RetryableError("no Stream connection")
        try:
            while True:
                item = await socket.next()
                self.ctx.heartbeat()
                if item is IDLE:
                    continue
                if item is NOT_JSON or not isinstance(item, Frame):
                    self.ctx.log("warning", "skipped a DingTalk Stream frame that is not JSON")
                    continue
                if not await self._frame(socket, item):
                    socket = await self._replace(socket)
        finally:
            if self._socket is socket:
                await self._drop_socket()

    async def _replace(self, old: StreamSocket) -> StreamSocket:
        """A new connection in place of one DingTalk is retiring (it does so regularly, to
        balance its load): the channel stays online, the old socket is closed after."""
        api = self._live_api()
        endpoint, ticket = await api.open_connection()
        self._socket = await StreamSocket.connect(endpoint, ticket)
        await old.close()
        self.ctx.heartbeat()
        return self._socket

    async def _frame(self, socket: StreamSocket, frame: Frame) -> bool:
        """Handle one frame; False when DingTalk asked for a new connection."""
        if frame.kind == SystemMessage.TYPE:
            if frame.topic == SystemMessage.TOPIC_DISCONNECT:
                reason = frame.data.get("reason") if isinstance(frame.data, dict) else None
                self.ctx.log("info", f"DingTalk asked to reconnect ({reason or 'no reason'});"
                             " switching to a new Stream connection")
                return False
            await socket.ack(frame.message_id, frame.data)  # ping: its opaque comes back
            return True
        if frame.kind == CallbackMessage.TYPE and frame.topic == ROBOT_TOPIC:
            await self._robot_message(socket, frame)
            return True
        self.log.debug("unsubscribed %s frame on %r", frame.kind, frame.topic)
        if frame.kind in (CallbackMessage.TYPE, EventMessage.TYPE) and frame.message_id:
            await socket.ack(frame.message_id, {"response": None},
                             code=AckMessage.STATUS_NOT_IMPLEMENT, message="not subscribed")
        return True

    async def _robot_message(self, socket: StreamSocket, frame: Frame) -> None:
        """Journal, then ack; a message the journal refused stays unacked."""
        parsed = parse_message(frame.data, channel=self.name, bot_name=self.config.bot_name)
        if isinstance(parsed, Parsed):
            self._remember(parsed.conversation)
            try:
                result = await self.ctx.submit(parsed.inbound)
            except PyclawError as exc:
                self.ctx.log("error", f"could not journal DingTalk message "
                             f"{parsed.inbound.platform_id}; reconnecting so it comes again: "
                             f"{exc}")
                raise RetryableError(f"could not journal a message: {exc}") from exc
            if result.duplicate:
                self.log.debug("duplicate %s", parsed.inbound.platform_id)
        elif parsed.level == "debug":
            self.log.debug("skipped %s", parsed.reason)
        else:
            self.ctx.log(parsed.level, f"skipped {parsed.reason}", frame=frame.message_id)
        if not await socket.ack(frame.message_id, {"response": None}):
            self.log.debug("ack of %s not sent, the socket is gone; a repeat is answered "
                           "once", frame.message_id)

    def _remember(self, conversation: Conversation) -> None:
        """Keep the chat's newest session webhook, if it is on a configured host."""
        hook = conversation.webhook
        api = self._live_api()
        if hook and not api.webhook_allowed(hook):
            if conversation.chat not in self._foreign_hooks:
                self._foreign_hooks.add(conversation.chat)
                self.ctx.log("warning", f"ignored a session webhook of chat "
                             f"{conversation.chat} outside {self.config.oapi_base}; replies "
                             "there go through the robot API")
            conversation = Conversation(conversation.chat, conversation.group,
                                        conversation.conversation_id, conversation.staff_id,
                                        webhook="", webhook_expires=0.0)
        self._chats.remember(conversation.chat, conversation)

    # ---- sending --------------------------------------------------------------------------

    async def send_part(self, address: Address, text: str, reply_to: str | None) -> str:
        """One message: to the chat's session webhook while it is valid, else through the
        robot API. DingTalk quotes nothing, so ``reply_to`` is not used. A webhook DingTalk
        no longer knows is forgotten and the part retried (through the robot API)."""
        api = self._live_api()
        chat = address.chat
        known = self._chats.get(chat)
        markdown = self.config.message_format == "markdown"
        if known is not None and known.webhook \
                and known.webhook_expires - time.time() > WEBHOOK_MARGIN:
            body: dict[str, Any] = (
                {"msgtype": "markdown", "markdown": {"title": markdown_title(text),
                                                     "text": text}}
                if markdown else {"msgtype": "text", "text": {"content": text}})
            try:
                await api.send_webhook(known.webhook, body)
            except SessionGone:
                self._chats.remember(chat, Conversation(
                    chat, known.group, known.conversation_id, known.staff_id, "", 0.0))
                raise
            return f"session-{uuid.uuid4().hex}"
        group = known.group if known is not None else chat.startswith(GROUP_PREFIX)
        target = chat if group or known is None else known.staff_id
        if not target:
            raise FatalConnectorError(f"cannot reply in {chat}: its session webhook expired "
                                      "and DingTalk named no staff id for the robot API")
        msg_key, param = (("sampleMarkdown", {"title": markdown_title(text), "text": text})
                          if markdown else ("sampleText", {"content": text}))
        key = await api.send_robot(group=group, target=target, msg_key=msg_key,
                                   msg_param=param)
        return key or f"robot-{uuid.uuid4().hex}"


CONNECTOR = DingTalkConnector
