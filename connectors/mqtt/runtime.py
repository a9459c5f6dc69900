"""The MQTT connector: subscribe to ``<prefix>/in/+``, answer on ``<prefix>/out/<conversation>``.

One connection at a time (``_client.Connection``), kept by the kit's ``run_connected``:
``connect`` sends CONNECT with a fixed client id (generated once, kept in ``ctx.state``)
and ``clean_start`` off, so the broker keeps our session and QoS 1 subscription while we
are away and delivers what arrived meanwhile; then SUBSCRIBE at QoS 1. ``serve`` takes
each PUBLISH in order, journals it with ``ctx.submit`` and only then sends its PUBACK.
A message read but not acknowledged when the connection drops (or the gateway crashes) is
redelivered by the broker on the next connection, and recognised by its id (see
``_parse``). Guarantee: at least once from the broker, exactly once into the journal for
messages with a JSON id or redelivered within the broker's session. A message the journal
refuses is not acknowledged and the connection is renewed, so the broker sends it again.

Replies are QoS 1 publishes, one per part; the broker's PUBACK is the answer
(``Connection.publish`` sorts refusals and lost answers into pyclaw's errors). Nothing is
published retained unless ``retain_replies``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ssl
import uuid

from connectors.mqtt._client import Connection, Settings, describe_code
from connectors.mqtt._parse import (
    Received,
    Skip,
    in_filter,
    out_topic,
    parse_message,
    reply_payload,
    reply_topic_of,
    typing_payload,
    typing_topic,
)
from connectors.mqtt.manifest import SPEC, MqttConfig
from pyclaw_app.channels import ConnectorBase, Limits, ProbeResult, Recent, utf8_len
from pyclaw_app.errors import ConnectorError, FatalConnectorError, PyclawError, RetryableError
from pyclaw_app.model import Address

__all__ = ["CONNECTOR", "MqttConnector"]

_CLIENT_ID_KEY = "client_id"
_SESSION_KEY = "session"
"""ctx.state: how many times the broker started us a fresh session (part of message ids)."""


class MqttConnector(ConnectorBase):
    spec = SPEC
    config: MqttConfig

    def __init__(self, name: str, config: MqttConfig) -> None:
        super().__init__(name, config)
        self._conn: Connection | None = None
        self._client_id = ""
        self._session = 0
        self._unheard: Recent[str, bool] = Recent(256)

    @property
    def limits(self) -> Limits:
        return Limits(max_text=self.config.max_text, text_length=utf8_len)

    # ---- lifecycle --------------------------------------------------------------------------

    async def open(self) -> None:
        self._tls()  # a bad ca_file fails the start, not every reconnect
        ctx = self.ctx
        self._client_id = self.config.client_id or await ctx.state.get(_CLIENT_ID_KEY) or ""
        if not self._client_id:
            self._client_id = f"pyclaw-{uuid.uuid4().hex[:12]}"  # 19 bytes: fits any broker
            await ctx.state.set(_CLIENT_ID_KEY, self._client_id)
        self._session = int(await ctx.state.get(_SESSION_KEY) or 0)
        self.spawn("connection", self.run_connected(self._connect, self._serve))

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    def _settings(self, client_id: str) -> Settings:
        c = self.config
        return Settings(host=c.host, port=c.port or (8883 if c.tls else 1883),
                        client_id=client_id, username=c.username or None,
                        password=self.secret_or_none("password"), v5=c.protocol == "5",
                        session_expiry=c.session_expiry, keepalive=c.keepalive,
                        tls=self._tls())

    def _tls(self) -> ssl.SSLContext | None:
        c = self.config
        if not c.tls:
            return None
        try:
            context = ssl.create_default_context(cafile=c.ca_file or None)
        except (OSError, ssl.SSLError) as exc:
            raise FatalConnectorError(f"cannot read ca_file {c.ca_file!r}: {exc}") from None
        if c.tls_insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    async def _connect(self) -> str:
        if self.config.username and self.secret_or_none("password") is None:
            raise FatalConnectorError(f"the MQTT password of user {self.config.username!r} "
                                      "is not set")
        await self.close()
        conn = Connection(self._settings(self._client_id), self._traffic)
        present = await conn.open()
        self._conn = conn
        if not present:  # a fresh session: packet ids start over, so do our ids
            self._session += 1
            await self.ctx.state.set(_SESSION_KEY, self._session)
        topic_filter = in_filter(self.config.topic_prefix)
        code = await conn.subscribe(topic_filter)
        if code.is_failure:
            who = self.config.username or "anonymous clients"
            raise FatalConnectorError(
                f"the broker refused the subscription to {topic_filter} (SUBACK "
                f"{describe_code(code)}): allow {who} to read it in the broker's ACL")
        c = self.config
        return (f"{c.host}:{c.port or (8883 if c.tls else 1883)} as {self._client_id}, "
                f"{'resumed' if present else 'new'} session, reading {topic_filter}")

    def _traffic(self) -> None:
        if self.running:
            self.ctx.heartbeat()

    async def _serve(self) -> None:
        conn = self._conn
        if conn is None:
            raise RetryableError("not connected")
        while True:
            message = await conn.next_message()
            await self._deliver(conn, message.topic, message.payload, message.retain,
                                message.mid, message.qos)

    async def _deliver(self, conn: Connection, topic: str, payload: bytes, retained: bool,
                       mid: int, qos: int) -> None:
        """Journal one message, then PUBACK it; a refused one is not acknowledged and the
        connection is renewed so that the broker redelivers it."""
        ctx = self.ctx
        c = self.config
        parsed = parse_message(Received(topic, payload, retained, mid, self._session),
                               prefix=c.topic_prefix, channel=self.name,
                               max_payload=c.max_payload)
        if isinstance(parsed, Skip):
            ctx.log(parsed.level, parsed.reason, topic=topic[:200], size=len(payload))
        elif retained and c.retained == "skip":
            ctx.log("info", f"skipped a retained message on {topic}: retained messages are "
                    "old news the broker replays on subscribe (set retained: answer to "
                    "answer them; clear it with an empty retained publish)")
        else:
            try:
                await ctx.submit(parsed)
            except PyclawError as exc:
                ctx.log("error", f"could not journal message {parsed.platform_id}; the broker "
                        f"will send it again: {exc}")
                raise RetryableError("reconnecting so that the broker redelivers "
                                     "an unjournaled message") from exc
        conn.ack(mid, qos)

    # ---- outbound ---------------------------------------------------------------------------

    def _connection(self) -> Connection:
        conn = self._conn
        if conn is None or not self.running or conn.lost.done():
            raise RetryableError(f"MQTT channel {self.name!r} is not connected", retry_after=1.0)
        return conn

    def _reply_topic(self, address: Address) -> str:
        """``<prefix>/out/<chat>``, or the reply topic the message named (its thread), checked
        again here: whatever the address says, the bot publishes under the prefix only."""
        prefix = self.config.topic_prefix
        if not address.thread:
            return out_topic(prefix, address.chat)
        if reply_topic_of(prefix, f"{prefix}/{address.thread}") is None:
            raise FatalConnectorError(f"not a reply topic under {prefix}/: {address.thread!r}")
        return f"{prefix}/{address.thread}"

    async def send_part(self, address: Address, text: str, reply_to: str | None) -> str:
        if not address.chat or any(ch in address.chat for ch in "/+#\0"):
            raise FatalConnectorError(f"not an MQTT conversation id: {address.chat!r}")
        topic = self._reply_topic(address)
        part_id = uuid.uuid4().hex[:16]
        payload = reply_payload(part_id=part_id, conversation=address.chat, text=text,
                                reply_to=reply_to, as_json=self.config.reply_format == "json")
        code = await self._connection().publish(topic, payload, qos=1,
                                                retain=self.config.retain_replies)
        if code is not None and code.value == 0x10 and topic not in self._unheard:
            self._unheard.remember(topic, True)
            self.ctx.log("warning", f"the broker took the reply on {topic} but no client is "
                         "subscribed to it (PUBACK 0x10 No matching subscribers)")
        return part_id

    async def typing(self, address: Address) -> None:
        if not self.config.publish_typing:
            return
        prefix = self.config.topic_prefix
        await self._connection().publish(
            typing_topic(prefix, address.chat),
            typing_payload(address.chat, as_json=self.config.reply_format == "json"),
            qos=0, retain=False)

    # ---- Test connection --------------------------------------------------------------------

    async def probe(self) -> ProbeResult:
        """CONNECT with a throw-away client id (ours would take over the live session) and
        try the subscription; nothing is published."""
        c = self.config
        if c.username and self.secret_or_none("password") is None:
            return ProbeResult(False, f"the password of user {c.username!r} is not set")
        try:
            settings = dataclasses.replace(
                self._settings(f"pyclaw-probe-{uuid.uuid4().hex[:8]}"), session_expiry=0)
            conn = Connection(settings, lambda: None)
            try:
                await conn.open()
                code = await conn.subscribe(in_filter(c.topic_prefix))
            finally:
                with contextlib.suppress(ConnectorError, OSError, asyncio.TimeoutError):
                    await conn.close()
        except ConnectorError as exc:
            return ProbeResult(False, str(exc))
        where = f"{settings.host}:{settings.port}"
        if code.is_failure:
            return ProbeResult(False, f"connected to {where}, but the broker refused the "
                               f"subscription to {in_filter(c.topic_prefix)} "
                               f"(SUBACK {describe_code(code)})")
        who = f" as {c.username}" if c.username else ""
        return ProbeResult(True, f"connected to {where}{who}; may subscribe to "
                           f"{in_filter(c.topic_prefix)}")


CONNECTOR = MqttConnector
